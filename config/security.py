"""The Content-Security-Policy (django-csp) and the endpoint its violation reports go to.

Scripts come only from our own origin and the active PSP's card script;
nothing inline runs (the pages have no inline script, and Swagger UI is
served split, its init script a file). Styles allow inline attributes: the
admin and the console colour badges with `style=""`, which a nonce cannot
cover, and a style cannot run code. No page may be framed.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Mapping

from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import default_config
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.csp_policy import content_security_policy

logger = logging.getLogger("reckon.csp")
MAX_REPORT_BYTES = 8 * 1024


class _FrozenDirectives(Mapping):
    """A policy's directives, which django-csp reads but never needs to copy.

    Its middleware passes the config through dataclasses.asdict twice a
    response, which deep-copies a dict of lists (0.2 ms of CPU a request,
    bench/README.md); a Mapping that is not a dict is handed to
    copy.deepcopy, and this one copies as itself. Its values are tuples.
    """

    def __init__(self, directives: dict) -> None:
        self._directives = {key: tuple(value) if isinstance(value, list) else value
                            for key, value in directives.items()}

    def __getitem__(self, key: str):
        return self._directives[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._directives)

    def __len__(self) -> int:
        return len(self._directives)

    def __deepcopy__(self, memo: dict) -> _FrozenDirectives:
        return self


@functools.lru_cache(maxsize=8)
def _directives(gateway: str, simulator_url: str, stripe_js_url: str, stripe_api_base: str) -> _FrozenDirectives:
    policy = content_security_policy(gateway=gateway, simulator_url=simulator_url, stripe_js_url=stripe_js_url,
                                     stripe_api_base=stripe_api_base)
    return _FrozenDirectives(default_config(policy["DIRECTIVES"]))


class GatewayCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with the policy built from the gateway settings of this request.

    The same policy as settings.CONTENT_SECURITY_POLICY, but it follows a
    gateway setting changed at run time (the tests point the shop at a
    simulator on a random port). Built once for each set of those settings.
    """

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and parts.config is None:
            parts.config = _directives(settings.PAYMENT_GATEWAY, settings.PSP_SIMULATOR_PUBLIC_URL,
                                       settings.STRIPE_JS_URL, settings.STRIPE_API_BASE)
        return parts


@csrf_exempt
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    """Log a browser's CSP violation report (bounded); always 204, so a report never errs."""
    body = request.read(MAX_REPORT_BYTES + 1)
    if len(body) > MAX_REPORT_BYTES:
        return HttpResponse(status=413)
    try:
        report = json.loads(body or b"{}").get("csp-report", {})
    except (ValueError, AttributeError):
        return HttpResponse(status=400)
    if isinstance(report, dict):
        logger.warning("CSP violation: %s blocked %s on %s", str(report.get("violated-directive", "?"))[:100],
                       str(report.get("blocked-uri", "?"))[:200], str(report.get("document-uri", "?"))[:200])
    return HttpResponse(status=204)
