"""The payment list's filters and search: each one served by an index, none counting or scanning the table."""

from __future__ import annotations

import re
import uuid

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q, QuerySet

from orders.models import Order
from payments.gateways import GATEWAY_NAMES
from payments.models import Discrepancy, Payment, WebhookEvent
from payments.selectors import OPEN_FOR_A_WHILE_MINUTES, open_payments, stuck_payments

_ORDER_NUMBER = re.compile(r"^RK-[A-Z0-9]{4}-[A-Z0-9]{4}$")
# A search matching more orders than this (a customer with many orders) shows the newest ones' payments.
MAX_SEARCH_ORDERS = 500


class GatewayFilter(admin.SimpleListFilter):
    """By PSP; the choices are the known adapters, so no DISTINCT over the table."""

    title = "gateway"
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        return [(name, name) for name in GATEWAY_NAMES]

    def queryset(self, request, queryset):
        return queryset.filter(gateway=self.value()) if self.value() else queryset


class StuckFilter(admin.SimpleListFilter):
    """Open past PAYMENT_ALERT_AFTER_MINUTES: payments.selectors.stuck_payments, the alert's own definition."""

    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "Stuck (open past the alert threshold)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            # `&` keeps the selector's WHERE (served by the partial index on
            # open payments); the list applies its own ordering afterwards.
            return queryset & stuck_payments()
        return queryset


class OpenFilter(admin.SimpleListFilter):
    """Open now, or open for a few minutes: the index's counts beside "stuck" link here."""

    title = "open"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("now", "Open now"), ("5min", f"Open for more than {OPEN_FOR_A_WHILE_MINUTES} minutes")]

    def queryset(self, request, queryset):
        if self.value() == "now":
            return queryset & open_payments()
        if self.value() == "5min":
            return queryset & open_payments(older_than_minutes=OPEN_FOR_A_WHILE_MINUTES)
        return queryset


class OpenDiscrepancyFilter(admin.SimpleListFilter):
    title = "discrepancy"
    parameter_name = "discrepancy"

    def lookups(self, request, model_admin):
        return [("open", "Has an open discrepancy")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            open_ones = Discrepancy.objects.filter(payment=OuterRef("pk"), status=Discrepancy.Status.OPEN)
            return queryset.filter(Exists(open_ones))
        return queryset


class WebhookStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("failed", "Failed (not applied, has an error)"), ("waiting", "Not applied yet"),
                ("applied", "Applied")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "failed":
            return queryset.filter(failed_webhook_events_q())
        if value == "waiting":
            return queryset.filter(processed_at__isnull=True, attempts=0)
        if value == "applied":
            return queryset.filter(processed_at__isnull=False)
        return queryset


def failed_webhook_events_q() -> Q:
    """Stored events that were tried and could not be applied (served by webhook_unprocessed_idx)."""
    return Q(processed_at__isnull=True, attempts__gt=0)


def failed_webhook_events() -> QuerySet[WebhookEvent]:
    return WebhookEvent.objects.filter(failed_webhook_events_q())


def payment_search(queryset: QuerySet[Payment], term: str) -> QuerySet[Payment]:
    """Exact matches only: payment id, PSP reference, order number or customer e-mail.

    Each is an index lookup; a LIKE '%...%' over a million rows is not. The
    orders are looked up first, so the payment query is one OR of indexed
    columns of one table.
    """
    term = term.strip()
    if not term:
        return queryset
    match = Q(psp_reference=term)
    try:
        match |= Q(pk=uuid.UUID(term))
    except ValueError:
        pass
    order_match = Q(email__in={term, term.lower()})
    if _ORDER_NUMBER.match(term.upper()):
        order_match |= Q(number=term.upper())
    order_ids = list(Order.objects.filter(order_match).order_by("-created_at")
                     .values_list("pk", flat=True)[:MAX_SEARCH_ORDERS])
    if order_ids:
        match |= Q(order_id__in=order_ids)
    return queryset.filter(match)
