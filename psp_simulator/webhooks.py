"""Webhook signing and at-least-once delivery from a background thread.

Events live in the database (see :meth:`Store.insert_event`); the dispatcher
polls for due ones, POSTs them and records every attempt, so a restarted
simulator resumes retrying where it stopped.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .faults import FaultInjector
from .models import Event
from .storage import Store

logger = logging.getLogger("psp_simulator.webhooks")

SIGNATURE_HEADER = "Sim-Signature"
MAX_BACKOFF_S = 60.0


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={compute_signature(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """Check a ``Sim-Signature`` header (what a receiver should do)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        received = parts["v1"]
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(compute_signature(secret, timestamp, body), received)


def backoff_seconds(base_ms: int, attempts: int) -> float:
    """Delay before the next try after ``attempts`` failures: base * 2**(n-1), max 60 s."""
    return min(base_ms / 1000.0 * (2 ** max(attempts - 1, 0)), MAX_BACKOFF_S)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery, not something to follow."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookDispatcher:
    """Delivers due events; one delivery pass at a time (guarded by a lock)."""

    def __init__(self, store: Store, faults: FaultInjector, secret: str, *,
                 url_getter: Callable[[], str | None], poll_interval: float = 0.1, timeout: float = 5.0) -> None:
        self._store = store
        self._faults = faults
        self._secret = secret
        self._url_getter = url_getter
        self._poll_interval = poll_interval
        self._timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        self._delivery_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="psp-sim-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Block while no delivery is in flight (used by reset)."""
        with self._delivery_lock:
            yield

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # keep the thread alive whatever happens
                logger.exception("webhook delivery pass failed")
            self._wake.wait(self._poll_interval)
            self._wake.clear()

    # ------------------------------------------------------------------ delivery
    def deliver_due(self) -> int:
        """One pass over due events; returns how many were delivered."""
        url = self._url_getter()
        if not url:
            return 0
        delivered = 0
        with self._delivery_lock:
            for event in self._store.due_events(time.time()):
                if self._stop.is_set():
                    break
                delivered += self._attempt(event, url)
        return delivered

    def flush(self) -> dict[str, Any]:
        """Try every undelivered, non-dropped event now, ignoring backoff and holds."""
        url = self._url_getter()
        result: dict[str, Any] = {"webhook_url": url, "attempted": 0, "delivered": 0,
                                  "failed": 0}
        if url:
            with self._delivery_lock:
                for event in self._store.flushable_events():
                    ok = self._attempt(event, url)
                    result["attempted"] += 1
                    result["delivered" if ok else "failed"] += 1
        with self._store.transaction():
            result["undelivered"] = sum(1 for e in self._store.all_events()
                                        if not e.delivered and not e.dropped)
        return result

    def _post(self, url: str, event: Event) -> tuple[int | None, str | None]:
        body = event.payload.encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, body),
            "Sim-Event-Id": event.id,
            "User-Agent": "psp-simulator-webhooks/1",
        })
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
                return response.status, None
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, None
        except Exception as exc:  # connection refused, timeout, bad URL ...
            return None, f"{type(exc).__name__}: {exc}"

    def _attempt(self, event: Event, url: str) -> bool:
        status, error = self._post(url, event)
        ok = status is not None and 200 <= status < 300
        now = time.time()
        settings = self._faults.settings
        with self._store.transaction():
            current = self._store.get_event(event.id)
            if current is None:  # wiped by a reset meanwhile
                return ok
            attempt = current.attempts + 1
            self._store.record_attempt(event.id, attempt, now, status, error)
            current.attempts = attempt
            if ok:
                current.delivered = True
                current.delivered_at = now
                current.last_error = None
            else:
                current.last_error = error or f"HTTP {status}"
                if attempt >= settings.webhook_max_attempts:
                    current.gave_up = True
                else:
                    current.next_attempt_at = now + backoff_seconds(
                        settings.webhook_retry_base_ms, attempt)
            self._store.save_event_delivery(current)
        logger.info("webhook %s %s attempt %d -> %s", event.id, event.type, attempt,
                    status if status is not None else error)
        if ok and event.duplicate:
            dup_status, dup_error = self._post(url, event)
            self._store.record_attempt(event.id, attempt, time.time(), dup_status, dup_error,
                                       duplicate=True)
            logger.info("webhook %s duplicated -> %s", event.id, dup_status or dup_error)
        return ok
