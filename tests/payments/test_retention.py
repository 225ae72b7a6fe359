"""manage.py prune keeps what open work needs; forget_customer erases people, never money."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from notifications.models import Notification
from orders.models import Order
from payments.models import Discrepancy, GatewayCall, Payment, WebhookEvent
from payments.services import payment_open_session
from tests.admin.conftest import captured_payment
from tests.notifications.helpers import send_all
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.payments.test_webhooks import deliver, event_body

pytestmark = pytest.mark.django_db
OLD = timezone.now() - timedelta(days=400)


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def make_old() -> None:
    GatewayCall.objects.update(created_at=OLD)
    WebhookEvent.objects.update(received_at=OLD)
    Notification.objects.update(created_at=OLD)


def test_prune_deletes_old_evidence_of_settled_payments_only(client, psp):
    settled = captured_payment(psp)
    deliver(client, event_body(settled, "captured"))
    still_open = payment_open_session(payment_id=start_payment("hosted").pk)
    deliver(client, event_body(still_open, "pending"))
    disputed = captured_payment(psp)
    Discrepancy.objects.create(kind="double_capture", dedupe_key="d:1", gateway="simulator", payment=disputed,
                               summary="open")
    send_all()
    make_old()
    assert GatewayCall.objects.filter(payment=settled).exists()

    dry = run("prune", "--dry-run")
    assert "PSP calls (GatewayCall) (older than 90 days): would delete" in dry
    assert GatewayCall.objects.filter(payment=settled).exists()  # a dry run deletes nothing

    out = run("prune", "--batch-size", "1", "-v", "2")
    assert "deleted so far" in out and "In all: deleted" in out
    assert not GatewayCall.objects.filter(payment=settled).exists()
    assert not WebhookEvent.objects.filter(payment=settled).exists()
    assert GatewayCall.objects.filter(payment=still_open).exists()  # an open payment keeps its evidence
    assert GatewayCall.objects.filter(payment=disputed).exists()  # so does an open discrepancy's
    assert WebhookEvent.objects.filter(payment=still_open).exists()
    assert not Notification.objects.filter(status="sent").exists()
    # The money records stay.
    assert Payment.objects.count() == 3 and Order.objects.count() == 3


def test_prune_refuses_a_bad_batch_size():
    with pytest.raises(CommandError, match="at least 1"):
        run("prune", "--batch-size", "0")


def test_forget_customer_erases_settled_orders_and_keeps_the_money(psp, settings):
    settings.CUSTOMER_DATA_LEGAL_RETENTION_DAYS = 0
    paid = captured_payment(psp)  # ada@example.com
    awaiting = make_order(email="ADA@example.com")
    other = make_order(email="bob@example.com")
    send_all()

    dry = run("forget_customer", "ada@example.com", "--dry-run")
    assert f"Would erase the personal data of 1 order(s): {paid.order.number}" in dry
    assert Order.objects.get(pk=paid.order_id).full_name == "Ada Lovelace"

    out = run("forget_customer", " Ada@Example.com ")
    assert f"Kept, still in motion (awaiting payment, an open payment, refund or discrepancy): {awaiting.number}" in out
    order = Order.objects.get(pk=paid.order_id)
    assert (order.full_name, order.address_line1, order.city, order.postal_code) == ("(erased)", "(erased)",
                                                                                      "(erased)", "")
    assert order.email.startswith("erased-") and "ada" not in order.email
    assert (order.total_minor, order.currency, order.country.code, order.state) == (1250, "EUR", "GB", "paid")
    payment = Payment.objects.get(pk=paid.pk)
    assert (payment.state, payment.amount_minor) == ("captured", 1250)
    assert not Notification.objects.filter(order=order, to__icontains="ada").exists()
    assert Order.objects.get(pk=other.pk).email == "bob@example.com"
    assert Order.objects.get(pk=awaiting.pk).email == "ADA@example.com"


def test_forget_customer_keeps_orders_within_the_legal_retention(psp, settings):
    settings.CUSTOMER_DATA_LEGAL_RETENTION_DAYS = 3650
    paid = captured_payment(psp)
    out = run("forget_customer", "ada@example.com")
    assert f"younger than the legal retention of 3650 days: {paid.order.number}" in out
    assert Order.objects.get(pk=paid.order_id).full_name == "Ada Lovelace"


def test_forget_customer_says_so_for_a_bad_or_unknown_address():
    with pytest.raises(CommandError, match="is not an e-mail address"):
        run("forget_customer", "not-an-address")
    assert "No order has that e-mail address." in run("forget_customer", "nobody@example.com")
