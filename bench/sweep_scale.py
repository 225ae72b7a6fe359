"""Does the sync sweep's cost follow the due work, not the history?

Seeds 1,000 open payments that are due for a check (real ones: created through
the services, with a pending session at the PSP simulator), then bulk-inserts
final payments around them so that the table holds 10,000 and then 1,000,000
payments. At each size it times one full sweep of the same 1,000 due payments
against the simulator and prints both times, their ratio (aim: under 1.2) and
the EXPLAIN (ANALYZE) of the claiming query.

    DATABASE_URL=postgres://user@host:port/anything .venv/bin/python bench/sweep_scale.py [--runs N]

It creates its own database on that server (reckon_bench_sweep_<pid>), starts
its own simulator process on a free port, and drops/stops both at the end; it
never touches the database named in DATABASE_URL. About two minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DUE = 1000
SIZES = (10_000, 1_000_000)
RUNS_PER_SIZE = 3


def server_urls(database_url: str) -> tuple[str, str, str]:
    """(maintenance URL, bench URL, bench database name) on the server of DATABASE_URL."""
    parts = urlsplit(database_url)
    name = f"reckon_bench_sweep_{os.getpid()}"
    return (urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts._replace(path=f"/{name}")), name)


def create_database(maintenance_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(maintenance_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_due_payments(count: int) -> list:
    """Real open payments: an order each, a hosted session at the PSP, state pending."""
    from orders.services import CustomerDetails, LineRequest, order_create
    from payments.models import Payment
    from payments.services import payment_open_session, payment_start
    from shop.models import Product

    product = Product.objects.create(sku="BENCH-1", name="Bench item", slug="bench-item", description="",
                                     price_minor=1250, currency="EUR", stock=10 * count, is_active=True)
    customer = CustomerDetails(email="bench@example.com", full_name="Bench", address_line1="1 Road",
                               city="City", postal_code="1000", country="GB")
    ids = []
    for _ in range(count):
        order = order_create(customer=customer, lines=[LineRequest(product_id=product.pk, quantity=1)])
        payment, _ = payment_start(order_id=order.pk, flow=Payment.Flow.HOSTED)
        payment = payment_open_session(payment_id=payment.pk)
        assert payment.state == "pending", payment.state
        ids.append(payment.pk)
    return ids


HISTORY_ORDERS = """
INSERT INTO orders_order (number, access_token, checkout_token, email, full_name, address_line1, address_line2,
                          city, postal_code, country, currency, total_minor, state, stock_released,
                          created_at, updated_at)
SELECT 'BH-' || lpad(g::text, 9, '0'), md5('bench-' || g), NULL, 'history@example.com', 'History', '1 Road', '',
       'City', '1000', 'GB', 'EUR', 1250,
       CASE WHEN mod(g, 10) IN (0, 1) THEN 'expired' WHEN mod(g, 20) = 2 THEN 'refunded' ELSE 'paid' END,
       mod(g, 10) IN (0, 1), now() - make_interval(secs => 40000000.0 * g / %(last)s) - interval '1 day',
       now() - make_interval(secs => 40000000.0 * g / %(last)s) - interval '1 day'
FROM generate_series(%(first)s, %(last)s) AS g
"""

# Final payments only (captured, declined, expired, refunded), as the history of a busy shop.
HISTORY_PAYMENTS = """
INSERT INTO payments_payment (id, order_id, gateway, flow, amount_minor, currency, amount_refunded_minor, state,
                              psp_reference, redirect_url, card_token, failure_code, failure_message,
                              next_check_at, check_count, deadline_at, alerted_at, created_at, updated_at)
SELECT gen_random_uuid(), o.id, 'simulator', 'hosted', 1250, 'EUR',
       CASE WHEN mod(n, 20) = 2 THEN 1250 ELSE 0 END,
       CASE WHEN mod(n, 10) = 0 THEN 'expired' WHEN mod(n, 10) = 1 THEN 'declined'
            WHEN mod(n, 20) = 2 THEN 'refunded' ELSE 'captured' END,
       'txn_history_' || n, '', '', CASE WHEN mod(n, 10) = 1 THEN 'card_declined' ELSE '' END, '',
       NULL, 1 + mod(n, 3), o.created_at + interval '30 minutes', NULL, o.created_at, o.created_at
FROM (SELECT id, created_at, substr(number, 4)::int AS n FROM orders_order
      WHERE number BETWEEN 'BH-' || lpad(%(first)s::text, 9, '0') AND 'BH-' || lpad(%(last)s::text, 9, '0')) AS o
"""


def grow_history(first: int, last: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    chunk = 200_000
    with connection.cursor() as cursor:
        for start in range(first, last + 1, chunk):
            end = min(start + chunk - 1, last)
            cursor.execute(HISTORY_ORDERS, {"first": start, "last": end})
            cursor.execute(HISTORY_PAYMENTS, {"first": start, "last": end})
        cursor.execute("ANALYZE orders_order")
        cursor.execute("ANALYZE payments_payment")
    return time.perf_counter() - started


def make_all_due(ids: list) -> None:
    from django.db import connection
    from django.utils import timezone

    from payments.models import Payment

    Payment.objects.filter(pk__in=ids).update(next_check_at=timezone.now() - timedelta(seconds=1), check_count=0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payments_payment")


def timed_sweep(ids: list) -> float:
    from payments.sweeps import sync_due_payments

    make_all_due(ids)
    started = time.perf_counter()
    report = sync_due_payments(budget_seconds=float("inf"))
    elapsed = time.perf_counter() - started
    assert report.claimed == len(ids) and report.errors == 0 and report.unanswered == 0, str(report)
    return elapsed


def explain_claim(ids: list, *, analyze: bool = True) -> str:
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from payments.sweeps import claim_queryset

    make_all_due(ids)
    query = claim_queryset(now=timezone.now(), limit=settings.PAYMENT_SYNC_BATCH_SIZE).values_list("pk", flat=True)
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN ({options}) {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        text = cursor.mogrify(sql, params)
        transaction.set_rollback(True)  # EXPLAIN ANALYZE of FOR UPDATE really locks: let go
    return f"{text}\n{plan}"


def explain(title: str, queryset) -> str:
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return f"-- {title}\n" + "\n".join(row[0] for row in cursor.fetchall())


def count_payments() -> int:
    from payments.models import Payment

    return Payment.objects.count()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS_PER_SIZE, help="timed sweeps per size (default 3)")
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        print("Set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres; the "
              "benchmark creates and drops its own database there.", file=sys.stderr)
        return 2
    maintenance_url, bench_url, name = server_urls(database_url)
    create_database(maintenance_url, name)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from psp_simulator.process import SimulatorProcess

    folder = Path(tempfile.mkdtemp(prefix="reckon-bench-"))
    simulator = SimulatorProcess(folder / "psp.sqlite3", folder / "psp.log")
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        simulator.start()
        settings.PSP_SIMULATOR_URL = settings.PSP_SIMULATOR_PUBLIC_URL = simulator.url
        print(f"database {name}, simulator {simulator.url}, batch size {settings.PAYMENT_SYNC_BATCH_SIZE}")

        started = time.perf_counter()
        ids = seed_due_payments(DUE)
        print(f"seeded {DUE} open payments with PSP sessions in {time.perf_counter() - started:.1f} s")
        timed_sweep(ids)  # warm-up: connections, caches, the simulator's SQLite

        results: dict[int, list[float]] = {}
        inserted = DUE
        for size in SIZES:
            seconds = grow_history(inserted - DUE + 1, size - DUE)
            inserted = size
            total = count_payments()
            print(f"\n== {total:,} payments ({total - DUE:,} final, {DUE:,} due); history grown in {seconds:.1f} s")
            results[size] = [timed_sweep(ids) for _ in range(args.runs)]
            print("sweep of the 1,000 due: " + ", ".join(f"{t:.2f} s" for t in results[size])
                  + f" (median {statistics.median(results[size]):.2f} s, "
                  f"{DUE / statistics.median(results[size]):.0f} payments/s)")
            print("claiming query:\n" + explain_claim(ids))

        small, large = (statistics.median(results[s]) for s in SIZES)
        print(f"\n== one full sweep of {DUE:,} due payments: {small:.2f} s at {SIZES[0]:,} payments, "
              f"{large:.2f} s at {SIZES[1]:,}; ratio {large / small:.3f} (aim < 1.2)")

        from payments.selectors import payments_past_deadline, stuck_payments

        print("\nthe other sweeps' queries at 1,000,000 payments:")
        print(explain("expire sweep: payments past their deadline", payments_past_deadline()[:200]))
        print(explain("alert sweep: stuck payments not yet reported", stuck_payments().filter(alerted_at=None)[:500]))
        return 0
    finally:
        simulator.stop()
        from django.db import connections

        connections.close_all()
        drop_database(maintenance_url, name)
        shutil.rmtree(folder, ignore_errors=True)  # the simulator's database and log


if __name__ == "__main__":
    sys.exit(main())
