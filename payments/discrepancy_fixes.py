"""Fixing a discrepancy that shows money taken for a payment we hold as not captured, or taken twice.

Two fixes, both staff actions with a reason, both after a fresh look at the
PSP (outside any transaction), both audited and safe to submit twice:

- refund: the money goes back to the customer. A payment we hold as
  declined, cancelled, expired or failed is first corrected to captured (the
  PSP proved it was), without touching its order; then refunded in full at
  the PSP through payments.refunds (idempotent by the form's refund id). A
  refund of an extra capture never refunds the order that another payment
  paid (Payment.settles_order).
- attach: the late capture becomes the order's payment, when the order is
  still awaiting payment, nobody is paying it right now, and the PSP's
  amount is the order's. The order is marked paid.

Only the payment's own PSP transaction is moved. A second PSP transaction
under the same merchant reference, or one naming no payment of ours, is
refunded in the PSP's dashboard and closed with a note (docs/runbook.md).
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from orders.models import Order, TransitionSource
from payments.gateways.base import GatewayResult, PspStatus
from payments.models import CAPTURED_STATES, OPEN_STATES, UNPAID_FINAL_STATES, Discrepancy, Payment, Refund
from payments.refunds import refund_create, refundable_minor
from payments.resolution import _psp_status, _require, _require_reason
from payments.services import PaymentError, _mark_order_paid, _transition, lock_payment
from shop.money import format_money

K = Discrepancy.Kind
REFUND = "refund"
ATTACH = "attach"
# Kinds that can say "the PSP took money for this payment after we gave it up".
_LATE_CAPTURE_KINDS = (K.LATE_EVENT, K.CAPTURED_AT_PSP_ONLY)
# Kinds that can say "this capture of ours pays no order".
_EXTRA_CAPTURE_KINDS = (*_LATE_CAPTURE_KINDS, K.DOUBLE_CAPTURE, K.AMOUNT_MISMATCH)


def discrepancy_money_fixes(discrepancy: Discrepancy) -> list[str]:
    """The fixes the console offers for a discrepancy: [] when closing with a note is all there is."""
    payment = discrepancy.payment
    if discrepancy.status != Discrepancy.Status.OPEN or payment is None:
        return []
    if discrepancy.psp_reference and payment.psp_reference and discrepancy.psp_reference != payment.psp_reference:
        return []  # another PSP transaction than the payment's own
    if payment.state in UNPAID_FINAL_STATES and discrepancy.kind in _LATE_CAPTURE_KINDS:
        order_unpaid = payment.order.state == Order.State.AWAITING_PAYMENT
        return [REFUND, ATTACH] if order_unpaid else [REFUND]
    if (payment.state in CAPTURED_STATES and not payment.settles_order and discrepancy.kind in _EXTRA_CAPTURE_KINDS
            and refundable_minor(payment) > 0):
        return [REFUND]
    return []


def _require_fix(discrepancy: Discrepancy, fix: str) -> None:
    if discrepancy.status != Discrepancy.Status.OPEN:
        raise PaymentError(f"This discrepancy was already closed by {discrepancy.resolved_by_name or 'someone'}.")
    if fix not in discrepancy_money_fixes(discrepancy):
        raise PaymentError("This discrepancy does not show money taken for this payment that the console can move; "
                           "close it with a note saying what was done.")


def _psp_capture(payment: Payment, discrepancy: Discrepancy) -> GatewayResult:
    """The PSP's fresh word that it holds this payment's money; a PaymentError otherwise."""
    psp = _psp_status(payment)
    if psp.status == PspStatus.UNKNOWN:
        raise PaymentError("The PSP did not answer, so it cannot confirm the capture now. Nothing was changed; try "
                           "again when it answers.")
    captured = psp.amount_captured_minor or (psp.amount_minor or 0)
    if psp.status != PspStatus.CAPTURED or captured - psp.amount_refunded_minor <= 0:
        raise PaymentError(f"The PSP no longer shows money taken for this payment (it says {psp.status}"
                           f"{', fully refunded' if psp.status == PspStatus.CAPTURED else ''}). Nothing was changed; "
                           "close the discrepancy with a note.")
    return psp


def _correct_to_captured(order: Order, payment: Payment, psp: GatewayResult, *, discrepancy: Discrepancy, actor,
                         reason: str) -> None:
    """Record, on a locked payment we hold as not captured, that the PSP took its money (caller saves)."""
    if psp.psp_reference and not payment.psp_reference:
        payment.psp_reference = psp.psp_reference
    _transition(payment, "correct_to_captured", source=TransitionSource.STAFF, actor=actor, reason=reason,
                payload={"discrepancy": discrepancy.pk, "psp_status": str(psp.status),
                         "psp_amount_minor": psp.amount_captured_minor or psp.amount_minor,
                         "psp_currency": psp.currency})
    payment.card_token = ""
    payment.next_check_at = None


def _close(discrepancy: Discrepancy, *, actor, resolution: str) -> None:
    discrepancy.status = Discrepancy.Status.CLOSED
    discrepancy.resolution = resolution
    discrepancy.resolved_by = actor
    discrepancy.resolved_by_name = actor.get_username()
    discrepancy.resolved_at = timezone.now()
    discrepancy.save(update_fields=["status", "resolution", "resolved_by", "resolved_by_name", "resolved_at"])


def _locked(discrepancy_id: int, payment_id: uuid.UUID) -> tuple[Order, Payment, Discrepancy]:
    order, payment = lock_payment(payment_id)
    discrepancy = Discrepancy.objects.select_for_update().get(pk=discrepancy_id)
    return order, payment, discrepancy


def discrepancy_attach_capture(*, discrepancy_id: int, actor, reason: str) -> Payment:
    """Make a late capture the order's payment: corrected to captured, the order marked paid, the discrepancy closed."""
    _require(actor, "payments.resolve_payment", "attach a capture to an order")
    _require(actor, "payments.close_discrepancy", "close discrepancies")
    reason = _require_reason(reason, "attach a capture to an order")
    discrepancy = Discrepancy.objects.select_related("payment__order").get(pk=discrepancy_id)
    _require_fix(discrepancy, ATTACH)
    payment = discrepancy.payment
    psp = _psp_capture(payment, discrepancy)
    amount = psp.amount_captured_minor or psp.amount_minor
    if amount != payment.amount_minor or (psp.currency or payment.currency).upper() != payment.currency:
        raise PaymentError(f"The PSP took {format_money(amount or 0, (psp.currency or payment.currency).upper())}, "
                           f"but the order is {format_money(payment.amount_minor, payment.currency)}: it cannot "
                           "pay the order. Refund it instead.")
    with transaction.atomic():
        order, payment, discrepancy = _locked(discrepancy_id, payment.pk)
        _require_fix(discrepancy, ATTACH)
        other = order.payments.filter(state__in=OPEN_STATES).exclude(pk=payment.pk).first()
        if other is not None:
            raise PaymentError(f"The customer is paying this order again right now (payment {str(other.pk)[:8]} "
                               "is open). Wait until it settles, or refund this capture.")
        _correct_to_captured(order, payment, psp, discrepancy=discrepancy, actor=actor, reason=reason)
        _mark_order_paid(order, payment, source=TransitionSource.STAFF, actor=actor)
        payment.save()
        _close(discrepancy, actor=actor, resolution=f"Attached as the payment of order {order.number}: {reason}")
    return payment


def discrepancy_refund(*, discrepancy_id: int, actor, reason: str, refund_id: uuid.UUID) -> Refund:
    """Give the money a discrepancy shows taken back to the customer, at the PSP; the same refund_id twice refunds once.

    The discrepancy is closed once the refund is made or with the PSP (pending
    ones are settled by the worker); a refund the PSP refuses leaves it open.
    """
    _require(actor, "payments.refund_payment", "refund payments")
    _require(actor, "payments.close_discrepancy", "close discrepancies")
    reason = _require_reason(reason, "refund a payment")
    discrepancy = Discrepancy.objects.select_related("payment__order").get(pk=discrepancy_id)
    existing = Refund.objects.filter(pk=refund_id).first()
    if existing is not None:
        if existing.payment_id != discrepancy.payment_id:
            raise PaymentError("This refund form was already used for another payment.")
        return existing  # the same form again: one refund
    _require_fix(discrepancy, REFUND)
    payment = discrepancy.payment
    if payment.state in UNPAID_FINAL_STATES:
        psp = _psp_capture(payment, discrepancy)
        with transaction.atomic():
            order, payment, discrepancy = _locked(discrepancy_id, payment.pk)
            _require_fix(discrepancy, REFUND)
            if payment.state in UNPAID_FINAL_STATES:  # not corrected by a concurrent submission
                _correct_to_captured(order, payment, psp, discrepancy=discrepancy, actor=actor, reason=reason)
                payment.save()
    refund = refund_create(payment_id=payment.pk, amount_minor=refundable_minor(payment), refund_id=refund_id,
                           actor=actor, reason=reason)
    if refund.state == Refund.State.FAILED:
        raise PaymentError(f"The PSP refused the refund: {refund.failure_message or 'no reason given'}. The "
                           "discrepancy stays open.")
    with transaction.atomic():
        discrepancy = Discrepancy.objects.select_for_update().get(pk=discrepancy_id)
        if discrepancy.status == Discrepancy.Status.OPEN:
            done = "refunded" if refund.state == Refund.State.SUCCEEDED else "refund sent to the PSP (pending)"
            _close(discrepancy, actor=actor, resolution=f"{format_money(refund.amount_minor, refund.currency)} "
                                                        f"{done}, refund {refund.pk}: {reason}")
    return refund
