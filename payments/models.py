import uuid

from django.conf import settings
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from orders.models import TransitionSource
from shop.money import format_money, validate_currency


class PaymentState(models.TextChoices):
    CREATED = "created", "Created"
    PENDING = "pending", "Pending"
    UNKNOWN = "unknown", "Unknown"
    AUTHORIZED = "authorized", "Authorized"
    CAPTURED = "captured", "Captured"
    DECLINED = "declined", "Declined"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


S = PaymentState
# Open: the outcome is not known yet; at most one per order.
OPEN_STATES = (S.CREATED, S.PENDING, S.UNKNOWN, S.AUTHORIZED)
# The partial unique constraint that lets an order have one open payment at most (payment_start's check).
ONE_OPEN_PAYMENT_PER_ORDER = "payment_one_open_per_order"
# Money was taken (refunds may follow).
CAPTURED_STATES = (S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED)
# Nothing was taken and nothing will be.
UNPAID_FINAL_STATES = (S.DECLINED, S.FAILED, S.CANCELLED, S.EXPIRED)
_NOT_YET_AT_PSP = (S.CREATED,)
_AWAITING = (S.PENDING, S.UNKNOWN)


class Payment(FSMModelMixin, models.Model):
    class Flow(models.TextChoices):
        HOSTED = "hosted", "Hosted page"
        DIRECT = "direct", "Card form"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    gateway = models.CharField(max_length=20)
    flow = models.CharField(max_length=10, choices=Flow.choices)
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, validators=[validate_currency])
    amount_refunded_minor = models.PositiveIntegerField(default=0)
    state = FSMField(max_length=20, choices=PaymentState.choices, default=S.CREATED, protected=True)
    psp_reference = models.CharField("PSP reference", max_length=100, blank=True)
    redirect_url = models.URLField(max_length=1000, blank=True)
    # A one-use PSP card token for the direct flow (never card data); cleared
    # once the PSP has answered the charge.
    card_token = models.CharField(max_length=100, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    # What the PSP says about the card, for the customer's receipt: its brand
    # and last four digits, never the number.
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField("card's last four digits", max_length=4, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    check_count = models.PositiveIntegerField(default=0)
    deadline_at = models.DateTimeField()
    alerted_at = models.DateTimeField(null=True, blank=True)
    # True for the capture that marked its order paid. A refund of this payment
    # refunds the order; a refund of an extra capture (a double charge, money
    # taken for an expired order) gives money back without touching the order.
    settles_order = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["order"], condition=models.Q(state__in=OPEN_STATES), name=ONE_OPEN_PAYMENT_PER_ORDER
            ),
            models.CheckConstraint(
                condition=models.Q(amount_refunded_minor__lte=models.F("amount_minor")),
                name="payment_refunded_within_amount",
            ),
        ]
        indexes = [
            # The sync sweep's query: open payments whose check is due. Partial,
            # so it never scans the (large) history of final payments.
            models.Index(fields=["next_check_at"], condition=models.Q(state__in=OPEN_STATES),
                         name="payment_due_check_idx"),
            models.Index(fields=["created_at"], condition=models.Q(state__in=OPEN_STATES),
                         name="payment_open_created_idx"),
            models.Index(fields=["gateway", "psp_reference"], name="payment_psp_ref_idx"),
            models.Index(fields=["state", "created_at"], name="payment_state_created_idx"),
            # The support console's payment list: newest first (with the admin's
            # pk tie-break) and exact search by PSP reference, at a million rows.
            models.Index(fields=["created_at", "id"], name="payment_created_idx"),
            models.Index(fields=["psp_reference"], name="payment_psp_reference_idx"),
        ]
        permissions = [
            ("check_payment", "Can check a payment with the PSP"),
            ("resolve_payment", "Can resolve a stuck payment"),
            ("resolve_payment_override", "Can resolve a payment as captured without PSP confirmation"),
            ("cancel_payment", "Can cancel an open payment"),
            ("refund_payment", "Can refund a payment"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def amount_display(self) -> str:
        return format_money(self.amount_minor, self.currency)

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.amount_refunded_minor if self.state in CAPTURED_STATES else 0

    # Transitions change state only: payments.services locks the row, calls
    # them, saves and writes the PaymentTransition row.
    @transition(field=state, source=_NOT_YET_AT_PSP + (S.UNKNOWN,), target=S.PENDING)
    def mark_pending(self) -> None:
        pass

    @transition(field=state, source=_NOT_YET_AT_PSP + (S.PENDING,), target=S.UNKNOWN)
    def mark_unknown(self) -> None:
        pass

    @transition(field=state, source=_NOT_YET_AT_PSP + _AWAITING, target=S.AUTHORIZED)
    def authorize(self) -> None:
        pass

    @transition(field=state, source=_NOT_YET_AT_PSP + _AWAITING + (S.AUTHORIZED,), target=S.CAPTURED)
    def capture(self) -> None:
        pass

    @transition(field=state, source=_NOT_YET_AT_PSP + _AWAITING, target=S.DECLINED)
    def decline(self) -> None:
        pass

    @transition(field=state, source=_NOT_YET_AT_PSP + _AWAITING, target=S.FAILED)
    def fail(self) -> None:
        pass

    # created -> cancelled only through a staff resolution or after the PSP
    # confirmed it holds nothing for this payment.
    @transition(field=state, source=OPEN_STATES, target=S.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=state, source=OPEN_STATES, target=S.EXPIRED)
    def expire(self) -> None:
        pass

    # The only move out of a final state: a discrepancy proved that the PSP took
    # the money after all (a late capture). Staff only, through
    # payments.discrepancy_fixes, after a fresh look at the PSP.
    @transition(field=state, source=UNPAID_FINAL_STATES, target=S.CAPTURED)
    def correct_to_captured(self) -> None:
        pass

    @transition(field=state, source=(S.CAPTURED, S.PARTIALLY_REFUNDED), target=S.PARTIALLY_REFUNDED)
    def refund_partially(self) -> None:
        pass

    @transition(field=state, source=(S.CAPTURED, S.PARTIALLY_REFUNDED), target=S.REFUNDED)
    def refund_fully(self) -> None:
        pass


class PaymentTransition(models.Model):
    """One row per payment state change: the audit trail support staff read."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    source = models.CharField(max_length=20, choices=TransitionSource.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["payment", "created_at"])]

    def __str__(self) -> str:
        return f"{self.from_state or '·'} -> {self.to_state}"


class GatewayCall(models.Model):
    """Every request we made to a PSP and what came back, redacted."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        DECLINED = "declined", "Declined"
        REJECTED = "rejected", "Refused our request"
        UNKNOWN = "unknown", "No answer (the PSP timed out, failed or could not be reached)"

    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.CASCADE, related_name="calls")
    gateway = models.CharField(max_length=20)
    operation = models.CharField(max_length=40)
    method = models.CharField(max_length=8)
    url = models.CharField(max_length=500)
    idempotency_key = models.CharField(max_length=100, blank=True)
    request_body = models.JSONField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # created_at alone: the retention prune and the recent-calls metrics (config/ops.py) range over it.
        indexes = [models.Index(fields=["payment", "created_at"]),
                   models.Index(fields=["created_at"], name="gatewaycall_created_idx")]

    def __str__(self) -> str:
        return f"{self.operation} {self.status_code or '-'} {self.outcome}"


class WebhookEvent(models.Model):
    """A PSP event, stored raw before anything is done with it (an inbox)."""

    gateway = models.CharField(max_length=20)
    event_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    # Only events whose signature checked out are stored (a forged one gets a
    # 400 and writes nothing); kept to say so on every row staff read.
    signature_valid = models.BooleanField(default=True, editable=False)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="webhook_event_unique"),
        ]
        indexes = [
            models.Index(fields=["received_at"], condition=models.Q(processed_at__isnull=True),
                         name="webhook_unprocessed_idx"),
            models.Index(fields=["payment", "received_at"]),
        ]
        permissions = [("reprocess_webhookevent", "Can reprocess a stored webhook event")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.event_id} {self.event_type}"


class Refund(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    # Our id is the idempotency key and merchant reference at the PSP.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    psp_reference = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=models.Q(amount_minor__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return f"Refund {format_money(self.amount_minor, self.currency)} ({self.state})"


class Discrepancy(models.Model):
    """A fact from the PSP that contradicts our books; staff resolve it."""

    class Kind(models.TextChoices):
        CAPTURED_AT_PSP_ONLY = "captured_at_psp_only", "Captured at the PSP, not here"
        CAPTURED_HERE_ONLY = "captured_here_only", "Captured here, not at the PSP"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount or currency differs"
        DOUBLE_CAPTURE = "double_capture", "Second capture for one order"
        UNKNOWN_REFERENCE = "unknown_reference", "PSP transaction with an unknown reference"
        REFUND_MISMATCH = "refund_mismatch", "Refunds differ"
        LATE_EVENT = "late_event", "Event contradicts a final state"
        WEBHOOK_FAILED = "webhook_failed", "Webhook could not be applied"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # Same fact found twice (reconcile run twice, webhook and sweep) -> one row.
    dedupe_key = models.CharField(max_length=200, unique=True)
    gateway = models.CharField(max_length=20)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="discrepancies")
    psp_reference = models.CharField(max_length=100, blank=True)
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    resolution = models.TextField(blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    resolved_by_name = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "discrepancies"
        indexes = [models.Index(fields=["status", "created_at"]), models.Index(fields=["payment", "status"])]
        permissions = [("close_discrepancy", "Can close a discrepancy")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.summary}"


class StaffAction(models.Model):
    """A support console action that changed no state by itself: who did what, when, and what came of it.

    State changes are audited where they happen (PaymentTransition,
    OrderTransition, Refund, Discrepancy.resolved_by); this records the rest,
    such as a check with the PSP that found nothing new.
    """

    class Action(models.TextChoices):
        CHECK_PAYMENT = "check_payment", "Checked with the PSP"
        CANCEL_PAYMENT = "cancel_payment", "Asked the PSP to cancel"
        REPROCESS_WEBHOOK = "reprocess_webhook", "Reprocessed a webhook event"

    action = models.CharField(max_length=30, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    # Kept when the staff user is later deleted.
    actor_name = models.CharField(max_length=150)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="staff_actions")
    webhook_event = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="staff_actions")
    reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["payment", "created_at"], name="staffaction_payment_idx")]

    def __str__(self) -> str:
        return f"{self.actor_name}: {self.get_action_display()}"
