"""Read-only queries of the live status: what a socket is sent, and what changed since."""

from __future__ import annotations

import uuid

from payments.models import Payment, PaymentTransition
from payments.selectors import payment_customer_view


def live_message(payment: Payment, seq: int) -> dict:
    """What a status socket is sent: the customer's view of the payment, never PSP internals."""
    view = payment_customer_view(payment, receipt=False)
    return {
        "type": "status",
        "seq": seq,
        "state": view["state"],
        "final": view["final"],
        "title": view["title"],
        "message": view["message"],
        "action_url": view["action_url"],
        "order_state": view["order_state"],
    }


def live_snapshot(payment_id: uuid.UUID) -> dict | None:
    """The payment's current message, `seq` being the id of its latest audit row (None: no such payment)."""
    payment = Payment.objects.select_related("order").filter(pk=payment_id).first()
    if payment is None:
        return None
    seq = (PaymentTransition.objects.filter(payment_id=payment_id).order_by("-id")
           .values_list("id", flat=True).first()) or 0
    return live_message(payment, seq)


def live_changes(cursors: dict[uuid.UUID, int]) -> dict[uuid.UUID, dict]:
    """Messages for the watched payments that have audit rows newer than their cursor.

    One query on the (payment, created_at) index while nothing changed; a
    second one reads the changed payments. Cursors are per payment because
    ids of different payments' rows need not commit in id order on
    PostgreSQL, while one payment's rows are written under its row lock.
    """
    if not cursors:
        return {}
    floor = min(cursors.values())
    latest: dict[uuid.UUID, int] = {}
    rows = PaymentTransition.objects.filter(payment_id__in=list(cursors), id__gt=floor).values_list("payment_id", "id")
    for payment_id, row_id in rows:
        if row_id > cursors.get(payment_id, 0) and row_id > latest.get(payment_id, 0):
            latest[payment_id] = row_id
    if not latest:
        return {}
    payments = Payment.objects.select_related("order").filter(pk__in=list(latest))
    return {payment.pk: live_message(payment, latest[payment.pk]) for payment in payments}
