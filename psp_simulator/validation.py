"""Helpers that read and validate request fields (400s name the field)."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from .errors import bad_request, missing_param
from .models import CAPTURE_AUTOMATIC, CAPTURE_METHODS

MAX_AMOUNT = 99_999_999_999
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for key in body:
        if key not in allowed:
            raise bad_request(key, f"Received unknown parameter: {key}.", "parameter_unknown")


def _present(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is not None


def amount(body: Mapping[str, Any], key: str = "amount", *, required: bool = True) -> int | None:
    """A positive integer amount in minor units."""
    if not _present(body, key):
        if required:
            raise missing_param(key)
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(key, f"{key} must be an integer number of minor units.")
    if not 1 <= value <= MAX_AMOUNT:
        raise bad_request(key, f"{key} must be between 1 and {MAX_AMOUNT}.")
    return value


def currency(body: Mapping[str, Any], key: str = "currency") -> str:
    if not _present(body, key):
        raise missing_param(key)
    value = body[key]
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise bad_request(key, "currency must be a 3-letter ISO 4217 code.", "invalid_currency")
    return value.upper()


def string(body: Mapping[str, Any], key: str, *, required: bool = False,
           max_length: int = 255) -> str | None:
    if not _present(body, key):
        if required:
            raise missing_param(key)
        return None
    value = body[key]
    if not isinstance(value, str):
        raise bad_request(key, f"{key} must be a string.")
    if required and not value.strip():
        raise bad_request(key, f"{key} must not be empty.")
    if len(value) > max_length:
        raise bad_request(key, f"{key} must be at most {max_length} characters.")
    return value


def url(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = string(body, key, required=required, max_length=2048)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request(key, f"{key} must be an absolute http(s) URL.")
    return value


def metadata(body: Mapping[str, Any], key: str = "metadata") -> dict[str, Any]:
    if not _present(body, key):
        return {}
    value = body[key]
    if not isinstance(value, dict):
        raise bad_request(key, "metadata must be a JSON object.")
    if len(json.dumps(value)) > 8192:
        raise bad_request(key, "metadata must be at most 8 KB of JSON.")
    return value


def capture_method(body: Mapping[str, Any], key: str = "capture_method") -> str:
    if not _present(body, key):
        return CAPTURE_AUTOMATIC
    value = body[key]
    if value not in CAPTURE_METHODS:
        raise bad_request(key, f"capture_method must be one of: {', '.join(CAPTURE_METHODS)}.")
    return value


def query_int(query: Mapping[str, str], key: str, *, minimum: int = 0,
              maximum: int | None = None) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(key, f"{key} must be an integer.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise bad_request(key, f"{key} must be {bound}.")
    return value
