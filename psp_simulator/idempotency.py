"""Idempotency keys, stored in the simulator database.

A key is scoped to the API key that sent it.  The first request with a key
registers it as *in progress*; when it finishes, its response (status and
exact body) is stored and replayed for every later request with the same key,
method, path and body.  5xx responses are forgotten so a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from .errors import ApiError, bad_request
from .storage import Store

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Begin:
    """Outcome of :meth:`IdempotencyKeys.begin`: exactly one field is set."""

    started: bool = False
    replay: tuple[int, bytes] | None = None
    error: ApiError | None = None


def scope_for(api_key: str) -> str:
    """Keys are stored per API key, without storing the API key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def fingerprint(method: str, target: str, body: bytes) -> str:
    """Identify a request; JSON bodies are compared semantically (key order ignored)."""
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True,
                               separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{method} {target}\n".encode() + canonical)
    return digest.hexdigest()


class IdempotencyKeys:
    def __init__(self, store: Store) -> None:
        self._store = store

    def begin(self, scope: str, key: str, method: str, target: str, body: bytes) -> Begin:
        if not key or len(key) > MAX_KEY_LENGTH:
            return Begin(error=bad_request("Idempotency-Key", "Idempotency-Key must be 1 to "
                                           f"{MAX_KEY_LENGTH} characters."))
        print_ = fingerprint(method, target, body)
        with self._store.transaction():
            row = self._store.get_idempotency(scope, key)
            if row is None:
                self._store.insert_idempotency(scope, key, print_, method, target, time.time())
                return Begin(started=True)
            if row["fingerprint"] != print_:
                return Begin(error=ApiError(
                    422, "idempotency_error", "idempotency_key_reused",
                    "This Idempotency-Key was already used with a different request "
                    f"(first used for {row['method']} {row['path']}).", "Idempotency-Key"))
            if row["state"] != "done":
                return Begin(error=ApiError(
                    409, "idempotency_error", "idempotency_in_progress",
                    "A request with this Idempotency-Key is still being processed; retry later.",
                    "Idempotency-Key"))
            return Begin(replay=(row["status_code"], bytes(row["response_body"])))

    def finish(self, scope: str, key: str, status: int, body: bytes) -> None:
        if status >= 500:
            self._store.delete_idempotency(scope, key)
        else:
            self._store.complete_idempotency(scope, key, status, body)

    def abort(self, scope: str, key: str) -> None:
        self._store.delete_idempotency(scope, key)
