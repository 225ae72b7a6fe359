"""Retention: how long evidence and bookkeeping rows are kept, and the prune that enforces it.

Nothing tied to an open payment, an open discrepancy or a pending refund is
ever pruned, whatever its age: those rows are what support and the sweeps
still read. The money records themselves (payments, refunds, their audit
trails, orders) are never pruned here; `manage.py forget_customer` removes
the personal data from old orders instead (orders/privacy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_q.models import Task

from notifications.models import Notification
from payments.models import OPEN_STATES, Discrepancy, GatewayCall, Payment, Refund, WebhookEvent


def _payment_in_use() -> Q:
    """Payments whose evidence is still needed: open, in an open discrepancy, or with a refund pending."""
    return (Q(state__in=OPEN_STATES)
            | Q(Exists(Discrepancy.objects.filter(payment=OuterRef("pk"), status=Discrepancy.Status.OPEN)))
            | Q(Exists(Refund.objects.filter(payment=OuterRef("pk"), state=Refund.State.PENDING))))


def _kept_payments() -> QuerySet:
    return Payment.objects.filter(_payment_in_use()).values("pk")


@dataclass(frozen=True)
class Rule:
    name: str
    days: int
    candidates: Callable[[datetime], QuerySet]  # rows older than the cutoff that may go


def rules() -> list[Rule]:
    r = settings.RETENTION_DAYS
    return [
        Rule("PSP calls (GatewayCall)", r["gateway_calls"],
             lambda cutoff: GatewayCall.objects.filter(created_at__lt=cutoff)
             .exclude(payment__in=_kept_payments())),
        Rule("applied webhook events", r["webhook_events"],
             lambda cutoff: WebhookEvent.objects.filter(received_at__lt=cutoff, processed_at__isnull=False)
             .exclude(payment__in=_kept_payments())),
        # Signed events that name no payment of ours (flagged when they came in).
        Rule("webhook events for unknown payments", r["unmatched_webhook_events"],
             lambda cutoff: WebhookEvent.objects.filter(received_at__lt=cutoff, payment__isnull=True)),
        Rule("worker task results (django-q2)", r["task_results"],
             lambda cutoff: Task.objects.filter(stopped__lt=cutoff)),
        Rule("sent customer e-mail", r["notifications"],
             lambda cutoff: Notification.objects.filter(created_at__lt=cutoff).exclude(
                 status__in=[Notification.Status.PENDING, Notification.Status.FAILED])),
        Rule("expired sessions", 0, lambda cutoff: Session.objects.filter(expire_date__lt=timezone.now())),
    ]


@dataclass
class PruneResult:
    name: str
    days: int
    deleted: int


def prune(*, dry_run: bool = False, batch_size: int = 1000, progress: Callable[[str], None] | None = None,
          now: datetime | None = None) -> list[PruneResult]:
    """Delete what each rule allows, in batches (short transactions); with dry_run, only count."""
    now = now or timezone.now()
    results = []
    for rule in rules():
        queryset = rule.candidates(now - timedelta(days=rule.days))
        if dry_run:
            results.append(PruneResult(rule.name, rule.days, queryset.count()))
            continue
        deleted = 0
        while True:
            pks = list(queryset.values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            queryset.model.objects.filter(pk__in=pks).delete()
            deleted += len(pks)
            if progress:
                progress(f"  {rule.name}: {deleted} deleted so far")
        results.append(PruneResult(rule.name, rule.days, deleted))
    return results
