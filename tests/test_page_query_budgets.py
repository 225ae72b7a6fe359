"""SQL statements per customer request, asserted exactly so that waste cannot creep back (issue 17).

The figures are what a paid checkout costs the web server request by request
(bench/checkout_profile.py prints the same on a real server). Inside a test
every transaction is a savepoint of the test's own, so each atomic block
counts its SAVEPOINT and RELEASE here; on a real server they are a BEGIN and
a COMMIT instead.
"""

import re
import uuid

import pytest
from django.urls import reverse

from payments.models import Payment, WebhookEvent
from tests.payments.test_webhooks import deliver, event_body
from tests.psp import CARDS
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db

ADDRESS = {"email": "ada@example.com", "full_name": "Ada Lovelace", "address_line1": "1 Analytical Way",
           "city": "London", "postal_code": "N1 7AA", "country": "GB"}


def place_order(client, product) -> str:
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    response = client.post(reverse("shop:checkout"), {**ADDRESS, "checkout_token": str(uuid.uuid4())})
    return response["Location"]


@pytest.fixture
def product():
    return ProductFactory(stock=50)


def test_storefront_pages(client, product, django_assert_num_queries):
    with django_assert_num_queries(1):  # the product
        client.get(product.get_absolute_url())
    with django_assert_num_queries(1):  # the product; the cart is a cookie
        client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    with django_assert_num_queries(1):  # the cart's products
        client.get(reverse("shop:cart"))
    with django_assert_num_queries(1):
        client.get(reverse("shop:checkout"))
    # products, order (its unique checkout token is the double-submit check), stock update, lines, audit
    # row, the order mail's outbox row, and the transaction's savepoint pair
    with django_assert_num_queries(8):
        response = client.post(reverse("shop:checkout"), {**ADDRESS, "checkout_token": str(uuid.uuid4())})
    with django_assert_num_queries(3):  # the order, its lines, its payments
        client.get(response["Location"])


def test_paying_on_the_hosted_page(client, product, psp, django_assert_num_queries):
    order_url = place_order(client, product)
    number, token = re.match(r"^/orders/([^/]+)/([^/]+)/$", order_url).groups()
    # the order locked by its link, payment (one open per order: the constraint is the check) + audit row;
    # PSP call log; payment lock, audit row, save (each transaction with its savepoint pair here)
    with django_assert_num_queries(11):
        response = client.post(reverse("payments:pay-hosted", args=[number, token]))
    payment = Payment.objects.get()
    psp.pay_on_hosted_page(response["Location"])  # the webhook cannot reach the test server
    # read, PSP call log, locks, capture, order paid, audit rows, the receipt's outbox row, save
    with django_assert_num_queries(11):
        status = client.get(reverse("payments:return", args=[payment.pk]))
    # the payment with its order, and the receipt's capture time in the same statement (a subquery)
    with django_assert_num_queries(1):
        page = client.get(status["Location"])
    with django_assert_num_queries(1):
        data = client.get(reverse("payments:status-json", args=[payment.pk])).json()
    captured_at = payment.transitions.get(to_state="captured").created_at
    assert data["paid_at"] and captured_at.strftime("%Y") in page.content.decode()
    with django_assert_num_queries(4):  # the order, its lines, its payments, and the receipt's capture time
        client.get(order_url)


def test_paying_with_the_card_form(client, product, psp, django_assert_num_queries):
    order_url = place_order(client, product)
    number, token = re.match(r"^/orders/([^/]+)/([^/]+)/$", order_url).groups()
    card_token = psp.token(CARDS["success"])
    # the order locked by its link, payment (the constraint is the open-payment check) + audit row, the
    # savepoint pair (charge: worker)
    with django_assert_num_queries(5):
        client.post(reverse("payments:pay-direct", args=[number, token]), {"card_token": card_token})
    payment = Payment.objects.get()
    # Pay again (a double click, Back + Pay): the lock, the INSERT the constraint refuses, then the open payment
    # read and shown (the savepoint, its rollback and release here)
    with django_assert_num_queries(6):
        again = client.post(reverse("payments:pay-direct", args=[number, token]), {"card_token": card_token})
    assert Payment.objects.get() == payment
    assert again["Location"] == reverse("payments:status", args=[payment.pk])


def test_a_webhook_that_settles_and_its_duplicate(client, product, psp, django_assert_num_queries):
    order_url = place_order(client, product)
    number, token = re.match(r"^/orders/([^/]+)/([^/]+)/$", order_url).groups()
    client.post(reverse("payments:pay-hosted", args=[number, token]))
    payment = Payment.objects.get()
    body = event_body(payment, "captured")
    # find, event, locks, capture, order paid, audit rows, the receipt's outbox row, save, mark applied
    with django_assert_num_queries(14):
        deliver(client, body)
    # Find the payment, the insert that finds the duplicate, and reading the first; in a web request the
    # insert runs alone (autocommit), here inside the test's transaction it needs a savepoint (2 more).
    with django_assert_num_queries(6):
        assert deliver(client, body).json()["status"] == "duplicate"
    # Another event with the same news: found, then stored already marked applied (with its savepoint
    # pair here); no lock, no second write.
    with django_assert_num_queries(4):
        assert deliver(client, event_body(payment, "captured")).json()["status"] == "processed"
    assert WebhookEvent.objects.filter(processed_at__isnull=False, payment=payment, attempts=1).count() == 2
