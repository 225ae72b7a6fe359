"""Races on PostgreSQL with real threads and connections."""

import pytest
from django.test import Client
from django.urls import reverse

from payments.models import Payment
from tests.orders.factories import make_order
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_ten_pay_clicks_at_once_make_one_payment_and_one_psp_session(postgres_only, psp):
    order = make_order()
    url = reverse("payments:pay-hosted", args=[order.number, order.access_token])
    results = run_at_once(10, lambda i: Client().post(url))
    assert all(r.status_code == 302 for r in results), [r.status_code for r in results]
    assert Payment.objects.filter(order=order).count() == 1
    assert len(psp.transactions()) == 1
    payment = Payment.objects.get(order=order)
    # Every click lands on the one PSP page, or on our status page while it is being created.
    assert {r["Location"] for r in results} <= {payment.redirect_url,
                                                reverse("payments:status", args=[payment.pk])}


def test_pay_clicks_on_both_flows_at_once_make_one_payment(postgres_only, psp):
    """Two tabs, one on each flow: the partial unique constraint lets one payment in, and every click finds it."""
    order = make_order()
    hosted = reverse("payments:pay-hosted", args=[order.number, order.access_token])
    card = reverse("payments:pay-direct", args=[order.number, order.access_token])
    results = run_at_once(8, lambda i: Client().post(hosted) if i % 2 else Client().post(card, {
        "card_token": psp.token()}))
    assert all(r.status_code == 302 for r in results), [r.status_code for r in results]
    assert Payment.objects.filter(order=order).count() == 1
    assert Payment.objects.get(order=order).transitions.filter(from_state="").count() == 1
