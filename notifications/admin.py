"""The support console's view of customer e-mail: what was sent, what failed, and a resend."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path

from notifications.models import Notification
from notifications.outbox import ResendError, notification_resend
from payments.console.base_admin import ReadOnlyAdmin, ReadOnlyInline
from payments.console.display import admin_link, badge
from payments.console.forms import ReasonForm
from payments.console.pages import form_errors_message, posted_data, render_action_form

_TONES = {"sent": "captured", "failed": "failed", "skipped": "cancelled", "pending": "pending"}


def status_badge(notification: Notification):
    return badge(_TONES.get(notification.status, notification.status), notification.get_status_display())


class ResendForm(ReasonForm):
    request_id = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    change_form_template = "admin/notifications/notification/change_form.html"
    list_display = ["created_at", "kind", "to", "order_link", "status_col", "attempts", "sent_at", "requested_by_name"]
    list_filter = ["status", "kind", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=order__number", "=to"]
    sortable_by = ["created_at"]
    list_select_related = ["order"]
    fields = ["id", "kind", "to", "order_link", "payment_link", "status_col", "subject", "attempts",
              "next_attempt_at", "sent_at", "last_error", "message_id", "resend_of_link", "requested_by_name",
              "reason", "created_at"]
    readonly_fields = fields

    @admin.display(description="status")
    def status_col(self, notification: Notification):
        return status_badge(notification)

    @admin.display(description="order")
    def order_link(self, notification: Notification):
        return admin_link("orders.order", notification.order_id, notification.order.number) \
            if notification.order_id else "-"

    @admin.display(description="payment")
    def payment_link(self, notification: Notification):
        return admin_link("payments.payment", notification.payment_id, str(notification.payment_id)[:8]) \
            if notification.payment_id else "-"

    @admin.display(description="resend of")
    def resend_of_link(self, notification: Notification):
        return admin_link("notifications.notification", notification.resend_of_id,
                          str(notification.resend_of_id)[:8]) if notification.resend_of_id else "-"

    @admin.display(description="Message-ID")
    def message_id(self, notification: Notification) -> str:
        return notification.message_id

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}),
                         "can_resend": request.user.has_perm("notifications.resend_notification")}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<path:object_id>/resend/", view(self.resend_view), name="notifications_notification_resend"),
                *super().get_urls()]

    def resend_view(self, request, object_id):
        self._require(request, "notifications.resend_notification")
        notification = self._object_or_404(request, object_id)
        form = ResendForm(posted_data(request))
        if request.method == "POST":
            if form.is_valid():
                try:
                    resent = notification_resend(notification_id=notification.pk, actor=request.user,
                                                 reason=form.cleaned_data["reason"],
                                                 request_id=form.cleaned_data["request_id"])
                except ResendError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(request, f"“{resent.get_kind_display()}” queued again for {resent.to}; the "
                                               "worker sends it within a minute.", messages.SUCCESS)
                    return HttpResponseRedirect(self._change_url(resent))
            else:
                form_errors_message(request, form)
        return render_action_form(
            self, request, title=f"Resend “{notification.get_kind_display()}” to {notification.to}", form=form,
            objects=[f"{notification.get_kind_display()} · order "
                     f"{notification.order.number if notification.order_id else '-'} · "
                     f"{notification.get_status_display().lower()}"],
            intro="The message is rendered again from the order as it is now and sent to the same address. "
                  "Your name and reason are kept with it.",
            submit="Resend", back_url=self._change_url(notification))


class NotificationInline(ReadOnlyInline):
    """The customer e-mail of an order (or a payment): kind, to, when, status."""

    model = Notification
    fk_name = "order"
    fields = ["message", "to", "status_col", "created_at", "sent_at"]
    readonly_fields = fields
    ordering = ["-created_at"]
    verbose_name_plural = "Customer e-mail"

    @admin.display(description="message")
    def message(self, notification: Notification):
        return admin_link("notifications.notification", notification.pk, notification.get_kind_display())

    @admin.display(description="status")
    def status_col(self, notification: Notification):
        return status_badge(notification)
