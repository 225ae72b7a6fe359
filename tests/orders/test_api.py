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


@pytest.mark.parametrize("country", ["Germany", "XX", "G1", ""])
def test_an_unknown_country_is_a_400_that_says_what_to_send(client, country):
    ProductFactory(sku="MUG", stock=3)
    response = client.post("/api/orders/", {**BODY, "country": country, "lines": [{"sku": "MUG", "quantity": 1}]},
                           content_type="application/json")
    assert response.status_code == 400
    assert "country" in response.json()
    assert Order.objects.count() == 0


def test_a_lowercase_country_code_is_accepted_as_that_country(client):
    ProductFactory(sku="MUG", stock=3)
    response = client.post("/api/orders/", {**BODY, "country": "de", "lines": [{"sku": "MUG", "quantity": 1}]},
                           content_type="application/json")
    assert response.status_code == 201
    assert Order.objects.get().country == "DE"


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


@pytest.mark.parametrize("query", ["limit=17845992768731705344&offset=-18855", "offset=abc", "limit=0", "limit=-1",
                                   "offset=1.5", "limit=%C2%B2"])
def test_a_bad_limit_or_offset_is_a_400_naming_it_not_a_500(client, query):
    ProductFactory()
    response = client.get(f"/api/products/?{query}")
    assert response.status_code == 400
    assert set(response.json()) & {"limit", "offset"}


def test_limit_is_capped_and_an_offset_past_the_end_is_an_empty_page(client):
    for i in range(3):
        ProductFactory(sku=f"P-{i}")
    assert len(client.get("/api/products/?limit=999999999999999999999").json()["results"]) == 3
    page = client.get("/api/products/?offset=99999999999999999999999&limit=2").json()
    assert page["count"] == 3 and page["results"] == []
    assert [p["sku"] for p in client.get("/api/products/?offset=1&limit=1").json()["results"]] == ["P-1"]


def test_too_many_order_lines_is_a_400(client):
    ProductFactory(sku="MUG", stock=1000)
    response = client.post("/api/orders/", {**BODY, "lines": [{"sku": "MUG", "quantity": 1}] * 101},
                           content_type="application/json")
    assert response.status_code == 400 and "lines" in response.json()


@pytest.mark.parametrize("path", ["/api/nothing-here/", "/api/orders/%C2%84/", "/api/payments/null,null/"])
def test_an_unknown_api_path_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_an_unknown_shop_path_is_still_the_html_404_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_the_schema_documents_the_error_answers(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    assert {"400", "404"} <= set(paths["/api/orders/{access_token}/payments/"]["post"]["responses"])
    assert "404" in paths["/api/products/{slug}/"]["get"]["responses"]
    assert "400" in paths["/api/products/"]["get"]["responses"]
    lines = client.get("/api/schema/?format=json").json()["components"]["schemas"]["OrderCreate"]["properties"]["lines"]
    assert lines["minItems"] == 1 and lines["maxItems"] == 100


def test_the_api_takes_json_only_and_says_so(client):
    ProductFactory(sku="MUG", stock=3)
    response = client.post("/api/orders/", {**BODY, "lines": "MUG"})  # a multipart form
    assert response.status_code == 415 and "detail" in response.json()
    assert Order.objects.count() == 0
    post = client.get("/api/schema/?format=json").json()["paths"]["/api/orders/"]["post"]
    assert list(post["requestBody"]["content"]) == ["application/json"]


def test_the_schema_gives_the_pagination_bounds(client):
    parameters = {p["name"]: p for p in
                  client.get("/api/schema/?format=json").json()["paths"]["/api/products/"]["get"]["parameters"]}
    assert parameters["limit"]["schema"]["minimum"] == 1 and "at most 200" in parameters["limit"]["description"]
    assert parameters["offset"]["schema"]["minimum"] == 0
