"""Reconcile our books with the PSP's: every mismatch becomes one Discrepancy for staff.

We read the PSP's transaction list for a window, page by page, and compare
each transaction with our payment and refunds; then we look the other way:
our captures and refunds in the window that the PSP did not list are fetched
one by one, so a transaction just outside the window is never taken for a
missing one. Every finding goes through discrepancy_record with a dedupe key
(the same keys the webhook and sync paths use for the same facts), so a
second run, or an overlapping window, adds nothing.

An open payment of ours that the PSP has settled is not a mismatch, only news
that has not reached us yet: it is synced (payment_sync) instead of flagged.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from orders.models import TransitionSource
from payments.gateways import get_gateway
from payments.gateways.base import Gateway, GatewayResult, PspStatus, RefundStatus
from payments.models import CAPTURED_STATES, Discrepancy, Payment, PaymentState, Refund
from payments.services import discrepancy_record, gateway_for, payment_sync
from shop.money import format_money

logger = logging.getLogger(__name__)

K = Discrepancy.Kind
PAGE = 100
_SETTLED = (PspStatus.CAPTURED, PspStatus.DECLINED, PspStatus.FAILED, PspStatus.CANCELLED)


@dataclass
class ReconcileReport:
    since: datetime
    until: datetime
    gateway: str
    psp_transactions: int = 0
    payments_checked: int = 0  # our captures and refunds looked up on our side
    synced: int = 0  # open payments of ours the PSP had settled: synced, not flagged
    found: Counter = field(default_factory=Counter)  # kind -> findings in this run
    new: int = 0  # discrepancies this run created (the rest were known already)
    unchecked: list[str] = field(default_factory=list)  # the PSP did not answer a lookup

    @property
    def total_found(self) -> int:
        return sum(self.found.values())

    def __str__(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.found.items())) or "none"
        text = (f"{self.psp_transactions} PSP transaction(s) and {self.payments_checked} of our payment(s) checked "
                f"for {self.since.isoformat()} .. {self.until.isoformat()}; {self.synced} open payment(s) synced; "
                f"{self.total_found} mismatch(es) ({kinds}), {self.new} new.")
        if self.unchecked:
            text += f" {len(self.unchecked)} could not be checked (no PSP answer): run again later."
        return text


class _Run:
    def __init__(self, gateway_name: str, report: ReconcileReport) -> None:
        self.gateway_name = gateway_name
        self.report = report
        self.started = timezone.now()
        self.seen: set[str] = set()

    def flag(self, *, kind: str, dedupe_key: str, summary: str, payment: Payment | None = None,
             psp_reference: str = "", details: dict | None = None) -> None:
        discrepancy = discrepancy_record(kind=kind, dedupe_key=dedupe_key, gateway=self.gateway_name,
                                         summary=summary, payment=payment, psp_reference=psp_reference,
                                         details=details)
        self.report.found[kind] += 1
        if discrepancy.created_at >= self.started:
            self.report.new += 1


def reconcile(*, since: datetime, until: datetime, gateway_name: str | None = None,
              progress: Callable[[int], None] | None = None) -> ReconcileReport:
    """Compare the PSP's transactions and ours in [since, until); record each mismatch once.

    `progress` is called after each page with the number of PSP transactions
    read so far. Raises ConnectionError when the PSP does not answer the list.
    """
    gateway_name = gateway_name or settings.PAYMENT_GATEWAY
    report = ReconcileReport(since=since, until=until, gateway=gateway_name)
    run = _Run(gateway_name, report)
    gateway = get_gateway(gateway_name)
    for page in _pages(_psp_transactions(gateway, since, until, run.seen)):
        payments = _payments_for(page)
        for txn in page:
            _check_transaction(run, txn, payments.get(txn.merchant_reference))
        report.psp_transactions += len(page)
        if progress:
            progress(report.psp_transactions)
    _check_our_side(run, since, until)
    logger.info("reconcile %s: %s", gateway_name, report)
    return report


def _psp_transactions(gateway: Gateway, since: datetime, until: datetime, seen: set[str]
                      ) -> Iterator[GatewayResult]:
    """Transactions created in the window, then (where the PSP can) those changed in it, each once."""
    passes = [{}]
    if "by" in inspect.signature(gateway.list_transactions).parameters:
        # A refund or a late capture of an older transaction changes its update time.
        passes.append({"by": "updated"})
    for extra in passes:
        for txn in gateway.list_transactions(since=since, until=until, **extra):
            if txn.psp_reference not in seen:
                seen.add(txn.psp_reference)
                yield txn


def _pages(transactions: Iterable[GatewayResult]) -> Iterator[list[GatewayResult]]:
    page: list[GatewayResult] = []
    for txn in transactions:
        page.append(txn)
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def _payments_for(page: list[GatewayResult]) -> dict[str, Payment]:
    ids = [txn.merchant_reference for txn in page if _is_uuid(txn.merchant_reference)]
    payments = Payment.objects.filter(pk__in=ids).select_related("order").prefetch_related("refunds")
    return {str(p.pk): p for p in payments}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _psp_amount(txn: GatewayResult) -> int:
    return txn.amount_captured_minor or txn.amount_minor or 0


# -- one PSP transaction against our books ---------------------------------------

def _check_transaction(run: _Run, txn: GatewayResult, payment: Payment | None) -> None:
    gw = run.gateway_name
    if payment is None or payment.gateway != gw:
        run.flag(kind=K.UNKNOWN_REFERENCE, dedupe_key=f"unknown_reference:{gw}:{txn.psp_reference}",
                 psp_reference=txn.psp_reference,
                 summary=f"PSP transaction {txn.psp_reference} ({txn.status}, {_psp_amount(txn)} {txn.currency}) "
                         f"names no payment of ours ({txn.merchant_reference or 'no reference'})",
                 details={"merchant_reference": txn.merchant_reference, "psp_status": str(txn.status)})
        return
    if payment.psp_reference and txn.psp_reference != payment.psp_reference:
        # A second PSP transaction under the same merchant reference.
        if txn.status != PspStatus.CAPTURED:
            return
        if payment.state in CAPTURED_STATES:
            run.flag(kind=K.DOUBLE_CAPTURE, dedupe_key=f"double_capture:{gw}:{txn.psp_reference}", payment=payment,
                     psp_reference=txn.psp_reference,
                     summary=f"The PSP captured payment {payment.pk} a second time ({txn.psp_reference}; ours is "
                             f"{payment.psp_reference}) for order {payment.order.number}",
                     details={"psp_amount_minor": _psp_amount(txn), "psp_currency": txn.currency})
        else:
            run.flag(kind=K.CAPTURED_AT_PSP_ONLY, dedupe_key=f"captured_at_psp_only:{gw}:{txn.psp_reference}",
                     payment=payment, psp_reference=txn.psp_reference,
                     summary=f"The PSP captured {_psp_amount(txn)} {txn.currency} ({txn.psp_reference}) for payment "
                             f"{payment.pk}, which we hold as {payment.state} under {payment.psp_reference} "
                             f"(order {payment.order.number})",
                     details={"psp_status": str(txn.status), "our_state": payment.state})
        return
    if payment.is_open:
        if txn.status in _SETTLED or (txn.status == PspStatus.AUTHORIZED and payment.state != PaymentState.AUTHORIZED):
            # The PSP has news that has not reached us (a lost webhook): apply it the usual way.
            payment = payment_sync(payment_id=payment.pk, source=TransitionSource.POLLER)
            run.report.synced += 1
            if payment.is_open and txn.status in _SETTLED:
                run.report.unchecked.append(str(payment.pk))
        if payment.is_open:
            return
    if txn.status != PspStatus.CAPTURED:
        if payment.state in CAPTURED_STATES:
            _flag_captured_here_only(run, payment, f"the PSP says {txn.status}")
        return
    if payment.state not in CAPTURED_STATES:
        # Same key as the webhook/sync path's late capture: one row for one fact.
        run.flag(kind=K.CAPTURED_AT_PSP_ONLY, dedupe_key=f"late_capture:{payment.pk}", payment=payment,
                 psp_reference=txn.psp_reference,
                 summary=f"The PSP captured {format_money(_psp_amount(txn), txn.currency or payment.currency)} for payment {payment.pk}, which we "
                         f"hold as {payment.state} (order {payment.order.number})",
                 details={"psp_status": str(txn.status), "our_state": payment.state})
        return
    amount, currency = _psp_amount(txn), (txn.currency or payment.currency).upper()
    if amount != payment.amount_minor or currency != payment.currency:
        run.flag(kind=K.AMOUNT_MISMATCH, dedupe_key=f"amount:{payment.pk}", payment=payment,
                 psp_reference=txn.psp_reference,
                 summary=f"The PSP captured {format_money(amount, currency)}; the order is "
                         f"{format_money(payment.amount_minor, payment.currency)}",
                 details={"psp_amount_minor": amount, "psp_currency": currency})
    _check_refunds(run, txn, payment)


def _check_refunds(run: _Run, txn: GatewayResult, payment: Payment) -> None:
    gw = run.gateway_name
    ours = {str(r.pk): r for r in payment.refunds.all()}
    matched: set[str] = set()
    for psp_refund in txn.refunds:
        if psp_refund.status != RefundStatus.SUCCEEDED:
            continue
        refund = ours.get(psp_refund.merchant_reference)
        if refund is None:
            run.flag(kind=K.REFUND_MISMATCH, dedupe_key=f"refund:{gw}:{psp_refund.psp_reference}", payment=payment,
                     psp_reference=psp_refund.psp_reference,
                     summary=f"The PSP refunded {format_money(psp_refund.amount_minor, psp_refund.currency)} of payment "
                             f"{payment.pk} that we did not ask for",
                     details={"psp_refund": psp_refund.psp_reference})
            continue
        matched.add(str(refund.pk))
        if refund.state == Refund.State.FAILED:
            run.flag(kind=K.REFUND_MISMATCH, dedupe_key=f"refund_state:{refund.pk}", payment=payment,
                     psp_reference=psp_refund.psp_reference,
                     summary=f"Refund {refund.pk} failed here, but the PSP refunded "
                             f"{format_money(psp_refund.amount_minor, psp_refund.currency)}")
        elif psp_refund.amount_minor != refund.amount_minor:
            run.flag(kind=K.REFUND_MISMATCH, dedupe_key=f"refund_amount:{refund.pk}", payment=payment,
                     psp_reference=psp_refund.psp_reference,
                     summary=f"Refund {refund.pk} is {format_money(refund.amount_minor, refund.currency)} here and "
                             f"{format_money(psp_refund.amount_minor, psp_refund.currency)} at the PSP")
    for key, refund in ours.items():
        if refund.state == Refund.State.SUCCEEDED and key not in matched:
            run.flag(kind=K.REFUND_MISMATCH, dedupe_key=f"refund_here_only:{refund.pk}", payment=payment,
                     psp_reference=refund.psp_reference,
                     summary=f"Refund {refund.pk} of {format_money(refund.amount_minor, refund.currency)} succeeded here; the "
                             f"PSP has no such refund on {txn.psp_reference}")


def _flag_captured_here_only(run: _Run, payment: Payment, why: str) -> None:
    run.flag(kind=K.CAPTURED_HERE_ONLY, dedupe_key=f"captured_here_only:{payment.pk}", payment=payment,
             psp_reference=payment.psp_reference,
             summary=f"We hold payment {payment.pk} (order {payment.order.number}) as {payment.state}; {why}")


# -- our books against the PSP's ----------------------------------------------------

def _check_our_side(run: _Run, since: datetime, until: datetime) -> None:
    """Our captures and refunds in the window that the PSP list did not show, fetched one by one."""
    in_window = Q(created_at__gte=since, created_at__lt=until, state__in=CAPTURED_STATES) | Q(
        refunds__state=Refund.State.SUCCEEDED, refunds__updated_at__gte=since, refunds__updated_at__lt=until)
    ours = (Payment.objects.filter(in_window, gateway=run.gateway_name).distinct()
            .select_related("order").prefetch_related("refunds"))
    for payment in ours.iterator(chunk_size=500):
        run.report.payments_checked += 1
        if payment.psp_reference and payment.psp_reference in run.seen:
            continue  # compared while reading the PSP's list
        gateway = gateway_for(payment)
        txn = gateway.retrieve(payment.psp_reference) if payment.psp_reference else \
            gateway.find_by_reference(payment.pk)
        if txn.status == PspStatus.NOT_FOUND:
            _flag_captured_here_only(run, payment, "the PSP has no transaction for it")
        elif txn.status == PspStatus.UNKNOWN:
            run.report.unchecked.append(str(payment.pk))
        else:
            run.seen.add(txn.psp_reference)
            _check_transaction(run, txn, payment)
    _check_one_capture_per_order(run, since, until)


def _check_one_capture_per_order(run: _Run, since: datetime, until: datetime) -> None:
    """Orders with a capture in the window that hold more than one captured payment."""
    captured = Payment.objects.filter(state__in=CAPTURED_STATES)
    in_window = captured.filter(gateway=run.gateway_name, created_at__gte=since, created_at__lt=until)
    orders = (captured.filter(order_id__in=in_window.values("order_id")).values("order_id")
              .annotate(n=Count("pk")).filter(n__gt=1).values_list("order_id", flat=True))
    by_order: dict[int, list[Payment]] = defaultdict(list)
    for payment in captured.filter(order_id__in=list(orders)).select_related("order").order_by("created_at"):
        by_order[payment.order_id].append(payment)
    for payments in by_order.values():
        for extra in payments[1:]:
            run.flag(kind=K.DOUBLE_CAPTURE, dedupe_key=f"double_capture:{extra.pk}", payment=extra,
                     psp_reference=extra.psp_reference,
                     summary=f"Order {extra.order.number} was captured {len(payments)} times; payment {extra.pk} "
                             "is an extra one")
