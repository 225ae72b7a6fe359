"""The PSP protocol: frozen dataclasses in, normalised results out.

Adapters speak HTTP and never touch the ORM. Every request they make is
reported to an optional `recorder` callback, which the service layer uses to
store a redacted GatewayCall row.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

REDACTED = "[redacted]"
_SECRET_KEYS = {"token", "number", "card_number", "cvc", "cvv", "exp_month", "exp_year", "secret", "password",
                "client_secret", "payment_method", "source", "authorization", "api_key"}


class PspStatus(enum.StrEnum):
    """What the PSP says about a payment, normalised."""

    PENDING = "pending"  # the PSP has it; waiting for the customer or the bank
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"  # the card or bank said no: a normal result
    FAILED = "failed"  # the PSP refused the request for a non-card reason
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"  # the PSP has never heard of this payment
    UNKNOWN = "unknown"  # timeout, connection error, 5xx: we do not know


class RefundStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: uuid.UUID  # idempotency key and merchant reference
    amount_minor: int
    currency: str
    order_number: str
    return_url: str
    description: str = ""
    card_token: str = ""  # direct flow only


@dataclass(frozen=True)
class PspRefund:
    psp_reference: str
    amount_minor: int
    currency: str
    status: RefundStatus
    merchant_reference: str = ""


@dataclass(frozen=True)
class GatewayResult:
    status: PspStatus
    psp_reference: str = ""
    merchant_reference: str = ""
    redirect_url: str = ""
    amount_minor: int | None = None
    currency: str = ""
    amount_captured_minor: int = 0
    amount_refunded_minor: int = 0
    refunds: tuple[PspRefund, ...] = ()
    failure_code: str = ""
    failure_message: str = ""
    created: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    card_brand: str = ""  # the card's brand and last four digits, as the PSP reports them (receipts)
    card_last4: str = ""


@dataclass(frozen=True)
class RefundResult:
    status: RefundStatus
    psp_reference: str = ""
    amount_minor: int | None = None
    failure_message: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEnvelope:
    event_id: str
    event_type: str
    merchant_reference: str = ""
    psp_reference: str = ""
    # The PSP's signed view of the payment, or None when the adapter wants the
    # payment fetched afresh (events may arrive out of order).
    result: GatewayResult | None = None


@dataclass(frozen=True)
class CallRecord:
    """One HTTP exchange with a PSP, already redacted."""

    gateway: str
    operation: str
    method: str
    url: str
    idempotency_key: str
    request_body: Any
    status_code: int | None
    response_body: Any
    outcome: str  # ok | declined | rejected | unknown
    error: str
    duration_ms: int


Recorder = Callable[[CallRecord], None]


class InvalidWebhook(Exception):
    """A webhook whose signature, timestamp or body we cannot accept."""


class GatewayError(Exception):
    """The PSP refused or failed an operation we cannot express as a result."""


class Gateway(Protocol):
    name: str

    def create_session(self, request: PaymentRequest) -> GatewayResult: ...

    def charge(self, request: PaymentRequest) -> GatewayResult: ...

    def retrieve(self, psp_reference: str) -> GatewayResult: ...

    def find_by_reference(self, payment_id: uuid.UUID) -> GatewayResult: ...

    def capture(self, psp_reference: str, *, amount_minor: int, idempotency_key: str) -> GatewayResult: ...

    def cancel(self, psp_reference: str, *, idempotency_key: str) -> GatewayResult: ...

    def refund(self, psp_reference: str, *, refund_id: uuid.UUID, amount_minor: int, currency: str) -> RefundResult: ...

    def list_transactions(self, *, since: datetime, until: datetime) -> Iterator[GatewayResult]: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, *, verify: bool = True) -> WebhookEnvelope: ...

    def client_config(self) -> dict[str, str]: ...


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with card data and secrets masked."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if str(k).lower() in _SECRET_KEYS and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def ms(self) -> int:
        return int((time.monotonic() - self.start) * 1000)
