import pytest
from django.urls import reverse

from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db


def cart_of(client) -> dict:
    """What the cart cookie holds (a deleted cookie is an empty string)."""
    from shop.cart import _parse

    cookie = client.cookies.get("cart")
    return _parse(cookie.value) if cookie is not None and cookie.value else {}


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


def test_a_corrupt_or_forged_cart_cookie_is_treated_as_empty(client):
    product = ProductFactory(stock=5)
    for value in ["not-signed", '{"1": 5}', ""]:
        client.cookies["cart"] = value
        page = client.get(reverse("shop:cart"))
        assert page.status_code == 200 and "Your cart is empty" in page.content.decode()
    client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "2"})
    assert cart_of(client) == {str(product.pk): 2}


def test_the_cart_costs_no_session_query(client, django_assert_num_queries):
    product = ProductFactory(stock=5)
    with django_assert_num_queries(1):  # the product, nothing for the cart or a session
        client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
    with django_assert_num_queries(1):  # the cart's products
        assert "Cart <span class=\"badge\" data-testid=\"cart-count\">1</span>" in client.get(
            reverse("shop:cart")).content.decode()
    assert "sessionid" not in client.cookies


def test_a_full_cart_refuses_another_product(client, settings):
    from shop import cart

    products = ProductFactory.create_batch(3, stock=5)
    original = cart.MAX_LINES
    cart.MAX_LINES = 2
    try:
        for product in products[:2]:
            client.post(reverse("shop:cart-add", args=[product.pk]), {"quantity": "1"})
        response = client.post(reverse("shop:cart-add", args=[products[2].pk]), {"quantity": "1"})
    finally:
        cart.MAX_LINES = original
    assert response.status_code == 400 and "Your cart is full" in response.content.decode()
    assert len(cart_of(client)) == 2
