"""Domain objects and their public JSON representations."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PENDING = "pending"
REQUIRES_ACTION = "requires_action"
AUTHORIZED = "authorized"
CAPTURED = "captured"
DECLINED = "declined"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, REQUIRES_ACTION, AUTHORIZED, CAPTURED, DECLINED, FAILED, CANCELLED)
CANCELLABLE = frozenset({PENDING, REQUIRES_ACTION, AUTHORIZED})

FLOW_HOSTED = "hosted"
FLOW_DIRECT = "direct"

CAPTURE_AUTOMATIC = "automatic"
CAPTURE_MANUAL = "manual"
CAPTURE_METHODS = (CAPTURE_AUTOMATIC, CAPTURE_MANUAL)


def unix_now() -> int:
    """Current time as integer unix seconds (the API's timestamp format)."""
    return int(time.time())


@dataclass
class Refund:
    id: str
    transaction_id: str
    amount: int
    currency: str
    created: int
    merchant_reference: str | None = None
    status: str = "succeeded"

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "refund",
            "transaction_id": self.transaction_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "merchant_reference": self.merchant_reference,
            "created": self.created,
        }


@dataclass
class Transaction:
    id: str
    flow: str
    status: str
    amount: int
    currency: str
    merchant_reference: str
    capture_method: str
    created: int
    updated: int
    amount_captured: int = 0
    amount_refunded: int = 0
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    failure_code: str | None = None
    failure_message: str | None = None
    redirect_url: str | None = None
    return_url: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    # Private (never exposed): the token charged, and when an async card settles.
    token_id: str | None = None
    complete_at: float | None = None
    refunds: list[Refund] = field(default_factory=list)

    @property
    def has_card(self) -> bool:
        return self.card_last4 is not None

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "transaction",
            "flow": self.flow,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "amount_captured": self.amount_captured,
            "amount_refunded": self.amount_refunded,
            "merchant_reference": self.merchant_reference,
            "description": self.description,
            "metadata": dict(self.metadata),
            "capture_method": self.capture_method,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "redirect_url": self.redirect_url,
            "return_url": self.return_url,
            "card": ({"brand": self.card_brand, "last4": self.card_last4}
                     if self.card_last4 is not None else None),
            "refunds": [refund.to_public() for refund in self.refunds],
            "created": self.created,
            "updated": self.updated,
        }


@dataclass
class Token:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    behavior: str
    created: int
    used_by: str | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "token",
            "card": {"brand": self.brand, "last4": self.last4,
                     "exp_month": self.exp_month, "exp_year": self.exp_year},
            "used": self.used_by is not None,
            "created": self.created,
        }


@dataclass
class Event:
    """A webhook event plus its delivery bookkeeping."""

    id: str
    type: str
    transaction_id: str
    payload: str  # the exact JSON body that is POSTed
    created: int
    next_attempt_at: float
    dropped: bool = False
    duplicate: bool = False
    held: bool = False
    held_until: float | None = None
    delivered: bool = False
    delivered_at: float | None = None
    attempts: int = 0
    gave_up: bool = False
    last_error: str | None = None
    seq: int | None = None

    def to_ledger(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "transaction_id": self.transaction_id,
            "created": self.created,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "dropped": self.dropped,
            "duplicated": self.duplicate,
            "held": self.held,
            "gave_up": self.gave_up,
            "last_error": self.last_error,
        }
