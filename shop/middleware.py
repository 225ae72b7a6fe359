"""Write the customer's cart cookie back when a view changed the cart (shop.cart)."""

from django.conf import settings

from shop.cart import COOKIE


class CartCookieMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        cart = getattr(request, "_cart", None)
        if cart is not None and cart.modified:
            if len(cart):
                response.set_cookie(COOKIE, cart.cookie_value(), max_age=settings.CART_COOKIE_AGE, httponly=True,
                                    samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)
            else:
                response.delete_cookie(COOKIE, samesite="Lax")
        return response
