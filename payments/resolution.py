"""What support staff do to a payment problem: each service checks the permission, needs a reason where it
changes money or state, and leaves an audit row with the staff user's name.

State changes are audited where they happen (PaymentTransition with source
`staff`, Refund, Discrepancy.resolved_by); the actions that change no state
by themselves leave a StaffAction row.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from orders.models import TransitionSource
from payments.gateways.base import GatewayResult, PspStatus
from payments.models import (
    CAPTURED_STATES,
    Discrepancy,
    Payment,
    PaymentState,
    StaffAction,
    WebhookEvent,
)
from payments.services import (
    PaymentError,
    _amount_matches,
    _apply_refunds,
    _cancel_at_psp,
    _mark_order_paid,
    _transition,
    gateway_for,
    lock_payment,
    payment_apply_result,
    payment_cancel,
    payment_sync,
)
from payments.webhooks import webhook_process

S = PaymentState
SUPPORT_GROUP = "Payment support"


class ResolveOutcome:
    CAPTURED = "captured"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    CHOICES = [(CAPTURED, "Captured: the money was taken"), (DECLINED, "Declined: the bank said no"),
               (CANCELLED, "Cancelled: nothing was or will be taken")]


_RESOLVE_TRANSITION = {
    ResolveOutcome.CAPTURED: "capture",
    ResolveOutcome.DECLINED: "decline",
    ResolveOutcome.CANCELLED: "cancel",
}


def _require(actor, permission: str, doing: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise PaymentError(f"You do not have the permission to {doing}.")


def _require_reason(reason: str, doing: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise PaymentError(f"Give a reason to {doing}: it goes into the audit trail.")
    return reason


def staff_action_record(*, actor, action: str, payment_id: uuid.UUID | None = None,
                        webhook_event: WebhookEvent | None = None, reason: str = "", outcome: str = ""
                        ) -> StaffAction:
    """Audit a staff action that changed no state by itself; the name survives the user's deletion."""
    return StaffAction.objects.create(
        action=action, actor=actor, actor_name=actor.get_username(), payment_id=payment_id,
        webhook_event=webhook_event, reason=reason, outcome=outcome[:300],
    )


# -- payments ---------------------------------------------------------------------

def payment_check_now(*, payment_id: uuid.UUID, actor) -> Payment:
    """Ask the PSP where an open payment stands now and apply it, as the sync sweep would."""
    _require(actor, "payments.check_payment", "check payments with the PSP")
    before = Payment.objects.get(pk=payment_id)
    if not before.is_open:
        raise PaymentError(f"This payment is {before.get_state_display().lower()}, a final state: there is "
                           "nothing to ask the PSP.")
    payment = payment_sync(payment_id=payment_id, source=TransitionSource.STAFF, actor=actor)
    if payment.state == before.state:
        last = payment.calls.order_by("-created_at", "-id").first()
        answer = f"; the PSP call ended {last.get_outcome_display().lower()}" if last else ""
        outcome = f"Still {payment.get_state_display().lower()}{answer}."
    else:
        outcome = f"{before.get_state_display()} → {payment.get_state_display().lower()}."
    staff_action_record(actor=actor, action=StaffAction.Action.CHECK_PAYMENT, payment_id=payment.pk,
                        outcome=outcome)
    return payment


def payment_cancel_by_staff(*, payment_id: uuid.UUID, actor, reason: str) -> Payment:
    """Cancel an open payment at the PSP first; the PSP's answer decides the state."""
    _require(actor, "payments.cancel_payment", "cancel payments")
    reason = _require_reason(reason, "cancel a payment")
    before = Payment.objects.get(pk=payment_id).state
    payment = payment_cancel(payment_id=payment_id, source=TransitionSource.STAFF, actor=actor, reason=reason)
    if payment.state == before:
        # No transition row was written: say who asked and that the PSP did not confirm.
        staff_action_record(actor=actor, action=StaffAction.Action.CANCEL_PAYMENT, payment_id=payment.pk,
                            reason=reason,
                            outcome=f"The PSP did not confirm the cancellation; still {payment.state}.")
    return payment


def _psp_status(payment: Payment) -> GatewayResult:
    """A fresh answer from the PSP (outside any transaction); UNKNOWN when it does not answer."""
    gateway = gateway_for(payment)
    if payment.psp_reference:
        return gateway.retrieve(payment.psp_reference)
    return gateway.find_by_reference(payment.pk)


def payment_resolve(*, payment_id: uuid.UUID, outcome: str, actor, reason: str, override: bool = False
                    ) -> Payment:
    """Settle an open payment by hand, with a reason, after a fresh look at the PSP.

    - captured: only when the PSP confirms a capture now, or with
      payments.resolve_payment_override and override=True (money taken
      elsewhere, PSP unreachable for good); the order is marked paid when the
      amounts match;
    - declined / cancelled: they tell the customer "you have not been
      charged", so they need the PSP's positive word that nothing was taken
      (see _psp_confirms_nothing_taken). Without it, nothing changes: the
      payment stays open and the sync sweep keeps asking.
    """
    _require(actor, "payments.resolve_payment", "resolve payments")
    if outcome not in _RESOLVE_TRANSITION:
        raise PaymentError("Choose captured, declined or cancelled.")
    reason = _require_reason(reason, "resolve a payment")
    payment = Payment.objects.select_related("order").get(pk=payment_id)
    if not payment.is_open:
        raise PaymentError(f"This payment is already {payment.get_state_display().lower()}; only open payments "
                           "(created, pending, unknown, authorized) can be resolved.")
    if outcome != ResolveOutcome.CAPTURED:
        psp, voided = _psp_confirms_nothing_taken(payment, actor=actor, reason=reason)
        if voided:
            # We voided it at the PSP just now: it is cancelled, as the PSP says, whatever was asked.
            return payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=psp, source=TransitionSource.STAFF,
                                        actor=actor, reason=reason)
        return _apply_resolution(payment_id=payment.pk, outcome=outcome, actor=actor, reason=reason, psp=psp,
                                 confirmed=True)
    psp = _psp_status(payment)
    confirmed = psp.status == PspStatus.CAPTURED
    if not confirmed:
        if not override:
            raise PaymentError(f"The PSP does not confirm a capture (it says {psp.status}). Check again later, or "
                               "ask someone with the override permission if the money was taken another way.")
        _require(actor, "payments.resolve_payment_override",
                 "resolve a payment as captured without the PSP's confirmation")
    return _apply_resolution(payment_id=payment.pk, outcome=outcome, actor=actor, reason=reason, psp=psp,
                             confirmed=confirmed)


_NOTHING_TAKEN = (PspStatus.DECLINED, PspStatus.FAILED, PspStatus.CANCELLED)
PSP_CANNOT_CONFIRM = ("The PSP cannot confirm that nothing was taken: it did not answer. Nothing was changed; the "
                      "payment stays open and the worker keeps asking. Try again when the PSP answers.")


def _psp_confirms_nothing_taken(payment: Payment, *, actor, reason: str) -> tuple[GatewayResult, bool]:
    """The PSP's positive word that no money was taken, and whether we voided it to get it; or a PaymentError.

    Accepted: the PSP says declined, failed or cancelled; or it has never heard
    of the payment and the grace period for a request still on its way is
    over. A payment the PSP still holds open (pending, authorized) is voided
    there first, and only a confirmed void counts. Anything else (no answer,
    a 5xx, a capture) refuses; a capture the PSP reports is applied, so the
    order is paid and the customer is told the truth.
    """
    psp = _psp_status(payment)
    voided = psp.status in (PspStatus.PENDING, PspStatus.AUTHORIZED)
    if voided:
        psp = _cancel_at_psp(payment)  # the void: idempotent by its key, so a retry voids once
    if psp.status in _NOTHING_TAKEN:
        return psp, voided and psp.status == PspStatus.CANCELLED
    if psp.status == PspStatus.NOT_FOUND:
        grace = timedelta(seconds=settings.PAYMENT_CREATED_GRACE_SECONDS)
        if payment.created_at < timezone.now() - grace:
            return psp, False
        raise PaymentError("The PSP has no record of this payment yet, but a request may still be on its way to it. "
                           f"Nothing was changed; try again in {settings.PAYMENT_CREATED_GRACE_SECONDS // 60 or 1} "
                           "minute(s).")
    if psp.status in (PspStatus.CAPTURED, PspStatus.AUTHORIZED):
        # The PSP took or holds the money: record what it says, never "not charged".
        payment = payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=psp, source=TransitionSource.STAFF,
                                       actor=actor, reason=f"PSP answer while resolving: {reason}")
        raise PaymentError(f"The PSP says this payment is {psp.status}: the customer's money is taken or held, so "
                           f"it was not resolved as not charged. The payment is {payment.get_state_display().lower()} "
                           f"now; the order is {payment.order.get_state_display().lower()}.")
    if psp.status == PspStatus.UNKNOWN:
        raise PaymentError(PSP_CANNOT_CONFIRM)
    raise PaymentError(f"The PSP did not confirm that nothing was taken (it says {psp.status}). Nothing was "
                       "changed; try again later.")


def _apply_resolution(*, payment_id: uuid.UUID, outcome: str, actor, reason: str, psp: GatewayResult,
                      confirmed: bool) -> Payment:
    with transaction.atomic():
        order, payment = lock_payment(payment_id)
        if not payment.is_open:
            raise PaymentError(f"The payment became {payment.get_state_display().lower()} meanwhile; nothing "
                               "was changed. Look at it again.")
        if not can_proceed(getattr(payment, _RESOLVE_TRANSITION[outcome])):
            raise PaymentError(f"An {payment.get_state_display().lower()} payment cannot become {outcome}: the bank "
                               "approved it. Resolve it as cancelled (voids it at the PSP) or as captured.")
        if psp.psp_reference and not payment.psp_reference:
            payment.psp_reference = psp.psp_reference
        if outcome == ResolveOutcome.DECLINED:
            payment.failure_code, payment.failure_message = "resolved_by_staff", reason[:255]
        payload = {"resolution": outcome, "psp_status": str(psp.status), "psp_confirmed": confirmed,
                   "override": outcome == ResolveOutcome.CAPTURED and not confirmed}
        _transition(payment, _RESOLVE_TRANSITION[outcome], source=TransitionSource.STAFF, actor=actor,
                    reason=reason, payload=payload)
        payment.card_token = ""
        payment.next_check_at = None
        if outcome == ResolveOutcome.CAPTURED:
            # Without the PSP's figures (override) staff vouch for the amount.
            if not confirmed or _amount_matches(payment, psp):
                _mark_order_paid(order, payment, source=TransitionSource.STAFF, actor=actor)
            if payment.state in CAPTURED_STATES and confirmed:
                _apply_refunds(order, payment, psp, source=TransitionSource.STAFF)
        payment.save()
    return payment


# -- webhook events and discrepancies ---------------------------------------------

def webhook_reprocess(*, event_id: int, actor) -> WebhookEvent:
    """Apply a stored event again (after a fix or an outage); its error stays on it if it fails again."""
    _require(actor, "payments.reprocess_webhookevent", "reprocess webhook events")
    event = WebhookEvent.objects.get(pk=event_id)
    if event.processed_at is not None:
        raise PaymentError(f"Event {event.event_id} was already applied on {event.processed_at:%Y-%m-%d %H:%M} "
                           "UTC; there is nothing to reprocess.")
    applied = webhook_process(event=event)
    outcome = "Applied." if applied else f"Failed again: {event.error}"
    staff_action_record(actor=actor, action=StaffAction.Action.REPROCESS_WEBHOOK, payment_id=event.payment_id,
                        webhook_event=event, outcome=outcome)
    return event


def discrepancy_close(*, discrepancy_id: int, actor, resolution: str) -> Discrepancy:
    """Close an open discrepancy with a note saying what was done about it."""
    _require(actor, "payments.close_discrepancy", "close discrepancies")
    resolution = _require_reason(resolution, "close a discrepancy")
    with transaction.atomic():
        discrepancy = Discrepancy.objects.select_for_update().get(pk=discrepancy_id)
        if discrepancy.status == Discrepancy.Status.CLOSED:
            raise PaymentError(f"This discrepancy was already closed by {discrepancy.resolved_by_name or 'someone'}"
                               f" on {discrepancy.resolved_at:%Y-%m-%d %H:%M} UTC.")
        discrepancy.status = Discrepancy.Status.CLOSED
        discrepancy.resolution = resolution
        discrepancy.resolved_by = actor
        discrepancy.resolved_by_name = actor.get_username()
        discrepancy.resolved_at = timezone.now()
        discrepancy.save(update_fields=["status", "resolution", "resolved_by", "resolved_by_name", "resolved_at"])
    return discrepancy
