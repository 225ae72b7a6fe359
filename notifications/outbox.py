"""Write customer messages into the outbox, in the transaction of the change that causes them.

The receivers below listen to the audit signals (orders.signals,
payments.signals), which are sent inside the transaction that writes the
audit row: a rolled-back transition takes its message with it, and a
transition that did not happen (a duplicate webhook, a second sweep) writes
nothing. Each row also carries a dedupe key, so the same event can never be
written twice even if two paths report it. Nothing here sends mail: the
worker does (notifications/sender.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.dispatch import receiver
from django.utils import timezone

from notifications.models import Notification
from orders.models import Order
from orders.signals import order_transitioned
from payments.models import OPEN_STATES, Payment, PaymentState
from payments.signals import payment_transitioned

Kind = Notification.Kind


def notify(kind: str, *, key: str, to: str, order: Order | None = None, payment: Payment | None = None,
           context: dict | None = None, now: datetime | None = None) -> None:
    """Write one message for one event; a second write with the same key is ignored."""
    Notification.objects.bulk_create(
        [Notification(kind=kind, dedupe_key=f"{kind}:{key}", to=to, order=order, payment=payment,
                      context=context or {}, next_attempt_at=now or timezone.now())],
        ignore_conflicts=True,
    )


@receiver(order_transitioned, dispatch_uid="notifications.order")
def _order_transitioned(sender, order: Order, transition, **kwargs) -> None:
    to_state = transition.to_state
    if not transition.from_state and to_state == Order.State.AWAITING_PAYMENT:
        notify(Kind.ORDER_PLACED, key=str(order.pk), to=order.email, order=order)
    elif to_state == Order.State.PAID:
        notify(Kind.PAYMENT_SUCCEEDED, key=str(order.pk), to=order.email, order=order)
    elif to_state == Order.State.EXPIRED:
        notify(Kind.ORDER_EXPIRED, key=str(order.pk), to=order.email, order=order)


@receiver(payment_transitioned, dispatch_uid="notifications.payment")
def _payment_transitioned(sender, payment: Payment, transition, **kwargs) -> None:
    to_state = transition.to_state
    if to_state in (PaymentState.DECLINED, PaymentState.FAILED):
        order = payment.order
        notify(Kind.PAYMENT_DECLINED, key=str(payment.pk), to=order.email, order=order, payment=payment)
    elif to_state in (PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED) and transition.payload:
        order = payment.order
        refund_id = transition.payload.get("refund")
        notify(Kind.REFUND_ISSUED, key=str(refund_id or transition.pk), to=order.email, order=order,
               payment=payment, context={"refund": refund_id, "amount_minor": transition.payload.get("amount_minor"),
                                         "full": to_state == PaymentState.REFUNDED})


# -- time-based messages: written by the worker (notifications.tasks) --------------

SLOW_KINDS = (Kind.PAYMENT_ACTION_NEEDED, Kind.PAYMENT_DELAYED)
SLOW_LOOKBACK = timedelta(days=1)  # older open payments are staff's, through the stuck-payment alert


def needs_customer(payment: Payment) -> bool:
    """The payment waits for the customer (3-D Secure or the hosted page), not for the PSP."""
    return payment.state == PaymentState.PENDING and bool(payment.redirect_url)


def notice_slow_payments(*, now: datetime | None = None, limit: int = 500) -> int:
    """Tell customers about open payments older than NOTIFY_SLOW_PAYMENT_MINUTES, once per payment.

    A payment that waits for the customer gets "your payment waits for you";
    one that waits for the PSP gets "we are still confirming it; you will not
    be charged twice". Returns how many messages were written.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.NOTIFY_SLOW_PAYMENT_MINUTES)
    already = Notification.objects.filter(payment=OuterRef("pk"), kind__in=SLOW_KINDS)
    slow = list(
        Payment.objects.filter(state__in=OPEN_STATES, created_at__lt=cutoff, created_at__gte=now - SLOW_LOOKBACK,
                               order__state=Order.State.AWAITING_PAYMENT)
        .exclude(Exists(already)).select_related("order").order_by("created_at")[:limit]
    )
    for payment in slow:
        kind = Kind.PAYMENT_ACTION_NEEDED if needs_customer(payment) else Kind.PAYMENT_DELAYED
        notify(kind, key=str(payment.pk), to=payment.order.email, order=payment.order, payment=payment, now=now)
    return len(slow)


# -- the customer's own request: "mail me my orders" -----------------------------

def request_order_links(*, email: str, now: datetime | None = None) -> bool:
    """Mail the links to the recent orders of `email`, if it has any. The caller answers the same either way."""
    now = now or timezone.now()
    orders = list(Order.objects.filter(email__iexact=email.strip(),
                                       created_at__gte=now - timedelta(days=settings.NOTIFY_LOOKUP_DAYS))
                  .order_by("-created_at").values_list("pk", "email")[:settings.NOTIFY_LOOKUP_MAX_ORDERS])
    if not orders:
        return False
    notify(Kind.ORDER_LINKS, key=uuid.uuid4().hex, to=orders[0][1], context={"orders": [pk for pk, _ in orders]},
           now=now)
    return True


# -- the support console ---------------------------------------------------------------

class ResendError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def notification_resend(*, notification_id: uuid.UUID, actor, reason: str, request_id: uuid.UUID) -> Notification:
    """Queue the message again, as a new row that records who asked and why (the audit).

    `request_id` comes from the form, so a double-submitted form queues one resend.
    """
    if not reason.strip():
        raise ResendError("Give a reason: it goes into the audit trail.")
    original = Notification.objects.select_related("order").get(pk=notification_id)
    if original.status == Notification.Status.PENDING:
        raise ResendError("This message has not been sent yet; the worker sends it within a minute.")
    notify(original.kind, key=f"resend:{request_id}", to=original.to, order=original.order,
           payment=original.payment, context=original.context)
    Notification.objects.filter(dedupe_key=f"{original.kind}:resend:{request_id}", requested_by__isnull=True).update(
        resend_of=original, requested_by=actor, requested_by_name=actor.get_username(), reason=reason.strip())
    return Notification.objects.get(dedupe_key=f"{original.kind}:resend:{request_id}")
