"""No page, admin view, log line or mail shows the PSP's secret key, the webhook secret or a card number.

Every test card goes through both flows (card form and hosted page); then
every customer page, every console page of what they produced, every log
record and every mail is searched. And with DEBUG off, an error page shows
no traceback.
"""

import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from notifications.sender import send_due_notifications
from payments.models import GatewayCall, Payment, WebhookEvent
from tests.orders.factories import make_order
from tests.psp import CARDS
from tests.staff import login_verified

pytestmark = pytest.mark.django_db


def forbidden(settings) -> list[str]:
    secrets = [settings.PSP_SIMULATOR_SECRET_KEY, settings.PSP_SIMULATOR_WEBHOOK_SECRET]
    cards = [c for card in CARDS.values() for c in (card, " ".join(card[i:i + 4] for i in range(0, 16, 4)))]
    return secrets + cards


def test_no_secret_or_card_number_in_pages_logs_or_mail(client, psp, settings, caplog,
                                                       django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    for card in CARDS.values():
        order = make_order()
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                        {"card_token": psp.token(card)})
        other = make_order()
        client.post(reverse("payments:pay-hosted", args=[other.number, other.access_token]))
        hosted = Payment.objects.get(order=other)
        psp.pay_on_hosted_page(hosted.redirect_url, card)
        client.get(reverse("payments:return", args=[hosted.pk]))
    psp.flush_webhooks()
    send_due_notifications(budget_seconds=60)

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-password-1")
    staff = Client()
    login_verified(staff, admin)
    pages = []
    for payment in Payment.objects.select_related("order"):
        pages.append(client.get(reverse("payments:status", args=[payment.pk])))
        pages.append(client.get(reverse("payments:status-json", args=[payment.pk])))
        pages.append(client.get(payment.order.get_absolute_url()))
        pages.append(staff.get(reverse("admin:payments_payment_change", args=[payment.pk])))
        pages.append(staff.get(reverse("admin:orders_order_change", args=[payment.order_id])))
    for call in GatewayCall.objects.all()[:20]:
        pages.append(staff.get(reverse("admin:payments_gatewaycall_change", args=[call.pk])))
    for event in WebhookEvent.objects.all()[:20]:
        pages.append(staff.get(reverse("admin:payments_webhookevent_change", args=[event.pk])))
    for name in ("payments_payment", "payments_gatewaycall", "payments_webhookevent", "notifications_notification",
                 "orders_order"):
        pages.append(staff.get(reverse(f"admin:{name}_changelist")))
    assert all(page.status_code == 200 for page in pages), [p.status_code for p in pages]
    assert len(mail.outbox) >= 2 * len(CARDS)

    # The card form's placeholder shows the format with a test card; it is no customer's card.
    texts = {"pages": re.sub(r'placeholder="[^"]*"', "", "".join(page.content.decode() for page in pages)),
             "logs": "\n".join(record.getMessage() for record in caplog.records)
             + "".join(str(record.args) for record in caplog.records),
             "mail": "".join(m.subject + m.body + "".join(c for c, _ in m.alternatives) for m in mail.outbox)}
    for where, text in texts.items():
        for value in forbidden(settings):
            assert value not in text, f"{value!r} appears in {where}"


def test_an_error_page_shows_no_traceback_with_debug_off(settings, monkeypatch):
    settings.DEBUG = False
    from shop.models import Product

    def broken(*args, **kwargs):
        raise RuntimeError(f"boom {settings.PSP_SIMULATOR_SECRET_KEY}")

    monkeypatch.setattr(type(Product.objects), "active", broken)
    response = Client(raise_request_exception=False).get("/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "Traceback" not in html and "boom" not in html and settings.PSP_SIMULATOR_SECRET_KEY not in html
    assert "RuntimeError" not in html
