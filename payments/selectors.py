"""Read-only payment queries."""

from __future__ import annotations

from payments.models import OPEN_STATES, Payment

# What a customer sees; never PSP internals.
CUSTOMER_FAILURE_TEXT = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "authentication_failed": "The card authentication was not completed.",
    "expired_card": "Your card has expired.",
}

CUSTOMER_STATE_TEXT = {
    "created": ("Starting your payment", "We are contacting the payment provider. This page updates by itself."),
    "pending": ("Waiting for confirmation", "Your payment is with the payment provider. This page updates by itself."),
    "unknown": ("Confirming your payment", "We are confirming the result with the payment provider. You will not be "
                "charged twice. This page updates by itself."),
    "authorized": ("Payment authorised", "The funds are reserved; we are confirming the payment."),
    "captured": ("Payment received", "Thank you! Your order is paid."),
    "declined": ("Payment declined", "You have not been charged. You can try again, with another card if needed."),
    "failed": ("Payment failed", "The payment could not be processed and you have not been charged. Please try again."),
    "cancelled": ("Payment cancelled", "The payment was cancelled and you have not been charged."),
    "expired": ("Payment timed out", "The payment was not completed in time and you have not been charged."),
    "partially_refunded": ("Partially refunded", "Part of this payment was refunded to your card."),
    "refunded": ("Refunded", "This payment was refunded to your card."),
}


def payment_customer_view(payment: Payment) -> dict:
    """What the customer's status page and status endpoint show for a payment."""
    title, message = CUSTOMER_STATE_TEXT[payment.state]
    if payment.state in ("declined", "failed"):
        reason = CUSTOMER_FAILURE_TEXT.get(payment.failure_code)
        if reason:
            message = f"{reason} {message}"
    needs_customer = payment.state == "pending" and bool(payment.redirect_url)
    return {
        "id": str(payment.pk),
        "state": payment.state,
        "final": not payment.is_open,
        "title": title,
        "message": message,
        "amount": payment.amount_display,
        "action_url": payment.redirect_url if needs_customer else "",
        "order_number": payment.order.number,
        "order_state": payment.order.state,
        "order_url": payment.order.get_absolute_url(),
    }


def open_payment_for_order(order_id: int) -> Payment | None:
    return Payment.objects.filter(order_id=order_id, state__in=OPEN_STATES).first()
