"""API errors, answered as ``{"error": {"type", "code", "message", "param"?}}``."""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """An error that is turned into a JSON error response."""

    def __init__(self, status: int, type_: str, code: str, message: str,
                 param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def bad_request(param: str | None, message: str, code: str = "parameter_invalid") -> ApiError:
    """400 ``invalid_request_error`` naming the offending field."""
    return ApiError(400, INVALID_REQUEST, code, message, param)


def missing_param(param: str) -> ApiError:
    return bad_request(param, f"Missing required param: {param}.", "parameter_missing")


def not_found(message: str, param: str | None = None) -> ApiError:
    return ApiError(404, INVALID_REQUEST, "resource_missing", message, param)


def invalid_state(message: str, transaction: dict[str, Any]) -> ApiError:
    """409 ``invalid_state``; the current transaction is included in the error."""
    return ApiError(409, INVALID_REQUEST, "invalid_state", message, transaction=transaction)


def authentication_error(message: str = "Invalid API key provided.") -> ApiError:
    return ApiError(401, "authentication_error", "invalid_api_key", message)


def service_unavailable() -> ApiError:
    return ApiError(503, "api_error", "service_unavailable",
                    "The service is temporarily unavailable (simulated fault). Please retry.")


def internal_error() -> ApiError:
    return ApiError(500, "api_error", "internal_error", "An unexpected error occurred.")
