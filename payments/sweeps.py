"""The background worker's sweeps: find the open ends our web requests left, and close them.

Each sweep finds its work with a selector and settles it with the existing
services (payment_sync, payment_expire, webhook_process, refund_submit), which
call the PSP outside any transaction and apply its answer under row locks.
Every sweep is safe to run twice and concurrently: django-q2's ORM broker
re-delivers a task whose worker died, and a slow sweep can overlap the next one.

Claiming (sync sweep). In one short transaction we select the due payments
(`SELECT ... ORDER BY next_check_at LIMIT n FOR UPDATE SKIP LOCKED` on
PostgreSQL) and push their next_check_at out by a lease, then commit; the PSP
calls happen afterwards, outside any transaction. A concurrent sweep skips the
locked rows and, once we commit, no longer sees them as due. SQLite has no
row locks, but it runs with transaction_mode=IMMEDIATE (config/settings.py),
so the claiming transaction takes the database's write lock when it begins:
claims are serialized, and the second one reads the leases of the first.
A claimed payment whose sweep died is due again when its lease runs out.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone

from orders.models import TransitionSource
from orders.services import lock_order, order_expire
from payments.models import (
    CAPTURED_STATES,
    OPEN_STATES,
    Discrepancy,
    GatewayCall,
    Payment,
    PaymentState,
    WebhookEvent,
)
from payments.refunds import refund_submit
from payments.selectors import (
    abandoned_orders,
    payments_due_for_sync,
    payments_past_deadline,
    payments_past_sync_give_up,
    refunds_to_resubmit,
    stuck_payments,
    webhook_events_given_up,
    webhook_events_to_retry,
)
from payments.services import discrepancy_record, payment_expire, payment_sync
from payments.webhooks import webhook_process

logger = logging.getLogger(__name__)

# How long a claimed payment is left alone by other sweeps. Far longer than a
# sweep's time budget plus one PSP call, so a live sweep never loses its claim.
CLAIM_LEASE = timedelta(minutes=5)
# After this many PSP calls in a row without an answer the PSP is down: stop
# the sweep and leave the rest for the next one instead of waiting on timeouts.
MAX_UNANSWERED_IN_A_ROW = 5
# Payments handled per run of the expire, webhook and refund sweeps.
EXPIRE_BATCH = 200
RETRY_BATCH = 200
ALERT_BATCH = 500


def sweep_time_budget() -> float:
    """Seconds a sweep may run: well inside django-q2's task timeout, so it is never killed halfway."""
    return settings.Q_CLUSTER["timeout"] * 0.75


def _age(since: datetime, now: datetime) -> str:
    minutes = int((now - since).total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


# -- sync -----------------------------------------------------------------------

@dataclass
class SyncReport:
    claimed: int = 0
    settled: int = 0  # reached a final state
    still_open: int = 0
    unanswered: int = 0  # the PSP gave no answer; rescheduled on the ladder
    errors: int = 0  # an exception; retried when the lease runs out
    released: int = 0  # claimed, then handed back unsynced (time budget, PSP down)
    given_up: int = 0  # older than PAYMENT_SYNC_GIVE_UP_HOURS: no longer polled
    psp_down: bool = False

    def __str__(self) -> str:
        text = (f"{self.claimed} due payment(s) checked: {self.settled} settled, {self.still_open} still open "
                f"({self.unanswered} without a PSP answer), {self.errors} error(s)")
        if self.released:
            text += f", {self.released} left for the next sweep"
        if self.psp_down:
            text += " (the PSP is not answering)"
        if self.given_up:
            text += f"; {self.given_up} no longer polled (older than {settings.PAYMENT_SYNC_GIVE_UP_HOURS} h)"
        return text + "."


def claim_queryset(*, now: datetime, limit: int) -> QuerySet[Payment]:
    """The claiming query: due open payments, locked, skipping rows another sweep holds."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    return payments_due_for_sync(now=now).select_for_update(skip_locked=skip_locked)[:limit]


@dataclass(frozen=True)
class Claim:
    payment_ids: list[uuid.UUID]
    leased_until: datetime


def claim_due_payments(*, now: datetime, limit: int) -> Claim:
    """Claim up to `limit` payments due at `now` for this sweep alone (see the module docstring)."""
    leased_until = timezone.now() + CLAIM_LEASE
    with transaction.atomic():
        ids = list(claim_queryset(now=now, limit=limit).values_list("pk", flat=True))
        if ids:
            Payment.objects.filter(pk__in=ids).update(next_check_at=leased_until)
    return Claim(payment_ids=ids, leased_until=leased_until)


def _release(claim: Claim, ids: Sequence[uuid.UUID], *, due_at: datetime) -> int:
    """Hand claimed payments back, due again, unless something rescheduled them meanwhile."""
    return Payment.objects.filter(pk__in=ids, state__in=OPEN_STATES, next_check_at=claim.leased_until
                                  ).update(next_check_at=due_at)


def _stop_polling_old_payments(*, now: datetime) -> int:
    """Unschedule open payments past PAYMENT_SYNC_GIVE_UP_HOURS; the alert and staff take them."""
    rows = list(payments_past_sync_give_up(now=now).select_related("order")[:ALERT_BATCH])
    for payment in rows:
        logger.warning("giving up polling payment %s (order %s, %s for %s); staff must resolve it",
                       payment.pk, payment.order.number, payment.state, _age(payment.created_at, now))
    if rows:
        Payment.objects.filter(pk__in=[p.pk for p in rows], state__in=OPEN_STATES).update(next_check_at=None)
    return len(rows)


def _psp_answered(payment_id: uuid.UUID) -> bool:
    last = (GatewayCall.objects.filter(payment_id=payment_id).order_by("-created_at", "-id")
            .values_list("outcome", flat=True).first())
    return last != GatewayCall.Outcome.UNKNOWN


def sync_helpers_needed(*, now: datetime, batch_size: int | None = None) -> int:
    """How many more sweeps to run beside this one: one per further batch due, at most PAYMENT_SYNC_FAN_OUT."""
    batch_size = batch_size or settings.PAYMENT_SYNC_BATCH_SIZE
    fan_out = settings.PAYMENT_SYNC_FAN_OUT
    due = payments_due_for_sync(now=now)[: batch_size * (fan_out + 1)].count()
    return min(max(math.ceil(due / batch_size) - 1, 0), fan_out)


def sync_due_payments(*, batch_size: int | None = None, budget_seconds: float | None = None,
                      due_at: datetime | None = None) -> SyncReport:
    """Ask the PSP about every payment whose check is due, and apply the answers.

    Works through the due payments batch by batch until none is left, the
    time budget is spent, or the PSP stops answering. payment_sync applies
    each answer and moves next_check_at along PAYMENT_SYNC_BACKOFF_SECONDS.
    Several of these may run at once (the scheduled task fans out, see
    payments.tasks.sync_payments): each claims its own batches with SKIP
    LOCKED, so no payment is checked by two. `due_at`: only what was due then.
    """
    started = due_at or timezone.now()
    batch_size = batch_size or settings.PAYMENT_SYNC_BATCH_SIZE
    stop_at = time.monotonic() + (budget_seconds if budget_seconds is not None else sweep_time_budget())
    report = SyncReport(given_up=_stop_polling_old_payments(now=started))
    unanswered_in_a_row = 0
    # Only what was due when the sweep began: a payment rescheduled by this
    # sweep is never picked up again by it.
    while (claim := claim_due_payments(now=started, limit=batch_size)).payment_ids:
        ids = claim.payment_ids
        report.claimed += len(ids)
        for position, payment_id in enumerate(ids):
            if time.monotonic() > stop_at or unanswered_in_a_row >= MAX_UNANSWERED_IN_A_ROW:
                report.psp_down = unanswered_in_a_row >= MAX_UNANSWERED_IN_A_ROW
                rest = ids[position:]
                report.claimed -= len(rest)
                report.released += _release(claim, rest, due_at=started)
                logger.info("sync sweep stopped early: %s", report)
                return report
            try:
                payment = payment_sync(payment_id=payment_id, source=TransitionSource.POLLER)
            except Exception:
                logger.exception("could not sync payment %s; it is retried when its claim runs out", payment_id)
                report.errors += 1
                continue
            if not payment.is_open:
                report.settled += 1
                unanswered_in_a_row = 0
            else:
                report.still_open += 1
                if _psp_answered(payment_id):
                    unanswered_in_a_row = 0
                else:
                    report.unanswered += 1
                    unanswered_in_a_row += 1
    if report.claimed or report.given_up:
        logger.info("sync sweep: %s", report)
    return report


def sync_one_payment(*, payment_id: uuid.UUID) -> Payment:
    """Check one payment now, whatever its schedule (operators, `manage.py sync_payments --payment`)."""
    return payment_sync(payment_id=payment_id, source=TransitionSource.POLLER)


# -- expire ---------------------------------------------------------------------

@dataclass
class ExpireReport:
    checked: int = 0
    expired: int = 0
    captured: int = 0  # the PSP had captured it at the last second
    other_final: int = 0  # the PSP had it declined, failed or cancelled meanwhile
    still_open: int = 0  # the PSP did not confirm; tried again next time
    errors: int = 0
    orders_expired: int = 0  # awaiting payment with nobody paying
    order_ids: list[int] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return (f"{self.checked} payment(s) past their deadline: {self.expired} expired, {self.captured} captured "
                f"at the last second, {self.other_final} settled otherwise, {self.still_open} left open (the PSP "
                f"did not confirm), {self.errors} error(s); {self.orders_expired} unpaid order(s) expired.")


def expire_overdue(*, budget_seconds: float | None = None) -> ExpireReport:
    """Expire payments past their deadline (PSP first) and orders that nobody is paying."""
    now = timezone.now()
    stop_at = time.monotonic() + (budget_seconds if budget_seconds is not None else sweep_time_budget())
    report = ExpireReport()
    give_up = now - timedelta(hours=settings.PAYMENT_SYNC_GIVE_UP_HOURS)
    ids = list(payments_past_deadline(now=now).filter(created_at__gte=give_up)
               .values_list("pk", flat=True)[:EXPIRE_BATCH])
    unanswered_in_a_row = 0
    for payment_id in ids:
        if time.monotonic() > stop_at or unanswered_in_a_row >= MAX_UNANSWERED_IN_A_ROW:
            break
        report.checked += 1
        try:
            # Cancels at the PSP first; a capture there wins over our deadline.
            payment = payment_expire(payment_id=payment_id)
        except Exception:
            logger.exception("could not expire payment %s; tried again next time", payment_id)
            report.errors += 1
            continue
        unanswered_in_a_row = unanswered_in_a_row + 1 if payment.is_open else 0
        if payment.is_open:
            report.still_open += 1
        elif payment.state == PaymentState.EXPIRED:
            report.expired += 1
        elif payment.state in CAPTURED_STATES:
            report.captured += 1
        else:
            report.other_final += 1
    for order_id in abandoned_orders(now=now).values_list("pk", flat=True)[:EXPIRE_BATCH]:
        if time.monotonic() > stop_at:
            break
        if _expire_abandoned_order(order_id=order_id, now=now):
            report.orders_expired += 1
            report.order_ids.append(order_id)
    if report.checked or report.orders_expired:
        logger.info("expire sweep: %s", report)
    return report


def _expire_abandoned_order(*, order_id: int, now: datetime) -> bool:
    """Expire an unpaid order and release its stock, re-checked under the order's lock.

    payment_start locks the order too, so a customer starting a payment at
    this very moment either comes first (and the order is no longer
    abandoned) or finds the order expired.
    """
    with transaction.atomic():
        order = lock_order(order_id)
        if not abandoned_orders(now=now).filter(pk=order.pk).exists():
            return False
        order_expire(order_id=order.pk, source=TransitionSource.SYSTEM,
                     reason=f"Not paid within {settings.PAYMENT_DEADLINE_MINUTES} minutes")
    return True


# -- alert ----------------------------------------------------------------------

def alert_stuck_payments() -> list[Payment]:
    """Report each payment open past PAYMENT_ALERT_AFTER_MINUTES once: a log line each and one mail.

    alerted_at is set by a conditional update before the mail goes out, so of
    two workers only one reports a payment; if the mail cannot be sent, the
    marks are taken back and the next run tries again.
    """
    now = timezone.now()
    claimed = []
    for payment in stuck_payments(now=now).filter(alerted_at__isnull=True)[:ALERT_BATCH]:
        if Payment.objects.filter(pk=payment.pk, alerted_at__isnull=True).update(alerted_at=now):
            claimed.append(payment)
    if not claimed:
        return []
    lines = []
    for payment in claimed:
        line = (f"payment {payment.pk}  order {payment.order.number}  {payment.state}  "
                f"open for {_age(payment.created_at, now)}")
        logger.warning("stuck payment: %s", line)
        lines.append(line)
    count = len(claimed)
    minutes = settings.PAYMENT_ALERT_AFTER_MINUTES
    threshold = f"{minutes} minute{'s' if minutes != 1 else ''}"
    subject = f"{count} payment{'s' if count != 1 else ''} open for more than {threshold}"
    body = "\n".join([
        f"These payments have no final outcome after {threshold}. The worker "
        "keeps asking the PSP; if it cannot settle them, check each one with the PSP in the admin and resolve it.",
        "",
        *lines,
        "",
        "List them all: manage.py stuck_payments",
    ])
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:
        Payment.objects.filter(pk__in=[p.pk for p in claimed], alerted_at=now).update(alerted_at=None)
        logger.exception("could not mail the stuck-payment alert; it is sent on the next run")
        raise
    return claimed


# -- webhook retry ----------------------------------------------------------------

@dataclass
class WebhookRetryReport:
    retried: int = 0
    applied: int = 0
    flagged: int = 0  # gave up after WEBHOOK_MAX_ATTEMPTS: a Discrepancy for staff

    def __str__(self) -> str:
        return (f"{self.retried} stored webhook event(s) retried, {self.applied} applied; {self.flagged} given up "
                f"and flagged for staff.")


def retry_webhook_events(*, budget_seconds: float | None = None) -> WebhookRetryReport:
    """Apply stored events whose processing failed, with a growing wait; flag those that never apply."""
    now = timezone.now()
    stop_at = time.monotonic() + (budget_seconds if budget_seconds is not None else sweep_time_budget())
    report = WebhookRetryReport()
    for event_id in webhook_events_to_retry(now=now).values_list("pk", flat=True)[:RETRY_BATCH]:
        if time.monotonic() > stop_at:
            break
        # Read afresh: a concurrent retry (or the web request) may have applied it.
        event = WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).first()
        if event is None:
            continue
        report.retried += 1
        if webhook_process(event=event):
            report.applied += 1
    flagged_already = Discrepancy.objects.filter(
        dedupe_key=Concat(Value("webhook_failed:"), OuterRef("gateway"), Value(":"), OuterRef("event_id")))
    for event in webhook_events_given_up().exclude(Exists(flagged_already)).select_related("payment")[:RETRY_BATCH]:
        discrepancy_record(
            kind=Discrepancy.Kind.WEBHOOK_FAILED, dedupe_key=f"webhook_failed:{event.gateway}:{event.event_id}",
            gateway=event.gateway, payment=event.payment,
            psp_reference="",
            summary=f"Webhook {event.event_id} ({event.event_type}) could not be applied after "
                    f"{event.attempts} attempts",
            details={"event_id": event.event_id, "event_type": event.event_type, "error": event.error[:1000]},
        )
        report.flagged += 1
    if report.retried or report.flagged:
        logger.info("webhook retry: %s", report)
    return report


# -- refunds ----------------------------------------------------------------------

def resubmit_pending_refunds(*, budget_seconds: float | None = None) -> int:
    """Send refunds the PSP never answered again; the PSP dedupes them by our refund id."""
    now = timezone.now()
    stop_at = time.monotonic() + (budget_seconds if budget_seconds is not None else sweep_time_budget())
    settled = 0
    for refund_id in refunds_to_resubmit(now=now).values_list("pk", flat=True)[:RETRY_BATCH]:
        if time.monotonic() > stop_at:
            break
        try:
            refund = refund_submit(refund_id=refund_id)
        except Exception:
            logger.exception("could not resubmit refund %s; tried again next time", refund_id)
            continue
        settled += refund.state != refund.State.PENDING
    return settled

