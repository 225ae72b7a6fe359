"""The Stripe adapter against localstripe, a fake Stripe run as a subprocess on 127.0.0.1.

localstripe is GPL-3.0 and a dev requirement only: it runs in its own process
(tests/stripe/localstripe_server.py); neither the shop nor these tests import it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection

from psp_simulator.process import free_port

HERE = Path(__file__).resolve().parent
SECRET_KEY = "sk_test_reckon"
PUBLISHABLE_KEY = "pk_test_reckon"
# Cards as localstripe treats them (4000 0000 0000 0002 does not decline there).
CARDS = {
    "success": "4242424242424242",
    "declined": "4000000000000341",
    "action": "4000002500003155",
}
# The events the shop's endpoint is subscribed to (docs/stripe.md).
EVENTS = ["payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
          "payment_intent.processing", "payment_intent.requires_action", "payment_intent.amount_capturable_updated",
          "checkout.session.completed", "checkout.session.expired", "charge.refunded"]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class LocalStripe:
    """What the tests do at localstripe: make cards, read its books, act as the customer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {SECRET_KEY}"

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, f"{self.url}{path}", timeout=10, **kwargs)

    def reset(self) -> None:
        self._request("DELETE", "/_config/data").raise_for_status()
        # Nothing is delivered unless a test points the webhooks at a shop.
        self.point_webhooks_at("http://127.0.0.1:9/", secret="whsec_nowhere", events=["reckon.nothing"])

    def point_webhooks_at(self, url: str, *, secret: str, events: list[str] | None = None) -> None:
        body = {"url": url, "secret": secret, "events": events or EVENTS}
        self._request("POST", "/_config/webhooks/reckon", json=body).raise_for_status()

    def payment_method(self, card: str = CARDS["success"]) -> str:
        """A PaymentMethod id, as Stripe.js makes it in the customer's browser."""
        response = self._request("POST", "/v1/payment_methods", data={
            "type": "card", "card[number]": card, "card[exp_month]": "12", "card[exp_year]": "2034",
            "card[cvc]": "123"})
        response.raise_for_status()
        return response.json()["id"]

    def intents(self) -> list[dict]:
        response = self._request("GET", "/v1/payment_intents", params={"limit": 100})
        response.raise_for_status()
        return response.json()["data"]

    def intent(self, intent_id: str) -> dict:
        response = self._request("GET", f"/v1/payment_intents/{intent_id}")
        response.raise_for_status()
        return response.json()

    def refunds(self, intent_id: str) -> list[dict]:
        response = self._request("GET", "/v1/refunds", params={"payment_intent": intent_id, "limit": 100})
        response.raise_for_status()
        return response.json()["data"]

    def authenticate(self, redirect_url: str, *, approve: bool = True) -> str:
        """The customer on the 3-D Secure page; returns where they are sent back (our return URL)."""
        response = requests.get(redirect_url + ("" if approve else "?fail=1"), allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text[:300]
        return response.headers["Location"]


def sign(body: bytes, secret: str, *, at: int | None = None) -> str:
    """A Stripe-Signature header, made the way Stripe (and localstripe) make it."""
    t = int(time.time()) if at is None else at
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def event_body(intent: dict, event_type: str, *, event_id: str | None = None, **overrides) -> bytes:
    """A Stripe event about a PaymentIntent; `overrides` change the payload's (untrusted) copy of it."""
    return json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:14]}", "object": "event", "type": event_type,
                       "created": int(time.time()), "data": {"object": {**intent, **overrides}}}).encode()


def local_path(url: str) -> str:
    """A shop URL as the Django test client takes it."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(HERE / "localstripe_server.py"), str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"localstripe exited early:\n{log_path.read_text(errors='replace')}")
            try:
                if requests.get(f"{url}/js.stripe.com/v3/", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def localstripe(localstripe_url, settings) -> LocalStripe:
    """An empty localstripe with the shop's settings pointed at it and Stripe as the default gateway."""
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    # Fresh per test, so that a late event from an earlier test is refused.
    settings.STRIPE_WEBHOOK_SECRET = f"whsec_{uuid.uuid4().hex}"
    settings.PSP_READ_TIMEOUT = 5
    fake = LocalStripe(localstripe_url)
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture
def stripe_shop(live_server, localstripe, settings) -> LocalStripe:
    """The live shop wired to localstripe both ways: return URLs and signed webhooks."""
    if connection.vendor != "postgresql":
        # The live server's threads, localstripe's webhooks and the test share
        # one in-memory SQLite database, which locks under them.
        pytest.skip("live-server tests run on PostgreSQL (scripts/test does)")
    settings.SHOP_BASE_URL = live_server.url
    localstripe.point_webhooks_at(f"{live_server.url}/payments/webhooks/stripe/", secret=settings.STRIPE_WEBHOOK_SECRET)
    return localstripe
