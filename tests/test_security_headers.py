"""The Content-Security-Policy on every page, for the active gateway only; its report endpoint logs."""

import copy
import json
import logging

import pytest
from django.urls import reverse

from tests.orders.factories import make_order

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split("; ") if part}


def test_pages_send_a_strict_policy_with_the_simulators_origin(client, settings):
    settings.PAYMENT_GATEWAY = "simulator"
    settings.PSP_SIMULATOR_PUBLIC_URL = "http://127.0.0.1:8099"
    order = make_order()
    for url in ("/", order.get_absolute_url(), reverse("orders:find"), "/api/docs/"):
        policy = directives(client.get(url))
        assert policy["script-src"] == ["'self'", "http://127.0.0.1:8099"], url
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
        assert policy["form-action"] == ["'self'", "http://127.0.0.1:8099"]
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
        assert policy["report-uri"] == ["/csp-report/"]
        assert not any("stripe" in origin for values in policy.values() for origin in values)


def test_stripe_origins_only_with_the_stripe_gateway(client, settings):
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    settings.STRIPE_API_BASE = ""
    policy = directives(client.get("/"))
    assert policy["script-src"] == ["'self'", "https://js.stripe.com"]
    assert "https://api.stripe.com" in policy["connect-src"] and "https://hooks.stripe.com" in policy["frame-src"]
    assert not any("8099" in origin for values in policy.values() for origin in values)


def test_the_header_is_django_csps_own_for_the_setting_built_once_and_never_copied(client, settings):
    """The middleware's frozen directives give the header django-csp builds from the setting itself."""
    from csp.utils import build_policy, default_config

    from config.csp_policy import content_security_policy
    from config.security import GatewayCSPMiddleware

    settings.PAYMENT_GATEWAY = "simulator"
    settings.PSP_SIMULATOR_PUBLIC_URL = "http://127.0.0.1:8099"
    expected = build_policy(config=default_config(content_security_policy(
        gateway="simulator", simulator_url="http://127.0.0.1:8099", stripe_js_url=settings.STRIPE_JS_URL,
        stripe_api_base=settings.STRIPE_API_BASE)["DIRECTIVES"]))
    assert client.get("/")["Content-Security-Policy"] == expected
    middleware = GatewayCSPMiddleware(lambda request: None)
    first = middleware.get_policy_parts(None, object()).config
    assert middleware.get_policy_parts(None, object()).config is first  # built once
    assert copy.deepcopy(first) is first  # dataclasses.asdict in django-csp copies nothing
    settings.PSP_SIMULATOR_PUBLIC_URL = "http://127.0.0.1:8100"
    assert "http://127.0.0.1:8100" in middleware.get_policy_parts(None, object()).config["script-src"]


def test_the_swagger_ui_runs_no_inline_script(client):
    html = client.get("/api/docs/").content.decode()
    assert "<script>" not in html  # the split view: its init script is a file


def test_a_violation_report_is_logged_and_answered_204(client, caplog):
    report = {"csp-report": {"document-uri": "http://127.0.0.1:8000/", "violated-directive": "script-src",
                             "blocked-uri": "https://evil.example/x.js"}}
    with caplog.at_level(logging.WARNING, logger="reckon.csp"):
        response = client.post("/csp-report/", json.dumps(report), content_type="application/csp-report")
    assert response.status_code == 204
    assert "CSP violation: script-src blocked https://evil.example/x.js" in caplog.text
    assert client.post("/csp-report/", b"not json", content_type="application/csp-report").status_code == 400
    assert client.post("/csp-report/", b"x" * 9000, content_type="application/csp-report").status_code == 413
