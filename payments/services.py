"""The only place that changes payment state.

Every PSP call follows three steps (DESIGN.md, "the atomic phases"):
1. in a transaction, lock the order and write our intent (a `created` payment);
2. outside any transaction, call the PSP with the payment's UUID as the
   idempotency key and merchant reference;
3. in a new transaction, lock the rows and apply the answer as a transition.
If step 3 never happens, the sync sweep finds the payment and asks again.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django_fsm import can_proceed

from orders.models import Order, TransitionSource
from orders.services import lock_customer_order, lock_order, order_cancel, order_expire, order_mark_paid
from payments.gateways import get_gateway
from payments.gateways.base import CallRecord, Gateway, GatewayResult, PaymentRequest, PspStatus, RefundStatus
from payments.models import (
    CAPTURED_STATES,
    ONE_OPEN_PAYMENT_PER_ORDER,
    Discrepancy,
    GatewayCall,
    Payment,
    PaymentState,
    PaymentTransition,
    Refund,
)
from payments.selectors import open_payment_for_order
from payments.signals import payment_transitioned
from shop.money import format_money

logger = logging.getLogger(__name__)

S = PaymentState

_TRANSITION_FOR = {
    PspStatus.PENDING: "mark_pending",
    PspStatus.AUTHORIZED: "authorize",
    PspStatus.CAPTURED: "capture",
    PspStatus.DECLINED: "decline",
    PspStatus.FAILED: "fail",
    PspStatus.CANCELLED: "cancel",
}
_STATE_FOR = {
    PspStatus.PENDING: S.PENDING,
    PspStatus.AUTHORIZED: S.AUTHORIZED,
    PspStatus.CAPTURED: S.CAPTURED,
    PspStatus.DECLINED: S.DECLINED,
    PspStatus.FAILED: S.FAILED,
    PspStatus.CANCELLED: S.CANCELLED,
}


class PaymentError(Exception):
    """An expected refusal, shown to the customer or staff member who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- plumbing ------------------------------------------------------------------

def lock_payment(payment_id: uuid.UUID, order_id: int | None = None) -> tuple[Order, Payment]:
    """Lock a payment and its order, order first (the one lock order everywhere)."""
    if order_id is None:
        order_id = Payment.objects.filter(pk=payment_id).values_list("order_id", flat=True).get()
    order = lock_order(order_id)
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    return order, payment


def _call_recorder(payment_id: uuid.UUID | None):
    def record(call: CallRecord) -> None:
        try:
            # Shallow: asdict() would deep-copy the request and response bodies for nothing.
            GatewayCall.objects.create(payment_id=payment_id,
                                       **{field.name: getattr(call, field.name) for field in dataclasses.fields(call)})
        except Exception:  # noqa: BLE001 - the log of a call must never break the call
            logger.exception("could not store the PSP call log for payment %s", payment_id)

    return record


def gateway_for(payment: Payment) -> Gateway:
    return get_gateway(payment.gateway, recorder=_call_recorder(payment.pk))


def _payment_request(payment: Payment) -> PaymentRequest:
    return PaymentRequest(
        payment_id=payment.pk,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        order_number=payment.order.number,
        return_url=settings.SHOP_BASE_URL.rstrip("/") + reverse("payments:return", args=[payment.pk]),
        description=f"Order {payment.order.number}",
        card_token=payment.card_token,
    )


def next_check_delay(check_count: int) -> timedelta:
    ladder = settings.PAYMENT_SYNC_BACKOFF_SECONDS
    return timedelta(seconds=ladder[min(check_count, len(ladder) - 1)])


def _transition(
    payment: Payment,
    name: str,
    *,
    source: str,
    actor=None,
    reason: str = "",
    payload: dict | None = None,
) -> None:
    """Apply one transition to a locked payment and write its audit row (caller saves)."""
    from_state = payment.state
    getattr(payment, name)()
    _audit(payment, from_state, source=source, actor=actor, reason=reason, payload=payload)


def _audit(payment: Payment, from_state: str, *, source: str, actor=None, reason: str = "",
           payload: dict | None = None) -> PaymentTransition:
    """Write the audit row of a state change and tell the receivers (payments.signals)."""
    row = PaymentTransition.objects.create(
        payment=payment,
        from_state=from_state,
        to_state=payment.state,
        source=source,
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        reason=reason,
        payload=payload,
    )
    payment_transitioned.send(sender=Payment, payment=payment, transition=row)
    return row


def discrepancy_record(
    *,
    kind: str,
    dedupe_key: str,
    gateway: str,
    summary: str,
    payment: Payment | None = None,
    psp_reference: str = "",
    details: dict | None = None,
) -> Discrepancy:
    """Record a contradiction once; the same fact found again finds the same row."""
    try:
        with transaction.atomic():
            discrepancy = Discrepancy.objects.create(
                kind=kind, dedupe_key=dedupe_key[:200], gateway=gateway, payment=payment,
                psp_reference=psp_reference, summary=summary[:300], details=details or {},
            )
    except IntegrityError:
        return Discrepancy.objects.get(dedupe_key=dedupe_key[:200])
    logger.warning("discrepancy %s: %s (payment %s)", kind, summary, payment.pk if payment else "-")
    return discrepancy


# -- step 1: intent ------------------------------------------------------------

_START_ATTEMPTS = 3  # payment_start: an open payment that settles while a second one is refused


class _OrderHasOpenPayment(Exception):
    def __init__(self, order_id: int) -> None:
        super().__init__(order_id)
        self.order_id = order_id


def payment_start(*, flow: str, order_id: int | None = None, customer_link: tuple[str, str] | None = None,
                  card_token: str = "", gateway_name: str | None = None) -> tuple[Payment, bool]:
    """Write a `created` payment for an order, or return the open one it has.

    The order is named by its id, or by the customer's link (its number and
    access token), which is checked by the read that locks it: one statement
    for both. Raises Order.DoesNotExist when neither names an order.

    Returns (payment, created). A double click, a second tab or Back + Pay
    all find the same open payment, so the customer can never start two:
    the database's partial unique constraint (one open payment per order) is
    the check. The INSERT of a second open payment fails, its transaction
    rolls back, and the open payment is read and returned. No read looks
    for one first, since the constraint has to stand behind it anyway.
    """
    if (order_id is None) == (customer_link is None):
        raise TypeError("payment_start names the order by order_id or by customer_link, not both or neither")
    for attempt in range(_START_ATTEMPTS):
        try:
            return _start_payment(flow=flow, order_id=order_id, customer_link=customer_link,
                                  card_token=card_token, gateway_name=gateway_name)
        except _OrderHasOpenPayment as clash:
            order_id = clash.order_id
            existing = open_payment_for_order(order_id)
            if existing is not None:
                return existing, False
            # The open payment settled between the failed INSERT and this read: start again.
            logger.info("the open payment of order %s settled while a second one was refused (attempt %d)",
                        order_id, attempt + 1)
    raise PaymentError("Your earlier payment for this order changed while we started this one. Please try again.")


def _start_payment(*, flow: str, order_id: int | None, customer_link: tuple[str, str] | None, card_token: str,
                   gateway_name: str | None) -> tuple[Payment, bool]:
    now = timezone.now()
    with transaction.atomic():
        if customer_link is not None:
            number, token = customer_link
            order = lock_customer_order(number=number, token=token)
        else:
            order = lock_order(order_id)
        if order.state != Order.State.AWAITING_PAYMENT:
            raise PaymentError(f"Order {order.number} is {order.get_state_display().lower()}; there is nothing to pay.")
        try:
            payment = Payment.objects.create(
                order=order,
                gateway=gateway_name or settings.PAYMENT_GATEWAY,
                flow=flow,
                amount_minor=order.total_minor,
                currency=order.currency,
                card_token=card_token,
                deadline_at=now + timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES),
                next_check_at=now + next_check_delay(0),
            )
        except IntegrityError as exc:
            if not _is_open_payment_clash(exc):
                raise
            raise _OrderHasOpenPayment(order.pk) from exc  # leaves the transaction: it rolls back
        _audit(payment, "", source=TransitionSource.CUSTOMER, reason=f"{flow} payment started")
        if flow == Payment.Flow.DIRECT:
            # The charge runs in the worker, so a closed browser cannot stop it.
            transaction.on_commit(lambda: _enqueue_charge(payment.pk))
    return payment, True


def _is_open_payment_clash(exc: IntegrityError) -> bool:
    """The INSERT hit ONE_OPEN_PAYMENT_PER_ORDER (PostgreSQL names the index; SQLite names its one column)."""
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == ONE_OPEN_PAYMENT_PER_ORDER
    return str(exc) == f"UNIQUE constraint failed: {Payment._meta.db_table}.order_id"


class PaymentSwitchRefused(PaymentError):
    """The open payment could not be stopped, so no second one was started."""


def payment_switch_to_card(*, order_id: int, card_token: str) -> tuple[Payment, bool]:
    """Pay by card instead of the open payment that waits for the customer at the PSP ("pay another way").

    The open payment is cancelled at the PSP first; only when the PSP
    confirms that it is cancelled does the card payment start, so an order
    never has two live payments (the partial unique constraint stands behind
    this). If the PSP reports the open payment captured meanwhile, that
    payment is returned and no card payment starts. Returns (payment, created)
    like payment_start.
    """
    open_payment = open_payment_for_order(order_id)
    if open_payment is not None:
        if open_payment.state != S.PENDING or not open_payment.redirect_url:
            raise PaymentSwitchRefused(
                "We are still confirming your earlier payment with the payment provider, so we cannot start "
                "another one yet. You will not be charged twice; please check again in a minute.")
        try:
            stopped = payment_cancel(payment_id=open_payment.pk, source=TransitionSource.CUSTOMER,
                                     reason="Customer chose to pay another way")
        except PaymentError:  # it settled meanwhile (a webhook, the sweep)
            stopped = Payment.objects.get(pk=open_payment.pk)
        if stopped.state in CAPTURED_STATES:
            return stopped, False
        if stopped.is_open:
            raise PaymentSwitchRefused(
                "The payment provider has not confirmed that your payment on its page is stopped, so we did not "
                "charge your card. Please try again in a moment, or finish paying on the payment page.")
    return payment_start(order_id=order_id, flow=Payment.Flow.DIRECT, card_token=card_token)


def _enqueue_charge(payment_id: uuid.UUID) -> None:
    """Queue the charge; if the broker is away (a Redis restart), the committed payment waits for the sweep.

    The customer's request still succeeds: the payment row is committed, and
    its first check (payment_sync) sends the charge that never reached the
    PSP, with the same idempotency key (docs/worker.md).
    """
    from django_q.tasks import async_task

    try:
        async_task("payments.tasks.charge_payment", str(payment_id), task_name=f"charge-{payment_id}")
    except Exception:  # noqa: BLE001 - any broker failure; the sweep is the safety net
        logger.warning("could not queue the charge of payment %s; the sweep settles it", payment_id, exc_info=True)


# -- step 2: calls ---------------------------------------------------------------

def payment_open_session(*, payment_id: uuid.UUID, payment: Payment | None = None) -> Payment:
    """Create the PSP's hosted page for a `created` payment and apply the answer.

    `payment` (with its order) saves reading it again when the caller has just created it.
    """
    payment = payment if payment is not None else Payment.objects.select_related("order").get(pk=payment_id)
    if payment.state != S.CREATED:
        return payment
    result = gateway_for(payment).create_session(_payment_request(payment))
    return payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=result, source=TransitionSource.PSP_RESPONSE)


def payment_charge(*, payment_id: uuid.UUID) -> Payment:
    """Charge a direct payment's card token; safe to run twice (same idempotency key)."""
    payment = Payment.objects.select_related("order").get(pk=payment_id)
    if payment.state != S.CREATED or not payment.card_token:
        return payment
    result = gateway_for(payment).charge(_payment_request(payment))
    return payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=result, source=TransitionSource.PSP_RESPONSE)


def payment_sync(*, payment_id: uuid.UUID, source: str = TransitionSource.POLLER, actor=None) -> Payment:
    """Ask the PSP where an open payment stands, apply it, schedule the next check."""
    payment = Payment.objects.select_related("order").get(pk=payment_id)
    if not payment.is_open:
        return payment
    gateway = gateway_for(payment)
    if payment.psp_reference:
        result = gateway.retrieve(payment.psp_reference)
    else:
        # We died (or timed out) before learning the PSP's id: our id finds it.
        result = gateway.find_by_reference(payment.pk)
        if result.status == PspStatus.NOT_FOUND and payment.state == S.CREATED and payment.card_token:
            # A card payment whose charge task never reached the PSP (lost with its worker, or with
            # Redis): the sweep sends it. It carries the task's idempotency key (our id), so a copy of
            # the task still queued or in flight cannot charge the card a second time.
            result = gateway.charge(_payment_request(payment))
    grace = timedelta(seconds=settings.PAYMENT_CREATED_GRACE_SECONDS)
    if (result.status == PspStatus.NOT_FOUND and payment.state in (S.CREATED, S.UNKNOWN)
            and payment.created_at < timezone.now() - grace):
        result = GatewayResult(status=PspStatus.FAILED, failure_code="not_at_psp",
                               failure_message="The PSP never received this payment.")
    return payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=result, source=source, actor=actor, counted_check=True)


def _cancel_at_psp(payment: Payment) -> GatewayResult:
    """Void an open payment at the PSP; the answer says what it really holds."""
    gateway = gateway_for(payment)
    reference = payment.psp_reference
    if not reference:
        found = gateway.find_by_reference(payment.pk)
        if found.status == PspStatus.NOT_FOUND:
            # Only safe once nothing can still reach the PSP with our key.
            grace = timedelta(seconds=settings.PAYMENT_CREATED_GRACE_SECONDS)
            if payment.created_at < timezone.now() - grace:
                return GatewayResult(status=PspStatus.CANCELLED, failure_message="never reached the PSP")
            return GatewayResult(status=PspStatus.UNKNOWN, failure_message="too recent to be sure")
        if found.status not in (PspStatus.PENDING, PspStatus.AUTHORIZED):
            return found
        reference = found.psp_reference
    return gateway.cancel(reference, idempotency_key=f"cancel-{payment.pk}")


def payment_cancel(*, payment_id: uuid.UUID, source: str, actor=None, reason: str = "") -> Payment:
    """Cancel an open payment at the PSP first; apply what the PSP answers.

    If the PSP says it was captured meanwhile, the payment becomes captured.
    """
    payment = Payment.objects.select_related("order").get(pk=payment_id)
    if not payment.is_open:
        raise PaymentError(f"Payment {payment.pk} is {payment.get_state_display().lower()}; it cannot be cancelled.")
    result = _cancel_at_psp(payment)
    return payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=result, source=source, actor=actor, reason=reason)


def payment_expire(*, payment_id: uuid.UUID) -> Payment:
    """Expire an open payment past its deadline, once the PSP confirms nothing was taken.

    Its order expires too and gives its stock back.
    """
    payment = Payment.objects.select_related("order").get(pk=payment_id)
    if not payment.is_open or payment.deadline_at > timezone.now():
        return payment
    result = _cancel_at_psp(payment)
    payment = payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=result, source=TransitionSource.SYSTEM,
                                   reason="Payment deadline passed", cancel_means_expire=True)
    if payment.state == S.EXPIRED and payment.order.state == Order.State.AWAITING_PAYMENT:
        order_expire(order_id=payment.order_id, reason="Payment deadline passed")
    return payment


def order_cancel_with_payment(*, order_id: int, source: str, actor=None, reason: str = "") -> Order:
    """Cancel an unpaid order: void its open payment at the PSP first, then release stock."""
    open_payment = open_payment_for_order(order_id)
    if open_payment is not None:
        payment = payment_cancel(payment_id=open_payment.pk, source=source, actor=actor, reason=reason)
        if payment.is_open:
            raise PaymentError("The PSP did not confirm the cancellation yet; the order stays open. Try again.")
        if payment.state in CAPTURED_STATES:
            raise PaymentError("The PSP had already captured this payment; the order is paid now.")
    return order_cancel(order_id=order_id, source=source, actor=actor, reason=reason)


# -- step 3: apply ---------------------------------------------------------------

def payment_apply_result(
    *,
    payment_id: uuid.UUID,
    result: GatewayResult,
    source: str,
    order_id: int | None = None,
    actor=None,
    reason: str = "",
    counted_check: bool = False,
    cancel_means_expire: bool = False,
) -> Payment:
    """Apply what the PSP said to a payment, under row locks. Safe to repeat.

    The order is locked too (before the payment, as everywhere) when the
    answer can change it: a capture marks it paid, a refund refunds it. Any
    other answer changes the payment alone, so only its row is locked.
    """
    with transaction.atomic():
        if result.status == PspStatus.CAPTURED or result.refunds:
            order, payment = lock_payment(payment_id, order_id)
        else:
            order, payment = None, Payment.objects.select_for_update().get(pk=payment_id)
        before = _field_values(payment)
        _apply(order, payment, result, source=source, actor=actor, reason=reason,
               cancel_means_expire=cancel_means_expire)
        if counted_check:
            payment.check_count += 1
        elif _field_values(payment) == before:
            return payment  # a repeat (a duplicate webhook, a replayed answer): nothing to write
        now = timezone.now()
        payment.next_check_at = now + next_check_delay(payment.check_count) if payment.is_open else None
        payment.save()
    return payment


def _field_values(payment: Payment) -> tuple:
    return tuple(getattr(payment, f.attname) for f in Payment._meta.concrete_fields)


def payment_result_is_news(payment: Payment, result: GatewayResult) -> bool:
    """False when a PSP answer repeats what we hold for this payment (read without a lock).

    A repeat of the payment's own state, with no refunds and nothing we lack
    (the webhook after the PSP's response or the return page already applied
    it), changes nothing however the payment moves meanwhile: a payment never
    steps back, so it needs no lock and no write. Anything else is news, and
    payment_apply_result looks at it under locks.
    """
    if result.refunds or (result.psp_reference and not payment.psp_reference):
        return True
    if result.redirect_url and payment.is_open and result.redirect_url != payment.redirect_url:
        return True
    if result.status == PspStatus.CAPTURED:
        return payment.state not in CAPTURED_STATES
    return _STATE_FOR.get(result.status) != payment.state


def _apply(order: Order | None, payment: Payment, result: GatewayResult, *, source: str, actor, reason: str,
           cancel_means_expire: bool) -> None:
    """Apply an answer to a locked payment; `order` is locked (not None) when the answer is a capture or refunds."""
    if result.psp_reference and not payment.psp_reference:
        payment.psp_reference = result.psp_reference
    if result.redirect_url and payment.is_open:
        payment.redirect_url = result.redirect_url
    if result.card_last4 and not payment.card_last4:
        payment.card_brand, payment.card_last4 = result.card_brand, result.card_last4
    status = result.status
    if status == PspStatus.UNKNOWN and payment.state == S.CREATED:
        _transition(payment, "mark_unknown", source=source, actor=actor,
                    reason=reason or result.failure_message or "No answer from the PSP",
                    payload={"message": result.failure_message})
    if status in (PspStatus.UNKNOWN, PspStatus.NOT_FOUND):
        return

    name = "expire" if status == PspStatus.CANCELLED and cancel_means_expire else _TRANSITION_FOR[status]
    already = payment.state == _STATE_FOR[status] or (status == PspStatus.CAPTURED and payment.state in CAPTURED_STATES)
    if already:
        pass  # a repeat (duplicate webhook, replayed answer): nothing new
    elif not payment.is_open:
        _contradiction(payment, result)
    elif not can_proceed(getattr(payment, name)):
        # Late or out of order (e.g. `pending` after `authorized`): the event
        # or call is logged, but a payment never steps backwards.
        logger.info("ignored %s for payment %s in state %s", status, payment.pk, payment.state)
    else:
        if status in (PspStatus.DECLINED, PspStatus.FAILED):
            payment.failure_code = result.failure_code[:64]
            payment.failure_message = result.failure_message[:255]
        _transition(payment, name, source=source, actor=actor, reason=reason, payload=dict(result.raw) or None)
        if not payment.is_open:
            payment.card_token = ""
        if status == PspStatus.CAPTURED and _amount_matches(payment, result):
            _mark_order_paid(order, payment, source=source, actor=actor)
    if payment.state in CAPTURED_STATES:
        _apply_refunds(order, payment, result, source=source)


def _amount_matches(payment: Payment, result: GatewayResult) -> bool:
    """A capture of another amount or currency never marks the order paid: staff look at it."""
    amount = result.amount_captured_minor or result.amount_minor
    currency = (result.currency or payment.currency).upper()
    if amount is None or (amount == payment.amount_minor and currency == payment.currency):
        return True
    discrepancy_record(
        kind="amount_mismatch", dedupe_key=f"amount:{payment.pk}", gateway=payment.gateway, payment=payment,
        psp_reference=payment.psp_reference,
        summary=(f"The PSP captured {format_money(amount, currency)}; the order is "
                 f"{format_money(payment.amount_minor, payment.currency)}"),
        details={"psp_amount_minor": amount, "psp_currency": currency},
    )
    return False


def _mark_order_paid(order: Order, payment: Payment, *, source: str, actor) -> None:
    if order.state == Order.State.AWAITING_PAYMENT:
        order_mark_paid(order=order, source=source, actor=actor, reason=f"Payment {payment.pk} captured")
        payment.settles_order = True  # the caller saves the payment
        return
    # Money arrived for an order that is already paid, cancelled or expired:
    # never kept silently.
    kind = "double_capture" if order.state not in (Order.State.CANCELLED, Order.State.EXPIRED) else "late_event"
    discrepancy_record(
        kind=kind, dedupe_key=f"{kind}:{payment.pk}", gateway=payment.gateway, payment=payment,
        psp_reference=payment.psp_reference,
        summary=f"Payment captured for order {order.number}, which is already {order.get_state_display().lower()}",
    )


def _contradiction(payment: Payment, result: GatewayResult) -> None:
    """A PSP fact that contradicts a final state of ours becomes a Discrepancy."""
    if result.status == PspStatus.CAPTURED:
        discrepancy_record(
            kind="late_event", dedupe_key=f"late_capture:{payment.pk}", gateway=payment.gateway, payment=payment,
            psp_reference=result.psp_reference or payment.psp_reference,
            summary=f"The PSP captured payment {payment.pk}, which we hold as {payment.state}",
            details={"psp_status": str(result.status)},
        )
    elif payment.state in CAPTURED_STATES and result.status in (PspStatus.DECLINED, PspStatus.FAILED,
                                                                  PspStatus.CANCELLED):
        discrepancy_record(
            kind="captured_here_only", dedupe_key=f"captured_here_only:{payment.pk}", gateway=payment.gateway,
            payment=payment, psp_reference=payment.psp_reference,
            summary=f"We hold payment {payment.pk} as captured; the PSP says {result.status}",
        )


def _apply_refunds(order: Order, payment: Payment, result: GatewayResult, *, source: str) -> None:
    """Settle our pending refunds that the PSP reports done; flag refunds we never asked for."""
    if not result.refunds:
        return
    ours = {str(r.pk): r for r in payment.refunds.all()}
    for psp_refund in result.refunds:
        refund = ours.get(psp_refund.merchant_reference)
        if refund is None:
            discrepancy_record(
                kind="refund_mismatch", dedupe_key=f"refund:{payment.gateway}:{psp_refund.psp_reference}",
                gateway=payment.gateway, payment=payment, psp_reference=psp_refund.psp_reference,
                summary=(f"The PSP refunded {format_money(psp_refund.amount_minor, psp_refund.currency)} that we "
                         "did not ask for"),
            )
        elif refund.state == Refund.State.PENDING and psp_refund.status == RefundStatus.SUCCEEDED:
            _settle_refund(order, payment, refund, psp_reference=psp_refund.psp_reference, source=source)


def _settle_refund(order: Order, payment: Payment, refund: Refund, *, psp_reference: str, source: str) -> None:
    from orders.services import order_record_refund

    refund.state = Refund.State.SUCCEEDED
    refund.psp_reference = psp_reference
    refund.save(update_fields=["state", "psp_reference", "updated_at"])
    payment.amount_refunded_minor += refund.amount_minor
    name = "refund_fully" if payment.amount_refunded_minor >= payment.amount_minor else "refund_partially"
    _transition(payment, name, source=source, actor=refund.actor, reason=refund.reason,
                payload={"refund": str(refund.pk), "amount_minor": refund.amount_minor})
    # Only the capture that paid the order refunds it; an extra capture's refund leaves the order as it is.
    if payment.settles_order and order.state in (Order.State.PAID, Order.State.FULFILLED,
                                                 Order.State.PARTIALLY_REFUNDED):
        order_record_refund(order=order, refunded_minor=payment.amount_refunded_minor, source=source,
                            actor=refund.actor, reason=refund.reason)
