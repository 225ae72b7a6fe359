"""The shop's Content-Security-Policy, as django-csp's setting (no Django imports: settings.py uses it)."""

from __future__ import annotations

from urllib.parse import urlsplit

from csp.constants import NONE, SELF

STRIPE_SCRIPT_ORIGINS = ["https://js.stripe.com"]
STRIPE_FRAME_ORIGINS = ["https://js.stripe.com", "https://hooks.stripe.com"]
STRIPE_CONNECT_ORIGINS = ["https://api.stripe.com"]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(*, gateway: str, simulator_url: str, stripe_js_url: str, stripe_api_base: str) -> dict:
    """django-csp's CONTENT_SECURITY_POLICY for the active gateway: its origins, and no other PSP's."""
    scripts, frames, connects, forms = [SELF], [NONE], [SELF], [SELF]
    if gateway == "stripe":
        js = origin(stripe_js_url) or STRIPE_SCRIPT_ORIGINS[0]
        scripts += [js]
        frames = sorted({js, *STRIPE_FRAME_ORIGINS})
        connects += sorted({*STRIPE_CONNECT_ORIGINS, *([origin(stripe_api_base)] if stripe_api_base else [])})
        forms += ["https://checkout.stripe.com"]  # the hosted flow's redirect after our form
    else:
        psp = origin(simulator_url)
        scripts += [psp]  # its card script
        connects += [psp]  # the card form's token request
        forms += [psp]  # the hosted flow: our form's answer redirects to the PSP's page
    return {"DIRECTIVES": {
        "default-src": [SELF],
        "script-src": scripts,
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": connects,
        "frame-src": frames,
        "form-action": forms,
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
        "report-uri": "/csp-report/",
    }}
