"""The webhook inbox: verify, store raw, apply once, in any order."""

import hashlib
import hmac
import json
import time
import uuid

import pytest
from django.db import OperationalError
from django.urls import reverse

from payments.models import Discrepancy, Payment, PaymentTransition, WebhookEvent
from payments.services import payment_open_session
from tests.payments.factories import start_payment
from tests.threads import run_at_once

SECRET = "whsec_sim_test"
URL = reverse("payments:webhook", args=["simulator"])


def event_body(payment: Payment, status: str, *, event_id: str | None = None, amount: int | None = None,
               refunds: list | None = None, event_type: str | None = None) -> bytes:
    txn = {"id": payment.psp_reference or "txn_test", "object": "transaction", "status": status,
           "amount": payment.amount_minor if amount is None else amount, "currency": payment.currency,
           "amount_captured": (payment.amount_minor if amount is None else amount) if status == "captured" else 0,
           "amount_refunded": sum(r["amount"] for r in refunds or []), "refunds": refunds or [],
           "merchant_reference": str(payment.pk), "created": int(time.time())}
    return json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex}", "type": event_type or f"transaction.{status}",
                       "created": int(time.time()), "data": {"object": txn}}).encode()


def sign(body: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def deliver(client, body: bytes, signature: str | None = None):
    headers = {} if signature == "" else {"Sim-Signature": signature or sign(body)}
    return client.post(URL, body, content_type="application/json", headers=headers)


@pytest.fixture
def pending_payment(db, psp):
    return payment_open_session(payment_id=start_payment("hosted").pk)


def test_a_signed_event_is_stored_and_applied(client, pending_payment):
    response = deliver(client, event_body(pending_payment, "captured", event_id="evt_1"))
    assert response.status_code == 200 and response.json() == {"status": "processed", "event": "evt_1"}
    pending_payment.refresh_from_db()
    assert pending_payment.state == "captured" and pending_payment.order.state == "paid"
    event = WebhookEvent.objects.get()
    assert event.processed_at and event.payment_id == pending_payment.pk and event.signature_valid
    assert json.loads(event.body)["id"] == "evt_1" and "Sim-Signature" in event.headers
    assert pending_payment.transitions.first().source == "webhook"


def test_a_duplicate_is_a_no_op(client, pending_payment):
    body = event_body(pending_payment, "captured", event_id="evt_dup")
    assert deliver(client, body).json()["status"] == "processed"
    again = deliver(client, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert WebhookEvent.objects.count() == 1
    assert pending_payment.transitions.filter(to_state="captured").count() == 1


@pytest.mark.parametrize(
    "signature",
    [
        "",  # missing
        "t=abc,v1=00",  # malformed
        "forged",
        "stale",
        "future",
    ],
)
def test_bad_signatures_get_400_and_write_nothing(client, pending_payment, signature):
    body = event_body(pending_payment, "captured")
    now = int(time.time())
    header = {"forged": lambda: sign(body, secret="whsec_wrong"), "stale": lambda: sign(body, at=now - 400),
              "future": lambda: sign(body, at=now + 400)}.get(signature, lambda: signature)()
    transitions = PaymentTransition.objects.count()
    response = deliver(client, body, header)
    assert response.status_code == 400 and "Invalid webhook" in response.json()["error"]
    assert WebhookEvent.objects.count() == 0 and PaymentTransition.objects.count() == transitions
    pending_payment.refresh_from_db()
    assert pending_payment.state == "pending"


def test_a_signed_body_that_was_altered_is_refused(client, pending_payment):
    body = event_body(pending_payment, "captured")
    response = deliver(client, body.replace(b'"captured"', b'"declined"', 1), sign(body))
    assert response.status_code == 400


def test_an_event_for_an_unknown_payment_is_stored_and_flagged(client, db, psp):
    payment = Payment(id=uuid.uuid4(), amount_minor=100, currency="EUR", psp_reference="txn_ghost")
    response = deliver(client, event_body(payment, "captured"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.processed_at and "Unknown payment" in event.error
    assert Discrepancy.objects.get().kind == "unknown_reference"


def test_events_out_of_order_never_move_a_payment_backwards(client, pending_payment):
    deliver(client, event_body(pending_payment, "captured"))
    deliver(client, event_body(pending_payment, "pending"))
    pending_payment.refresh_from_db()
    assert pending_payment.state == "captured"
    assert WebhookEvent.objects.count() == 2 and WebhookEvent.objects.filter(processed_at__isnull=True).count() == 0
    assert not Discrepancy.objects.exists()


def test_a_refund_event_before_the_capture_event(client, pending_payment):
    refund = {"id": "re_1", "amount": 300, "currency": "EUR", "status": "succeeded", "merchant_reference": None}
    deliver(client, event_body(pending_payment, "captured", refunds=[refund], event_type="refund.succeeded"))
    deliver(client, event_body(pending_payment, "captured"))
    pending_payment.refresh_from_db()
    assert pending_payment.state == "captured" and pending_payment.order.state == "paid"
    # A refund we never asked for is money we must look at.
    assert Discrepancy.objects.get().kind == "refund_mismatch"
    assert pending_payment.transitions.filter(to_state="captured").count() == 1


def test_a_capture_of_another_amount_does_not_pay_the_order(client, pending_payment):
    deliver(client, event_body(pending_payment, "captured", amount=1))
    pending_payment.refresh_from_db()
    assert pending_payment.state == "captured"
    assert pending_payment.order.state == "awaiting_payment"
    assert Discrepancy.objects.get().kind == "amount_mismatch"


def test_a_capture_after_a_final_state_becomes_a_discrepancy(client, pending_payment):
    deliver(client, event_body(pending_payment, "cancelled"))
    deliver(client, event_body(pending_payment, "captured"))
    pending_payment.refresh_from_db()
    assert pending_payment.state == "cancelled"
    assert Discrepancy.objects.get().kind == "late_event"


def test_if_we_cannot_store_the_event_the_psp_is_told_to_retry(client, pending_payment, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("database is away")

    monkeypatch.setattr(WebhookEvent.objects, "create", broken)
    response = deliver(client, event_body(pending_payment, "captured"))
    assert response.status_code == 503 and "error" in response.json()


def test_a_repeat_is_stored_applied_at_once_and_news_is_stored_raw_first(client, pending_payment):
    """`pending` repeats what the PSP's response told us: one INSERT, already applied, the payment untouched."""
    before = Payment.objects.get(pk=pending_payment.pk)
    assert deliver(client, event_body(pending_payment, "pending", event_id="evt_rep")).json()["status"] == "processed"
    event = WebhookEvent.objects.get(event_id="evt_rep")
    assert (event.payment_id, event.attempts, event.error) == (pending_payment.pk, 1, "") and event.processed_at
    after = Payment.objects.get(pk=pending_payment.pk)
    assert (after.state, after.updated_at, after.transitions.count()) == ("pending", before.updated_at, 1 + 1)


def test_a_failed_read_before_storing_falls_back_to_raw_first(client, pending_payment, monkeypatch):
    """The payment cannot be read when the event arrives: the event is stored raw and kept for a retry."""
    from payments import webhooks

    real_find = webhooks._find_payment

    def broken(*args, **kwargs):
        raise OperationalError("the replica is away")

    monkeypatch.setattr(webhooks, "_find_payment", broken)
    response = deliver(client, event_body(pending_payment, "captured", event_id="evt_raw"))
    assert response.status_code == 200 and response.json()["status"] == "stored"
    event = WebhookEvent.objects.get(event_id="evt_raw")
    assert event.processed_at is None and event.attempts == 1 and "replica is away" in event.error
    monkeypatch.setattr(webhooks, "_find_payment", real_find)
    assert webhooks.webhook_process(event=event)
    pending_payment.refresh_from_db()
    assert pending_payment.state == "captured"


def test_oversized_bodies_and_unknown_gateways_are_refused(client, db):
    assert client.post(URL, b"x" * (256 * 1024 + 1), content_type="application/json").status_code == 413
    # A signed 5 MB body: a JSON 413 from its Content-Length (not Django's HTML 400), nothing stored.
    big = b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    response = client.post(URL, big, content_type="application/json", HTTP_SIM_SIGNATURE=sign(big))
    assert response.status_code == 413 and response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Body too large: at most 262144 bytes."}
    lying = client.post(URL, b"{}", content_type="application/json", CONTENT_LENGTH="abc")
    assert lying.status_code == 400 and "error" in lying.json()
    assert not WebhookEvent.objects.exists()
    response = client.post(reverse("payments:webhook", args=["nope"]), b"{}", content_type="application/json")
    assert response.status_code == 404 and "error" in response.json()
    assert client.get(URL).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_the_same_event_five_times_at_once_makes_one_transition(postgres_only, psp):
    from django.test import Client

    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    body = event_body(payment, "captured", event_id="evt_race")
    results = run_at_once(5, lambda i: deliver(Client(), body).status_code)
    assert results == [200] * 5
    assert WebhookEvent.objects.count() == 1
    assert PaymentTransition.objects.filter(payment=payment, to_state="captured").count() == 1
    assert Payment.objects.get(pk=payment.pk).order.transitions.filter(to_state="paid").count() == 1
