"""Plant transactions straight into the simulator's ledger with /v1 calls (secret key), behind our back."""

from __future__ import annotations

import uuid
from datetime import timedelta

import requests
from django.utils import timezone

from payments.models import Payment
from payments.services import payment_open_session
from tests.payments.factories import start_payment
from tests.psp import CARDS, SECRET, Simulator


def v1(psp: Simulator, method: str, path: str, body: dict | None = None) -> dict:
    response = requests.request(method, f"{psp.url}/v1/{path}", json=body,
                                headers={"Authorization": f"Bearer {SECRET}", "Idempotency-Key": uuid.uuid4().hex},
                                timeout=10)
    assert response.status_code < 300, response.text[:500]
    return response.json()


def plant_charge(psp: Simulator, *, merchant_reference: str, amount: int, currency: str = "EUR",
                 card: str = CARDS["success"]) -> dict:
    """A direct charge the PSP made that no request of ours asked for."""
    return v1(psp, "POST", "charges", {"amount": amount, "currency": currency, "token": psp.token(card),
                                       "merchant_reference": merchant_reference,
                                       "return_url": "http://127.0.0.1/return"})


def plant_refund(psp: Simulator, *, transaction_id: str, amount: int, merchant_reference: str = "rogue") -> dict:
    return v1(psp, "POST", f"transactions/{transaction_id}/refunds",
              {"amount": amount, "merchant_reference": merchant_reference})


def plant_cancel(psp: Simulator, *, transaction_id: str) -> dict:
    return v1(psp, "POST", f"transactions/{transaction_id}/cancel", {})


def pending_hosted_payment(**order_kwargs) -> Payment:
    """A payment the customer is paying on the PSP's hosted page (pending at the PSP and here)."""
    payment = payment_open_session(payment_id=start_payment("hosted", **order_kwargs).pk)
    assert payment.state == "pending" and payment.psp_reference
    return payment


def make_due(*payments: Payment, ago: timedelta = timedelta(seconds=1)) -> None:
    """Move the payments' next check into the past (time travel without a clock library)."""
    Payment.objects.filter(pk__in=[p.pk for p in payments]).update(next_check_at=timezone.now() - ago)


def age(*payments: Payment, by: timedelta) -> None:
    """Make payments older: created, deadline and next check all move back together."""
    for payment in payments:
        payment.refresh_from_db()
        Payment.objects.filter(pk=payment.pk).update(
            created_at=payment.created_at - by, deadline_at=payment.deadline_at - by,
            next_check_at=(payment.next_check_at - by) if payment.next_check_at else None)
