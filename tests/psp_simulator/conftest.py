"""Fixtures for the PSP simulator tests.

The simulator runs as a real subprocess (``python -m psp_simulator``) on a
free 127.0.0.1 port with a temporary database; a tiny threaded HTTP server
collects its webhook deliveries.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from psp_simulator.process import SimulatorProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "sk_sim_test"
PUBLIC_KEY = "pk_sim_test"
WEBHOOK_SECRET = "whsec_sim_test"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# ---------------------------------------------------------------- webhook receiver
@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class WebhookReceiver:
    """Collects webhook POSTs; can be told to answer errors for the next N calls."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver._failures.pop(0) if receiver._failures else 200
                    receiver.deliveries.append(Delivery(dict(self.headers), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def clear(self) -> None:
        with self._lock:
            self.deliveries.clear()
            self._failures.clear()

    def events(self, successful_only: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            return [d.event for d in self.deliveries if d.answered == 200 or not successful_only]

    def wait_for_event(self, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = 5.0) -> dict[str, Any]:
        return wait_until(lambda: next((e for e in self.events() if predicate(e)), None),
                          timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- simulator process
# The product's launcher: ``python -m psp_simulator`` as a real subprocess.
SimProcess = SimulatorProcess


# ---------------------------------------------------------------- API client
class SimClient:
    """Small helper around requests for the simulator API."""

    def __init__(self, base_url: str, receiver: WebhookReceiver | None = None) -> None:
        self.base_url = base_url
        self.receiver = receiver
        self.http = requests.Session()
        self.http.trust_env = False

    def request(self, method: str, path: str, *, json: Any = None, key: str | None = SECRET_KEY,
                idem: str | None = None, headers: dict[str, str] | None = None,
                **kwargs: Any) -> requests.Response:
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        if idem is not None:
            all_headers["Idempotency-Key"] = idem
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.base_url + path, json=json, headers=all_headers,
                                 **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json={} if json is None else json, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    # conveniences -------------------------------------------------------
    def faults(self, **settings: Any) -> dict[str, Any]:
        response = self.post("/control/faults", settings)
        assert response.status_code == 200, response.text
        return response.json()

    def ledger(self) -> dict[str, Any]:
        response = self.get("/control/ledger")
        assert response.status_code == 200, response.text
        return response.json()

    def token(self, number: str = "4242424242424242", **fields: Any) -> str:
        body = {"number": number, "exp_month": 12, "exp_year": 2099, "cvc": "123", **fields}
        response = self.post("/v1/tokens", body, key=PUBLIC_KEY)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def charge(self, number: str = "4242424242424242", *, expect: int = 201,
               **fields: Any) -> dict[str, Any]:
        body = {"amount": 1000, "currency": "eur", "merchant_reference": "order-1",
                "token": self.token(number), **fields}
        idem = body.pop("idem", None)
        response = self.post("/v1/charges", body, idem=idem)
        assert response.status_code == expect, response.text
        return response.json()

    def session(self, *, expect: int = 201, **fields: Any) -> dict[str, Any]:
        body = {"amount": 2500, "currency": "EUR", "merchant_reference": "order-1",
                "return_url": "https://shop.example/return", **fields}
        response = self.post("/v1/sessions", body)
        assert response.status_code == expect, response.text
        return response.json()

    def txn(self, txn_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/transactions/{txn_id}")
        assert response.status_code == 200, response.text
        return response.json()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def sim_process(tmp_path_factory: pytest.TempPathFactory,
                webhook_receiver: WebhookReceiver) -> Iterator[SimProcess]:
    folder = tmp_path_factory.mktemp("psp_sim")
    process = SimProcess(folder / "sim.sqlite3", folder / "sim.log",
                         webhook_url=webhook_receiver.url).start()
    yield process
    process.stop()


@pytest.fixture
def sim(sim_process: SimProcess, webhook_receiver: WebhookReceiver) -> SimClient:
    """A client for a freshly reset simulator, webhooks pointed at the receiver."""
    client = SimClient(sim_process.url, webhook_receiver)
    assert client.post("/control/reset").status_code == 200
    assert client.post("/control/config", {"webhook_url": webhook_receiver.url}).ok
    webhook_receiver.clear()
    return client


@pytest.fixture
def make_process(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    """Factory for extra, test-owned simulator processes (stopped at teardown)."""
    processes: list[SimProcess] = []

    def factory(db_name: str = "own.sqlite3", **kwargs: Any) -> SimProcess:
        process = SimProcess(tmp_path / db_name, tmp_path / "own.log", **kwargs)
        processes.append(process)
        return process

    yield factory
    for process in processes:
        process.stop()
