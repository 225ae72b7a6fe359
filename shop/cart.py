"""The shopping cart, kept in a signed cookie on the customer's browser as {product id: quantity}.

No server state and no query: a customer's pages never load a session, so
any web node can serve them. The cookie is signed (a forged one reads as an
empty cart) but not secret, and nothing in it is trusted: checkout prices the
products from the catalog and reserves stock under locks. shop.middleware
writes the cookie back on the response when the cart changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from shop.models import Product
from shop.money import format_money

COOKIE = "cart"
_SALT = "reckon.shop.cart"
# Distinct products in one cart: keeps the cookie far below the browsers' 4 KB limit.
MAX_LINES = 50


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def total_minor(self) -> int:
        return self.product.price_minor * self.quantity

    @property
    def total_display(self) -> str:
        return format_money(self.total_minor, self.product.currency)


def _parse(raw: str) -> dict[str, int]:
    try:
        items = signing.loads(raw, salt=_SALT, max_age=settings.CART_COOKIE_AGE)
    except (signing.BadSignature, ValueError):
        return {}
    if not isinstance(items, dict):
        return {}
    return {k: v for k, v in items.items() if isinstance(k, str) and k.isdigit() and isinstance(v, int)
            and not isinstance(v, bool) and 0 < v <= settings.CART_MAX_QUANTITY}


class Cart:
    def __init__(self, items: dict[str, int] | None = None) -> None:
        self._items: dict[str, int] = dict(items or {})
        self.modified = False

    @classmethod
    def of(cls, request) -> Cart:
        """The request's cart, read once from its cookie (no query)."""
        cart = getattr(request, "_cart", None)
        if cart is None:
            raw = request.COOKIES.get(COOKIE, "")
            cart = request._cart = cls(_parse(raw) if raw else {})
        return cart

    def cookie_value(self) -> str:
        return signing.dumps(self._items, salt=_SALT, compress=True)

    def _changed(self) -> None:
        self.modified = True

    def quantity_of(self, product: Product) -> int:
        return self._items.get(str(product.pk), 0)

    def has_room_for(self, product: Product) -> bool:
        return str(product.pk) in self._items or len(self._items) < MAX_LINES

    def set(self, product: Product, quantity: int) -> None:
        self._items[str(product.pk)] = quantity
        self._changed()

    def remove(self, product_id: int) -> None:
        if self._items.pop(str(product_id), None) is not None:
            self._changed()

    def clear(self) -> None:
        if self._items:
            self._items = {}
            self._changed()

    def quantities(self) -> dict[int, int]:
        """{product id: quantity}, without a query (the order service prices them)."""
        return {int(pk): qty for pk, qty in self._items.items()}

    def __len__(self) -> int:
        return sum(self._items.values())

    def lines(self) -> list[CartLine]:
        """Current lines at today's catalog prices; inactive products drop out."""
        products = Product.objects.active().filter(pk__in=self.quantities()).order_by("name")
        return [CartLine(product=p, quantity=self._items[str(p.pk)]) for p in products]

    @staticmethod
    def totals(lines: list[CartLine]) -> list[str]:
        """Formatted totals, one per currency in the cart."""
        sums: dict[str, int] = {}
        for line in lines:
            sums[line.product.currency] = sums.get(line.product.currency, 0) + line.total_minor
        return [format_money(amount, currency) for currency, amount in sorted(sums.items())]
