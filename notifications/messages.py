"""What each kind of message says: its subject, its plain-text and HTML bodies (templates/emails/).

Rendered when the message is sent, from the order as it is then; the
templates get amounts in the order's currency, the order number and the
order page's link (its secret token is the signature), never card numbers
or PSP internals beyond the last part of the PSP's reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string

from notifications.models import Notification
from orders.models import Order
from payments.models import CAPTURED_STATES, Payment
from payments.selectors import payment_customer_view
from shop.money import format_money

Kind = Notification.Kind

SUBJECTS = {
    Kind.ORDER_PLACED: "Your order {number}",
    Kind.PAYMENT_SUCCEEDED: "Receipt for your order {number}",
    Kind.PAYMENT_DECLINED: "Your payment for order {number} did not go through",
    Kind.PAYMENT_ACTION_NEEDED: "Your payment for order {number} is waiting for you",
    Kind.PAYMENT_DELAYED: "We are still confirming your payment for order {number}",
    Kind.ORDER_EXPIRED: "Your order {number} has expired",
    Kind.REFUND_ISSUED: "A refund for your order {number}",
    Kind.ORDER_LINKS: "Your orders at {shop}",
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    payment_id: object = None  # the payment it is about (for a receipt: the capture that paid the order)


def absolute(path: str) -> str:
    return settings.SHOP_BASE_URL.rstrip("/") + path


def _order_context(order: Order) -> dict:
    return {
        "order": order,
        "lines": list(order.lines.all()),
        "order_url": absolute(order.get_absolute_url()),
        "find_url": absolute("/orders/find/"),
    }


def _receipt_payment(order: Order) -> Payment | None:
    """The capture that paid the order."""
    return (order.payments.filter(state__in=CAPTURED_STATES).order_by("-settles_order", "created_at").first())


def message_context(notification: Notification) -> dict:
    context = {"shop_name": settings.SHOP_NAME, "kind": notification.kind, "notification": notification}
    order = notification.order
    if order is not None:
        context.update(_order_context(order))
    payment = notification.payment
    if notification.kind == Kind.PAYMENT_SUCCEEDED and order is not None:
        payment = _receipt_payment(order)
    if payment is not None:
        context["payment"] = payment
        context["payment_view"] = payment_customer_view(payment)
        context["psp_reference_end"] = payment.psp_reference[-6:] if payment.psp_reference else ""
    if notification.kind == Kind.REFUND_ISSUED and order is not None:
        amount = notification.context.get("amount_minor") or 0
        context["refund_amount"] = format_money(amount, order.currency)
        context["refund_full"] = bool(notification.context.get("full"))
    if notification.kind == Kind.ORDER_LINKS:
        orders = Order.objects.filter(pk__in=notification.context.get("orders", [])).order_by("-created_at")
        context["orders"] = [{"order": o, "url": absolute(o.get_absolute_url())} for o in orders]
    return context


def render_message(notification: Notification) -> Rendered:
    context = message_context(notification)
    number = notification.order.number if notification.order is not None else ""
    subject = SUBJECTS[notification.kind].format(number=number, shop=settings.SHOP_NAME)
    payment = context.get("payment")
    return Rendered(
        subject=subject,
        text=render_to_string(f"emails/{notification.kind}.txt", context).strip() + "\n",
        html=render_to_string(f"emails/{notification.kind}.html", context),
        payment_id=payment.pk if payment is not None else None,
    )


def no_longer_true(notification: Notification) -> str:
    """Why a message would mislead if sent now (the customer paid meanwhile, say), or ''."""
    order, payment = notification.order, notification.payment
    if notification.kind == Kind.PAYMENT_DECLINED and order.state != Order.State.AWAITING_PAYMENT:
        return f"the order is {order.get_state_display().lower()} now"
    if notification.kind in (Kind.PAYMENT_ACTION_NEEDED, Kind.PAYMENT_DELAYED):
        if not payment.is_open:
            return f"the payment is {payment.get_state_display().lower()} now"
        if order.state != Order.State.AWAITING_PAYMENT:
            return f"the order is {order.get_state_display().lower()} now"
    return ""
