import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django_countries.fields import CountryField
from django_fsm import FSMField, FSMModelMixin, transition

from shop.money import format_money, validate_currency

# Order numbers avoid characters that people confuse when reading them aloud.
_NUMBER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_order_number() -> str:
    body = "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(8))
    return f"RK-{body[:4]}-{body[4:]}"


def new_access_token() -> str:
    return secrets.token_urlsafe(24)


class TransitionSource(models.TextChoices):
    """What caused a state change; shared by the order and payment audit trails."""

    CUSTOMER = "customer", "Customer"
    PSP_RESPONSE = "psp_response", "PSP response"
    WEBHOOK = "webhook", "Webhook"
    POLLER = "poller", "Poller"
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"


class Order(FSMModelMixin, models.Model):
    class State(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        PAID = "paid", "Paid"
        FULFILLED = "fulfilled", "Fulfilled"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    number = models.CharField(max_length=16, unique=True, default=new_order_number, editable=False)
    access_token = models.CharField(max_length=64, unique=True, default=new_access_token, editable=False)
    # The one-time token of the checkout form (or the API's Idempotency-Key):
    # a second submission with the same token finds this order instead of
    # creating another.
    checkout_token = models.UUIDField(unique=True, null=True, blank=True, editable=False)
    email = models.EmailField()
    full_name = models.CharField(max_length=200)
    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address (line 2)", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    postal_code = models.CharField(max_length=20)
    country = CountryField(help_text="ISO 3166 two-letter code.")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    total_minor = models.PositiveIntegerField()
    state = FSMField(max_length=32, choices=State.choices, default=State.AWAITING_PAYMENT, protected=True)
    stock_released = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["email"]), models.Index(fields=["state", "created_at"])]
        permissions = [
            ("fulfil_order", "Can mark orders fulfilled"),
            ("cancel_order", "Can cancel orders"),
        ]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("orders:detail", kwargs={"number": self.number, "token": self.access_token})

    @property
    def total_display(self) -> str:
        return format_money(self.total_minor, self.currency)

    @property
    def is_payable(self) -> bool:
        return self.state == self.State.AWAITING_PAYMENT

    # Transitions change state only; orders.services locks, saves and audits.
    @transition(field=state, source=State.AWAITING_PAYMENT, target=State.PAID)
    def mark_paid(self) -> None:
        pass

    @transition(field=state, source=State.PAID, target=State.FULFILLED)
    def fulfil(self) -> None:
        pass

    @transition(field=state, source=State.AWAITING_PAYMENT, target=State.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=state, source=State.AWAITING_PAYMENT, target=State.EXPIRED)
    def expire(self) -> None:
        pass

    @transition(
        field=state,
        source=[State.PAID, State.FULFILLED, State.PARTIALLY_REFUNDED],
        target=State.PARTIALLY_REFUNDED,
    )
    def refund_partially(self) -> None:
        pass

    @transition(field=state, source=[State.PAID, State.FULFILLED, State.PARTIALLY_REFUNDED], target=State.REFUNDED)
    def refund_fully(self) -> None:
        pass


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey("shop.Product", on_delete=models.PROTECT, related_name="order_lines")
    # Frozen at checkout: later catalog changes never alter what was sold.
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    unit_price_minor = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField()
    line_total_minor = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="orderline_quantity_positive"),
            models.UniqueConstraint(fields=["order", "product"], name="orderline_one_per_product"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.name}"

    @property
    def unit_price_display(self) -> str:
        return format_money(self.unit_price_minor, self.order.currency)

    @property
    def line_total_display(self) -> str:
        return format_money(self.line_total_minor, self.order.currency)


class OrderTransition(models.Model):
    """One row per order state change: the order's audit trail."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=32)
    to_state = models.CharField(max_length=32)
    source = models.CharField(max_length=20, choices=TransitionSource.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept when the staff user is later deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_state} -> {self.to_state}"

