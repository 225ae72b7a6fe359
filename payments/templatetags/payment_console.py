"""The admin index's "needs attention" box: counts that each link to the filtered list."""

from django import template
from django.conf import settings
from django.urls import reverse

from payments.console.filters import failed_webhook_events
from payments.models import Discrepancy
from payments.selectors import OPEN_FOR_A_WHILE_MINUTES, open_payment_counts

register = template.Library()


@register.inclusion_tag("admin/payments/_console_counts.html", takes_context=True)
def payment_console_counts(context) -> dict:
    """Counts, each served by a partial or leading-column index (cheap at any table size).

    The payment counts use the conditions of the lists they link to, so the
    number and the list agree.
    """
    user = context["request"].user
    payments_url = reverse("admin:payments_payment_changelist")
    counts = {
        **open_payment_counts(),  # open_now, open_while, stuck: one query
        "alert_minutes": settings.PAYMENT_ALERT_AFTER_MINUTES,
        "open_minutes": OPEN_FOR_A_WHILE_MINUTES,
        "open_now_url": payments_url + "?open=now",
        "open_while_url": payments_url + "?open=5min",
        "stuck_url": payments_url + "?stuck=yes",
    }
    if user.has_perm("payments.view_discrepancy"):
        counts["discrepancies"] = Discrepancy.objects.filter(status=Discrepancy.Status.OPEN).count()
        counts["discrepancies_url"] = reverse("admin:payments_discrepancy_changelist") + "?status__exact=open"
    if user.has_perm("payments.view_webhookevent"):
        counts["failed_webhooks"] = failed_webhook_events().count()
        counts["webhooks_url"] = reverse("admin:payments_webhookevent_changelist") + "?status=failed"
    if user.has_perm("notifications.view_notification"):
        from notifications.models import Notification

        counts["failed_emails"] = Notification.objects.filter(status=Notification.Status.FAILED).count()
        counts["emails_url"] = reverse("admin:notifications_notification_changelist") + "?status__exact=failed"
    return counts
