"""/healthz, /readyz and /metrics: what a load balancer and a monitor see (config/ops.py)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from config import ops
from payments.models import Payment
from tests.admin.conftest import make_stuck
from tests.payments.psp_plant import make_due, pending_hosted_payment

pytestmark = pytest.mark.django_db
# Payments by state, the open counts, the oldest open, waiting and given-up webhook events, the outbox's two,
# the recent PSP calls, the recent sweeps.
SCRAPE_QUERIES = 9


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample of the Prometheus text, found by name and labels."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == {k: str(v) for k, v in labels.items()}:
            return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_healthz_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_database_migrations_cache_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "cache": "ok",
                                                             "broker": "ok"}}


def test_readyz_answers_503_with_the_failing_check(client, monkeypatch):
    def broken():
        raise ConnectionError("connection refused")

    monkeypatch.setitem(ops.CHECKS, "cache", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "failed: ConnectionError: connection refused"


def test_readyz_is_not_ready_while_a_migration_is_missing(client, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(ops, "_migrated", False)
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: ["one"])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "failed: RuntimeError: 1 migration(s) not applied"


def test_metrics_are_not_public(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.9.9.9"]
    settings.METRICS_TOKEN = "a-metrics-token"
    refused = client.get("/metrics")
    assert refused.status_code == 403 and "METRICS_TOKEN" in refused.json()["detail"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer a-metrics-token").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.9.9.9").status_code == 200


def test_metrics_show_the_business_figures(client, psp):
    from django_q.tasks import async_task

    from notifications.models import Notification

    open_one = pending_hosted_payment()
    stuck = make_stuck(pending_hosted_payment(), hours=3)
    make_due(open_one)
    async_task("payments.tasks.sync_payments", sync=True)  # a sweep, with its PSP calls
    client.get("/")  # a request for the request metrics

    text = client.get("/metrics").content.decode()

    assert metric(text, "reckon_payments", state="pending") == 2
    assert metric(text, "reckon_payments", state="captured") == 0
    assert metric(text, "reckon_payments_open") == 2
    assert metric(text, "reckon_payments_stuck") == 1
    age = metric(text, "reckon_oldest_open_payment_age_seconds")
    assert 3 * 3600 - 60 < age < 3 * 3600 + 60, (age, stuck.pk)
    assert metric(text, "reckon_webhook_events", status="waiting") == 0
    assert metric(text, "reckon_webhook_events", status="failed") == 0
    assert metric(text, "reckon_outbox_messages", status="pending") == Notification.objects.filter(
        status="pending").count()
    assert metric(text, "reckon_psp_calls_recent", gateway="simulator", operation="retrieve", outcome="ok") >= 1
    assert metric(text, "reckon_psp_call_seconds_recent", gateway="simulator", operation="retrieve",
                  stat="max") >= 0
    assert metric(text, "reckon_sweep_runs_recent", task="sync_payments") == 1
    assert metric(text, "reckon_sweep_claimed_recent", task="sync_payments", stat="total") >= 1
    assert "django_http_requests_total_by_view_transport_method_total" in text
    assert Payment.objects.filter(created_at__lt=timezone.now() - timedelta(hours=2)).count() == 1


def test_a_scrape_costs_a_fixed_number_of_queries(client, psp, django_assert_num_queries):
    """Indexed counts and aggregates, whatever the number of rows: the scrape cannot creep."""
    pending_hosted_payment()
    client.get("/metrics")  # the first scrape of the process loads nothing more, but keep it out of the count
    with django_assert_num_queries(SCRAPE_QUERIES):
        client.get("/metrics")
    for _ in range(3):
        pending_hosted_payment()
    with django_assert_num_queries(SCRAPE_QUERIES):
        client.get("/metrics")
