"""The customer outbox: one row per message, written in the transaction of the change that causes it."""

import uuid

from django.conf import settings
from django.db import models


class Notification(models.Model):
    class Kind(models.TextChoices):
        ORDER_PLACED = "order_placed", "Order placed"
        PAYMENT_SUCCEEDED = "payment_succeeded", "Payment received (receipt)"
        PAYMENT_DECLINED = "payment_declined", "Payment declined or failed"
        PAYMENT_ACTION_NEEDED = "payment_action_needed", "Payment waits for the customer"
        PAYMENT_DELAYED = "payment_delayed", "Payment still being confirmed"
        ORDER_EXPIRED = "order_expired", "Order expired"
        REFUND_ISSUED = "refund_issued", "Refund issued"
        ORDER_LINKS = "order_links", "Links to the customer's orders"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Not sent (no longer true)"
        FAILED = "failed", "Failed (gave up)"

    # Our id is the message's stable Message-ID: a resend after a crash carries
    # the same one, so the receiving side can recognise the duplicate.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # One row per event: "<kind>:<what it is about>". A second write for the same
    # event (a duplicate webhook, a sweep running twice) is ignored.
    dedupe_key = models.CharField(max_length=120, unique=True, editable=False)
    to = models.EmailField()
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="notifications")
    payment = models.ForeignKey("payments.Payment", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="notifications")
    # What the message is about beyond order and payment (a refund's id and
    # amount, the orders of an e-mail lookup); never card data.
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A resend from the console: who asked, and why.
    resend_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_by_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The sender's query: due rows, oldest first; partial, so the history of
            # sent mail is never scanned.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"),
                         name="notification_due_idx"),
            models.Index(fields=["status", "created_at"], name="notification_status_idx"),
        ]
        permissions = [("resend_notification", "Can resend a customer e-mail")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to} ({self.status})"

    @property
    def message_id(self) -> str:
        domain = settings.NOTIFY_MESSAGE_ID_DOMAIN
        return f"<{self.pk}@{domain}>"
