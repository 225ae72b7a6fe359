"""Does the support console's payment list stay fast with a million payments?

Seeds 10,000 and then 1,000,000 payments (each with its order; ~1 in 2,000
still open, most of those stuck; ~1 in 10,000 with an open discrepancy) by
bulk SQL (generate_series), then renders the payment changelist through
Django's test client as a logged-in "Payment support" user and prints the
median time of each page at both sizes, with its query count and its slowest
query. Aim: under 300 ms each at a million rows.

    DATABASE_URL=postgres://user@host:port/anything .venv/bin/python bench/admin_changelist.py [--runs N]

It creates its own database on that server (reckon_bench_admin_<pid>) and
drops it at the end; it never touches the database named in DATABASE_URL.
About two minutes, most of it seeding.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZES = (10_000, 1_000_000)
RUNS = 7
CHUNK = 250_000
AIM_MS = 300

ORDERS = """
INSERT INTO orders_order (number, access_token, checkout_token, email, full_name, address_line1, address_line2,
                          city, postal_code, country, currency, total_minor, state, stock_released,
                          created_at, updated_at)
SELECT 'BA-' || lpad(g::text, 9, '0'), md5('bench-admin-' || g), NULL,
       'customer' || mod(g, 50000) || '@example.com', 'Customer ' || g, '1 Road', '', 'City', '1000', 'GB',
       'EUR', 1250,
       CASE WHEN mod(g, 2000) = 7 THEN 'awaiting_payment' WHEN mod(g, 20) IN (1, 2, 3) THEN 'expired'
            WHEN mod(g, 20) = 4 THEN 'refunded' ELSE 'paid' END,
       mod(g, 20) IN (1, 2, 3), now() - make_interval(secs => 30.0 * g), now() - make_interval(secs => 30.0 * g)
FROM generate_series(%(first)s, %(last)s) AS g
"""

PAYMENTS = """
INSERT INTO payments_payment (id, order_id, gateway, flow, amount_minor, currency, amount_refunded_minor, state,
                              psp_reference, redirect_url, card_token, failure_code, failure_message,
                              next_check_at, check_count, deadline_at, alerted_at, created_at, updated_at)
SELECT gen_random_uuid(), o.id, CASE WHEN mod(o.n, 50) = 0 THEN 'stripe' ELSE 'simulator' END,
       'hosted', 1250, 'EUR', CASE WHEN mod(o.n, 20) = 4 THEN 1250 ELSE 0 END,
       CASE WHEN mod(o.n, 2000) = 7 THEN 'pending' WHEN mod(o.n, 20) IN (1, 2) THEN 'declined'
            WHEN mod(o.n, 20) = 3 THEN 'expired' WHEN mod(o.n, 20) = 4 THEN 'refunded' ELSE 'captured' END,
       'txn_bench_' || o.n, '', '', '', '', NULL, 3, o.created_at + interval '30 minutes', NULL,
       o.created_at, o.created_at
FROM (SELECT id, created_at, substr(number, 4)::int AS n FROM orders_order
      WHERE number BETWEEN 'BA-' || lpad(%(first)s::text, 9, '0') AND 'BA-' || lpad(%(last)s::text, 9, '0')) AS o
"""

DISCREPANCIES = """
INSERT INTO payments_discrepancy (kind, status, dedupe_key, gateway, payment_id, psp_reference, summary, details,
                                  resolution, resolved_by_id, resolved_by_name, resolved_at, created_at)
SELECT 'amount_mismatch', 'open', 'bench:' || p.id, p.gateway, p.id, p.psp_reference, 'bench', '{}', '', NULL, '',
       NULL, p.created_at
FROM payments_payment p
WHERE p.psp_reference IN (SELECT 'txn_bench_' || g FROM generate_series(%(first)s, %(last)s) AS g
                          WHERE mod(g, 10000) = 5000)
"""


def server_urls(database_url: str) -> tuple[str, str, str]:
    """(maintenance URL, bench URL, bench database name) on the server of DATABASE_URL."""
    parts = urlsplit(database_url)
    name = f"reckon_bench_admin_{os.getpid()}"
    return urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts._replace(path=f"/{name}")), name


def run_sql(sql: str, **params) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def grow(first: int, last: int) -> float:
    started = time.perf_counter()
    for start in range(first, last + 1, CHUNK):
        end = min(start + CHUNK - 1, last)
        run_sql(ORDERS, first=start, last=end)
        run_sql(PAYMENTS, first=start, last=end)
        run_sql(DISCREPANCIES, first=start, last=end)
    # What autovacuum would have done by now on a live table: statistics and the visibility map.
    for table in ("orders_order", "payments_payment", "payments_discrepancy"):
        run_sql(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


def support_client():
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    os.environ["BENCH_SUPPORT_PASSWORD"] = "bench-support-password-1"
    call_command("create_support_user", "bench", "--email", "bench@example.com", "--password-from-env",
                 "BENCH_SUPPORT_PASSWORD", stdout=io.StringIO())
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    return client


def pages(size: int) -> dict[str, str]:
    from django.urls import reverse

    from payments.models import Payment

    changelist = reverse("admin:payments_payment_changelist")
    middle = Payment.objects.get(psp_reference=f"txn_bench_{size // 2}")
    return {
        "unfiltered": changelist,
        "stuck filter": f"{changelist}?stuck=yes",
        "search by PSP reference": f"{changelist}?{urlencode({'q': middle.psp_reference})}",
        "search by payment id": f"{changelist}?{urlencode({'q': str(middle.pk)})}",
        "search by e-mail (20 orders)": f"{changelist}?{urlencode({'q': 'customer4242@example.com'})}",
        "has open discrepancy": f"{changelist}?discrepancy=open",
        "state = declined": f"{changelist}?state__exact=declined",
        "gateway = stripe, page 3": f"{changelist}?gateway=stripe&p=3",
        "payment page": reverse("admin:payments_payment_change", args=[middle.pk]),
        "admin index (counts)": reverse("admin:index"),
    }


def measure(client, url: str, runs: int) -> tuple[float, int, float, str]:
    """Median ms over runs; then the query count, the slowest query's ms and its SQL from one captured run."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)  # warm-up
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
    return statistics.median(times), len(ctx.captured_queries), float(slowest["time"]) * 1000, slowest["sql"]


def explain(url_sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {url_sql}")
        return "\n".join("    " + row[0] for row in cursor.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help=f"timed requests per page (default {RUNS})")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each page's slowest query")
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        print("Set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres; the "
              "benchmark creates and drops its own database there.", file=sys.stderr)
        return 2
    import psycopg

    maintenance_url, bench_url, name = server_urls(database_url)
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=bench_url, ALLOWED_HOSTS="testserver", DEBUG="0", LOG_LEVEL="WARNING")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise, without collectstatic
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        client = support_client()
        print(f"database {name}; {args.runs} timed requests per page, median shown; aim < {AIM_MS} ms at "
              f"{SIZES[-1]:,} payments")
        results: dict[int, dict[str, tuple]] = {}
        seeded = 0
        for size in SIZES:
            seconds = grow(seeded + 1, size)
            seeded = size
            print(f"\n== {size:,} payments (seeded in {seconds:.1f} s)")
            print(f"  {'page':<30} {'median':>9} {'queries':>8} {'slowest query':>14}")
            results[size] = {}
            for label, url in pages(size).items():
                median, queries, slowest_ms, slowest_sql = measure(client, url, args.runs)
                results[size][label] = (median, queries, slowest_ms)
                print(f"  {label:<30} {median:>6.1f} ms {queries:>8} {slowest_ms:>11.1f} ms")
                if args.explain:
                    print(explain(slowest_sql))
        small, large = results[SIZES[0]], results[SIZES[-1]]
        print(f"\n== summary: median ms at {SIZES[0]:,} -> {SIZES[-1]:,} payments")
        worst = 0.0
        for label in large:
            worst = max(worst, large[label][0])
            print(f"  {label:<30} {small[label][0]:>6.1f} -> {large[label][0]:>6.1f} ms")
        verdict = "within" if worst < AIM_MS else "OVER"
        print(f"  slowest page at {SIZES[-1]:,}: {worst:.1f} ms ({verdict} the {AIM_MS} ms aim)")
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(maintenance_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
