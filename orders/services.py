"""The only place that creates orders and changes their state."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django_countries import countries
from django_fsm import TransitionNotAllowed

from orders.models import Order, OrderLine, OrderTransition, TransitionSource
from orders.selectors import order_by_number_and_token
from orders.signals import order_transitioned
from shop.models import Product


@dataclass(frozen=True)
class CustomerDetails:
    email: str
    full_name: str
    address_line1: str
    city: str
    postal_code: str
    country: str
    address_line2: str = ""


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int


class OrderError(Exception):
    """An expected refusal, shown to the person who asked (never a 500)."""

    field = "non_field_errors"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field:
            self.field = field


class EmptyOrder(OrderError):
    field = "lines"


class ProductUnavailable(OrderError):
    field = "lines"


class OutOfStock(OrderError):
    field = "lines"

    def __init__(self, product: Product, requested: int) -> None:
        available = Product.objects.filter(pk=product.pk).values_list("stock", flat=True).first() or 0
        super().__init__(f"Only {available} of {product.name} left in stock; you asked for {requested}.")
        self.product = product
        self.available = available


class MixedCurrencies(OrderError):
    field = "lines"


class IllegalOrderTransition(OrderError):
    pass


def lock_order(order_id: int) -> Order:
    """Lock one order row for the rest of the transaction (locks: order before payment)."""
    return Order.objects.select_for_update().get(pk=order_id)


def lock_customer_order(*, number: str, token: str) -> Order:
    """Lock the order a customer's link names, checking its access token in the same read.

    Raises Order.DoesNotExist when the number and token do not match, as
    lock_order does for an id that names no order.
    """
    order = order_by_number_and_token(number=number, token=token, orders=Order.objects.select_for_update())
    if order is None:
        raise Order.DoesNotExist("No such order.")
    return order


def _merge_lines(lines: Iterable[LineRequest]) -> OrderedDict[int, int]:
    merged: OrderedDict[int, int] = OrderedDict()
    for line in lines:
        if not isinstance(line.quantity, int) or isinstance(line.quantity, bool) or line.quantity < 1:
            raise OrderError("Quantities must be whole numbers of at least 1.", field="lines")
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
    if not merged:
        raise EmptyOrder("Your cart is empty.")
    # Reserve in primary-key order so two checkouts never wait on each other in a cycle.
    return OrderedDict(sorted(merged.items()))


def order_create(
    *,
    customer: CustomerDetails,
    lines: Iterable[LineRequest],
    checkout_token: uuid.UUID | None = None,
) -> Order:
    """Create an order at catalog prices and reserve its stock in one transaction.

    A second call with the same checkout_token returns the first order. The
    token is unique, so the order's INSERT finds the first one, before any
    stock is taken: a double submit never fails for the stock its first
    submit reserved, and a first submit costs no read to check for one.
    """
    try:
        quantities = _merge_lines(lines)
        with transaction.atomic():
            return _create_and_reserve(customer=customer, quantities=quantities, checkout_token=checkout_token)
    except (IntegrityError, OrderError):
        # Submitted before (a double click, Back + submit) or concurrently: the first order, whatever this
        # attempt ran into (the token's unique INSERT, a cart emptied or a product withdrawn since).
        if checkout_token is not None:
            existing = Order.objects.filter(checkout_token=checkout_token).first()
            if existing is not None:
                return existing
        raise


def _create_and_reserve(
    *, customer: CustomerDetails, quantities: OrderedDict[int, int], checkout_token: uuid.UUID | None
) -> Order:
    if customer.country.strip().upper() not in countries:
        raise OrderError(f"{customer.country!r} is not a country code we know; choose a country from the list.",
                         field="country")
    products = {p.pk: p for p in Product.objects.active().filter(pk__in=quantities.keys())}
    missing = [pk for pk in quantities if pk not in products]
    if missing:
        raise ProductUnavailable("A product in your cart is no longer available; please review your cart.")
    currencies = {p.currency for p in products.values()}
    if len(currencies) > 1:
        raise MixedCurrencies("Products priced in different currencies cannot be bought in one order.")

    total = sum(products[pk].price_minor * qty for pk, qty in quantities.items())
    order = Order.objects.create(
        checkout_token=checkout_token,
        email=customer.email.strip(),
        full_name=customer.full_name.strip(),
        address_line1=customer.address_line1.strip(),
        address_line2=customer.address_line2.strip(),
        city=customer.city.strip(),
        postal_code=customer.postal_code.strip(),
        country=customer.country.strip().upper(),
        currency=currencies.pop(),
        total_minor=total,
    )
    for product_id, quantity in quantities.items():
        # A conditional update: the row lock it takes makes a concurrent
        # checkout re-read the stock, so the stock never goes below zero.
        reserved = Product.objects.filter(pk=product_id, stock__gte=quantity).update(stock=F("stock") - quantity)
        if not reserved:
            raise OutOfStock(products[product_id], quantity)

    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product=products[pk],
            sku=products[pk].sku,
            name=products[pk].name,
            unit_price_minor=products[pk].price_minor,
            quantity=qty,
            line_total_minor=products[pk].price_minor * qty,
        )
        for pk, qty in quantities.items()
    )
    _audit(order, "", source=TransitionSource.CUSTOMER, reason="Checkout")
    return order


def _transition(
    order: Order,
    name: str,
    *,
    source: str,
    actor=None,
    reason: str = "",
) -> None:
    """Apply a transition to a locked order, save it and write its audit row."""
    from_state = order.state
    try:
        getattr(order, name)()
    except TransitionNotAllowed:
        raise IllegalOrderTransition(
            f"Order {order.number} is {order.get_state_display().lower()}; it cannot be {_VERBS.get(name, name)}."
        ) from None
    order.save(update_fields=["state", "updated_at"])
    _audit(order, from_state, source=source, actor=actor, reason=reason)


def _audit(order: Order, from_state: str, *, source: str, actor=None, reason: str = "") -> OrderTransition:
    """Write the audit row of an order state change and tell the receivers (orders.signals)."""
    row = OrderTransition.objects.create(
        order=order,
        from_state=from_state,
        to_state=order.state,
        source=source,
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        reason=reason,
    )
    order_transitioned.send(sender=Order, order=order, transition=row)
    return row


_VERBS = {
    "mark_paid": "marked paid",
    "fulfil": "marked fulfilled",
    "cancel": "cancelled",
    "expire": "expired",
    "refund_partially": "partially refunded",
    "refund_fully": "refunded",
}


def _release_stock(order: Order) -> None:
    """Give an order's reserved stock back to the catalog, exactly once."""
    if order.stock_released:
        return
    for line in order.lines.order_by("product_id"):
        Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.quantity)
    order.stock_released = True
    order.save(update_fields=["stock_released", "updated_at"])


@transaction.atomic
def order_cancel(*, order_id: int, source: str, actor=None, reason: str = "") -> Order:
    """Cancel an unpaid order and release its stock.

    Callers with a payment in flight cancel it at the PSP first (payments.services).
    """
    order = lock_order(order_id)
    _transition(order, "cancel", source=source, actor=actor, reason=reason)
    _release_stock(order)
    return order


@transaction.atomic
def order_expire(*, order_id: int, source: str = TransitionSource.SYSTEM, reason: str = "") -> Order:
    order = lock_order(order_id)
    _transition(order, "expire", source=source, reason=reason)
    _release_stock(order)
    return order


@transaction.atomic
def order_fulfil(*, order_id: int, actor=None, reason: str = "") -> Order:
    order = lock_order(order_id)
    _transition(order, "fulfil", source=TransitionSource.STAFF, actor=actor, reason=reason)
    return order


def order_mark_paid(*, order: Order, source: str, actor=None, reason: str = "") -> None:
    """Mark a locked order paid; called by payments.services inside its transaction."""
    _transition(order, "mark_paid", source=source, actor=actor, reason=reason)


def order_record_refund(*, order: Order, refunded_minor: int, source: str, actor=None, reason: str = "") -> None:
    """Move a locked, paid order to partially_refunded or refunded after a refund."""
    name = "refund_fully" if refunded_minor >= order.total_minor else "refund_partially"
    _transition(order, name, source=source, actor=actor, reason=reason)
