"""Audit our books against the PSP's: the invariants that say no charge is lost or doubled.

Read-only: it reports violations and changes nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from payments.gateways import get_gateway
from payments.gateways.base import GatewayResult, PspStatus, RefundStatus
from payments.models import CAPTURED_STATES, OPEN_STATES, Discrepancy, Payment, PaymentTransition, Refund


@dataclass(frozen=True)
class Violation:
    rule: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.subject}: {self.detail}"


@dataclass
class LedgerReport:
    psp_transactions: int = 0
    psp_captures: int = 0
    payments_checked: int = 0
    violations: list[Violation] = None

    def __post_init__(self) -> None:
        self.violations = self.violations or []

    @property
    def ok(self) -> bool:
        return not self.violations


# Moves out of a final state: legal only as a staff correction (payments.discrepancy_fixes).
STAFF_ONLY_TRANSITIONS = ("correct_to_captured",)


def legal_moves(*, staff: bool = False) -> set[tuple[str, str]]:
    """Every (from, to) the Payment state machine allows, read from the model itself.

    With staff=False the staff-only corrections are left out.
    """
    moves = {("", Payment._meta.get_field("state").default)}
    for transition in Payment._meta.get_field("state").get_all_transitions(Payment):
        if staff or transition.name not in STAFF_ONLY_TRANSITIONS:
            moves.add((transition.source, transition.target))
    return moves


def audit_ledger(*, gateway_name: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, now: datetime | None = None) -> LedgerReport:
    """Compare the PSP's transactions in [since, until) with our payments and refunds."""
    now = now or timezone.now()
    since = since or datetime(2000, 1, 1, tzinfo=UTC)
    until = until or now + timedelta(minutes=1)
    gateway_name = gateway_name or settings.PAYMENT_GATEWAY
    psp = list(get_gateway(gateway_name).list_transactions(since=since, until=until))
    report = LedgerReport(psp_transactions=len(psp))
    ours = Payment.objects.filter(gateway=gateway_name, created_at__gte=since, created_at__lt=until)
    report.violations += _captures_belong_to_one_payment(psp, gateway_name, report)
    report.violations += _one_capture_per_order(ours)
    report.violations += _sums_agree(psp, ours)
    report.violations += _nothing_stuck(ours, now)
    report.violations += _audit_trail_is_complete(ours, report)
    return report


def _psp_captured(txn: GatewayResult) -> int:
    if txn.status == PspStatus.CAPTURED:
        return txn.amount_captured_minor or txn.amount_minor or 0
    return 0


def _captures_belong_to_one_payment(psp: list[GatewayResult], gateway_name: str,
                                    report: LedgerReport) -> Iterable[Violation]:
    captures = [t for t in psp if _psp_captured(t)]
    report.psp_captures = len(captures)
    by_id = {str(p.pk): p for p in Payment.objects.filter(
        pk__in=[t.merchant_reference for t in captures if _is_uuid(t.merchant_reference)])}
    claimed: dict[str, str] = {}
    for txn in captures:
        payment = by_id.get(txn.merchant_reference)
        if payment is None:
            yield Violation("capture-owned", txn.psp_reference, "captured at the PSP; no payment of ours has "
                            f"reference {txn.merchant_reference or '(none)'}")
        elif payment.state not in CAPTURED_STATES:
            yield Violation("capture-owned", txn.psp_reference,
                            f"captured at the PSP; our payment {payment.pk} is {payment.state} (lost charge)")
        elif payment.psp_reference and payment.psp_reference != txn.psp_reference:
            yield Violation("capture-owned", txn.psp_reference,
                            f"payment {payment.pk} records PSP id {payment.psp_reference} instead")
        elif txn.merchant_reference in claimed:
            yield Violation("capture-owned", txn.psp_reference,
                            f"second PSP capture for payment {payment.pk} (also {claimed[txn.merchant_reference]})")
        claimed.setdefault(txn.merchant_reference, txn.psp_reference)


def _one_capture_per_order(ours) -> Iterable[Violation]:
    per_order: dict[int, list[Payment]] = defaultdict(list)
    for payment in ours.filter(state__in=CAPTURED_STATES).select_related("order"):
        per_order[payment.order_id].append(payment)
    flagged = set(Discrepancy.objects.filter(payment__in=[p for ps in per_order.values() for p in ps],
                                             kind__in=["double_capture", "late_event", "captured_at_psp_only"])
                  .values_list("payment_id", flat=True))
    for payments in per_order.values():
        if len(payments) < 2:
            continue
        # The capture that paid the order is marked; every other one is extra.
        payments.sort(key=lambda p: (not p.settles_order, p.created_at))
        for extra in payments[1:]:
            if extra.state != "refunded" or extra.pk not in flagged:
                yield Violation("double-charge", extra.order.number,
                                f"{len(payments)} captured payments; extra {extra.pk} is {extra.state}"
                                f"{'' if extra.pk in flagged else ' and not flagged'}")


def _sums_agree(psp: list[GatewayResult], ours) -> Iterable[Violation]:
    theirs_captured: dict[str, int] = defaultdict(int)
    theirs_refunded: dict[str, int] = defaultdict(int)
    for txn in psp:
        theirs_captured[txn.currency.upper()] += _psp_captured(txn)
        theirs_refunded[txn.currency.upper()] += sum(r.amount_minor for r in txn.refunds
                                                     if r.status == RefundStatus.SUCCEEDED)
    ours_captured = dict(ours.filter(state__in=CAPTURED_STATES).values_list("currency")
                         .annotate(total=Sum("amount_minor")).values_list("currency", "total"))
    ours_refunded = dict(Refund.objects.filter(payment__in=ours, state=Refund.State.SUCCEEDED)
                         .values_list("currency").annotate(total=Sum("amount_minor"))
                         .values_list("currency", "total"))
    for currency in sorted(set(theirs_captured) | set(ours_captured)):
        if theirs_captured.get(currency, 0) != ours_captured.get(currency, 0):
            yield Violation("sums", currency, f"captured: PSP {theirs_captured.get(currency, 0)}, "
                                              f"ours {ours_captured.get(currency, 0)}")
    for currency in sorted(set(theirs_refunded) | set(ours_refunded)):
        if theirs_refunded.get(currency, 0) != ours_refunded.get(currency, 0):
            yield Violation("sums", currency, f"refunded: PSP {theirs_refunded.get(currency, 0)}, "
                                              f"ours {ours_refunded.get(currency, 0)}")


def _nothing_stuck(ours, now: datetime) -> Iterable[Violation]:
    threshold = now - timedelta(minutes=settings.PAYMENT_ALERT_AFTER_MINUTES)
    for payment in ours.filter(state__in=OPEN_STATES, created_at__lt=threshold).select_related("order"):
        age = now - payment.created_at
        yield Violation("stuck", str(payment.pk), f"{payment.state} for {age} (order {payment.order.number})")


def _audit_trail_is_complete(ours, report: LedgerReport) -> Iterable[Violation]:
    legal, legal_for_staff = legal_moves(), legal_moves(staff=True)
    chains: dict = defaultdict(list)
    for row in (PaymentTransition.objects.filter(payment__in=ours).order_by("payment_id", "created_at", "id")
                .values_list("payment_id", "from_state", "to_state", "source")):
        chains[row[0]].append(row[1:])
    for payment_id, state in ours.values_list("pk", "state"):
        report.payments_checked += 1
        previous = ""
        for from_state, to_state, source in chains.get(payment_id, []):
            if from_state != previous:
                yield Violation("audit", str(payment_id), f"gap in the trail: {previous or '·'} then "
                                                          f"{from_state} -> {to_state}")
            if (from_state, to_state) not in (legal_for_staff if source == "staff" else legal):
                yield Violation("audit", str(payment_id), f"illegal move {from_state or '·'} -> {to_state}")
            previous = to_state
        if previous != state:
            yield Violation("audit", str(payment_id), f"state is {state}, the trail ends at {previous or 'nothing'}")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True
