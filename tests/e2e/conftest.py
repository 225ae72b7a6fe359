"""Real-browser tests: Debian's Chromium driven by Playwright against a live server."""

import shutil

import pytest
from django.db import connection

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (scripts/test installs it with apt-get)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"],
    }


@pytest.fixture
def shop(live_server, psp, settings):
    """The live shop wired to the simulator both ways (return URL and webhooks)."""
    if connection.vendor != "postgresql":
        # The live server's threads, the simulator's webhooks and the test
        # share one in-memory SQLite database, which locks under them.
        pytest.skip("browser tests run on PostgreSQL (scripts/test does)")
    settings.SHOP_BASE_URL = live_server.url
    psp.set_webhook_url(f"{live_server.url}/payments/webhooks/simulator/")
    return live_server


@pytest.fixture(autouse=True)
def no_csp_violations(request):
    """Every browser test runs under the shop's Content-Security-Policy and fails on any violation."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("response", lambda response: violations.append(f"no CSP header on {response.url}")
            if response.request.resource_type == "document" and "/hosted/" not in response.url
            and response.status < 400 and "content-security-policy" not in response.headers else None)
    yield
    assert not violations, violations
