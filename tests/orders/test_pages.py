import pytest
from django.urls import reverse

from tests.orders.factories import make_order

pytestmark = pytest.mark.django_db


def test_order_page_needs_the_token(client):
    order = make_order()
    page = client.get(order.get_absolute_url())
    assert page.status_code == 200 and order.number in page.content.decode()
    assert client.get(f"/orders/{order.number}/wrong-token/").status_code == 404
    assert client.get(f"/orders/{order.number}/").status_code == 404


def test_find_my_order_by_number_and_email(client):
    order = make_order(email="Ada@Example.com")
    response = client.post(reverse("orders:find"), {"number": order.number.lower(), "email": "ada@example.COM"})
    assert response.status_code == 302 and response["Location"] == order.get_absolute_url()


@pytest.mark.parametrize("data", [{"number": "RK-XXXX-XXXX", "email": "ada@example.com"},
                                  {"number": "", "email": "nope"}])
def test_find_my_order_refuses_without_revealing(client, data):
    make_order()
    response = client.post(reverse("orders:find"), data)
    assert response.status_code == 400
    assert "access_token" not in response.content.decode()
