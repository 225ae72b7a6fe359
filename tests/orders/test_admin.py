import pytest
from django.urls import reverse

from orders.models import Order
from shop.models import Product
from tests.orders.factories import make_order
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_admin_cancel_action_goes_through_the_service(admin_client):
    product = ProductFactory(stock=4)
    order = make_order(product=product, quantity=4)
    url = reverse("admin:orders_order_changelist")
    response = admin_client.post(url, {"action": "cancel_orders", "_selected_action": [order.pk],
                                      "apply": "1", "reason": "Customer asked"}, follow=True)
    assert "1 order(s) cancelled" in response.content.decode()
    order.refresh_from_db()
    assert order.state == "cancelled" and Product.objects.get(pk=product.pk).stock == 4
    assert order.transitions.first().actor_name == "admin"


def test_admin_refuses_illegal_moves_with_a_message(admin_client):
    order = make_order()
    url = reverse("admin:orders_order_changelist")
    response = admin_client.post(url, {"action": "mark_fulfilled", "_selected_action": [order.pk],
                                      "apply": "1", "reason": "Shipped"}, follow=True)
    assert "awaiting payment; it cannot be marked fulfilled" in response.content.decode()
    assert Order.objects.get(pk=order.pk).state == "awaiting_payment"


def test_order_change_page_shows_state_read_only(admin_client):
    order = make_order()
    page = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert 'name="state"' not in page and order.number in page
