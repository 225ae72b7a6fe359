"""Pay another way: a customer who left the hosted page with Back pays by card instead, never twice."""

import pytest
from django.urls import reverse

from payments.models import Payment
from payments.services import PaymentSwitchRefused, payment_switch_to_card
from tests.orders.factories import make_order
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


def hosted_left_open(client, psp):
    order = make_order()
    client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]))
    hosted = Payment.objects.get(order=order)
    assert hosted.state == "pending" and hosted.redirect_url
    return order, hosted


def test_the_hosted_payment_is_cancelled_at_the_psp_before_the_card_payment_starts(
        client, psp, django_capture_on_commit_callbacks):
    order, hosted = hosted_left_open(client, psp)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                               {"card_token": psp.token(CARDS["success"]), "pay_another_way": "1"})
    hosted.refresh_from_db()
    card = Payment.objects.get(order=order, flow="direct")
    assert response["Location"] == reverse("payments:status", args=[card.pk])
    assert hosted.state == "cancelled" and card.state == "captured"
    order.refresh_from_db()
    assert order.state == "paid"
    # The PSP holds the hosted session as cancelled: nothing can be charged on it any more.
    by_id = {t["id"]: t["status"] for t in psp.transactions()}
    assert by_id[hosted.psp_reference] == "cancelled"
    assert hosted.transitions.get(to_state="cancelled").reason == "Customer chose to pay another way"


def test_nothing_starts_when_the_psp_does_not_confirm_the_cancellation(client, psp):
    order, hosted = hosted_left_open(client, psp)
    psp.faults(error_rate=1.0)
    with pytest.raises(PaymentSwitchRefused, match="has not confirmed"):
        payment_switch_to_card(order_id=order.pk, card_token="tok_whatever")
    hosted.refresh_from_db()
    assert hosted.state == "pending"
    assert Payment.objects.filter(order=order).count() == 1


def test_the_customer_is_told_when_the_psp_does_not_confirm(client, psp):
    order, hosted = hosted_left_open(client, psp)
    token = psp.token(CARDS["success"])
    psp.faults(error_rate=1.0)
    page = client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                       {"card_token": token, "pay_another_way": "1"}, follow=True)
    body = page.content.decode()
    assert "has not confirmed that your payment on its page is stopped" in body
    assert "we did not charge your card" in body
    assert Payment.objects.filter(order=order).count() == 1


def test_a_hosted_payment_paid_meanwhile_is_kept_and_no_card_payment_starts(client, psp):
    order, hosted = hosted_left_open(client, psp)
    psp.complete(hosted.psp_reference, "captured")  # paid in another tab, webhook not arrived yet
    payment, created = payment_switch_to_card(order_id=order.pk, card_token="tok_whatever")
    assert (payment.pk, payment.state, created) == (hosted.pk, "captured", False)
    assert Payment.objects.filter(order=order).count() == 1
    order.refresh_from_db()
    assert order.state == "paid"


def test_a_payment_we_are_still_confirming_is_never_replaced(psp):
    order = make_order()
    psp.faults(lose_response_rate=1.0)
    payment, _ = payment_switch_to_card(order_id=order.pk, card_token="tok_x")  # no open payment: a plain start
    Payment.objects.filter(pk=payment.pk).update(state="unknown")
    with pytest.raises(PaymentSwitchRefused, match="still confirming"):
        payment_switch_to_card(order_id=order.pk, card_token="tok_y")
    assert Payment.objects.filter(order=order).count() == 1


def test_the_order_page_offers_pay_another_way_for_a_hosted_payment_left_open(client, psp):
    order, hosted = hosted_left_open(client, psp)
    response = client.get(order.get_absolute_url())
    body = response.content.decode()
    assert 'name="pay_another_way"' in body and "Continue to the payment page" in body
    assert 'data-testid="pay-hosted"' not in body  # no second hosted session
    assert "no-store" in response["Cache-Control"]
