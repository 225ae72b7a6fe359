"""The customer's doors are throttled per client (and per e-mail or order): a 429 page, a JSON 429 on the API."""

import uuid

import pytest
from django.urls import reverse

from orders.models import Order
from tests.orders.factories import make_order
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db

ADDRESS = {"full_name": "Ada Lovelace", "address_line1": "1 Analytical Way", "city": "London",
           "postal_code": "N1 7AA", "country": "GB"}


@pytest.fixture
def tight(settings):
    settings.RATE_LIMITS = {"find_order": {"client": "5/m", "email": "3/h"},
                            "checkout": {"client": "4/m", "email": "2/m"},
                            "pay": {"client": "10/m", "order": "2/m"},
                            "api_write": {"client": "2/m"}}


def checkout(client, product, email):
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    return client.post(reverse("shop:checkout"), {**ADDRESS, "email": email, "checkout_token": str(uuid.uuid4())})


def test_checkout_is_limited_per_email_and_per_client(client, tight):
    product = ProductFactory(stock=50)
    assert [checkout(client, product, "ada@example.com").status_code for _ in range(3)] == [302, 302, 429]
    assert checkout(client, product, "bob@example.com").status_code == 302  # 4th from this client
    refused = checkout(client, product, "carol@example.com")
    assert refused.status_code == 429 and "Please wait a moment" in refused.content.decode()
    assert int(refused["Retry-After"]) <= 60
    assert Order.objects.count() == 3  # nothing was created by a refused request
    assert client.get(reverse("shop:checkout")).status_code in (200, 302)  # looking is never counted


def test_paying_is_limited_per_order(client, tight, psp):
    order = make_order()
    url = reverse("payments:pay-hosted", args=[order.number, order.access_token])
    assert [client.post(url).status_code for _ in range(3)] == [302, 302, 429]
    assert order.payments.count() == 1  # the second click found the open payment; the third was refused


def test_the_api_answers_a_json_429(client, tight):
    ProductFactory(sku="MUG", stock=50)
    body = {"email": "ada@example.com", **ADDRESS, "lines": [{"sku": "MUG", "quantity": 1}]}
    codes = [client.post("/api/orders/", body, content_type="application/json").status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    refused = client.post("/api/orders/", body, content_type="application/json")
    assert refused["Content-Type"] == "application/json" and "throttled" in refused.json()["detail"]
    assert int(refused["Retry-After"]) > 0
    assert client.get("/api/products/").status_code == 200  # reads are not throttled


def test_limits_can_be_switched_off(client, tight, settings):
    settings.RATELIMIT_ENABLE = False
    product = ProductFactory(stock=50)
    assert {checkout(client, product, "ada@example.com").status_code for _ in range(5)} == {302}
