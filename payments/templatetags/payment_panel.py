from django import template
from django.conf import settings
from django.middleware.csrf import get_token

from payments.gateways import get_gateway
from payments.models import Payment
from payments.selectors import payment_customer_view

register = template.Library()


@register.inclusion_tag("payments/_order_panel.html", takes_context=True)
def order_payment_panel(context, order) -> dict:
    """The order page's payment section: how to pay, or where the payment stands."""
    request = context["request"]
    payments = list(Payment.objects.filter(order=order).select_related("order").order_by("-created_at"))
    current = payments[0] if payments else None
    open_payment = next((p for p in payments if p.is_open), None)
    can_pay = order.is_payable and open_payment is None
    return {
        "order": order,
        "current": payment_customer_view(current) if current else None,
        "open_payment": open_payment,
        "can_pay": can_pay,
        "client": get_gateway().client_config() if can_pay else {},
        "stripe_card": settings.PAYMENT_GATEWAY == "stripe",
        "csrf_token": get_token(request),
        "history": payments,
    }
