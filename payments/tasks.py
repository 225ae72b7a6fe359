"""django-q2 task functions: thin wrappers around services; each safe to run twice."""

from __future__ import annotations

import uuid

from payments.services import payment_charge


def charge_payment(payment_id: str) -> str:
    """Charge a direct payment's card token (queued by payment_start)."""
    return payment_charge(payment_id=uuid.UUID(payment_id)).state
