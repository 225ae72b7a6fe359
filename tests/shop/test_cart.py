import pytest
from django.urls import reverse

from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db


def cart_of(client) -> dict:
    return client.session.get("cart", {})


def test_add_change_and_remove(client):
    product = ProductFactory(stock=5)
    response = client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "2"})
    assert response.status_code == 302
    assert cart_of(client) == {str(product.pk): 2}
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    assert cart_of(client) == {str(product.pk): 3}
    client.post(reverse("shop:cart-update", args=[product.pk]), {f"p{product.pk}-quantity": "5"})
    assert cart_of(client) == {str(product.pk): 5}
    page = client.get(reverse("shop:cart")).content.decode()
    assert "€62.50" in page
    client.post(reverse("shop:cart-remove", args=[product.pk]))
    assert cart_of(client) == {}


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("0", "at least 1"), ("-3", "at least 1"), ("abc", "whole number"), ("1.5", "whole number"),
     ("", "Enter a quantity"), ("6", "Only 5"), ("100", "Only 5"), ("99999999999999999999", "Only 5")],
)
def test_bad_quantities_get_a_form_error_and_leave_the_cart_alone(client, quantity, message):
    product = ProductFactory(stock=5)
    response = client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": quantity})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert cart_of(client) == {}


def test_adding_more_than_stock_counts_what_is_already_in_the_cart(client):
    product = ProductFactory(stock=3)
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "2"})
    response = client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "2"})
    assert response.status_code == 400 and "already have 2" in response.content.decode()
    assert cart_of(client) == {str(product.pk): 2}


def test_the_cap_applies_only_where_the_stock_is_larger(client):
    product = ProductFactory(stock=500)
    response = client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "120"})
    assert response.status_code == 400 and "at most 99" in response.content.decode()


@pytest.mark.parametrize(("quantity", "message"), [("-1", "cannot be negative"), ("4", "Only 3 of"),
                                                   ("two", "whole number")])
def test_update_with_a_bad_quantity_shows_the_error_on_the_cart_next_to_its_field(client, quantity, message):
    product = ProductFactory(stock=3)
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    response = client.post(reverse("shop:cart-update", args=[product.pk]), {f"p{product.pk}-quantity": quantity})
    body = response.content.decode()
    assert response.status_code == 400 and message in body
    field = f'id="id_p{product.pk}-quantity"'
    assert field in body and 'aria-invalid="true"' in body
    assert f'aria-describedby="id_p{product.pk}-quantity_error"' in body
    assert f'id="id_p{product.pk}-quantity_error"' in body
    assert cart_of(client) == {str(product.pk): 1}


def test_updating_a_line_to_zero_removes_it(client):
    product = ProductFactory(name="Abacus", stock=3)
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "2"})
    response = client.post(reverse("shop:cart-update", args=[product.pk]), {f"p{product.pk}-quantity": "0"},
                           follow=True)
    assert cart_of(client) == {}
    assert "Removed Abacus from your cart." in response.content.decode()


def test_unknown_or_inactive_product_is_404_and_get_is_refused(client):
    inactive = ProductFactory(is_active=False)
    assert client.post(reverse("shop:cart-add", args=[inactive.pk]), {"quantity": "1"}).status_code == 404
    assert client.post(reverse("shop:cart-add", args=[987654]), {"quantity": "1"}).status_code == 404
    assert client.get(reverse("shop:cart-add", args=[inactive.pk])).status_code == 405


def test_a_corrupt_session_cart_is_treated_as_empty(client):
    session = client.session
    session["cart"] = ["not", "a", "dict"]
    session.save()
    assert client.get(reverse("shop:cart")).status_code == 200
