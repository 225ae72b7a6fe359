import uuid

import pytest
from django_fsm import TransitionNotAllowed

from orders.models import Order, TransitionSource
from orders.services import (
    IllegalOrderTransition,
    LineRequest,
    MixedCurrencies,
    OrderError,
    OutOfStock,
    ProductUnavailable,
    lock_order,
    order_cancel,
    order_create,
    order_expire,
    order_fulfil,
    order_mark_paid,
    order_record_refund,
)
from shop.models import Product
from tests.orders.factories import customer, make_order
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_order_lines_merge_and_total_is_computed_on_the_server():
    a, b = ProductFactory(price_minor=500, stock=9), ProductFactory(price_minor=250, stock=9)
    order = order_create(customer=customer(), lines=[LineRequest(a.pk, 1), LineRequest(b.pk, 2), LineRequest(a.pk, 2)])
    assert order.total_minor == 3 * 500 + 2 * 250
    assert sorted(order.lines.values_list("quantity", flat=True)) == [2, 3]
    assert Product.objects.get(pk=a.pk).stock == 6


def test_all_or_nothing_when_one_line_is_out_of_stock():
    a, b = ProductFactory(stock=5), ProductFactory(stock=1)
    with pytest.raises(OutOfStock):
        order_create(customer=customer(), lines=[LineRequest(a.pk, 2), LineRequest(b.pk, 2)])
    assert Product.objects.get(pk=a.pk).stock == 5
    assert Order.objects.count() == 0


@pytest.mark.parametrize("quantity", [0, -1, True, 1.5])
def test_non_positive_or_non_integer_quantities_are_refused(quantity):
    with pytest.raises(OrderError):
        order_create(customer=customer(), lines=[LineRequest(ProductFactory().pk, quantity)])


def test_inactive_products_and_mixed_currencies_are_refused():
    with pytest.raises(ProductUnavailable):
        order_create(customer=customer(), lines=[LineRequest(ProductFactory(is_active=False).pk, 1)])
    eur, usd = ProductFactory(currency="EUR"), ProductFactory(currency="USD")
    with pytest.raises(MixedCurrencies):
        order_create(customer=customer(), lines=[LineRequest(eur.pk, 1), LineRequest(usd.pk, 1)])


def test_same_checkout_token_returns_the_same_order():
    product = ProductFactory(stock=5)
    token = uuid.uuid4()
    first = order_create(customer=customer(), lines=[LineRequest(product.pk, 1)], checkout_token=token)
    second = order_create(customer=customer(), lines=[LineRequest(product.pk, 1)], checkout_token=token)
    assert first.pk == second.pk
    assert Product.objects.get(pk=product.pk).stock == 4


@pytest.mark.parametrize("since", ["stock sold out", "product withdrawn", "cart emptied"])
def test_a_resubmit_finds_its_order_whatever_changed_since(since):
    """Back + submit after the first submit went through: the customer gets their order, not an error."""
    product = ProductFactory(stock=1)
    token = uuid.uuid4()
    first = order_create(customer=customer(), lines=[LineRequest(product.pk, 1)], checkout_token=token)
    lines = [LineRequest(product.pk, 1)]
    if since == "product withdrawn":
        Product.objects.filter(pk=product.pk).update(is_active=False)
    elif since == "cart emptied":
        lines = []
    assert order_create(customer=customer(), lines=lines, checkout_token=token).pk == first.pk
    assert Order.objects.count() == 1 and Product.objects.get(pk=product.pk).stock == 0
    # Without the token the same request is refused as it should be.
    with pytest.raises(OrderError):
        order_create(customer=customer(), lines=lines)


def test_cancel_releases_stock_exactly_once_and_is_audited(django_user_model):
    product = ProductFactory(stock=5)
    order = make_order(product=product, quantity=3)
    staff = django_user_model.objects.create_user("sam", password="x")
    order_cancel(order_id=order.pk, source=TransitionSource.STAFF, actor=staff, reason="Customer asked")
    assert Product.objects.get(pk=product.pk).stock == 5
    with pytest.raises(IllegalOrderTransition, match="cancelled; it cannot be cancelled"):
        order_cancel(order_id=order.pk, source=TransitionSource.STAFF, actor=staff)
    with pytest.raises(IllegalOrderTransition):
        order_expire(order_id=order.pk)
    assert Product.objects.get(pk=product.pk).stock == 5
    row = order.transitions.first()
    assert (row.from_state, row.to_state, row.source, row.actor_name, row.reason) == (
        "awaiting_payment", "cancelled", "staff", "sam", "Customer asked")
    staff.delete()
    row.refresh_from_db()
    assert row.actor is None and row.actor_name == "sam"


def test_expire_releases_stock():
    product = ProductFactory(stock=2)
    order = make_order(product=product, quantity=2)
    order_expire(order_id=order.pk, reason="Payment deadline passed")
    order.refresh_from_db()
    assert order.state == "expired" and Product.objects.get(pk=product.pk).stock == 2


def test_paid_fulfilled_and_refund_moves():
    from django.db import transaction

    order = make_order()
    with transaction.atomic():
        locked = lock_order(order.pk)
        order_mark_paid(order=locked, source=TransitionSource.PSP_RESPONSE)
    with pytest.raises(IllegalOrderTransition):
        order_cancel(order_id=order.pk, source=TransitionSource.STAFF)
    order_fulfil(order_id=order.pk)
    with transaction.atomic():
        locked = lock_order(order.pk)
        order_record_refund(order=locked, refunded_minor=1, source=TransitionSource.STAFF)
        assert locked.state == "partially_refunded"
        order_record_refund(order=locked, refunded_minor=locked.total_minor, source=TransitionSource.STAFF)
        assert locked.state == "refunded"
    states = list(order.transitions.order_by("id").values_list("to_state", flat=True))
    assert states == ["awaiting_payment", "paid", "fulfilled", "partially_refunded", "refunded"]


def test_state_cannot_be_assigned_directly():
    order = make_order()
    with pytest.raises(AttributeError):
        order.state = "paid"
    with pytest.raises(TransitionNotAllowed):
        order.fulfil()
