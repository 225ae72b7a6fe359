"""Framework-free request/response objects used between the HTTP handler and the app."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError, bad_request


@dataclass
class Request:
    method: str
    target: str  # raw request target: path plus optional query
    headers: Mapping[str, str] | Message
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; the last value wins for repeated names."""
        parsed = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.strip() if isinstance(value, str) else None

    def form(self) -> dict[str, str]:
        """``application/x-www-form-urlencoded`` body as a flat dict."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def with_headers(self, *headers: tuple[str, str]) -> "Response":
        self.headers.extend(headers)
        return self


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def json_response(status: int, payload: Any) -> Response:
    return Response(status, encode_json(payload))


def error_response(error: ApiError) -> Response:
    return json_response(error.status, error.to_body())


def html_response(status: int, html: str) -> Response:
    return Response(status, html.encode("utf-8"), "text/html; charset=utf-8",
                    [("Cache-Control", "no-store")])


def redirect(location: str, status: int = 303) -> Response:
    return Response(status, b"", "text/plain; charset=utf-8",
                    [("Location", location), ("Cache-Control", "no-store")])


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object request body (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request(None, "The request body is not valid JSON.", "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request(None, "The request body must be a JSON object.", "invalid_json")
    return body
