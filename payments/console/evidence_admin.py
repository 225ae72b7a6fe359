"""The console's evidence besides payments: webhook events (reprocess), discrepancies (close), and read-only lists
of refunds, PSP calls and staff actions. Imported by payments/admin.py, which registers them.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from payments.console.base_admin import MAX_BULK_ACTIONS, ReadOnlyAdmin
from payments.console.display import admin_link, badge
from payments.console.filters import GatewayFilter, WebhookStatusFilter
from payments.console.forms import CloseDiscrepancyForm, ReasonForm, refund_form_id
from payments.console.pages import form_errors_message, posted_data, render_action_form
from payments.console.timeline import body_json, pretty_json
from payments.discrepancy_fixes import (
    ATTACH,
    REFUND,
    discrepancy_attach_capture,
    discrepancy_money_fixes,
    discrepancy_refund,
)
from payments.models import CAPTURED_STATES, Discrepancy, GatewayCall, Refund, StaffAction, WebhookEvent
from payments.refunds import refundable_minor
from payments.resolution import discrepancy_close, webhook_reprocess
from payments.services import PaymentError
from shop.money import format_money

# -- webhook events --------------------------------------------------------------

@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    change_form_template = "admin/payments/webhookevent/change_form.html"
    list_display = ["event_id", "event_type", "gateway", "status_badge", "attempts", "payment_link", "received_at"]
    list_filter = [WebhookStatusFilter, GatewayFilter, ("received_at", admin.DateFieldListFilter)]
    search_fields = ["=event_id"]
    search_help_text = "Exact event id."
    sortable_by = ["received_at"]
    actions = ["reprocess_selected"]
    fields = ["gateway", "event_id", "event_type", "status_badge", "payment_link", "received_at", "processed_at",
              "attempts", "error", "signature_valid", "headers_json", "body_json", "traceback"]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(event_id=term) if term else queryset), False

    @admin.display(description="status")
    def status_badge(self, event: WebhookEvent):
        if event.processed_at:
            return badge("applied", "applied")
        return badge("error", "failed") if event.attempts else badge("waiting", "not applied yet")

    @admin.display(description="payment")
    def payment_link(self, event: WebhookEvent):
        return admin_link("payments.payment", event.payment_id, str(event.payment_id)[:8]) if event.payment_id \
            else "-"

    @admin.display(description="headers")
    def headers_json(self, event: WebhookEvent) -> str:
        return pretty_json(event.headers)

    @admin.display(description="body (redacted)")
    def body_json(self, event: WebhookEvent) -> str:
        return body_json(event.body)

    def get_urls(self):
        return [path("<path:object_id>/reprocess/", self.admin_site.admin_view(self.reprocess_view),
                     name="payments_webhookevent_reprocess"), *super().get_urls()]

    def reprocess_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require(request, "payments.reprocess_webhookevent")
        event = self._object_or_404(request, object_id)
        self._reprocess(request, event)
        return HttpResponseRedirect(self._change_url(event))

    def _reprocess(self, request, event: WebhookEvent) -> bool:
        try:
            event = webhook_reprocess(event_id=event.pk, actor=request.user)
        except PaymentError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return False
        if event.processed_at:
            self.message_user(request, f"Event {event.event_id} applied.", messages.SUCCESS)
            return True
        self.message_user(request, f"Event {event.event_id} failed again: {event.error}", messages.ERROR)
        return False

    @admin.action(description="Reprocess the selected webhook events", permissions=["reprocess"])
    def reprocess_selected(self, request, queryset) -> None:
        for event in queryset[:MAX_BULK_ACTIONS]:
            self._reprocess(request, event)

    def has_reprocess_permission(self, request) -> bool:
        return request.user.has_perm("payments.reprocess_webhookevent")


# -- discrepancies ---------------------------------------------------------------

@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdmin):
    change_form_template = "admin/payments/discrepancy/change_form.html"
    list_display = ["kind", "status_badge", "summary", "payment_link", "gateway", "created_at", "resolved_by_name"]
    list_filter = ["status", "kind", ("created_at", admin.DateFieldListFilter)]
    sortable_by = ["created_at"]
    actions = ["close_selected"]
    fields = ["kind", "status_badge", "summary", "payment_link", "gateway", "psp_reference", "details_json",
              "created_at", "resolution", "resolved_by_name", "resolved_at"]
    readonly_fields = fields

    @admin.display(description="status")
    def status_badge(self, discrepancy: Discrepancy):
        return badge(discrepancy.status, discrepancy.get_status_display())

    @admin.display(description="payment")
    def payment_link(self, discrepancy: Discrepancy):
        if not discrepancy.payment_id:
            return "-"
        return admin_link("payments.payment", discrepancy.payment_id, str(discrepancy.payment_id)[:8])

    @admin.display(description="details")
    def details_json(self, discrepancy: Discrepancy) -> str:
        return pretty_json(discrepancy.details)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        user = request.user
        discrepancy = self._object_or_404(request, object_id)
        fixes = discrepancy_money_fixes(discrepancy) if user.has_perm("payments.close_discrepancy") else []
        extra_context = {
            **(extra_context or {}),
            "can_close": user.has_perm("payments.close_discrepancy"),
            "can_refund": REFUND in fixes and user.has_perm("payments.refund_payment"),
            "can_attach": ATTACH in fixes and user.has_perm("payments.resolve_payment"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<path:object_id>/close/", view(self.close_view), name="payments_discrepancy_close"),
                path("<path:object_id>/refund/", view(self.refund_view), name="payments_discrepancy_refund"),
                path("<path:object_id>/attach/", view(self.attach_view), name="payments_discrepancy_attach"),
                *super().get_urls()]

    @staticmethod
    def _money_summary(discrepancy: Discrepancy) -> str:
        payment = discrepancy.payment
        order = payment.order
        return (f"Payment {str(payment.pk)[:8]} ({payment.get_state_display().lower()}, "
                f"{format_money(payment.amount_minor, payment.currency)}) · order {order.number} "
                f"({order.get_state_display().lower()}) · {order.full_name} <{order.email}>")

    def _no_fix(self, request, discrepancy: Discrepancy):
        self.message_user(request, "This discrepancy has no money the console can move (it is closed, or not about "
                                   "this payment's own PSP transaction): close it with a note.", messages.WARNING)
        return HttpResponseRedirect(self._change_url(discrepancy))

    def refund_view(self, request, object_id):
        self._require(request, "payments.refund_payment")
        self._require(request, "payments.close_discrepancy")
        discrepancy = self._object_or_404(request, object_id)
        if REFUND not in discrepancy_money_fixes(discrepancy):
            return self._no_fix(request, discrepancy)
        payment = discrepancy.payment
        form = refund_form_id(ReasonForm(posted_data(request)))
        if request.method == "POST":
            if form.is_valid():
                try:
                    refund = discrepancy_refund(discrepancy_id=discrepancy.pk, actor=request.user,
                                                reason=form.cleaned_data["reason"],
                                                refund_id=form.cleaned_data["refund_id"])
                except PaymentError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    done = "refunded" if refund.state == Refund.State.SUCCEEDED else \
                        "sent to the PSP; the worker settles the refund"
                    self.message_user(request, f"{format_money(refund.amount_minor, refund.currency)} {done}. "
                                               "The discrepancy is closed.", messages.SUCCESS)
                    return HttpResponseRedirect(self._change_url(discrepancy))
            else:
                form_errors_message(request, form)
        amount = payment.amount_minor if payment.state not in CAPTURED_STATES else refundable_minor(payment)
        return render_action_form(
            self, request, title=f"Refund {format_money(amount, payment.currency)} to {payment.order.email}",
            form=form, objects=[self._money_summary(discrepancy)],
            intro=f"The PSP is asked first whether it holds the money. Then "
                  f"{format_money(amount, payment.currency)} goes back to the customer's card, the order stays "
                  f"{payment.order.get_state_display().lower()}, and this discrepancy is closed with your reason. "
                  "Submitting this form twice makes one refund.",
            submit=f"Refund {format_money(amount, payment.currency)}", back_url=self._change_url(discrepancy))

    def attach_view(self, request, object_id):
        self._require(request, "payments.resolve_payment")
        self._require(request, "payments.close_discrepancy")
        discrepancy = self._object_or_404(request, object_id)
        if ATTACH not in discrepancy_money_fixes(discrepancy):
            return self._no_fix(request, discrepancy)
        payment = discrepancy.payment
        form = ReasonForm(posted_data(request))
        if request.method == "POST":
            if form.is_valid():
                try:
                    payment = discrepancy_attach_capture(discrepancy_id=discrepancy.pk, actor=request.user,
                                                         reason=form.cleaned_data["reason"])
                except PaymentError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(request, f"The capture now pays order {payment.order.number}, which is "
                                               "paid. The discrepancy is closed.", messages.SUCCESS)
                    return HttpResponseRedirect(self._change_url(discrepancy))
            else:
                form_errors_message(request, form)
        return render_action_form(
            self, request, title=f"Attach the capture to order {payment.order.number}", form=form,
            objects=[self._money_summary(discrepancy)],
            intro="The PSP is asked first whether it holds the money, and for how much. When it is the order's "
                  "amount, the payment is recorded as captured, the order as paid (the customer sees it paid), "
                  "and this discrepancy is closed with your reason.",
            submit="Attach and mark the order paid", back_url=self._change_url(discrepancy))

    def close_view(self, request, object_id):
        self._require(request, "payments.close_discrepancy")
        discrepancy = self._object_or_404(request, object_id)
        form = CloseDiscrepancyForm(posted_data(request))
        if request.method == "POST":
            if form.is_valid():
                if self._close(request, discrepancy, form.cleaned_data["resolution"]):
                    self.message_user(request, "Discrepancy closed.", messages.SUCCESS)
                    return HttpResponseRedirect(self._change_url(discrepancy))
            else:
                form_errors_message(request, form)
        return render_action_form(self, request, title="Close discrepancy", form=form, objects=[discrepancy],
                                  intro="Say what was done about it; the note and your name are kept.",
                                  submit="Close", back_url=self._change_url(discrepancy))

    def _close(self, request, discrepancy: Discrepancy, resolution: str) -> bool:
        try:
            discrepancy_close(discrepancy_id=discrepancy.pk, actor=request.user, resolution=resolution)
        except PaymentError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return False
        return True

    @admin.action(description="Close the selected discrepancies (with a note)", permissions=["close"])
    def close_selected(self, request, queryset):
        form = CloseDiscrepancyForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST:
            if form.is_valid():
                closed = sum(self._close(request, d, form.cleaned_data["resolution"]) for d in queryset)
                if closed:
                    self.message_user(request, f"{closed} discrepancy(ies) closed.", messages.SUCCESS)
                return None
            form_errors_message(request, form)
        return render_action_form(self, request, title="Close discrepancies", form=form, objects=queryset,
                                  intro="One note for all of them.", submit="Close",
                                  back_url=reverse("admin:payments_discrepancy_changelist"), action="close_selected",
                                  selected=queryset.values_list("pk", flat=True))

    def has_close_permission(self, request) -> bool:
        return request.user.has_perm("payments.close_discrepancy")


# -- the rest of the evidence: read-only lists -----------------------------------

@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ["id", "payment_link", "amount", "state", "actor_name", "reason", "created_at"]
    list_filter = ["state", ("created_at", admin.DateFieldListFilter)]
    sortable_by = ["created_at"]
    fields = ["id", "payment_link", "amount", "state", "psp_reference", "failure_message", "reason", "actor_name",
              "created_at", "updated_at"]
    readonly_fields = fields

    @admin.display(description="amount")
    def amount(self, refund: Refund) -> str:
        return format_money(refund.amount_minor, refund.currency)

    @admin.display(description="payment")
    def payment_link(self, refund: Refund):
        return admin_link("payments.payment", refund.payment_id, str(refund.payment_id)[:8])


@admin.register(GatewayCall)
class GatewayCallAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "operation", "status_code", "outcome", "gateway", "payment_link", "duration_ms"]
    list_filter = ["outcome", GatewayFilter, ("created_at", admin.DateFieldListFilter)]
    sortable_by = ["created_at"]
    fields = ["created_at", "gateway", "operation", "method", "url", "idempotency_key", "status_code", "outcome",
              "error", "duration_ms", "payment_link", "request_json", "response_json"]
    readonly_fields = fields

    @admin.display(description="payment")
    def payment_link(self, call: GatewayCall):
        return admin_link("payments.payment", call.payment_id, str(call.payment_id)[:8]) if call.payment_id else "-"

    @admin.display(description="request (redacted)")
    def request_json(self, call: GatewayCall) -> str:
        return pretty_json(call.request_body)

    @admin.display(description="response (redacted)")
    def response_json(self, call: GatewayCall) -> str:
        return pretty_json(call.response_body)


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_name", "action", "payment_link", "outcome"]
    list_filter = ["action", ("created_at", admin.DateFieldListFilter)]
    sortable_by = ["created_at"]
    fields = ["created_at", "actor_name", "action", "payment_link", "webhook_event", "reason", "outcome"]
    readonly_fields = fields

    @admin.display(description="payment")
    def payment_link(self, action: StaffAction):
        return admin_link("payments.payment", action.payment_id, str(action.payment_id)[:8]) if action.payment_id \
            else "-"
