"""Webhook events: signatures, retries, async settlement and webhook faults."""

from __future__ import annotations

import hashlib
import hmac
import time

from tests.psp_simulator.conftest import wait_until

WHSEC = b"whsec_sim_test"


def verify(header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(WHSEC, f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def test_signed_event_and_retry_after_500(sim):
    sim.faults(webhook_retry_base_ms=50)
    receiver = sim.receiver
    receiver.fail_next(1, status=500)
    txn = sim.charge()
    event = receiver.wait_for_event(lambda e: e["type"] == "transaction.captured")
    assert event["id"].startswith("evt_") and isinstance(event["created"], int)
    assert event["data"]["object"]["id"] == txn["id"]
    assert event["data"]["object"]["status"] == "captured"
    attempts = [d for d in receiver.deliveries if d.event["id"] == event["id"]]
    assert [d.answered for d in attempts] == [500, 200]
    for delivery in attempts:
        assert delivery.headers["Content-Type"] == "application/json"
        assert verify(delivery.headers["Sim-Signature"], delivery.body)
        assert not verify(delivery.headers["Sim-Signature"], delivery.body + b" ")
    # The receiver records a delivery before it answers, and the simulator records the answer after it: wait.
    ledger_event = wait_until(lambda: next((e for e in sim.ledger()["events"]
                                            if e["id"] == event["id"] and e["delivered"]), None))
    assert ledger_event["delivered"] is True and ledger_event["attempts"] == 2
    assert ledger_event["transaction_id"] == txn["id"] and ledger_event["dropped"] is False


def test_gives_up_after_max_attempts_and_flush(sim):
    sim.faults(webhook_retry_base_ms=20, webhook_max_attempts=3)
    sim.receiver.fail_next(3, status=503)
    txn = sim.charge()

    def gave_up():
        events = sim.ledger()["events"]
        return events and events[0]["gave_up"]

    deadline = time.monotonic() + 5
    while not gave_up():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    event = sim.ledger()["events"][0]
    assert event["attempts"] == 3 and event["delivered"] is False
    flushed = sim.post("/control/webhooks/flush").json()
    assert flushed["attempted"] == 1 and flushed["delivered"] == 1
    assert sim.ledger()["events"][0]["delivered"] is True
    assert sim.receiver.events()[-1]["data"]["object"]["id"] == txn["id"]


def test_refund_event_carries_refund(sim):
    txn = sim.charge(amount=800)
    refund = sim.post(f"/v1/transactions/{txn['id']}/refunds", {"amount": 300}).json()
    event = sim.receiver.wait_for_event(lambda e: e["type"] == "refund.succeeded")
    assert event["data"]["refund"] == refund
    assert event["data"]["object"]["amount_refunded"] == 300


def test_async_card_completes_and_sends_webhook(sim):
    sim.faults(async_delay_ms=200)
    txn = sim.charge("4000000000000077")
    assert txn["status"] == "pending"
    event = sim.receiver.wait_for_event(
        lambda e: e["type"] == "transaction.captured" and e["data"]["object"]["id"] == txn["id"])
    assert event["data"]["object"]["amount_captured"] == 1000
    assert sim.txn(txn["id"])["status"] == "captured"
    types = [e["type"] for e in sim.receiver.events() if e["data"]["object"]["id"] == txn["id"]]
    assert types == ["transaction.pending", "transaction.captured"]


def test_control_completes_pending_transaction(sim):
    sim.faults(async_delay_ms=60_000)
    txn = sim.charge("4000000000000077")
    done = sim.post(f"/control/transactions/{txn['id']}/complete", {"status": "declined"})
    assert done.status_code == 200
    assert done.json()["status"] == "declined" and done.json()["failure_code"] == "card_declined"
    again = sim.post(f"/control/transactions/{txn['id']}/complete", {"status": "captured"})
    assert again.status_code == 409
    bad = sim.post(f"/control/transactions/{txn['id']}/complete", {"status": "refunded"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


def test_webhook_drop_and_duplicate(sim):
    sim.faults(webhook_drop_rate=1.0)
    dropped_txn = sim.charge()
    sim.faults(webhook_drop_rate=0.0, webhook_duplicate_rate=1.0)
    duplicated_txn = sim.charge()
    sim.receiver.wait_for_event(lambda e: e["data"]["object"]["id"] == duplicated_txn["id"])
    time.sleep(0.3)
    events = sim.receiver.events()
    assert not [e for e in events if e["data"]["object"]["id"] == dropped_txn["id"]]
    copies = [e for e in events if e["data"]["object"]["id"] == duplicated_txn["id"]]
    assert len(copies) == 2 and copies[0] == copies[1]
    ledger = sim.ledger()
    dropped = next(e for e in ledger["events"] if e["transaction_id"] == dropped_txn["id"])
    assert dropped["dropped"] is True and dropped["delivered"] is False
    assert ledger["fault_counts"]["webhook_drop"] == 1
    assert ledger["fault_counts"]["webhook_duplicate"] == 1
    assert sim.post("/control/webhooks/flush").json()["attempted"] == 0


def test_webhook_reorder(sim):
    sim.faults(webhook_reorder_rate=1.0, webhook_reorder_hold_ms=5000)
    txn = sim.charge(capture_method="manual")  # transaction.authorized is held back
    sim.faults(webhook_reorder_rate=0.0)
    sim.post(f"/v1/transactions/{txn['id']}/capture")
    sim.receiver.wait_for_event(lambda e: e["type"] == "transaction.authorized")
    types = [e["type"] for e in sim.receiver.events()]
    assert types == ["transaction.captured", "transaction.authorized"]
    assert sim.ledger()["fault_counts"]["webhook_reorder"] == 1


def test_webhook_delay(sim):
    sim.faults(webhook_delay_ms=400)
    started = time.monotonic()
    sim.charge()
    sim.receiver.wait_for_event(lambda e: e["type"] == "transaction.captured")
    assert time.monotonic() - started >= 0.4


def test_no_webhook_url_stores_events_only(sim):
    assert sim.post("/control/config", {"webhook_url": None}).json()["webhook_url"] is None
    sim.charge()
    time.sleep(0.3)
    assert sim.receiver.events() == []
    assert sim.post("/control/webhooks/flush").json()["attempted"] == 0
    events = sim.ledger()["events"]
    assert len(events) == 1 and events[0]["delivered"] is False
    # once a URL is configured the backlog is delivered
    sim.post("/control/config", {"webhook_url": sim.receiver.url})
    sim.receiver.wait_for_event(lambda e: e["type"] == "transaction.captured")
