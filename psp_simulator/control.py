"""The ``/control`` API used by tests and developers to steer the simulator.

Only mounted when control is enabled; uses the secret key like ``/v1``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from . import validation as v
from .errors import ApiError, bad_request
from .httpio import Request, Response, error_response, json_response, parse_json_object
from .service import SETTLE_STATUSES

if TYPE_CHECKING:
    from .server import App

ControlHandler = Callable[["App", dict[str, Any], dict[str, str]], tuple[int, Any]]


def faults_get(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, app.faults.settings.to_dict()


def faults_set(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, app.faults.update(body)


def ledger(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, app.sim.ledger()


def reset(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    with app.dispatcher.paused():  # no delivery of a wiped event can still be in flight
        app.sim.reset()
    return 200, {"reset": True, "faults": app.faults.settings.to_dict()}


def _config(app: "App") -> dict[str, Any]:
    return {"webhook_url": app.sim.webhook_url, "public_url": app.sim.public_url,
            "control_enabled": True}


def config_get(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, _config(app)


def config_set(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    v.reject_unknown(body, {"webhook_url"})
    if "webhook_url" in body:
        app.sim.webhook_url = v.url(body, "webhook_url")
        app.dispatcher.wake()
    return 200, _config(app)


def flush(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    return 200, app.dispatcher.flush()


def complete(app: "App", body: dict[str, Any], params: dict[str, str]) -> tuple[int, Any]:
    v.reject_unknown(body, {"status"})
    status = body.get("status", "captured")
    if status not in SETTLE_STATUSES:
        raise bad_request("status", f"status must be one of: {', '.join(SETTLE_STATUSES)}.")
    return 200, app.sim.settle(params["id"], status).to_public()


ROUTES: tuple[tuple[str, re.Pattern[str], ControlHandler], ...] = (
    ("GET", re.compile(r"^/control/faults$"), faults_get),
    ("POST", re.compile(r"^/control/faults$"), faults_set),
    ("GET", re.compile(r"^/control/ledger$"), ledger),
    ("POST", re.compile(r"^/control/reset$"), reset),
    ("GET", re.compile(r"^/control/config$"), config_get),
    ("POST", re.compile(r"^/control/config$"), config_set),
    ("POST", re.compile(r"^/control/webhooks/flush$"), flush),
    ("POST", re.compile(r"^/control/transactions/(?P<id>[A-Za-z0-9_]+)/complete$"), complete),
)


def handle(app: "App", request: Request) -> Response:
    not_found = ApiError(404, "invalid_request_error", "resource_missing",
                         f"Unrecognized request URL: {request.method} {request.path}.")
    if not app.config.enable_control:
        return error_response(not_found)
    path = request.path.rstrip("/")
    for method, pattern, handler in ROUTES:
        found = pattern.match(path)
        if found and method == request.method:
            try:
                app.authenticate(request, app.config.secret_key)
                body = parse_json_object(request.body) if request.method == "POST" else {}
                status, payload = handler(app, body, found.groupdict())
            except ApiError as exc:
                return error_response(exc)
            return json_response(status, payload)
    if any(pattern.match(path) for _, pattern, _ in ROUTES):
        return error_response(ApiError(405, "invalid_request_error", "method_not_allowed",
                                       f"{request.method} is not allowed here."))
    return error_response(not_found)
