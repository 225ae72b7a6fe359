"""Fault injection: settings, deterministic decisions and counters.

Every decision is drawn from a seeded :class:`random.Random`.  API requests
always consume exactly four draws (latency, timeout, error, lost response)
and webhook events exactly three (drop, duplicate, reorder), whatever the
settings, so the same seed plus the same sequence of requests yields the same
decisions.  API and webhook decisions use two streams derived from the seed
(``"api:<seed>"`` and ``"webhook:<seed>"``) so that background events (async
cards settling) cannot shift the API sequence.

Settings and counters are kept in the simulator database.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import bad_request
from .storage import Store

_SETTINGS_KEY = "fault_settings"
_COUNTS_KEY = "fault_counts"

COUNT_KEYS = ("latency", "timeout", "error", "lose_response", "webhook_drop",
              "webhook_duplicate", "webhook_delay", "webhook_reorder")

_MAX_MS = 600_000


@dataclass(frozen=True)
class FaultSettings:
    seed: int | None = None
    latency_ms: int | tuple[int, int] = 0
    timeout_rate: float = 0.0
    timeout_seconds: float = 15.0
    error_rate: float = 0.0
    lose_response_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_ms: int = 0
    webhook_reorder_rate: float = 0.0
    webhook_reorder_hold_ms: int = 5000
    async_delay_ms: int = 3000
    webhook_retry_base_ms: int = 1000
    webhook_max_attempts: int = 12

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if isinstance(self.latency_ms, tuple):
            data["latency_ms"] = list(self.latency_ms)
        return data


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(FaultSettings))


# ---------------------------------------------------------------- validators
def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rate(key: str, value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise bad_request(key, f"{key} must be a number between 0 and 1.")
    return float(value)


def _int_range(low: int, high: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if not _is_int(value) or not low <= value <= high:
            raise bad_request(key, f"{key} must be an integer between {low} and {high}.")
        return value
    return check


def _seed(key: str, value: Any) -> int | None:
    if value is not None and not _is_int(value):
        raise bad_request(key, "seed must be an integer or null.")
    return value


def _latency(key: str, value: Any) -> int | tuple[int, int]:
    if _is_int(value) and 0 <= value <= _MAX_MS:
        return value
    if (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value)
            and 0 <= value[0] <= value[1] <= _MAX_MS):
        return (value[0], value[1])
    raise bad_request(key, "latency_ms must be an integer or [min, max] (milliseconds).")


def _seconds(key: str, value: Any) -> float:
    if not _is_number(value) or not 0 < value <= 600:
        raise bad_request(key, f"{key} must be a number of seconds in (0, 600].")
    return float(value)


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "seed": _seed,
    "latency_ms": _latency,
    "timeout_rate": _rate,
    "timeout_seconds": _seconds,
    "error_rate": _rate,
    "lose_response_rate": _rate,
    "webhook_drop_rate": _rate,
    "webhook_duplicate_rate": _rate,
    "webhook_delay_ms": _int_range(0, _MAX_MS),
    "webhook_reorder_rate": _rate,
    "webhook_reorder_hold_ms": _int_range(0, _MAX_MS),
    "async_delay_ms": _int_range(0, _MAX_MS),
    "webhook_retry_base_ms": _int_range(1, 3_600_000),
    "webhook_max_attempts": _int_range(1, 100),
}
assert set(_VALIDATORS) == set(FIELD_NAMES)


def validate_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a partial update; unknown keys and bad values give a 400."""
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        validator = _VALIDATORS.get(key)
        if validator is None:
            raise bad_request(key, f"Unknown fault setting: {key}.", "parameter_unknown")
        clean[key] = validator(key, value)
    return clean


# ---------------------------------------------------------------- decisions
@dataclass(frozen=True)
class RequestFaults:
    latency_s: float = 0.0
    timeout_s: float = 0.0
    error: bool = False
    lose_response: bool = False


@dataclass(frozen=True)
class WebhookFaults:
    drop: bool = False
    duplicate: bool = False
    reorder: bool = False
    delay_s: float = 0.0
    hold_s: float = 0.0


class FaultInjector:
    """Holds the fault settings and makes every fault decision."""

    def __init__(self, store: Store) -> None:
        self._store = store
        with store.transaction():
            stored = store.kv_get(_SETTINGS_KEY) or {}
            counts = store.kv_get(_COUNTS_KEY) or {}
        try:
            self._settings = dataclasses.replace(
                FaultSettings(), **validate_changes({k: v for k, v in stored.items()
                                                     if k in _VALIDATORS}))
        except Exception:  # a corrupt row must not prevent start-up
            self._settings = FaultSettings()
        self._counts = {key: int(counts.get(key, 0)) for key in COUNT_KEYS}
        self._api_rng, self._webhook_rng = self._make_rngs(self._settings.seed)

    @staticmethod
    def _make_rngs(seed: int | None) -> tuple[random.Random, random.Random]:
        if seed is None:
            return random.Random(), random.Random()
        return random.Random(f"api:{seed}"), random.Random(f"webhook:{seed}")

    # All state is guarded by the store lock (one lock for everything avoids
    # lock-ordering problems between request threads and DB work).
    @property
    def settings(self) -> FaultSettings:
        with self._store.transaction():
            return self._settings

    def counts(self) -> dict[str, int]:
        with self._store.transaction():
            return dict(self._counts)

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a partial update (atomic); giving ``seed`` always reseeds."""
        clean = validate_changes(changes)
        with self._store.transaction():
            self._settings = dataclasses.replace(self._settings, **clean)
            if "seed" in clean:
                self._api_rng, self._webhook_rng = self._make_rngs(clean["seed"])
            self._store.kv_set(_SETTINGS_KEY, self._settings.to_dict())
            return self._settings.to_dict()

    def reset(self) -> None:
        with self._store.transaction():
            self._settings = FaultSettings()
            self._counts = {key: 0 for key in COUNT_KEYS}
            self._api_rng, self._webhook_rng = self._make_rngs(None)
            self._store.kv_set(_SETTINGS_KEY, self._settings.to_dict())
            self._store.kv_set(_COUNTS_KEY, self._counts)

    def _bump(self, *keys: str) -> None:
        if keys:
            for key in keys:
                self._counts[key] += 1
            self._store.kv_set(_COUNTS_KEY, self._counts)

    def decide_request(self) -> RequestFaults:
        """Faults for one /v1 API request."""
        with self._store.transaction():
            s, rng = self._settings, self._api_rng
            r_latency, r_timeout, r_error, r_lose = (rng.random(), rng.random(),
                                                     rng.random(), rng.random())
            if isinstance(s.latency_ms, tuple):
                low, high = s.latency_ms
                latency_ms = min(high, low + int(r_latency * (high - low + 1)))
            else:
                latency_ms = s.latency_ms
            error = r_error < s.error_rate
            timeout = not error and r_timeout < s.timeout_rate
            lose = not error and r_lose < s.lose_response_rate
            fired = [name for name, hit in (("latency", latency_ms > 0), ("timeout", timeout),
                                            ("error", error), ("lose_response", lose)) if hit]
            self._bump(*fired)
            return RequestFaults(latency_s=latency_ms / 1000.0,
                                 timeout_s=s.timeout_seconds if timeout else 0.0,
                                 error=error, lose_response=lose)

    def decide_webhook(self) -> WebhookFaults:
        """Faults for one newly recorded webhook event."""
        with self._store.transaction():
            s, rng = self._settings, self._webhook_rng
            r_drop, r_duplicate, r_reorder = rng.random(), rng.random(), rng.random()
            drop = r_drop < s.webhook_drop_rate
            duplicate = not drop and r_duplicate < s.webhook_duplicate_rate
            reorder = not drop and r_reorder < s.webhook_reorder_rate
            delayed = not drop and s.webhook_delay_ms > 0
            fired = [name for name, hit in (("webhook_drop", drop),
                                            ("webhook_duplicate", duplicate),
                                            ("webhook_delay", delayed),
                                            ("webhook_reorder", reorder)) if hit]
            self._bump(*fired)
            return WebhookFaults(drop=drop, duplicate=duplicate, reorder=reorder,
                                 delay_s=s.webhook_delay_ms / 1000.0 if delayed else 0.0,
                                 hold_s=s.webhook_reorder_hold_ms / 1000.0)
