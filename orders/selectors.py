"""Read-only order queries."""

from __future__ import annotations

import secrets

from django.db.models import QuerySet

from orders.models import Order


def order_by_number_and_token(*, number: str, token: str, orders: QuerySet[Order] | None = None) -> Order | None:
    """The order a customer's link names, or None when its number and access token do not match.

    `orders` is the queryset to look in (orders.services.lock_customer_order passes a locking one).
    """
    order = (Order.objects if orders is None else orders).filter(number=number).first()
    if order is None or not secrets.compare_digest(order.access_token.encode(), token.encode()):
        return None
    return order


def order_find_for_customer(*, number: str, email: str) -> Order | None:
    """The order a customer identifies by its number and their e-mail (any case)."""
    return Order.objects.filter(number=number.strip().upper(), email__iexact=email.strip()).first()
