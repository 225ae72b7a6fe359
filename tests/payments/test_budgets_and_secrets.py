"""Deterministic costs (SQL query counts) and the promise that card data never reaches us."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from payments.models import Payment
from payments.services import payment_open_session, payment_start
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.payments.test_webhooks import deliver, event_body
from tests.psp import CARDS

pytestmark = pytest.mark.django_db

# Budgets: measured, then fixed here so that a regression shows.
START_PAYMENT_QUERIES = 6
APPLY_WEBHOOK_QUERIES = 14  # 13, and the receipt's outbox row


def test_starting_a_payment_has_a_fixed_query_budget(django_assert_max_num_queries, psp):
    order = make_order()
    with django_assert_max_num_queries(START_PAYMENT_QUERIES):
        payment_start(order_id=order.pk, flow=Payment.Flow.HOSTED)


def test_applying_a_webhook_has_a_fixed_query_budget(client, django_assert_max_num_queries, psp):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    with django_assert_max_num_queries(APPLY_WEBHOOK_QUERIES):
        response = deliver(client, event_body(payment, "captured"))
    assert response.json()["status"] == "processed"


def test_no_card_number_anywhere_in_our_database_after_both_flows(client, psp, django_capture_on_commit_callbacks):
    for card in CARDS.values():
        order = make_order()
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                        {"card_token": psp.token(card)})
        other = make_order()
        client.post(reverse("payments:pay-hosted", args=[other.number, other.access_token]))
        payment = Payment.objects.get(order=other)
        psp.pay_on_hosted_page(payment.redirect_url, card)
    out = io.StringIO()
    call_command("dumpdata", "payments", "orders", "shop", "django_q", "sessions", stdout=out)
    dump = out.getvalue()
    assert Payment.objects.count() == 2 * len(CARDS) and len(dump) > 1000
    for card in CARDS.values():
        spaced = " ".join(card[i:i + 4] for i in range(0, 16, 4))
        assert card not in dump and spaced not in dump
    assert '"cvc"' not in dump.replace('"cvc": "[redacted]"', "")
