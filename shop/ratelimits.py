"""Rate limits on the customer's doors (django-ratelimit on the default cache), and the 429 they answer.

One mechanism for every door: settings.RATE_LIMITS names, per door, a rate
per key (the client's address, the e-mail typed, the order being paid). The
storefront's views take the `rate_limited` decorator (a friendly 429 page);
the API's writes take `ApiWriteThrottle` (DRF's JSON 429). Both say how long
to wait in `Retry-After`.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle


def _typed_email(group: str, request: HttpRequest) -> str:
    return request.POST.get("email", "").strip().lower()


def _order_number(group: str, request: HttpRequest) -> str:
    match = request.resolver_match
    return str(match.kwargs.get("number", "")) if match else ""


# django-ratelimit's keys: "ip" is REMOTE_ADDR (behind a proxy, see README "Deploying").
KEYS = {"client": "ip", "email": _typed_email, "order": _order_number}


def over_limit(request: HttpRequest, *, door: str) -> int | None:
    """Count this request against each of the door's limits; None, or the seconds until they allow it again.

    A limit whose key is empty here (no e-mail typed) is not counted.
    """
    if not settings.RATELIMIT_ENABLE:
        return None
    wait = None
    for name, rate in settings.RATE_LIMITS[door].items():
        key = KEYS[name]
        if callable(key) and not key(door, request):
            continue
        usage = get_usage(request, group=f"{door}:{name}", key=key, rate=rate, increment=True)
        if usage and usage["should_limit"]:
            wait = max(wait or 1, int(usage["time_left"]))
    return wait


def too_many_requests(request: HttpRequest, retry_after: int, *, json: bool = False) -> HttpResponse:
    if json:
        response = JsonResponse({"error": "too_many_requests",
                                 "detail": f"Too many requests; try again in {retry_after} seconds."}, status=429)
    else:
        response = render(request, "429.html", {"retry_minutes": max(1, -(-retry_after // 60))}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def rate_limited(door: str):
    """Throttle a storefront view's POSTs (GETs are not counted): a 429 page over the door's limits."""
    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if request.method == "POST":
                retry_after = over_limit(request, door=door)
                if retry_after:
                    return too_many_requests(request, retry_after)
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


class ApiWriteThrottle(BaseThrottle):
    """The API's writes, per client (settings.RATE_LIMITS["api_write"]); reads are not throttled."""

    def allow_request(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        self._wait = over_limit(request._request, door="api_write")
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
