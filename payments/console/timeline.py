"""Everything that happened to one payment, newest first, for the support console's payment page."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.urls import reverse

from orders.models import TransitionSource
from payments.console.display import plain_psp_error
from payments.gateways.base import redact
from payments.models import Discrepancy, Payment, Refund
from shop.money import format_money

# Per kind of record: a payment polled hourly for three days has ~80 PSP calls.
PER_KIND_LIMIT = 100
MAX_JSON_CHARS = 6000


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # transition | webhook | psp_call | refund | discrepancy | staff | email
    title: str
    who: str = ""
    detail: str = ""
    data: str = ""  # redacted, pretty JSON
    url: str = ""
    tone: str = ""  # ok | warn | bad, for the badge colour

    @property
    def kind_label(self) -> str:
        return _KIND_LABELS.get(self.kind, self.kind)


_KIND_LABELS = {"transition": "State", "webhook": "Webhook", "psp_call": "PSP call", "refund": "Refund",
                "discrepancy": "Discrepancy", "staff": "Staff action", "email": "Customer e-mail"}


@dataclass
class Timeline:
    entries: list[TimelineEntry] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)  # kinds with more rows than shown
    last_call: Any = None


def pretty_json(value: Any) -> str:
    """Redacted, indented JSON (a second redaction: what we show must never hold a secret)."""
    if value in (None, "", {}, []):
        return ""
    text = json.dumps(redact(value), indent=2, sort_keys=True, default=str)
    return text if len(text) <= MAX_JSON_CHARS else text[:MAX_JSON_CHARS] + "\n… (cut)"


def body_json(body: str) -> str:
    try:
        return pretty_json(json.loads(body))
    except ValueError:
        return "(not JSON; not shown)"


def _newest(queryset, kind: str, timeline: Timeline) -> list:
    rows = list(queryset[: PER_KIND_LIMIT + 1])
    if len(rows) > PER_KIND_LIMIT:
        timeline.truncated.append(kind)
    return rows[:PER_KIND_LIMIT]


def _who(actor_name: str, source: str) -> str:
    label = TransitionSource(source).label if source in TransitionSource.values else source
    return f"{actor_name} ({label.lower()})" if actor_name else label


def payment_timeline(payment: Payment) -> Timeline:
    """Transitions, webhook events, PSP calls, refunds, discrepancies and staff actions: one query per kind."""
    timeline = Timeline()
    add = timeline.entries.append
    for t in _newest(payment.transitions.order_by("-created_at", "-id"), "transitions", timeline):
        add(TimelineEntry(at=t.created_at, kind="transition", title=f"{t.from_state or 'new'} → {t.to_state}",
                          who=_who(t.actor_name, t.source),
                          detail=plain_psp_error(t.reason) if t.to_state == "unknown" else t.reason,
                          data=pretty_json(t.payload),
                          tone="ok" if t.to_state in ("captured", "authorized") else ""))
    for e in _newest(payment.events.order_by("-received_at", "-id"), "webhook events", timeline):
        if e.processed_at:
            status, tone = f"applied {e.processed_at:%Y-%m-%d %H:%M:%S}", "ok"
        else:
            status, tone = f"not applied after {e.attempts} attempt(s)", "bad" if e.attempts else "warn"
        add(TimelineEntry(at=e.received_at, kind="webhook", title=f"{e.event_type or 'event'} {e.event_id}",
                          who=f"PSP ({e.gateway})", detail=f"{status}. {e.error}".strip(), data=body_json(e.body),
                          url=reverse("admin:payments_webhookevent_change", args=[e.pk]), tone=tone))
    calls = _newest(payment.calls.order_by("-created_at", "-id"), "PSP calls", timeline)
    timeline.last_call = calls[0] if calls else None
    for c in calls:
        add(TimelineEntry(at=c.created_at, kind="psp_call",
                          title=f"{c.operation}: {c.status_code or 'no answer'} ({c.get_outcome_display()})",
                          who=f"shop → {c.gateway}",
                          detail=f"{c.method} {c.url} in {c.duration_ms} ms. {plain_psp_error(c.error)}".strip(),
                          data=pretty_json({"request": c.request_body, "response": c.response_body,
                                            **({"error": c.error} if c.error else {})}),
                          tone={"ok": "ok", "unknown": "bad"}.get(c.outcome, "warn")))
    for r in _newest(payment.refunds.order_by("-created_at"), "refunds", timeline):
        add(TimelineEntry(at=r.created_at, kind="refund",
                          title=f"refund {format_money(r.amount_minor, r.currency)} ({r.get_state_display().lower()})",
                          who=_who(r.actor_name, TransitionSource.STAFF) if r.actor_name else "",
                          detail=f"{r.reason} {r.failure_message}".strip(),
                          url=reverse("admin:payments_refund_change", args=[r.pk]),
                          tone={Refund.State.SUCCEEDED: "ok", Refund.State.FAILED: "bad"}.get(r.state, "warn")))
    for d in _newest(payment.discrepancies.order_by("-created_at"), "discrepancies", timeline):
        url = reverse("admin:payments_discrepancy_change", args=[d.pk])
        add(TimelineEntry(at=d.created_at, kind="discrepancy", title=d.get_kind_display(), who="system",
                          detail=d.summary, data=pretty_json(d.details), url=url,
                          tone="bad" if d.status == Discrepancy.Status.OPEN else ""))
        if d.resolved_at:
            add(TimelineEntry(at=d.resolved_at, kind="discrepancy", title="discrepancy closed",
                              who=_who(d.resolved_by_name, TransitionSource.STAFF), detail=d.resolution, url=url))
    for s in _newest(payment.staff_actions.order_by("-created_at", "-id"), "staff actions", timeline):
        add(TimelineEntry(at=s.created_at, kind="staff", title=s.get_action_display(),
                          who=_who(s.actor_name, TransitionSource.STAFF),
                          detail=" ".join(part for part in (s.reason, s.outcome) if part)))
    for n in _newest(payment.notifications.order_by("-created_at"), "customer e-mails", timeline):
        sent = f"sent {n.sent_at:%Y-%m-%d %H:%M:%S}" if n.sent_at else n.get_status_display().lower()
        add(TimelineEntry(at=n.created_at, kind="email", title=f"{n.get_kind_display()} to {n.to}",
                          who=_who(n.requested_by_name, TransitionSource.STAFF) if n.requested_by_name else "system",
                          detail=f"{sent}. {n.last_error}".strip(),
                          url=reverse("admin:notifications_notification_change", args=[n.pk]),
                          tone={"sent": "ok", "failed": "bad", "pending": "warn"}.get(n.status, "")))
    timeline.entries.sort(key=lambda entry: entry.at, reverse=True)
    return timeline
