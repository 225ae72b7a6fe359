"""Rate limits on the customer's doors (django-ratelimit on the default cache), and the 429 they answer."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage


def over_limit(request: HttpRequest, *, group: str, limits: list[tuple[str, str, object]]) -> int | None:
    """Count this request against each (name, rate, key) limit; None, or the seconds until the limit lifts.

    `key` is django-ratelimit's: "ip", or a callable (group, request) -> str. A
    limit whose key is empty (no e-mail typed) is not counted.
    """
    if not settings.RATELIMIT_ENABLE:
        return None
    exceeded = None
    for name, rate, key in limits:
        if callable(key) and not key(group, request):
            continue
        usage = get_usage(request, group=f"{group}:{name}", key=key, rate=rate, increment=True)
        if usage and usage["should_limit"]:
            exceeded = max(exceeded or 1, int(usage["time_left"]))
    return exceeded


def too_many_requests(request: HttpRequest, retry_after: int, *, json: bool = False) -> HttpResponse:
    if json:
        response = JsonResponse({"error": "too_many_requests",
                                 "detail": f"Too many requests; try again in {retry_after} seconds."}, status=429)
    else:
        response = render(request, "429.html", {"retry_minutes": max(1, retry_after // 60)}, status=429)
    response["Retry-After"] = str(retry_after)
    return response
