"""Process-level behaviour: persistence across restarts, control switch, in-process server."""

from __future__ import annotations

import select
import socket
import threading
from pathlib import Path

import requests

from psp_simulator.config import Config, parse_config
from psp_simulator.server import make_server

SK = {"Authorization": "Bearer sk_sim_test"}


def _http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def test_state_survives_restart_and_control_is_off_by_default(make_process):
    http = _http()
    process = make_process(enable_control=False).start()
    assert "psp_simulator listening on http://127.0.0.1:" in process.log()
    created = http.post(f"{process.url}/v1/sessions", headers=SK, json={
        "amount": 4200, "currency": "usd", "merchant_reference": "persist-1",
        "return_url": "https://shop.example/return"})
    assert created.status_code == 201
    assert http.get(f"{process.url}/control/ledger", headers=SK).status_code == 404
    assert process.stop() == 0  # SIGTERM -> clean exit

    process.start()
    again = http.get(f"{process.url}/v1/transactions/{created.json()['id']}", headers=SK)
    assert again.status_code == 200
    assert again.json() == created.json()
    listing = http.get(f"{process.url}/v1/transactions", headers=SK,
                       params={"merchant_reference": "persist-1"}).json()
    assert [t["id"] for t in listing["data"]] == [created.json()["id"]]


def test_make_server_in_process(tmp_path: Path):
    server = make_server(Config(port=0, db_path=str(tmp_path / "inproc" / "db.sqlite3"),
                                enable_control=True, public_url="http://payments.test"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        http = _http()
        assert http.get(f"{server.url}/health").json() == {"status": "ok"}
        session = http.post(f"{server.url}/v1/sessions", headers=SK, json={
            "amount": 100, "currency": "JPY", "merchant_reference": "m",
            "return_url": "https://shop.example/return"}).json()
        assert session["redirect_url"] == f"http://payments.test/hosted/{session['id']}"
        page = http.get(f"{server.url}/hosted/{session['id']}")
        assert "JPY 100" in page.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert (tmp_path / "inproc" / "db.sqlite3").exists()


def test_a_burst_of_connections_is_queued_not_dropped(tmp_path: Path):
    """40 clients connect while the server is busy (it accepts none yet): the kernel queues them all.

    With socketserver's backlog of 5, the connections past the sixth had their SYNs dropped, and a shop
    whose connect timeout is 1 s gave up before the kernel's retry.
    """
    server = make_server(Config(port=0, db_path=str(tmp_path / "burst.sqlite3")))
    clients = [socket.socket() for _ in range(40)]
    try:
        for client in clients:
            client.setblocking(False)
            client.connect_ex(server.server_address[:2])
        _, writable, _ = select.select([], clients, [], 0.5)
        assert len(writable) == len(clients)
        assert all(client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for client in clients)
    finally:
        for client in clients:
            client.close()
        server.server_close()


def test_config_from_env_and_flags():
    env = {"PSP_SIM_PORT": "9000", "PSP_SIM_ENABLE_CONTROL": "1",
           "PSP_SIM_WEBHOOK_URL": "http://127.0.0.1:1/hook", "PSP_SIM_SECRET_KEY": "sk_env"}
    config = parse_config([], env)
    assert (config.port, config.enable_control, config.secret_key) == (9000, True, "sk_env")
    assert config.webhook_url == "http://127.0.0.1:1/hook"
    assert config.db_path == "var/psp_simulator.sqlite3" and config.host == "127.0.0.1"
    overridden = parse_config(["--port", "9100", "--db", "/tmp/x.sqlite3",
                               "--public-url", "http://sim.local"], env)
    assert (overridden.port, overridden.db_path) == (9100, "/tmp/x.sqlite3")
    assert overridden.public_url == "http://sim.local"
    assert parse_config([], {}).enable_control is False


def test_concurrent_requests(sim):
    from concurrent.futures import ThreadPoolExecutor

    body = {"amount": 500, "currency": "EUR", "merchant_reference": "busy",
            "return_url": "https://shop.example/return"}

    def create(index: int) -> tuple[int, str]:
        client = sim.__class__(sim.base_url)
        key = "same-key" if index % 2 else None  # half of them race on one key
        response = client.post("/v1/sessions", body, idem=key)
        return response.status_code, response.json().get("id", "")

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create, range(32)))
    assert all(status in (201, 409) for status, _ in results)
    keyed_ids = {txn_id for index, (status, txn_id) in enumerate(results)
                 if index % 2 and status == 201}
    assert len(keyed_ids) == 1  # every successful keyed request saw the same transaction
    assert sum(1 for index, (status, _) in enumerate(results) if not index % 2) == 16
    assert len(sim.ledger()["transactions"]) == 17


def test_full_card_numbers_are_never_stored_or_logged(sim, sim_process):
    number = "4000056655665556"
    sim.charge(number)
    session = sim.session()
    sim.http.post(session["redirect_url"], data={"action": "pay", "number": number,
                                                 "expiry": "12/34", "cvc": "987"},
                  allow_redirects=False)
    assert sim.txn(session["id"])["card"]["last4"] == "5556"
    for path in sim_process.db_path.parent.glob(sim_process.db_path.name + "*"):
        assert number.encode() not in path.read_bytes(), path
    assert number not in sim_process.log()
