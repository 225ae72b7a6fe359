"""The ``/v1`` JSON API: routing table and endpoint handlers.

Handlers receive the simulator and an :class:`ApiCall` and return
``(status, payload)``; they raise :class:`ApiError` for errors.  Auth, faults
and idempotency are applied around them by :mod:`psp_simulator.server`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from . import validation as v
from .cards import validate_card
from .errors import ApiError, not_found
from .service import Simulator

SECRET = "secret"
PUBLIC = "public"


@dataclass(frozen=True)
class ApiCall:
    body: dict[str, Any]
    query: dict[str, str]
    params: dict[str, str]


Handler = Callable[[Simulator, ApiCall], tuple[int, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: str = SECRET


# ---------------------------------------------------------------- handlers
_SESSION_FIELDS = {"amount", "currency", "merchant_reference", "return_url", "description",
                   "metadata", "capture_method"}


def create_session(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    body = call.body
    v.reject_unknown(body, _SESSION_FIELDS)
    txn = sim.create_session(
        amount=v.amount(body), currency=v.currency(body),
        merchant_reference=v.string(body, "merchant_reference", required=True),
        return_url=v.url(body, "return_url", required=True),
        description=v.string(body, "description", max_length=1000),
        metadata=v.metadata(body), capture_method=v.capture_method(body))
    return 201, txn.to_public()


def create_token(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    body = call.body
    v.reject_unknown(body, {"number", "exp_month", "exp_year", "cvc", "name", "key"})
    card = validate_card(body.get("number"), body.get("exp_month"), body.get("exp_year"),
                         body.get("cvc"))
    return 201, sim.create_token(card).to_public()


_CHARGE_FIELDS = {"amount", "currency", "merchant_reference", "token", "capture_method",
                  "return_url", "description", "metadata"}


def create_charge(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    body = call.body
    v.reject_unknown(body, _CHARGE_FIELDS)
    txn = sim.create_charge(
        amount=v.amount(body), currency=v.currency(body),
        merchant_reference=v.string(body, "merchant_reference", required=True),
        token_id=v.string(body, "token", required=True),
        capture_method=v.capture_method(body), return_url=v.url(body, "return_url"),
        description=v.string(body, "description", max_length=1000),
        metadata=v.metadata(body))
    return 201, txn.to_public()


def get_transaction(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    txn = sim.get_transaction(call.params["id"])
    if txn is None:
        raise not_found(f"No such transaction: {call.params['id']}.", "id")
    return 200, txn.to_public()


_LIST_PARAMS = {"merchant_reference", "created_gte", "created_lt", "updated_gte", "updated_lt",
                "limit", "starting_after"}


def list_transactions(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    query = call.query
    v.reject_unknown(query, _LIST_PARAMS)
    ranges = {field: (v.query_int(query, f"{field}_gte"), v.query_int(query, f"{field}_lt"))
              for field in ("created", "updated")}
    uses_updated = any(bound is not None for bound in ranges["updated"])
    limit = v.query_int(query, "limit", minimum=1, maximum=100)
    return 200, sim.list_transactions(
        merchant_reference=query.get("merchant_reference") or None,
        ranges={field: bounds for field, bounds in ranges.items() if bounds != (None, None)},
        order_by="updated" if uses_updated else "created",
        starting_after=query.get("starting_after") or None,
        limit=50 if limit is None else limit)


def capture(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    v.reject_unknown(call.body, {"amount"})
    return 200, sim.capture(call.params["id"], v.amount(call.body, required=False)).to_public()


def cancel(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    v.reject_unknown(call.body, set())
    return 200, sim.cancel(call.params["id"]).to_public()


def refund(sim: Simulator, call: ApiCall) -> tuple[int, Any]:
    body = call.body
    v.reject_unknown(body, {"amount", "merchant_reference"})
    created = sim.refund(call.params["id"], v.amount(body, required=False),
                         v.string(body, "merchant_reference"))
    return 201, created.to_public()


# ---------------------------------------------------------------- routing
_ID = r"(?P<id>[A-Za-z0-9_]+)"

ROUTES: tuple[Route, ...] = (
    Route("POST", re.compile(r"^/v1/sessions$"), create_session),
    Route("POST", re.compile(r"^/v1/tokens$"), create_token, PUBLIC),
    Route("POST", re.compile(r"^/v1/charges$"), create_charge),
    Route("GET", re.compile(r"^/v1/transactions$"), list_transactions),
    Route("GET", re.compile(rf"^/v1/transactions/{_ID}$"), get_transaction),
    Route("POST", re.compile(rf"^/v1/transactions/{_ID}/capture$"), capture),
    Route("POST", re.compile(rf"^/v1/transactions/{_ID}/cancel$"), cancel),
    Route("POST", re.compile(rf"^/v1/transactions/{_ID}/refunds$"), refund),
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """Find the route for ``method path`` or raise 404/405."""
    path = path.rstrip("/") or "/"
    allowed: list[str] = []
    for route in ROUTES:
        found = route.pattern.match(path)
        if found:
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
    if allowed:
        raise ApiError(405, "invalid_request_error", "method_not_allowed",
                       f"{method} is not allowed here; use {', '.join(allowed)}.",
                       allowed=allowed)
    raise ApiError(404, "invalid_request_error", "resource_missing",
                   f"Unrecognized request URL: {method} {path}.")
