"""Idempotency keys and injected faults."""

from __future__ import annotations

import threading
import time

import pytest
import requests

SESSION = {"amount": 990, "currency": "EUR", "merchant_reference": "order-idem",
           "return_url": "https://shop.example/return"}


def test_idempotent_replay(sim):
    first = sim.post("/v1/sessions", SESSION, idem="key-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # same body with another key order is the same request
    reordered = dict(reversed(list(SESSION.items())))
    replay = sim.post("/v1/sessions", reordered, idem="key-1")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
    assert len(sim.ledger()["transactions"]) == 1


def test_idempotency_key_reuse_is_422(sim):
    assert sim.post("/v1/sessions", SESSION, idem="key-2").status_code == 201
    other_body = sim.post("/v1/sessions", dict(SESSION, amount=991), idem="key-2")
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    txn_id = sim.ledger()["transactions"][0]["id"]
    other_path = sim.post(f"/v1/transactions/{txn_id}/cancel", SESSION, idem="key-2")
    assert other_path.status_code == 422
    assert len(sim.ledger()["transactions"]) == 1
    assert sim.txn(txn_id)["status"] == "pending"


def test_idempotency_keys_are_scoped_per_api_key(sim):
    token = sim.post("/v1/tokens", {"number": "4242424242424242", "exp_month": 1,
                                    "exp_year": 2099, "cvc": "123"},
                     key="pk_sim_test", idem="shared")
    assert token.status_code == 201
    assert sim.post("/v1/sessions", SESSION, idem="shared").status_code == 201


def test_errors_are_replayed_too(sim):
    first = sim.post("/v1/sessions", dict(SESSION, currency="EURO"), idem="key-bad")
    replay = sim.post("/v1/sessions", dict(SESSION, currency="EURO"), idem="key-bad")
    assert first.status_code == replay.status_code == 400
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.content == first.content


def test_concurrent_same_key_gets_409(sim):
    sim.faults(latency_ms=700)
    results: dict[str, requests.Response] = {}

    def first_request() -> None:
        results["first"] = sim.__class__(sim.base_url).post("/v1/sessions", SESSION,
                                                            idem="key-3")

    thread = threading.Thread(target=first_request)
    thread.start()
    time.sleep(0.25)
    second = sim.post("/v1/sessions", SESSION, idem="key-3")
    thread.join()
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_in_progress"
    assert results["first"].status_code == 201
    sim.faults(latency_ms=0)
    replay = sim.post("/v1/sessions", SESSION, idem="key-3")
    assert replay.status_code == 201 and replay.json() == results["first"].json()
    assert len(sim.ledger()["transactions"]) == 1


def test_lost_response_is_recovered_by_idempotent_retry(sim):
    token = sim.token()
    body = {"amount": 1200, "currency": "EUR", "merchant_reference": "order-lost",
            "token": token}
    sim.faults(lose_response_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        sim.post("/v1/charges", body, idem="key-lost")
    sim.faults(lose_response_rate=0.0)
    retry = sim.post("/v1/charges", body, idem="key-lost")
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    ledger = sim.ledger()
    assert len(ledger["transactions"]) == 1
    assert ledger["transactions"][0]["id"] == retry.json()["id"]
    assert retry.json()["status"] == "captured"
    assert ledger["fault_counts"]["lose_response"] == 1


def test_error_rate_answers_503_without_processing(sim):
    token = sim.token()
    body = {"amount": 1200, "currency": "EUR", "merchant_reference": "order-503",
            "token": token}
    sim.faults(error_rate=1.0)
    failed = sim.post("/v1/charges", body, idem="key-503")
    assert failed.status_code == 503
    assert failed.json()["error"]["type"] == "api_error"
    assert failed.json()["error"]["code"] == "service_unavailable"
    assert sim.post("/v1/sessions", SESSION).status_code == 503
    ledger = sim.ledger()
    assert ledger["transactions"] == [] and ledger["events"] == []
    assert ledger["fault_counts"]["error"] == 2
    sim.faults(error_rate=0.0)
    # not stored: the retry with the same key really runs (and the token is still unused)
    retry = sim.post("/v1/charges", body, idem="key-503")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers


def test_timeout_fault_holds_then_processes(sim):
    sim.faults(timeout_rate=1.0, timeout_seconds=0.4)
    started = time.monotonic()
    response = sim.post("/v1/sessions", SESSION)
    assert time.monotonic() - started >= 0.4
    assert response.status_code == 201
    assert sim.ledger()["fault_counts"]["timeout"] == 1


def test_latency_range(sim):
    sim.faults(latency_ms=[100, 150])
    started = time.monotonic()
    assert sim.get("/v1/transactions").status_code == 200
    assert 0.1 <= time.monotonic() - started < 1.0
    # faults never apply to the control API or the hosted pages
    sim.faults(error_rate=1.0)
    assert sim.get("/control/ledger").status_code == 200
    assert sim.http.get(sim.base_url + "/js/v1.js").status_code == 200


def test_same_seed_same_decisions(sim):
    def run() -> list[int]:
        return [sim.get("/v1/transactions").status_code for _ in range(24)]

    sim.faults(seed=1234, error_rate=0.5)
    first = run()
    sim.faults(seed=1234)
    second = run()
    assert first == second
    assert 200 in first and 503 in first
    sim.faults(seed=99)
    assert run() != first


def test_fault_settings_validation_and_read_back(sim):
    config = sim.faults(latency_ms=5, webhook_delay_ms=10)
    assert config["latency_ms"] == 5 and config["webhook_delay_ms"] == 10
    assert config["timeout_seconds"] == 15 and config["webhook_max_attempts"] == 12
    assert sim.get("/control/faults").json() == config
    unknown = sim.post("/control/faults", {"chaos": 1})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "chaos"
    out_of_range = sim.post("/control/faults", {"error_rate": 1.5})
    assert out_of_range.status_code == 400
    assert out_of_range.json()["error"]["param"] == "error_rate"
    # a rejected update changes nothing
    partly_bad = sim.post("/control/faults", {"latency_ms": 1, "lose_response_rate": -1})
    assert partly_bad.status_code == 400
    assert sim.get("/control/faults").json()["latency_ms"] == 5


def test_reset_wipes_everything(sim):
    sim.charge()
    sim.post("/v1/sessions", SESSION, idem="key-reset")
    sim.faults(latency_ms=1, seed=5)
    assert sim.ledger()["transactions"]
    reset = sim.post("/control/reset")
    assert reset.status_code == 200
    ledger = sim.ledger()
    assert ledger["transactions"] == [] and ledger["events"] == []
    assert set(ledger["fault_counts"].values()) == {0}
    assert sim.get("/control/faults").json()["latency_ms"] == 0
    fresh = sim.post("/v1/sessions", SESSION, idem="key-reset")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers
