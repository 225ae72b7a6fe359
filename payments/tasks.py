"""django-q2 task functions: thin wrappers around services and sweeps; each safe to run twice.

The schedules that run them are created by `manage.py setup_schedules`
(`scripts/run` calls it); docs/worker.md explains each one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from payments.services import payment_charge


def charge_payment(payment_id: str) -> str:
    """Charge a direct payment's card token (queued by payment_start)."""
    return payment_charge(payment_id=uuid.UUID(payment_id)).state


def sync_payments() -> str:
    """Every minute: ask the PSP about the open payments whose check is due.

    With more than a batch due, it first queues helper sweeps (one per further
    batch, at most PAYMENT_SYNC_FAN_OUT) for the other workers, on every node,
    then sweeps itself: a backlog is settled by as many workers as there are.
    A helper lost with its worker costs nothing: its claims run out and the
    next minute's sweep takes them.
    """
    from django_q.tasks import async_task

    from payments.sweeps import sync_due_payments, sync_helpers_needed

    now = timezone.now()
    helpers = sync_helpers_needed(now=now)
    for n in range(helpers):
        async_task("payments.tasks.sync_payments_batch", now.isoformat(), task_name=f"sync-helper-{now:%H%M%S}-{n}")
    report = str(sync_due_payments(due_at=now))
    return report + (f" {helpers} helper sweep(s) queued." if helpers else "")


def sync_payments_batch(due_at: str) -> str:
    """A helper sweep queued by sync_payments: the payments due at `due_at` that no other sweep holds."""
    from payments.sweeps import sync_due_payments

    return str(sync_due_payments(due_at=parse_datetime(due_at)))


def expire_payments() -> str:
    """Every minute: expire payments past their deadline (PSP first) and orders nobody pays."""
    from payments.sweeps import expire_overdue

    return str(expire_overdue())


def alert_stuck_payments() -> str:
    """Every 5 minutes: report newly stuck payments to the admins, once each."""
    from payments.sweeps import alert_stuck_payments as alert

    return f"{len(alert())} stuck payment(s) reported."


def retry_webhooks() -> str:
    """Every minute: re-apply stored webhook events that failed; flag those that never apply."""
    from payments.sweeps import retry_webhook_events

    return str(retry_webhook_events())


def retry_refunds() -> str:
    """Every minute: resubmit refunds the PSP never answered (deduplicated by our refund id)."""
    from payments.sweeps import resubmit_pending_refunds

    return f"{resubmit_pending_refunds()} pending refund(s) settled."


RECONCILE_HOURS = 25  # a day plus an hour of overlap with the previous run
RECONCILE_CHUNK = timedelta(hours=1)


def reconcile_recent(hours: int = RECONCILE_HOURS) -> str:
    """Daily: reconcile the last `hours`, as one task per hour so each stays within the task timeout."""
    from django_q.tasks import async_task

    until = timezone.now().replace(second=0, microsecond=0)
    start = until - timedelta(hours=hours)
    chunks = 0
    while start < until:
        end = min(start + RECONCILE_CHUNK, until)
        async_task("payments.tasks.reconcile_window", start.isoformat(), end.isoformat(),
                   task_name=f"reconcile-{start:%Y%m%dT%H%M}")
        start, chunks = end, chunks + 1
    return f"{chunks} reconcile window(s) queued."


def reconcile_window(since: str, until: str) -> str:
    """Reconcile one window [since, until) given as ISO date-times."""
    from payments.reconcile import reconcile

    return str(reconcile(since=parse_datetime(since), until=parse_datetime(until)))


def prune_old_rows() -> str:
    """Daily: delete what the retention settings allow (payments/retention.py)."""
    from payments.retention import prune

    return ", ".join(f"{r.name} {r.deleted}" for r in prune()) + " deleted."
