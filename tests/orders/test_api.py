import pytest

from orders.models import Order
from shop.models import Product
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db

BODY = {"email": "ada@example.com", "full_name": "Ada Lovelace", "address_line1": "1 Analytical Way",
        "city": "London", "postal_code": "N1 7AA", "country": "GB"}


def test_products_are_read_only_and_list_active_ones(client):
    ProductFactory(sku="A-1", slug="a-1", price_minor=990)
    ProductFactory(sku="B-1", is_active=False)
    data = client.get("/api/products/").json()
    assert [p["sku"] for p in data["results"]] == ["A-1"] and data["results"][0]["price_minor"] == 990
    assert client.get("/api/products/a-1/").json()["sku"] == "A-1"
    response = client.post("/api/products/", {"sku": "X"}, content_type="application/json")
    assert response.status_code == 405 and "detail" in response.json()


def test_create_order_uses_catalog_prices_and_ignores_client_amounts(client):
    ProductFactory(sku="MUG", price_minor=1450, stock=3)
    response = client.post("/api/orders/", {**BODY, "total_minor": 1, "lines": [{"sku": "MUG", "quantity": 2,
                                                                                 "unit_price_minor": 1}]},
                           content_type="application/json")
    assert response.status_code == 201
    data = response.json()
    assert data["total_minor"] == 2900 and data["currency"] == "EUR" and data["state"] == "awaiting_payment"
    assert client.get(f"/api/orders/{data['access_token']}/").json()["number"] == data["number"]
    assert Product.objects.get(sku="MUG").stock == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({**BODY, "lines": []}, "lines"),
     ({**BODY, "email": "x", "lines": [{"sku": "MUG", "quantity": 1}]}, "email"),
     ({**BODY, "lines": [{"sku": "MUG", "quantity": 0}]}, "lines"),
     ({**BODY, "lines": [{"sku": "MUG", "quantity": "two"}]}, "lines"),
     ({**BODY, "lines": [{"sku": "NOPE", "quantity": 1}]}, "lines"),
     ({**BODY, "lines": [{"sku": "MUG", "quantity": 4}]}, "lines"),
     ({k: v for k, v in BODY.items() if k != "city"} | {"lines": [{"sku": "MUG", "quantity": 1}]}, "city")],
)
def test_invalid_input_answers_400_naming_the_field(client, body, field):
    ProductFactory(sku="MUG", stock=3)
    response = client.post("/api/orders/", body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()
    assert Order.objects.count() == 0


def test_malformed_json_is_a_400_with_a_json_body(client):
    response = client.post("/api/orders/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()


def test_idempotency_key_returns_the_same_order(client):
    ProductFactory(sku="MUG", stock=3)
    body = {**BODY, "lines": [{"sku": "MUG", "quantity": 1}]}
    first = client.post("/api/orders/", body, content_type="application/json", headers={"Idempotency-Key": "k-1"})
    again = client.post("/api/orders/", body, content_type="application/json", headers={"Idempotency-Key": "k-1"})
    assert first.json()["number"] == again.json()["number"]
    assert Order.objects.count() == 1 and Product.objects.get(sku="MUG").stock == 2


def test_unknown_order_token_is_a_json_404(client):
    response = client.get("/api/orders/not-a-token/")
    assert response.status_code == 404 and "detail" in response.json()


def test_openapi_schema_and_docs_page(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/orders/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()


def test_openapi_schema_validates(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/orders/" in (tmp_path / "schema.yml").read_text()
