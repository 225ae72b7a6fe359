"""The card flow with PAYMENT_GATEWAY=stripe, end to end against localstripe."""

import uuid

import pytest
from django.urls import reverse

from orders.models import TransitionSource
from payments.models import GatewayCall, Payment
from payments.refunds import refund_create
from payments.services import _payment_request, gateway_for, order_cancel_with_payment, payment_charge, payment_sync
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.stripe.conftest import CARDS, local_path

pytestmark = pytest.mark.django_db


def pay_by_card(client, django_capture_on_commit_callbacks, localstripe, card: str = "success"):
    """The customer submits the card form (the payment method Stripe.js made); the worker charges it."""
    order = make_order()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                               {"card_token": localstripe.payment_method(CARDS[card])})
    payment = Payment.objects.get(order=order)
    assert response["Location"] == reverse("payments:status", args=[payment.pk])
    order.refresh_from_db()
    return order, payment


def test_a_card_payment_succeeds(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe)

    assert (payment.state, order.state) == ("captured", "paid")
    assert payment.card_token == ""
    (intent,) = localstripe.intents()
    assert payment.psp_reference == intent["id"] and intent["status"] == "succeeded"
    assert (intent["amount"], intent["currency"]) == (order.total_minor, order.currency.lower())
    assert intent["metadata"] == {"payment_id": str(payment.pk), "order_number": order.number}
    assert list(payment.transitions.order_by("id").values_list("to_state", flat=True)) == ["created", "captured"]
    status = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    assert status["state"] == "captured" and status["order_state"] == "paid"


def test_each_call_is_logged_with_our_key_and_without_card_details(client, localstripe,
                                                                   django_capture_on_commit_callbacks):
    _, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe)

    call = GatewayCall.objects.get(payment=payment)
    assert (call.gateway, call.operation, call.method, call.outcome) == ("stripe", "charge", "POST", "ok")
    assert call.idempotency_key == str(payment.pk) and call.url.endswith("/v1/payment_intents")
    assert call.request_body["payment_method"] == "[redacted]"
    assert call.request_body["metadata"] == {"payment_id": str(payment.pk), "order_number": payment.order.number}
    assert call.response_body["client_secret"] == "[redacted]"
    stored = str(call.request_body) + str(call.response_body) + str(list(payment.transitions.values("payload")))
    assert "4242" not in stored and "pm_" not in stored and "sk_test" not in stored


def test_a_declined_card(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe, "declined")

    assert (payment.state, order.state) == ("declined", "awaiting_payment")
    assert payment.failure_code == "card_declined"
    assert GatewayCall.objects.get(payment=payment).outcome == "declined"
    status = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    assert status["final"] and status["message"].startswith("Your card was declined.")
    # The customer may try again, and this time it works.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                    {"card_token": localstripe.payment_method(CARDS["success"])})
    order.refresh_from_db()
    assert order.state == "paid" and order.payments.filter(state="captured").count() == 1


def test_a_card_that_asks_for_authentication(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe, "action")

    assert (payment.state, order.state) == ("pending", "awaiting_payment")
    status = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    assert status["action_url"] == payment.redirect_url != ""
    # Stripe's page sends the customer back to our return page, which asks Stripe.
    back = localstripe.authenticate(payment.redirect_url)
    assert local_path(back).startswith(reverse("payments:return", args=[payment.pk]))
    client.get(local_path(back))

    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.state, order.state) == ("captured", "paid")
    assert payment.transitions.get(to_state="captured").source == TransitionSource.CUSTOMER


def test_failed_authentication_is_a_decline(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe, "action")

    client.get(local_path(localstripe.authenticate(payment.redirect_url, approve=False)))

    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.state, order.state) == ("declined", "awaiting_payment")
    assert payment.failure_code == "authentication_failed"
    status = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    assert status["message"].startswith("The card authentication was not completed.")


def test_cancelling_an_order_cancels_its_payment_at_stripe(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe, "action")

    order = order_cancel_with_payment(order_id=order.pk, source=TransitionSource.CUSTOMER, reason="changed my mind")

    payment.refresh_from_db()
    assert (payment.state, order.state) == ("cancelled", "cancelled")
    assert localstripe.intent(payment.psp_reference)["status"] == "canceled"
    assert GatewayCall.objects.get(payment=payment, operation="cancel").idempotency_key == f"cancel-{payment.pk}"


def test_full_and_partial_refunds(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe)
    first_id, rest_id = uuid.uuid4(), uuid.uuid4()

    refund = refund_create(payment_id=payment.pk, amount_minor=300, refund_id=first_id, reason="one item broken")
    payment.refresh_from_db()
    order.refresh_from_db()
    assert refund.state == "succeeded" and refund.psp_reference.startswith("re_")
    assert (payment.state, payment.amount_refunded_minor, order.state) == ("partially_refunded", 300,
                                                                           "partially_refunded")

    # The same refund form submitted twice refunds once.
    refund_create(payment_id=payment.pk, amount_minor=300, refund_id=first_id, reason="one item broken")
    assert len(localstripe.refunds(payment.psp_reference)) == 1

    rest = payment.amount_minor - 300
    refund_create(payment_id=payment.pk, amount_minor=rest, refund_id=rest_id, reason="returned the rest")
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.state, payment.amount_refunded_minor, order.state) == ("refunded", payment.amount_minor,
                                                                           "refunded")
    at_stripe = localstripe.refunds(payment.psp_reference)
    assert sorted(r["amount"] for r in at_stripe) == sorted([300, rest])
    assert {r["metadata"]["refund_id"] for r in at_stripe} == {str(first_id), str(rest_id)}
    assert set(GatewayCall.objects.filter(operation="refund").values_list("idempotency_key", flat=True)) == {
        str(first_id), str(rest_id)}


def test_a_retried_charge_does_not_create_a_second_payment_intent(localstripe):
    """The worker died after Stripe charged the card: the task runs again with the same key."""
    payment = start_payment("direct", card_token=localstripe.payment_method())  # the task has not run
    lost = gateway_for(payment).charge(_payment_request(payment))  # charged; the answer never applied
    assert lost.status == "captured"

    payment = payment_charge(payment_id=payment.pk)  # the re-delivered task

    assert payment.state == "captured" and payment.psp_reference == lost.psp_reference
    assert len(localstripe.intents()) == 1
    keys = list(GatewayCall.objects.filter(operation="charge").values_list("idempotency_key", flat=True))
    assert keys == [str(payment.pk)] * 2


def test_the_sync_settles_a_payment_whose_webhook_never_came(client, localstripe, django_capture_on_commit_callbacks):
    order, payment = pay_by_card(client, django_capture_on_commit_callbacks, localstripe, "action")
    localstripe.authenticate(payment.redirect_url)  # and the customer never comes back; no webhook either

    payment = payment_sync(payment_id=payment.pk)

    order.refresh_from_db()
    assert (payment.state, order.state) == ("captured", "paid")
    assert payment.transitions.get(to_state="captured").source == TransitionSource.POLLER
    assert payment.next_check_at is None


def test_the_sync_finds_a_payment_that_never_learnt_its_stripe_id(localstripe):
    """The charge went through, but we crashed before storing Stripe's answer: our id finds it."""
    payment = start_payment("direct", card_token=localstripe.payment_method())
    gateway_for(payment).charge(_payment_request(payment))
    assert Payment.objects.get(pk=payment.pk).psp_reference == ""

    payment = payment_sync(payment_id=payment.pk)

    assert payment.state == "captured" and payment.order.state == "paid"
    assert payment.psp_reference == localstripe.intents()[0]["id"]
    # localstripe has no Search API: the adapter fell back to the PaymentIntent list.
    assert list(payment.calls.order_by("id").values_list("operation", "status_code"))[-2:] == [("search", 404),
                                                                                                ("find", 200)]
