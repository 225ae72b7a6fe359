"""What the customer's order and status pages say: always the current state, in words for people."""

import pytest
from django.urls import reverse

from payments.models import Payment
from tests.orders.factories import make_order
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


def pay_by_card(client, order, card, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("payments:pay-direct", args=[order.number, order.access_token]),
                    {"card_token": card})
    return Payment.objects.filter(order=order).latest("created_at")


def test_order_and_payment_pages_are_never_stored_by_the_browser(client, psp, django_capture_on_commit_callbacks):
    order = make_order()
    assert "no-store" in client.get(order.get_absolute_url())["Cache-Control"]
    payment = pay_by_card(client, order, psp.token(CARDS["success"]), django_capture_on_commit_callbacks)
    for url in (reverse("payments:status", args=[payment.pk]), reverse("payments:return", args=[payment.pk]),
                reverse("payments:status-json", args=[payment.pk])):
        assert "no-store" in client.get(url)["Cache-Control"], url
    response = client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]))
    assert "no-store" in response["Cache-Control"]


def test_the_order_page_of_a_paid_order_has_no_pay_form(client, psp, django_capture_on_commit_callbacks):
    order = make_order()
    assert 'data-testid="pay-card"' in client.get(order.get_absolute_url()).content.decode()
    pay_by_card(client, order, psp.token(CARDS["success"]), django_capture_on_commit_callbacks)
    body = client.get(order.get_absolute_url()).content.decode()
    assert "Payment received" in body
    assert 'data-testid="pay-card"' not in body and 'data-testid="pay-hosted"' not in body


def test_three_d_secure_says_the_bank_needs_the_customer_with_the_button_first(
        client, psp, django_capture_on_commit_callbacks):
    order = make_order()
    payment = pay_by_card(client, order, psp.token(CARDS["action"]), django_capture_on_commit_callbacks)
    body = client.get(reverse("payments:status", args=[payment.pk])).content.decode()
    assert "Your bank needs you" in body and "updates by itself" not in body
    assert body.index("Confirm with your bank") < body.index('data-testid="payment-message"')
    assert 'aria-live="polite"' in body


def test_the_success_page_is_a_receipt_with_the_card_from_the_psp(client, psp, django_capture_on_commit_callbacks):
    order = make_order()
    payment = pay_by_card(client, order, psp.token(CARDS["success"]), django_capture_on_commit_callbacks)
    payment.refresh_from_db()
    assert (payment.card_brand, payment.card_last4) == ("visa", "4242")
    body = client.get(reverse("payments:status", args=[payment.pk])).content.decode()
    assert 'data-testid="receipt"' in body and "Visa ending in 4242" in body
    assert order.total_display in body and "What happens next" in body and "data-print" in body
    assert "4242 4242" not in body and "4242424242424242" not in body
    status = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    assert status["card"] == "Visa ending in 4242" and status["paid_at"]


def test_a_hosted_payment_records_the_card_too(client, psp):
    order = make_order()
    client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]))
    payment = Payment.objects.get(order=order)
    location = psp.pay_on_hosted_page(payment.redirect_url, "5555 5555 5555 4444")
    client.get(location.replace("http://testserver", ""), follow=True)
    payment.refresh_from_db()
    assert payment.state == "captured" and (payment.card_brand, payment.card_last4) == ("mastercard", "4444")
