"""Stripe events at the shop's webhook inbox: verified, stored once, and never trusted for state."""

import time

import pytest
from django.urls import reverse

from payments.models import GatewayCall, Payment, PaymentTransition, WebhookEvent
from tests.payments.factories import start_payment
from tests.stripe.conftest import CARDS, event_body, sign, wait_until

URL = reverse("payments:webhook", args=["stripe"])

pytestmark = pytest.mark.django_db


def deliver(client, body: bytes, signature: str):
    return client.post(URL, body, content_type="application/json", headers={"Stripe-Signature": signature})


@pytest.fixture
def waiting_for_authentication(localstripe, django_capture_on_commit_callbacks):
    """A card payment that waits for 3-D Secure: pending here, requires_action at Stripe."""
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=localstripe.payment_method(CARDS["action"]))
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.state == "pending"
    return payment


@pytest.mark.parametrize("forgery", ["wrong secret", "no header", "stale", "body changed"])
def test_a_forged_or_stale_signature_is_refused_and_nothing_is_written(client, settings, localstripe,
                                                                      waiting_for_authentication, forgery):
    payment = waiting_for_authentication
    localstripe.authenticate(payment.redirect_url)
    body = event_body(localstripe.intent(payment.psp_reference), "payment_intent.succeeded")
    signature = {
        "wrong secret": sign(body, "whsec_guessed"),
        "no header": "",
        "stale": sign(body, settings.STRIPE_WEBHOOK_SECRET, at=int(time.time()) - 301),
        "body changed": sign(body.replace(b'"succeeded"', b'"canceled"'), settings.STRIPE_WEBHOOK_SECRET),
    }[forgery]
    calls_before = GatewayCall.objects.count()

    response = deliver(client, body, signature)

    assert response.status_code == 400 and response.json()["error"].startswith("Invalid webhook")
    assert not WebhookEvent.objects.exists() and GatewayCall.objects.count() == calls_before
    payment.refresh_from_db()
    assert payment.state == "pending"


def test_an_event_is_applied_by_asking_stripe_and_a_duplicate_is_a_no_op(client, settings, localstripe,
                                                                        waiting_for_authentication):
    payment = waiting_for_authentication
    localstripe.authenticate(payment.redirect_url)
    body = event_body(localstripe.intent(payment.psp_reference), "payment_intent.succeeded", event_id="evt_once")

    first = deliver(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET))
    assert first.json() == {"status": "processed", "event": "evt_once"}
    payment.refresh_from_db()
    assert (payment.state, payment.order.state) == ("captured", "paid")
    assert payment.transitions.get(to_state="captured").source == "webhook"
    event = WebhookEvent.objects.get()
    assert event.gateway == "stripe" and event.processed_at and event.payment_id == payment.pk
    assert "Stripe-Signature" in event.headers
    transitions, calls = PaymentTransition.objects.count(), GatewayCall.objects.count()

    again = deliver(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET))

    assert again.status_code == 200 and again.json() == {"status": "duplicate", "event": "evt_once"}
    assert WebhookEvent.objects.filter(gateway="stripe").count() == 1
    assert (PaymentTransition.objects.count(), GatewayCall.objects.count()) == (transitions, calls)


def test_the_payload_is_not_trusted_stripe_is_asked(client, settings, localstripe, waiting_for_authentication):
    payment = waiting_for_authentication
    intent = localstripe.intent(payment.psp_reference)
    # Signed, but claiming a success that Stripe does not hold (e.g. an event
    # about an earlier state arriving late, or a replayed copy).
    body = event_body(intent, "payment_intent.succeeded", status="succeeded", next_action=None)

    response = deliver(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET))

    assert response.json()["status"] == "processed"
    payment.refresh_from_db()
    assert (payment.state, payment.order.state) == ("pending", "awaiting_payment")
    assert GatewayCall.objects.filter(payment=payment, operation="retrieve").count() == 1


def test_an_event_late_and_out_of_order_changes_nothing(client, settings, localstripe, waiting_for_authentication):
    payment = waiting_for_authentication
    stale = localstripe.intent(payment.psp_reference)  # requires_action
    localstripe.authenticate(payment.redirect_url)
    succeeded = event_body(localstripe.intent(payment.psp_reference), "payment_intent.succeeded")
    late = event_body(stale, "payment_intent.requires_action")

    for body in (succeeded, late):
        assert deliver(client, body, sign(body, settings.STRIPE_WEBHOOK_SECRET)).json()["status"] == "processed"

    payment.refresh_from_db()
    assert payment.state == "captured"
    assert list(payment.transitions.order_by("id").values_list("to_state", flat=True)) == ["created", "pending",
                                                                                           "captured"]


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_a_signed_event_that_settles_the_payment(stripe_shop, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=stripe_shop.payment_method(CARDS["action"]))
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.state == "pending"

    stripe_shop.authenticate(payment.redirect_url)  # the customer authenticates and closes the tab

    event = wait_until(lambda: WebhookEvent.objects.filter(payment=payment, processed_at__isnull=False).first())
    payment.refresh_from_db()
    assert (payment.state, payment.order.state) == ("captured", "paid")
    assert (event.event_type, event.error) == ("payment_intent.succeeded", "")
    assert WebhookEvent.objects.filter(gateway="stripe").count() == 1
    assert payment.transitions.get(to_state="captured").source == "webhook"
