"""The reconciliation console: support staff see every payment's evidence on one page and act on it.

Every field is read-only; every action is a service call (payments.resolution,
payments.services, payments.refunds) that checks the permission and writes
its audit row. The card token is never shown.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path
from django.utils import timezone

from payments.console import evidence_admin  # noqa: F401 - registers the other console admins
from payments.console.base_admin import MAX_BULK_ACTIONS, ReadOnlyAdmin
from payments.console.display import PaymentColumns, admin_link, age
from payments.console.filters import GatewayFilter, OpenDiscrepancyFilter, OpenFilter, StuckFilter, payment_search
from payments.console.forms import ReasonForm, RefundForm, ResolveForm
from payments.console.pages import form_errors_message, posted_data, render_action_form
from payments.console.timeline import payment_timeline
from payments.models import CAPTURED_STATES, Payment, Refund
from payments.refunds import refund_create, refundable_minor
from payments.resolution import payment_cancel_by_staff, payment_check_now, payment_resolve
from payments.services import PaymentError
from shop.money import format_money

# -- payments -----------------------------------------------------------------------

@admin.register(Payment)
class PaymentAdmin(PaymentColumns, ReadOnlyAdmin):
    change_form_template = "admin/payments/payment/change_form.html"
    list_display = ["short_id", "state_badge", "age", "amount", "order_number", "customer_email", "gateway",
                    "psp_reference"]
    list_display_links = ["short_id"]
    list_filter = ["state", GatewayFilter, OpenFilter, StuckFilter, OpenDiscrepancyFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["order"]
    # Only the age is sortable: an index serves it; sorting a million rows by anything else would not be fast.
    sortable_by = ["age"]
    ordering = ["-created_at"]
    search_fields = ["=psp_reference"]  # shows the box; payment_search does the (exact) work
    search_help_text = "Exact payment id, PSP reference, order number or customer e-mail."
    actions = ["check_selected"]
    exclude = ["card_token", "redirect_url"]
    fieldsets = [
        (None, {"fields": ["id", "state_badge", "age", "order_link", "customer_email"]}),
        ("Money", {"fields": ["amount", "refunded", "refundable", "flow"]}),
        ("PSP", {"fields": ["gateway", "psp_reference", "failure_code", "failure_message"]}),
        ("Worker", {"fields": ["created_at", "updated_at", "deadline_at", "next_check_at", "check_count",
                               "alerted_at"]}),
    ]
    readonly_fields = ["id", "state_badge", "age", "order_link", "customer_email", "amount", "refunded",
                       "refundable", "flow", "gateway", "psp_reference", "failure_code", "failure_message",
                       "created_at", "updated_at", "deadline_at", "next_check_at", "check_count", "alerted_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order")

    def get_search_results(self, request, queryset, search_term):
        return payment_search(queryset, search_term), False

    # -- columns

    @admin.display(description="payment")
    def short_id(self, payment: Payment) -> str:
        return str(payment.pk)[:8]

    @admin.display(description="refundable now")
    def refundable(self, payment: Payment) -> str:
        return format_money(refundable_minor(payment), payment.currency)

    @admin.display(description="order")
    def order_number(self, payment: Payment):
        return admin_link("orders.order", payment.order_id, payment.order.number)

    @admin.display(description="order")
    def order_link(self, payment: Payment):
        order = payment.order
        return admin_link("orders.order", order.pk, f"{order.number} ({order.get_state_display().lower()}, "
                                                    f"{order.total_display})")

    @admin.display(description="customer e-mail")
    def customer_email(self, payment: Payment) -> str:
        return payment.order.email

    # -- the payment page

    def change_view(self, request, object_id, form_url="", extra_context=None):
        payment = self._object_or_404(request, object_id)
        user = request.user
        timeline = payment_timeline(payment)
        refundable = refundable_minor(payment) if payment.state in CAPTURED_STATES else 0
        extra_context = {
            **(extra_context or {}),
            "timeline": timeline,
            "now": timezone.now(),
            "open_discrepancies": sum(1 for e in timeline.entries if e.kind == "discrepancy" and e.tone == "bad"),
            "can_check": payment.is_open and user.has_perm("payments.check_payment"),
            "can_resolve": payment.is_open and user.has_perm("payments.resolve_payment"),
            "can_cancel": payment.is_open and user.has_perm("payments.cancel_payment"),
            "can_refund": refundable > 0 and user.has_perm("payments.refund_payment"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/check/", view(self.check_view), name="payments_payment_check"),
            path("<path:object_id>/resolve/", view(self.resolve_view), name="payments_payment_resolve"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="payments_payment_cancel"),
            path("<path:object_id>/refund/", view(self.refund_view), name="payments_payment_refund"),
            *super().get_urls(),
        ]

    # -- actions

    def check_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require(request, "payments.check_payment")
        payment = self._object_or_404(request, object_id)
        try:
            payment = payment_check_now(payment_id=payment.pk, actor=request.user)
        except PaymentError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Checked with the PSP: {payment.staff_actions.first().outcome}",
                              messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(payment))

    @admin.action(description="Check the selected open payments with the PSP now", permissions=["check"])
    def check_selected(self, request, queryset) -> None:
        if queryset.count() > MAX_BULK_ACTIONS:
            self.message_user(request, f"Select at most {MAX_BULK_ACTIONS} payments to check at once.",
                              messages.ERROR)
            return
        done = 0
        for payment in queryset:
            try:
                payment_check_now(payment_id=payment.pk, actor=request.user)
            except PaymentError as exc:
                self.message_user(request, f"{str(payment.pk)[:8]}: {exc.message}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} payment(s) checked with the PSP; see each one's timeline.",
                              messages.SUCCESS)

    def has_check_permission(self, request) -> bool:
        return request.user.has_perm("payments.check_payment")

    def resolve_view(self, request, object_id):
        self._require(request, "payments.resolve_payment")
        payment = self._object_or_404(request, object_id)
        can_override = request.user.has_perm("payments.resolve_payment_override")
        form = ResolveForm(posted_data(request), can_override=can_override)
        if request.method == "POST":
            if form.is_valid():
                try:
                    payment = payment_resolve(payment_id=payment.pk, outcome=form.cleaned_data["outcome"],
                                              actor=request.user, reason=form.cleaned_data["reason"],
                                              override=form.cleaned_data.get("override", False))
                except PaymentError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    voided = (" The PSP still held it open, so it was voided there first."
                              if payment.state != form.cleaned_data["outcome"] else "")
                    self.message_user(request, f"Payment resolved as {payment.get_state_display().lower()}; the "
                                               f"order is {payment.order.get_state_display().lower()}.{voided}",
                                      messages.SUCCESS)
                    return HttpResponseRedirect(self._change_url(payment))
            else:
                form_errors_message(request, form)
        return render_action_form(
            self, request, title=f"Resolve payment {payment.pk}", form=form, objects=[self._summary(payment)],
            intro="Settle this payment by hand. The PSP is asked first. Captured: only when the PSP confirms the "
                  "capture (or with the override permission). Declined or cancelled tell the customer they were "
                  "not charged, so they need the PSP's word that nothing was taken: a payment the PSP still holds "
                  "open is voided there first (and becomes cancelled); if the PSP does not answer, nothing "
                  "changes and the worker keeps asking.",
            submit="Resolve", back_url=self._change_url(payment))

    def cancel_view(self, request, object_id):
        self._require(request, "payments.cancel_payment")
        payment = self._object_or_404(request, object_id)
        form = ReasonForm(posted_data(request))
        if request.method == "POST":
            if form.is_valid():
                try:
                    before = payment.state
                    payment = payment_cancel_by_staff(payment_id=payment.pk, actor=request.user,
                                                      reason=form.cleaned_data["reason"])
                except PaymentError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self._cancel_message(request, before, payment)
                    return HttpResponseRedirect(self._change_url(payment))
            else:
                form_errors_message(request, form)
        return render_action_form(
            self, request, title=f"Cancel payment {payment.pk}", form=form, objects=[self._summary(payment)],
            intro="The PSP is asked to void the payment first; it is cancelled here only when the PSP confirms. "
                  "The order stays open (cancel the order from its page to release the stock).",
            submit="Cancel at the PSP", back_url=self._change_url(payment))

    def _cancel_message(self, request, before: str, payment: Payment) -> None:
        if payment.state == "cancelled":
            self.message_user(request, "The PSP confirmed: the payment is cancelled.", messages.SUCCESS)
        elif payment.state == before:
            self.message_user(request, f"The PSP did not confirm the cancellation; the payment is still "
                                       f"{payment.state}. Try again later.", messages.WARNING)
        else:
            self.message_user(request, f"The PSP answered that the payment is {payment.state}; it was not "
                                       "cancelled.", messages.WARNING)

    def refund_view(self, request, object_id):
        self._require(request, "payments.refund_payment")
        payment = self._object_or_404(request, object_id)
        available = refundable_minor(payment)
        form = RefundForm(posted_data(request), currency=payment.currency, refundable_minor=available)
        confirm = None
        if request.method == "POST":
            if not form.is_valid():
                form_errors_message(request, form)
            elif not request.POST.get("confirmed"):
                # Money leaves for good: show what, to whom, and ask once more.
                order = payment.order
                confirm = [("Refund", format_money(form.cleaned_data["amount"], payment.currency)),
                           ("of the payment", f"{format_money(payment.amount_minor, payment.currency)} "
                                              f"(refundable now: {format_money(available, payment.currency)})"),
                           ("to", f"{order.full_name} <{order.email}>, order {order.number}"),
                           ("reason", form.cleaned_data["reason"])]
            else:
                try:
                    refund = refund_create(payment_id=payment.pk, amount_minor=form.cleaned_data["amount"],
                                           refund_id=form.cleaned_data["refund_id"], actor=request.user,
                                           reason=form.cleaned_data["reason"])
                except PaymentError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self._refund_message(request, refund)
                    return HttpResponseRedirect(self._change_url(payment))
        elif available <= 0:
            self.message_user(request, "Nothing is left to refund on this payment.", messages.WARNING)
        return render_action_form(
            self, request, title=f"Refund payment {str(payment.pk)[:8]}", form=form, objects=[self._summary(payment)],
            intro="Refund all or part of the captured amount to the customer's card. Submitting this form twice "
                  "makes one refund.",
            submit="Yes, refund " + confirm[0][1] if confirm else "Continue", back_url=self._change_url(payment),
            confirm=confirm)

    def _refund_message(self, request, refund: Refund) -> None:
        amount = format_money(refund.amount_minor, refund.currency)
        if refund.state == Refund.State.SUCCEEDED:
            order = Payment.objects.select_related("order").get(pk=refund.payment_id).order
            self.message_user(request, f"Refunded {amount}; the order is {order.get_state_display().lower()}.",
                              messages.SUCCESS)
        elif refund.state == Refund.State.PENDING:
            self.message_user(request, f"The refund of {amount} is with the PSP, which has not confirmed it yet; "
                                       "the worker settles it.", messages.WARNING)
        else:
            self.message_user(request, f"The PSP refused the refund of {amount}: {refund.failure_message}",
                              messages.ERROR)

    @staticmethod
    def _summary(payment: Payment) -> str:
        summary = (f"{payment.get_state_display()} · {format_money(payment.amount_minor, payment.currency)} · order "
                   f"{payment.order.number} · {payment.gateway} {payment.psp_reference or '(no PSP reference)'}")
        return f"{summary} · open for {age(payment.created_at)}" if payment.is_open else summary
