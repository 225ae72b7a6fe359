"""Every test card through both customer flows, against the simulator process."""

from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from orders.models import Order
from payments.models import Payment, PaymentTransition
from payments.services import payment_start
from tests.orders.factories import make_order
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


def order_page_path(order: Order) -> str:
    return order.get_absolute_url()


def start_hosted(client, order: Order):
    response = client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]))
    payment = Payment.objects.get(order=order)
    return response, payment


def back_from_psp(client, location: str):
    """The browser follows the PSP's redirect to our return page."""
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}", follow=True)


@pytest.mark.parametrize(
    ("card", "payment_state", "order_state", "failure_code"),
    [
        ("success", "captured", "paid", ""),
        ("declined", "declined", "awaiting_payment", "card_declined"),
        ("insufficient_funds", "declined", "awaiting_payment", "insufficient_funds"),
        ("processing_error", "failed", "awaiting_payment", "processing_error"),
        ("action", "captured", "paid", ""),
        ("async", "pending", "awaiting_payment", ""),
    ],
)
def test_hosted_flow(client, psp, card, payment_state, order_state, failure_code):
    order = make_order()
    response, payment = start_hosted(client, order)
    assert response.status_code == 302 and response["Location"] == payment.redirect_url
    assert payment.state == "pending" and payment.psp_reference.startswith("txn_")

    location = psp.pay_on_hosted_page(payment.redirect_url, CARDS[card])
    assert urlsplit(location).path == reverse("payments:return", args=[payment.pk])
    page = back_from_psp(client, location)

    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.state, order.state, payment.failure_code) == (payment_state, order_state, failure_code)
    assert payment.get_state_display() in page.content.decode() or payment_state in ("pending", "captured",
                                                                                      "declined", "failed")
    transitions = list(payment.transitions.order_by("id").values_list("to_state", flat=True))
    assert transitions[0] == "created" and transitions[-1] == payment_state


def test_hosted_async_card_is_settled_by_a_later_status_call(client, psp):
    from payments.services import payment_sync

    order = make_order()
    _, payment = start_hosted(client, order)
    back_from_psp(client, psp.pay_on_hosted_page(payment.redirect_url, CARDS["async"]))
    psp.complete(Payment.objects.get(pk=payment.pk).psp_reference, "captured")
    payment = payment_sync(payment_id=payment.pk)
    order.refresh_from_db()
    assert payment.state == "captured" and order.state == "paid"


def test_customer_cancels_on_the_hosted_page_and_can_pay_again(client, psp):
    order = make_order()
    _, payment = start_hosted(client, order)
    back_from_psp(client, psp.cancel_on_hosted_page(payment.redirect_url))
    payment.refresh_from_db()
    assert payment.state == "cancelled"
    response = client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]))
    assert Payment.objects.filter(order=order).count() == 2
    assert response["Location"] == Payment.objects.filter(order=order).latest("created_at").redirect_url


def test_return_page_ignores_its_query_string(client, psp):
    order = make_order()
    _, payment = start_hosted(client, order)
    # A customer forging "success" in the URL changes nothing: we ask the PSP.
    page = client.get(reverse("payments:return", args=[payment.pk]) + "?transaction_id=txn_fake&status=captured",
                      follow=True)
    payment.refresh_from_db()
    assert payment.state == "pending" and "Waiting for you on the payment page" in page.content.decode()


@pytest.mark.parametrize(
    ("card", "payment_state", "order_state"),
    [
        ("success", "captured", "paid"),
        ("declined", "declined", "awaiting_payment"),
        ("insufficient_funds", "declined", "awaiting_payment"),
        ("processing_error", "failed", "awaiting_payment"),
        ("async", "pending", "awaiting_payment"),
        ("action", "pending", "awaiting_payment"),
    ],
)
def test_direct_flow(client, psp, django_capture_on_commit_callbacks, card, payment_state, order_state):
    order = make_order()
    token = psp.token(CARDS[card])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                               {"card_token": token})
    payment = Payment.objects.get(order=order)
    assert response["Location"] == reverse("payments:status", args=[payment.pk])
    order.refresh_from_db()
    assert (payment.state, order.state) == (payment_state, order_state)
    assert payment.card_token == ("" if payment_state != "pending" else payment.card_token)
    status = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    assert status["state"] == payment_state and status["final"] == (payment_state not in ("pending",))
    if card == "action":
        assert status["action_url"] == payment.redirect_url != ""


def test_direct_flow_with_customer_authentication(client, psp, django_capture_on_commit_callbacks):
    order = make_order()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                    {"card_token": psp.token(CARDS["action"])})
    payment = Payment.objects.get(order=order)
    back_from_psp(client, psp.authenticate(payment.redirect_url))
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.state == "captured" and order.state == "paid"


def test_a_bad_card_token_is_a_form_message_not_a_payment(client, psp):
    order = make_order()
    response = client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                           {"card_token": "4242 4242 4242 4242"}, follow=True)
    assert "did not reach the payment provider" in response.content.decode()
    assert not Payment.objects.exists()


def test_a_paid_order_cannot_be_paid_again(client, psp):
    order = make_order()
    _, payment = start_hosted(client, order)
    back_from_psp(client, psp.pay_on_hosted_page(payment.redirect_url))
    page = client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]), follow=True)
    assert "there is nothing to pay" in page.content.decode()
    assert Payment.objects.filter(order=order).count() == 1


def test_order_page_offers_both_ways_to_pay_then_shows_the_outcome(client, psp):
    order = make_order()
    page = client.get(order_page_path(order)).content.decode()
    assert 'data-testid="pay-hosted"' in page and 'id="card-form"' in page and "/js/v1.js" in page
    _, payment = start_hosted(client, order)
    back_from_psp(client, psp.pay_on_hosted_page(payment.redirect_url))
    page = client.get(order_page_path(order)).content.decode()
    assert "Payment received" in page and 'data-testid="pay-hosted"' not in page


def test_a_card_payment_whose_charge_cannot_be_queued_waits_for_the_sweep(client, psp, monkeypatch, caplog,
                                                                          django_capture_on_commit_callbacks):
    """The broker is away (a Redis restart): the customer still gets the status page, nothing is charged yet,
    and the payment is committed for the sweep (which sends the charge: tests/payments/test_sweeps.py)."""
    import django_q.tasks
    from redis.exceptions import ConnectionError as RedisConnectionError

    def broker_away(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(django_q.tasks, "async_task", broker_away)
    order = make_order()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                               {"card_token": psp.token(CARDS["success"])})
    payment = Payment.objects.get(order=order)
    assert response.status_code == 302 and response["Location"] == reverse("payments:status", args=[payment.pk])
    assert payment.state == "created" and payment.next_check_at is not None
    assert psp.transactions() == []  # no charge reached the PSP
    assert f"could not queue the charge of payment {payment.pk}" in caplog.text


@pytest.mark.parametrize("view", ["payments:pay-hosted", "payments:pay-direct"])
def test_paying_with_a_wrong_link_is_a_404_and_starts_nothing(client, psp, view):
    """The pay buttons check the order's access token in the read that locks the order (payment_start)."""
    order = make_order()
    wrong_token = ("0" if order.access_token[0] != "0" else "1") + order.access_token[1:]
    for number, token in ((order.number, wrong_token), ("R-NOSUCH", order.access_token)):
        response = client.post(reverse(view, args=[number, token]), {"card_token": "tok_visa_ok"})
        assert response.status_code == 404
    assert not Payment.objects.exists()
    # And the right link still pays.
    response = client.post(reverse(view, args=[order.number, order.access_token]), {"card_token": "tok_visa_ok"})
    assert response.status_code == 302 and Payment.objects.filter(order=order).count() == 1


def test_payment_start_names_the_order_one_way():
    order = make_order()
    with pytest.raises(TypeError):
        payment_start(flow=Payment.Flow.HOSTED)
    with pytest.raises(TypeError):
        payment_start(flow=Payment.Flow.HOSTED, order_id=order.pk, customer_link=(order.number, order.access_token))
    with pytest.raises(Order.DoesNotExist):
        payment_start(flow=Payment.Flow.HOSTED, customer_link=(order.number, "wrong-token"))
    assert not Payment.objects.exists()


def test_a_second_start_finds_the_open_payment_through_the_constraint():
    """No read looks for an open payment first: the INSERT that payment_one_open_per_order refuses finds it."""
    order = make_order()
    first, created = payment_start(order_id=order.pk, flow=Payment.Flow.HOSTED)
    assert created
    again, created = payment_start(customer_link=(order.number, order.access_token), flow=Payment.Flow.DIRECT,
                                   card_token="tok_visa_ok")
    assert (again, created) == (first, False)
    assert Payment.objects.filter(order=order).count() == 1
    # the refused start wrote no audit row either
    assert PaymentTransition.objects.filter(payment__order=order).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_refused_start_outside_any_transaction_rolls_back_and_queues_nothing(psp, monkeypatch):
    """Not nested in a test's transaction: the refused INSERT's whole transaction rolls back, no charge is queued."""
    from payments import services

    queued = []
    monkeypatch.setattr(services, "_enqueue_charge", queued.append)
    order = make_order()
    first, _ = payment_start(order_id=order.pk, flow=Payment.Flow.DIRECT, card_token="tok_visa_ok")
    again, created = payment_start(order_id=order.pk, flow=Payment.Flow.DIRECT, card_token="tok_visa_ok")
    assert (again, created) == (first, False)
    assert queued == [first.pk]
    assert PaymentTransition.objects.filter(payment__order=order).count() == 1


def test_another_integrity_error_is_not_taken_for_an_open_payment(monkeypatch):
    from django.db import IntegrityError

    order = make_order()

    def refuse(*args, **kwargs):
        raise IntegrityError("NOT NULL constraint failed: payments_payment.order_id")

    monkeypatch.setattr(Payment.objects, "create", refuse)
    with pytest.raises(IntegrityError):
        payment_start(order_id=order.pk, flow=Payment.Flow.HOSTED)


def test_an_open_payment_that_settles_during_a_second_start_lets_it_start(monkeypatch):
    """The INSERT was refused, but the open payment failed before it could be read: the start tries again."""
    from payments import services

    order = make_order()
    first, _ = payment_start(order_id=order.pk, flow=Payment.Flow.HOSTED)
    real_start = services._start_payment
    calls = []

    def start_then_settle(**kwargs):
        calls.append(kwargs)
        try:
            return real_start(**kwargs)
        except services._OrderHasOpenPayment:
            if len(calls) == 1:  # the sweep fails the open payment between the refusal and the read
                Payment.objects.filter(pk=first.pk).update(state="failed", next_check_at=None)
            raise

    monkeypatch.setattr(services, "_start_payment", start_then_settle)
    second, created = payment_start(customer_link=(order.number, order.access_token), flow=Payment.Flow.HOSTED)
    assert created and second != first and len(calls) == 2
    assert set(Payment.objects.filter(order=order).values_list("state", flat=True)) == {"failed", "created"}


def test_a_start_that_keeps_clashing_is_refused_with_a_sentence(monkeypatch):
    from payments import services

    order = make_order()

    def always_clash(**kwargs):
        raise services._OrderHasOpenPayment(order.pk)

    monkeypatch.setattr(services, "_start_payment", always_clash)
    with pytest.raises(services.PaymentError, match="Please try again"):
        payment_start(order_id=order.pk, flow=Payment.Flow.HOSTED)
