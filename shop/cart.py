"""The shopping cart, kept in the customer's session as {product id: quantity}."""

from __future__ import annotations

from dataclasses import dataclass

from shop.models import Product
from shop.money import format_money

SESSION_KEY = "cart"


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


class Cart:
    def __init__(self, session) -> None:
        self.session = session
        raw = session.get(SESSION_KEY)
        self._items: dict[str, int] = dict(raw) if isinstance(raw, dict) else {}

    def _save(self) -> None:
        self.session[SESSION_KEY] = self._items
        self.session.modified = True

    def quantity_of(self, product: Product) -> int:
        return self._items.get(str(product.pk), 0)

    def set(self, product: Product, quantity: int) -> None:
        self._items[str(product.pk)] = quantity
        self._save()

    def remove(self, product_id: int) -> None:
        if self._items.pop(str(product_id), None) is not None:
            self._save()

    def clear(self) -> None:
        self._items = {}
        self._save()

    def __len__(self) -> int:
        return sum(self._items.values())

    def lines(self) -> list[CartLine]:
        """Current lines at today's catalog prices; inactive products drop out."""
        ids = [int(pk) for pk in self._items if pk.isdigit()]
        products = Product.objects.active().filter(pk__in=ids).order_by("name")
        return [CartLine(product=p, quantity=self._items[str(p.pk)]) for p in products]

    @staticmethod
    def totals(lines: list[CartLine]) -> list[str]:
        """Formatted totals, one per currency in the cart."""
        sums: dict[str, int] = {}
        for line in lines:
            sums[line.product.currency] = sums.get(line.product.currency, 0) + line.total_minor
        return [format_money(amount, currency) for currency, amount in sorted(sums.items())]
