"""The Content-Security-Policy (django-csp) and the endpoint its violation reports go to.

Scripts come only from our own origin and the active PSP's card script;
nothing inline runs (the pages have no inline script, and Swagger UI is
served split, its init script a file). Styles allow inline attributes: the
admin and the console colour badges with `style=""`, which a nonce cannot
cover, and a style cannot run code. No page may be framed.
"""

from __future__ import annotations

import json
import logging

from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import default_config
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.csp_policy import content_security_policy

logger = logging.getLogger("reckon.csp")
MAX_REPORT_BYTES = 8 * 1024

def current_policy() -> dict:
    return content_security_policy(gateway=settings.PAYMENT_GATEWAY, simulator_url=settings.PSP_SIMULATOR_PUBLIC_URL,
                                   stripe_js_url=settings.STRIPE_JS_URL, stripe_api_base=settings.STRIPE_API_BASE)


class GatewayCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with the policy built from the gateway settings of this request.

    The same policy as settings.CONTENT_SECURITY_POLICY, but it follows a
    gateway setting changed at run time (the tests point the shop at a
    simulator on a random port).
    """

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only and parts.config is None:
            parts.config = default_config(current_policy()["DIRECTIVES"])
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
