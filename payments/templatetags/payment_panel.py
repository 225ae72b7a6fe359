from django import template
from django.conf import settings
from django.middleware.csrf import get_token

from payments.gateways import get_gateway
from payments.models import Payment
from payments.selectors import payment_customer_view

register = template.Library()


@register.inclusion_tag("payments/_order_panel.html", takes_context=True)
def order_payment_panel(context, order) -> dict:
    """The order page's payment section: how to pay, or where the payment stands.

    Rendered fresh on every request (the order page is never stored, see
    orders.views), so it always shows the payment's current state.
    """
    request = context["request"]
    # Plain rows: an order page is mostly seen before its payment is captured, where customer_payments()'s
    # subquery for the receipt would cost its compilation (about 1 ms of CPU) for nothing.
    payments = list(Payment.objects.filter(order=order).select_related("order").order_by("-created_at"))
    current = payments[0] if payments else None
    open_payment = next((p for p in payments if p.is_open), None)
    can_pay = order.is_payable and open_payment is None
    # "Pay another way": the open payment waits for the customer on the PSP's page (they came back with
    # Back); paying by card here cancels it at the PSP first (payments.services.payment_switch_to_card).
    can_switch = (order.is_payable and open_payment is not None and open_payment.state == "pending"
                  and bool(open_payment.redirect_url))
    show_card = can_pay or can_switch
    return {
        "order": order,
        "current": payment_customer_view(current) if current else None,
        "open_payment": open_payment,
        "can_pay": can_pay,
        "can_switch": can_switch,
        "show_card": show_card,
        "client": get_gateway().client_config() if show_card else {},
        "stripe_card": settings.PAYMENT_GATEWAY == "stripe",
        "csrf_token": get_token(request),
        "history": payments,
    }
