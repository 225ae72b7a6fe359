"""Send the outbox's due messages: claim, send, mark; at least once, with a stable Message-ID.

A sweep claims due rows in a short transaction (`SELECT … FOR UPDATE SKIP
LOCKED` on PostgreSQL; SQLite's single writer serialises the claim) by
moving their `next_attempt_at` past a lease, so no other sweep takes them
while this one sends. After the mail transport accepts a message the row is
marked sent. A worker killed between the two leaves the row pending: when
the lease runs out it is sent again, with the same Message-ID (our row's
id), which is the one duplicate this design allows (docs/notifications.md).
A send that raises is retried on NOTIFY_RETRY_SECONDS and, after
NOTIFY_MAX_ATTEMPTS, marked failed for the support console.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from notifications.messages import no_longer_true, render_message
from notifications.models import Notification

logger = logging.getLogger(__name__)

Status = Notification.Status
CLAIM_LEASE = timedelta(minutes=5)
BATCH = 50


@dataclass
class SendReport:
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return (f"{self.sent} customer e-mail(s) sent, {self.skipped} no longer true, "
                f"{self.retried} to retry, {self.failed} given up.")


def due_notifications(*, now: datetime):
    return Notification.objects.filter(status=Status.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at")


def claim_due(*, now: datetime, limit: int) -> tuple[list[Notification], datetime]:
    leased_until = timezone.now() + CLAIM_LEASE
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        ids = list(due_notifications(now=now).select_for_update(skip_locked=skip_locked)
                   .values_list("pk", flat=True)[:limit])
        if ids:
            Notification.objects.filter(pk__in=ids).update(next_attempt_at=leased_until, attempts=F("attempts") + 1)
    rows = list(Notification.objects.filter(pk__in=ids).select_related("order", "payment").order_by("created_at"))
    return rows, leased_until


def _mark(notification: Notification, leased_until: datetime, **fields) -> bool:
    """Update a claimed row, only while the claim is still ours."""
    return bool(Notification.objects.filter(pk=notification.pk, status=Status.PENDING, next_attempt_at=leased_until)
                .update(updated_at=timezone.now(), **fields))


def retry_delay(attempts: int) -> timedelta:
    ladder = settings.NOTIFY_RETRY_SECONDS
    return timedelta(seconds=ladder[min(max(attempts - 1, 0), len(ladder) - 1)])


def build_email(notification: Notification, connection=None) -> tuple[EmailMultiAlternatives, object]:
    """The message, and the payment it turned out to be about."""
    rendered = render_message(notification)
    email = EmailMultiAlternatives(
        subject=rendered.subject, body=rendered.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.to], connection=connection,
        headers={"Message-ID": notification.message_id, "X-Reckon-Kind": notification.kind},
    )
    email.attach_alternative(rendered.html, "text/html")
    return email, rendered.payment_id


def send_one(notification: Notification, leased_until: datetime, report: SendReport, mail_connection) -> None:
    reason = no_longer_true(notification)
    if reason:
        _mark(notification, leased_until, status=Status.SKIPPED, last_error=f"Not sent: {reason}.")
        report.skipped += 1
        return
    try:
        email, payment_id = build_email(notification, mail_connection)
        email.send()
    except Exception as exc:  # noqa: BLE001 - any transport or template error is retried, then flagged
        error = f"{type(exc).__name__}: {exc}"[:300]
        if notification.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            _mark(notification, leased_until, status=Status.FAILED, last_error=error)
            logger.error("customer e-mail %s (%s to order %s) failed %d times; giving up: %s", notification.pk,
                         notification.kind, notification.order_id, notification.attempts, error)
            report.failed += 1
        else:
            _mark(notification, leased_until, last_error=error,
                  next_attempt_at=timezone.now() + retry_delay(notification.attempts))
            logger.warning("customer e-mail %s could not be sent (attempt %d); retrying: %s", notification.pk,
                           notification.attempts, error)
            report.retried += 1
        return
    _mark(notification, leased_until, status=Status.SENT, sent_at=timezone.now(), subject=email.subject[:200],
          last_error="", payment_id=notification.payment_id or payment_id)
    report.sent += 1


def send_due_notifications(*, budget_seconds: float | None = None, batch_size: int = BATCH) -> SendReport:
    """Send every message due when the sweep began, batch by batch, within the time budget."""
    from payments.sweeps import sweep_time_budget

    started = timezone.now()
    stop_at = time.monotonic() + (budget_seconds if budget_seconds is not None else sweep_time_budget())
    report = SendReport()
    mail_connection = get_connection()
    while time.monotonic() < stop_at:
        rows, leased_until = claim_due(now=started, limit=batch_size)
        if not rows:
            break
        for position, notification in enumerate(rows):
            if time.monotonic() > stop_at:  # hand the rest back, due at once
                Notification.objects.filter(pk__in=[n.pk for n in rows[position:]], status=Status.PENDING,
                                            next_attempt_at=leased_until).update(next_attempt_at=started)
                break
            send_one(notification, leased_until, report, mail_connection)
    if report.sent or report.retried or report.failed or report.skipped:
        logger.info("outbox: %s", report)
    return report
