from django.conf import settings

from shop.cart import Cart


def cart_summary(request) -> dict:
    """The item count in the header; no query, the session has it."""
    if not hasattr(request, "session"):
        return {"shop_name": settings.SHOP_NAME, "cart_count": 0}
    return {"shop_name": settings.SHOP_NAME, "cart_count": len(Cart(request.session))}
