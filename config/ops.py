"""What load balancers, orchestrators and monitors ask a node: /healthz, /readyz and /metrics.

- /healthz: the process is up and serving (no I/O); a liveness probe.
- /readyz: the database answers, every migration is applied, the cache and
  the task broker answer; 503 with the failing checks otherwise. nginx and
  orchestrators take a node out of rotation on it.
- /metrics: Prometheus text. The request metrics are django-prometheus'
  middleware (per process; with PROMETHEUS_MULTIPROC_DIR set, every process
  of the node is summed); the business metrics are read from the database at
  scrape time, so every node shows the same shop-wide figures whichever
  processes did the work (docs/runbook.md lists each metric). Not public:
  only from METRICS_ALLOWED_IPS (default the machine itself) or with
  `Authorization: Bearer $METRICS_TOKEN`.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Avg, Count, Max, Min
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.middleware import PrometheusAfterMiddleware
from django_prometheus.utils import Time
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

RECENT = timedelta(minutes=5)  # the window of the PSP-call and sweep figures
SWEEP_TASKS = ("payments.tasks.sync_payments", "payments.tasks.sync_payments_batch",
               "payments.tasks.expire_payments", "notifications.tasks.send_notifications")
_CLAIMED = re.compile(r"^(\d+) due payment")


@require_GET
@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


_migrated = False  # once every migration is applied, it stays so for this process's code


def _check_migrations() -> None:
    global _migrated
    if _migrated:
        return
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied")
    _migrated = True


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache() -> None:
    key = f"readyz:{os.getpid()}"
    cache.set(key, "1", 30)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not keep a value")


def _check_broker() -> None:
    from django_q.brokers import get_broker

    if not get_broker().ping():
        raise RuntimeError("the task broker does not answer")


CHECKS = {"database": _check_database, "migrations": _check_migrations, "cache": _check_cache,
          "broker": _check_broker}


@require_GET
@never_cache
def readyz(request):
    checks, ready = {}, True
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready", said in one line
            ready = False
            checks[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            logger.warning("readyz: %s check failed: %s", name, exc)
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status=200 if ready else 503)


# -- metrics --------------------------------------------------------------------------------------------------

class ShopCollector:
    """The business metrics, from the database at each scrape (a handful of indexed queries)."""

    def collect(self):
        from notifications.models import Notification
        from payments.models import OPEN_STATES, GatewayCall, Payment, PaymentState, WebhookEvent
        from payments.selectors import open_payment_counts, webhook_events_given_up

        now = timezone.now()
        by_state = GaugeMetricFamily("reckon_payments", "Payments by state.", labels=["state"])
        counts = dict(Payment.objects.order_by().values_list("state").annotate(n=Count("pk")))
        for state in PaymentState.values:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state

        open_counts = open_payment_counts(now=now)
        yield GaugeMetricFamily("reckon_payments_open", "Payments not in a final state.",
                                value=open_counts["open_now"])
        yield GaugeMetricFamily("reckon_payments_stuck",
                                "Open payments older than PAYMENT_ALERT_AFTER_MINUTES (staff must look).",
                                value=open_counts["stuck"])
        oldest = Payment.objects.filter(state__in=OPEN_STATES).aggregate(t=Min("created_at"))["t"]
        yield GaugeMetricFamily("reckon_oldest_open_payment_age_seconds",
                                "Age of the oldest open payment (0 when none is open).",
                                value=(now - oldest).total_seconds() if oldest else 0)

        webhooks = GaugeMetricFamily("reckon_webhook_events", "Stored webhook events not applied.",
                                     labels=["status"])
        waiting = WebhookEvent.objects.filter(processed_at__isnull=True).count()
        failed = webhook_events_given_up().count()
        webhooks.add_metric(["waiting"], waiting - failed)
        webhooks.add_metric(["failed"], failed)
        yield webhooks

        outbox = GaugeMetricFamily("reckon_outbox_messages", "Customer e-mails waiting or given up.",
                                   labels=["status"])
        mail = dict(Notification.objects.filter(status__in=[Notification.Status.PENDING, Notification.Status.FAILED])
                    .order_by().values_list("status").annotate(n=Count("pk")))
        for status in (Notification.Status.PENDING, Notification.Status.FAILED):
            outbox.add_metric([status], mail.get(status, 0))
        yield outbox
        oldest_mail = Notification.objects.filter(status=Notification.Status.PENDING).aggregate(
            t=Min("created_at"))["t"]
        yield GaugeMetricFamily("reckon_outbox_oldest_pending_age_seconds",
                                "Age of the oldest customer e-mail waiting to be sent.",
                                value=(now - oldest_mail).total_seconds() if oldest_mail else 0)

        calls = GaugeMetricFamily("reckon_psp_calls_recent", "PSP calls in the last 5 minutes.",
                                  labels=["gateway", "operation", "outcome"])
        latency = GaugeMetricFamily("reckon_psp_call_seconds_recent",
                                    "PSP call duration in the last 5 minutes: mean and max.",
                                    labels=["gateway", "operation", "stat"])
        rows = (GatewayCall.objects.filter(created_at__gte=now - RECENT).order_by()
                .values("gateway", "operation", "outcome")
                .annotate(n=Count("pk"), mean=Avg("duration_ms"), worst=Max("duration_ms")))
        worst: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            calls.add_metric([row["gateway"], row["operation"], row["outcome"]], row["n"])
            acc = worst.setdefault((row["gateway"], row["operation"]), [0, 0.0, 0])
            acc[0] += row["n"]
            acc[1] += row["mean"] * row["n"]
            acc[2] = max(acc[2], row["worst"])
        for (gateway, operation), (n, total, top) in worst.items():
            latency.add_metric([gateway, operation, "mean"], total / n / 1000)
            latency.add_metric([gateway, operation, "max"], top / 1000)
        yield calls
        yield latency

        yield from _sweep_metrics(now)


def _sweep_metrics(now):
    from django_q.models import Task

    runs = GaugeMetricFamily("reckon_sweep_runs_recent", "Worker sweeps finished in the last 5 minutes.",
                             labels=["task"])
    seconds = GaugeMetricFamily("reckon_sweep_seconds_recent",
                                "Duration of the sweeps finished in the last 5 minutes: mean and max.",
                                labels=["task", "stat"])
    claimed = GaugeMetricFamily("reckon_sweep_claimed_recent",
                                "Payments the sync sweeps claimed in the last 5 minutes: total and largest.",
                                labels=["task", "stat"])
    recent = Task.objects.filter(func__in=SWEEP_TASKS, stopped__gte=now - RECENT).values_list(
        "func", "started", "stopped", "result")
    seen: dict[str, list] = {func: [] for func in SWEEP_TASKS}
    for func, started, stopped, result in recent:
        match = _CLAIMED.match(str(result or ""))
        seen[func].append(((stopped - started).total_seconds(), int(match.group(1)) if match else None))
    for func, items in seen.items():
        task = func.rsplit(".", 1)[1]
        runs.add_metric([task], len(items))
        if items:
            durations = [d for d, _ in items]
            seconds.add_metric([task, "mean"], sum(durations) / len(durations))
            seconds.add_metric([task, "max"], max(durations))
        sizes = [c for _, c in items if c is not None]
        if sizes:
            claimed.add_metric([task, "total"], sum(sizes))
            claimed.add_metric([task, "max"], max(sizes))
    yield runs
    yield seconds
    yield claimed


_shop_registry = CollectorRegistry(auto_describe=False)
_shop_registry.register(ShopCollector())


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    return request.META.get("REMOTE_ADDR", "") in settings.METRICS_ALLOWED_IPS


def _process_registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@require_GET
@never_cache
def metrics(request):
    if not _allowed(request):
        return JsonResponse({"detail": "Metrics are not public: scrape from an address in METRICS_ALLOWED_IPS, "
                                       "or send Authorization: Bearer <METRICS_TOKEN>."}, status=403)
    body = generate_latest(_process_registry()) + generate_latest(_shop_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class RequestMetricsAfterMiddleware(PrometheusAfterMiddleware):
    """django-prometheus' middleware, except that a bad Content-Length is the view's to refuse, not a 500.

    Sync only, and last in MIDDLEWARE, on purpose: under Django's ASGI
    handler, Django runs a chain of middlewares that can do both in the mode
    of the one inside it, and MiddlewareMixin's async mode sends every
    process_request and process_response to a thread of its own. With the
    innermost middleware sync, the whole chain runs in one thread: three
    thread hops per request instead of about thirty (bench/README.md, "Where
    the web server's CPU goes"). config.asgi now serves HTTP through Django's
    WSGI handler, where the chain is sync anyway; this keeps the hops away
    wherever Django's ASGI handler still runs it.
    """

    sync_capable = True
    async_capable = False

    def process_request(self, request):
        try:
            return super().process_request(request)
        except ValueError:  # int("abc") of the header: the request is counted without its body size
            request.prometheus_after_middleware_event = Time()
            return None


def _backend_outages() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError


def server_error(request) -> HttpResponse:
    """handler500: a 503 with Retry-After when the database or Redis is away, else the 500 page.

    A PostgreSQL or Redis restart (a failover, a deploy) makes a request fail
    with nothing wrong in it: 503 tells the customer, the browser and the load
    balancer to try again shortly. JSON for the API and the status endpoint.
    The page is rendered without the request, so it needs no database.
    """
    from django.template.loader import render_to_string

    unavailable = isinstance(sys.exc_info()[1], _backend_outages())
    status = 503 if unavailable else 500
    if request.path.startswith("/api/") or request.path.endswith(".json"):
        detail = ("The shop is briefly unavailable; please retry in a few seconds." if unavailable
                  else "Something went wrong on our side; please retry.")
        response: HttpResponse = JsonResponse({"detail": detail}, status=status)
    else:
        response = HttpResponse(render_to_string("503.html" if unavailable else "500.html"), status=status)
    if unavailable:
        response["Retry-After"] = "5"
    return response
