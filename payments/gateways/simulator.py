"""Adapter for the bundled PSP simulator (psp_simulator/, docs/psp-simulator.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from payments.gateways.base import (
    CallRecord,
    GatewayResult,
    InvalidWebhook,
    PaymentRequest,
    PspRefund,
    PspStatus,
    Recorder,
    RefundResult,
    RefundStatus,
    Stopwatch,
    WebhookEnvelope,
    redact,
)

_STATUS = {
    "pending": PspStatus.PENDING,
    "requires_action": PspStatus.PENDING,
    "authorized": PspStatus.AUTHORIZED,
    "captured": PspStatus.CAPTURED,
    "declined": PspStatus.DECLINED,
    "failed": PspStatus.FAILED,
    "cancelled": PspStatus.CANCELLED,
}


class _Response:
    """What came back from one HTTP exchange: a body, or nothing we can trust."""

    def __init__(self, status_code: int | None, body: Any, error: str = "") -> None:
        self.status_code = status_code
        self.body = body if isinstance(body, dict) else {}
        self.error = error

    @property
    def unknown(self) -> bool:
        """No answer, or a 5xx: the request may or may not have been carried out."""
        return self.status_code is None or self.status_code >= 500

    @property
    def error_code(self) -> str:
        return str((self.body.get("error") or {}).get("code", ""))

    @property
    def error_message(self) -> str:
        return str((self.body.get("error") or {}).get("message", ""))[:255]


class SimulatorGateway:
    name = "simulator"

    def __init__(
        self,
        *,
        base_url: str,
        public_url: str,
        secret_key: str,
        public_key: str,
        webhook_secret: str,
        connect_timeout: float,
        read_timeout: float,
        webhook_tolerance: int,
        recorder: Recorder | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.secret_key = secret_key
        self.public_key = public_key
        self.webhook_secret = webhook_secret
        self.timeout = (connect_timeout, read_timeout)
        self.webhook_tolerance = webhook_tolerance
        self.recorder = recorder
        self.http = requests.Session()

    # -- HTTP -------------------------------------------------------------
    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: dict | None = None,
        params: dict | None = None,
        idempotency_key: str = "",
    ) -> _Response:
        headers = {"Authorization": f"Bearer {self.secret_key}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = f"{self.base_url}{path}"
        watch = Stopwatch()
        try:
            raw = self.http.request(method, url, json=body, params=params, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            response = _Response(None, None, f"{type(exc).__name__}: {exc}"[:500])
        else:
            try:
                parsed = raw.json()
            except ValueError:
                parsed = None
            error = "" if raw.ok else f"HTTP {raw.status_code}"
            if raw.ok and not isinstance(parsed, dict):
                # A 2xx we cannot read is as good as no answer.
                response = _Response(None, None, f"unreadable {raw.status_code} response")
            else:
                response = _Response(raw.status_code, parsed, error)
        self._record(operation, method, url, params, body, idempotency_key, response, watch.ms)
        return response

    def _record(self, operation, method, url, params, body, key, response: _Response, ms: int) -> None:
        if self.recorder is None:
            return
        if response.unknown:
            outcome = "unknown"
        elif response.status_code >= 400:
            outcome = "rejected"
        elif response.body.get("status") == "declined":
            outcome = "declined"
        else:
            outcome = "ok"
        if params:
            url = f"{url}?{requests.compat.urlencode(params)}"
        self.recorder(CallRecord(
            gateway=self.name, operation=operation, method=method, url=url[:500], idempotency_key=key,
            request_body=redact(body) if body is not None else None, status_code=response.status_code,
            response_body=redact(response.body) if response.body else None, outcome=outcome,
            error=response.error, duration_ms=ms,
        ))

    # -- mapping ----------------------------------------------------------
    @staticmethod
    def to_result(txn: Mapping[str, Any]) -> GatewayResult:
        refunds = tuple(
            PspRefund(
                psp_reference=str(r.get("id", "")),
                amount_minor=int(r.get("amount", 0)),
                currency=str(r.get("currency", "")),
                status=RefundStatus.SUCCEEDED if r.get("status") == "succeeded" else RefundStatus.PENDING,
                merchant_reference=str(r.get("merchant_reference") or ""),
            )
            for r in txn.get("refunds") or ()
        )
        created = txn.get("created")
        return GatewayResult(
            status=_STATUS.get(str(txn.get("status")), PspStatus.UNKNOWN),
            psp_reference=str(txn.get("id", "")),
            merchant_reference=str(txn.get("merchant_reference") or ""),
            redirect_url=str(txn.get("redirect_url") or ""),
            amount_minor=txn.get("amount"),
            currency=str(txn.get("currency") or ""),
            amount_captured_minor=int(txn.get("amount_captured") or 0),
            amount_refunded_minor=int(txn.get("amount_refunded") or 0),
            refunds=refunds,
            failure_code=str(txn.get("failure_code") or ""),
            failure_message=str(txn.get("failure_message") or "")[:255],
            created=datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int | float) else None,
            raw=redact(dict(txn)),
            card_brand=str((txn.get("card") or {}).get("brand") or "")[:20],
            card_last4=str((txn.get("card") or {}).get("last4") or "")[-4:],
        )

    def _write_result(self, response: _Response) -> GatewayResult:
        """Map the answer to a request that creates or changes a transaction."""
        if response.unknown:
            return GatewayResult(status=PspStatus.UNKNOWN, failure_message=response.error)
        if response.body.get("object") == "transaction":
            return self.to_result(response.body)
        error = response.body.get("error") or {}
        if isinstance(error.get("transaction"), dict):
            # e.g. cancel refused because it was captured meanwhile: the
            # transaction tells us where it stands.
            return self.to_result(error["transaction"])
        if response.status_code == 409 and response.error_code == "idempotency_in_progress":
            # The same request is still running at the PSP: ask again later.
            return GatewayResult(status=PspStatus.UNKNOWN, failure_message="request still in progress at the PSP")
        return GatewayResult(
            status=PspStatus.FAILED,
            failure_code=response.error_code or f"http_{response.status_code}",
            failure_message=response.error_message or response.error,
            raw=redact(response.body),
        )

    # -- operations -------------------------------------------------------
    def create_session(self, request: PaymentRequest) -> GatewayResult:
        body = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "merchant_reference": str(request.payment_id),
            "return_url": request.return_url,
            "description": request.description,
            "metadata": {"order_number": request.order_number},
        }
        return self._write_result(self._call("create_session", "POST", "/v1/sessions", body=body,
                                             idempotency_key=str(request.payment_id)))

    def charge(self, request: PaymentRequest) -> GatewayResult:
        body = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "merchant_reference": str(request.payment_id),
            "token": request.card_token,
            "return_url": request.return_url,
            "description": request.description,
            "metadata": {"order_number": request.order_number},
        }
        return self._write_result(self._call("charge", "POST", "/v1/charges", body=body,
                                             idempotency_key=str(request.payment_id)))

    def retrieve(self, psp_reference: str) -> GatewayResult:
        response = self._call("retrieve", "GET", f"/v1/transactions/{psp_reference}")
        if response.status_code == 404:
            return GatewayResult(status=PspStatus.NOT_FOUND)
        if response.unknown or response.status_code >= 400:
            return GatewayResult(status=PspStatus.UNKNOWN, failure_message=response.error)
        return self.to_result(response.body)

    def find_by_reference(self, payment_id: uuid.UUID) -> GatewayResult:
        response = self._call("find", "GET", "/v1/transactions", params={"merchant_reference": str(payment_id)})
        if response.unknown or response.status_code >= 400:
            return GatewayResult(status=PspStatus.UNKNOWN, failure_message=response.error)
        found = [self.to_result(t) for t in response.body.get("data") or []]
        if not found:
            return GatewayResult(status=PspStatus.NOT_FOUND)
        # One merchant reference should mean one transaction; if the PSP holds
        # more, the one that took money wins (reconcile flags the rest).
        taken = [r for r in found if r.status == PspStatus.CAPTURED]
        return (taken or found)[-1]

    def capture(self, psp_reference: str, *, amount_minor: int, idempotency_key: str) -> GatewayResult:
        return self._write_result(self._call("capture", "POST", f"/v1/transactions/{psp_reference}/capture",
                                             body={"amount": amount_minor}, idempotency_key=idempotency_key))

    def cancel(self, psp_reference: str, *, idempotency_key: str) -> GatewayResult:
        response = self._call("cancel", "POST", f"/v1/transactions/{psp_reference}/cancel", body={},
                              idempotency_key=idempotency_key)
        if response.status_code == 404:
            return GatewayResult(status=PspStatus.NOT_FOUND)
        return self._write_result(response)

    def refund(self, psp_reference: str, *, refund_id: uuid.UUID, amount_minor: int, currency: str) -> RefundResult:
        response = self._call("refund", "POST", f"/v1/transactions/{psp_reference}/refunds",
                              body={"amount": amount_minor, "merchant_reference": str(refund_id)},
                              idempotency_key=str(refund_id))
        if response.unknown:
            return RefundResult(status=RefundStatus.UNKNOWN, failure_message=response.error)
        if response.status_code == 409 and response.error_code == "idempotency_in_progress":
            # The same refund is still running at the PSP (a concurrent retry): not a refusal.
            return RefundResult(status=RefundStatus.UNKNOWN, failure_message="refund still in progress at the PSP")
        if response.status_code >= 400:
            return RefundResult(status=RefundStatus.FAILED,
                                failure_message=response.error_message or response.error_code or response.error,
                                raw=redact(response.body))
        return RefundResult(
            status=RefundStatus.SUCCEEDED if response.body.get("status") == "succeeded" else RefundStatus.PENDING,
            psp_reference=str(response.body.get("id", "")),
            amount_minor=response.body.get("amount"),
            raw=redact(response.body),
        )

    def list_transactions(self, *, since: datetime, until: datetime, by: str = "created") -> Iterator[GatewayResult]:
        # by="updated" also finds older transactions captured or refunded in the window (reconcile).
        if by not in ("created", "updated"):
            raise ValueError(f"list_transactions(by=...) is 'created' or 'updated', not {by!r}")
        # The PSP counts whole seconds: round the window outwards, never lose its last second.
        params: dict[str, Any] = {f"{by}_gte": math.floor(since.timestamp()), f"{by}_lt": math.ceil(until.timestamp()),
                                  "limit": 100}
        while True:
            response = self._call("list", "GET", "/v1/transactions", params=params)
            if response.unknown or response.status_code >= 400:
                raise ConnectionError(f"the PSP did not answer the transaction list: {response.error}")
            page = response.body.get("data") or []
            for txn in page:
                yield self.to_result(txn)
            if not response.body.get("has_more") or not page:
                return
            params = {**params, "starting_after": page[-1]["id"]}

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, *, verify: bool = True) -> WebhookEnvelope:
        if verify:
            self._verify_signature(headers, body)
        try:
            event = json.loads(body)
            txn = event["data"]["object"]
            return WebhookEnvelope(
                event_id=str(event["id"]),
                event_type=str(event.get("type", "")),
                merchant_reference=str(txn.get("merchant_reference") or ""),
                psp_reference=str(txn.get("id") or ""),
                result=self.to_result(txn),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidWebhook("signed, but not an event we can read") from None

    def _verify_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        header = next((v for k, v in headers.items() if k.lower() == "sim-signature"), "")
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError:
            raise InvalidWebhook("missing or malformed Sim-Signature header") from None
        if abs(time.time() - timestamp) > self.webhook_tolerance:
            raise InvalidWebhook("signature timestamp outside the tolerance")
        expected = hmac.new(self.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise InvalidWebhook("signature does not match")

    def client_config(self) -> dict[str, str]:
        return {"public_key": self.public_key, "api_base": self.public_url, "js_url": f"{self.public_url}/js/v1.js"}
