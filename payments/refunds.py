"""Refunds: full or partial, never more than what was captured, each exactly once."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.db.models import Sum

from orders.models import TransitionSource
from payments.gateways.base import RefundStatus
from payments.models import CAPTURED_STATES, Payment, Refund
from payments.services import PaymentError, _settle_refund, gateway_for, lock_payment
from shop.money import format_money


def refundable_minor(payment: Payment) -> int:
    """What may still be refunded: captured minus refunded minus refunds in flight."""
    if payment.state not in CAPTURED_STATES:
        return 0
    in_flight = payment.refunds.filter(state=Refund.State.PENDING).aggregate(total=Sum("amount_minor"))["total"]
    return payment.amount_minor - payment.amount_refunded_minor - (in_flight or 0)


def refund_create(*, payment_id: uuid.UUID, amount_minor: int, refund_id: uuid.UUID, actor=None, reason: str
                  ) -> Refund:
    """Refund (part of) a captured payment; the same refund_id twice makes one refund."""
    if not reason.strip():
        raise PaymentError("Give a reason for the refund.")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise PaymentError("The refund amount must be a positive whole number of minor units.")
    existing = Refund.objects.filter(pk=refund_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                _, payment = lock_payment(payment_id)
                available = refundable_minor(payment)
                if amount_minor > available:
                    raise PaymentError(f"At most {format_money(available, payment.currency)} can be refunded; "
                                       f"you asked for {format_money(amount_minor, payment.currency)}.")
                existing = Refund.objects.create(
                    id=refund_id, payment=payment, amount_minor=amount_minor, currency=payment.currency,
                    reason=reason.strip(), actor=actor, actor_name=actor.get_username() if actor else "",
                )
        except IntegrityError:
            existing = Refund.objects.get(pk=refund_id)
    if existing.payment_id != payment_id:
        raise PaymentError("This refund form was already used for another payment.")
    return refund_submit(refund_id=existing.pk)


def refund_submit(*, refund_id: uuid.UUID) -> Refund:
    """Send a pending refund to the PSP (idempotent by its id) and apply the answer."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.state != Refund.State.PENDING:
        return refund
    payment = refund.payment
    result = gateway_for(payment).refund(payment.psp_reference, refund_id=refund.pk,
                                         amount_minor=refund.amount_minor, currency=refund.currency)
    if result.status in (RefundStatus.UNKNOWN, RefundStatus.PENDING):
        return refund  # stays pending; the payment sync settles it
    with transaction.atomic():
        order, payment = lock_payment(payment.pk)
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.state != Refund.State.PENDING:
            return refund
        if result.status == RefundStatus.SUCCEEDED:
            _settle_refund(order, payment, refund, psp_reference=result.psp_reference,
                           source=TransitionSource.PSP_RESPONSE)
            payment.save()
        else:
            refund.state = Refund.State.FAILED
            refund.failure_message = result.failure_message[:255]
            refund.save(update_fields=["state", "failure_message", "updated_at"])
    return refund
