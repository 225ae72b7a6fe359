from django.conf import settings

from shop.cart import Cart


def cart_summary(request) -> dict:
    """The shop's name and the item count in the header: read from the cart cookie, no query."""
    return {"shop_name": settings.SHOP_NAME, "cart_count": len(Cart.of(request))}
