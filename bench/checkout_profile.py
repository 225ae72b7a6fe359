"""Where the SQL statements of a paid checkout go, request by request (deterministic: counts, not timings).

    .venv/bin/python bench/checkout_profile.py [--checkouts 20] [--show VIEW]
    DATABASE_URL=$PG_URL .venv/bin/python bench/checkout_profile.py   # on PostgreSQL

It makes its own database (a Django test database on the server of
DATABASE_URL, or a temporary SQLite file), loads the demo catalog, starts the
PSP simulator on a free port and serves the shop from a threaded WSGI server
on 127.0.0.1, both stopped at the end. Then customers from bench/customers.py
buy with a good card, half on each flow, one at a time, while every SQL
statement is counted per request (Django's execute wrapper, so BEGIN and
COMMIT, which the driver sends itself, are counted apart from the
transactions Django opened). The card charge that the worker runs is counted
as its own kind (`worker:charge`), the PSP's webhooks as `webhook`.

It prints, per request kind: how many requests, statements per request by
verb, per paid checkout, and the CPU time the request's thread spent in
Django (time.thread_time: each request runs in one thread of the WSGI
server, so the figure is the view, middleware, templates and database
driver, without the ASGI server's own cost, which bench/README.md measures
apart); with --show VIEW, the statements of one such request in order; with
--profile VIEW, cProfile's top functions over all requests of that kind.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import queue
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["Q_SYNC"] = "0"
os.environ["RATELIMIT_ENABLE"] = "0"  # one address buys all: as bench/stack.py, no per-address limits
os.environ.setdefault("DB_POOL_MAX_SIZE", "10")  # as config/asgi.py sets it for the web server (PostgreSQL only)

KINDS = [
    ("webhook", re.compile(r"^/payments/webhooks/")),
    ("status_json", re.compile(r"^/payments/[0-9a-f-]{36}/status\.json$")),
    ("return", re.compile(r"^/payments/[0-9a-f-]{36}/return/$")),
    ("status_page", re.compile(r"^/payments/[0-9a-f-]{36}/$")),
    ("pay_hosted", re.compile(r"^/payments/orders/.+/pay/hosted/$")),
    ("pay_card", re.compile(r"^/payments/orders/.+/pay/card/$")),
    ("order_page", re.compile(r"^/orders/")),
    ("product", re.compile(r"^/products/")),
    ("cart_add", re.compile(r"^/cart/add/")),
    ("cart", re.compile(r"^/cart/$")),
    ("checkout", re.compile(r"^/checkout/$")),
]
VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")


def kind_of(method: str, path: str) -> str:
    for name, pattern in KINDS:
        if pattern.match(path):
            return f"{name}_{method.lower()}" if name == "checkout" else name
    return "other"


class Recorder:
    """Statements per request, by kind, from every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter = Counter()
        self.verbs: dict[str, Counter] = defaultdict(Counter)
        self.samples: dict[str, list[str]] = {}
        self.transactions: Counter = Counter()
        self.cpu: Counter = Counter()
        self.profile_kind = ""
        self.profile: pstats.Stats | None = None

    def reset(self) -> None:
        with self.lock:
            for counter in (self.requests, self.transactions, self.cpu):
                counter.clear()
            self.verbs.clear()
            self.samples.clear()
            self.profile = None

    def record(self, kind: str, statements: list[str], transactions: int, cpu: float) -> None:
        with self.lock:
            self.requests[kind] += 1
            self.transactions[kind] += transactions
            self.cpu[kind] += cpu
            for sql in statements:
                verb = sql.lstrip().split(" ", 1)[0].upper()
                self.verbs[kind][verb if verb in VERBS else "other"] += 1
            self.samples.setdefault(kind, statements)


def counted(recorder: Recorder, kind: str, work):
    """Run work() counting its SQL statements and the transactions Django committed."""
    from django.db import connection

    statements: list[str] = []
    commits = [0]

    def wrapper(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    real_commit = connection.commit

    def commit():
        commits[0] += 1
        return real_commit()

    connection.commit = commit
    # CPU time, not wall time: waiting for the database or the PSP is not what the profile looks for.
    profiler = cProfile.Profile(time.thread_time) if recorder.profile_kind in {kind, "all"} else None
    started = time.thread_time()
    try:
        with connection.execute_wrapper(wrapper):
            if profiler is None:
                return work()
            return profiler.runcall(work)
    finally:
        cpu = time.thread_time() - started
        del connection.commit
        recorder.record(kind, statements, commits[0], cpu)
        if profiler is not None:
            with recorder.lock:
                if recorder.profile is None:
                    recorder.profile = pstats.Stats(profiler, stream=io.StringIO())
                else:
                    recorder.profile.add(profiler)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkouts", type=int, default=20)
    parser.add_argument("--show", default="", help="print the statements of one request of this kind")
    parser.add_argument("--profile", default="", help="print cProfile's top functions over the requests of this kind "
                                                      "(all: over every request)")
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"],
                        help="the order of --profile's functions")
    args = parser.parse_args()
    if args.checkouts < 2:
        parser.error("--checkouts must be at least 2 (one per flow)")

    folder = Path(tempfile.mkdtemp(prefix="reckon-profile-"))
    os.environ.setdefault("RECKON_VAR_DIR", str(folder))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from bench.customers import Customer, Timings
    from bench.plan import CheckoutPlan
    from psp_simulator.process import SimulatorProcess, free_port
    from shop.models import Product

    setup_test_environment()
    from django.template import Template
    from django.test.utils import _TestState

    # The test environment makes every template render send a signal for the test client: not what a server does.
    Template._render = _TestState.saved_data.template_render
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.DEBUG = False
    old_config = setup_databases(verbosity=0, interactive=False)
    recorder = Recorder()
    recorder.profile_kind = args.profile
    charges: queue.Queue = queue.Queue()
    shop_port = free_port()
    shop_url = f"http://127.0.0.1:{shop_port}"
    psp = SimulatorProcess(folder / "psp.sqlite3", folder / "psp.log",
                           webhook_url=f"{shop_url}/payments/webhooks/simulator/").start()
    server = None
    try:
        call_command("seed_demo", verbosity=0)
        Product.objects.update(stock=100_000)  # any --checkouts: no customer finds an item sold out
        settings.SHOP_BASE_URL = shop_url
        settings.PSP_SIMULATOR_URL = settings.PSP_SIMULATOR_PUBLIC_URL = psp.url

        import payments.services as services

        services._enqueue_charge = charges.put  # the worker below runs them, counted apart
        app = get_wsgi_application()

        def serve(environ, start_response) -> list[bytes]:
            response = app(environ, start_response)
            try:
                return list(response)
            finally:
                response.close()  # request_finished: Django closes the thread's connection

        def counting_app(environ, start_response):
            kind = kind_of(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
            return counted(recorder, kind, lambda: serve(environ, start_response))

        server = make_server("127.0.0.1", shop_port, counting_app, server_class=ThreadingServer,
                             handler_class=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def worker() -> None:
            from django.db import connection

            while (payment_id := charges.get()) is not None:
                counted(recorder, "worker:charge", lambda pid=payment_id: services.payment_charge(payment_id=pid))
                charges.task_done()
            connection.close()

        worker_thread = threading.Thread(target=worker, daemon=True)
        worker_thread.start()

        products = [(p.pk, p.slug) for p in Product.objects.active().order_by("pk")[:8]]
        timings = Timings()
        paid = 0
        # Two warm-up checkouts (one per flow), not counted: the first requests import the URLconf and
        # compile the templates, which a running server did long ago.
        for index in range(-2, args.checkouts):
            if index == 0:
                charges.join()  # the warm-up charges are done before the counters are reset
                recorder.reset()
            plan = CheckoutPlan(index=index, product=index % len(products), flow=("hosted", "direct")[index % 2],
                                card="success", clicks=1, double_submit_checkout=False, two_tabs=False,
                                abandon=False, cancel_on_psp=False, approve_3ds=True, retry_after_failure=False)
            outcome = Customer(plan, shop=shop_url, psp=psp.url, products=products, timings=timings,
                               poll_start=0.3, wait_seconds=20).run()
            paid += index >= 0 and outcome.result == "paid"
        charges.put(None)
        worker_thread.join(timeout=30)
        report(recorder, paid, args.checkouts, settings.DATABASES["default"]["ENGINE"], args.show)
        if recorder.profile is not None:
            print_profile(recorder, args.profile, args.sort)
        return 0 if paid == args.checkouts else 1
    finally:
        if server is not None:
            server.shutdown()
        psp.stop()
        from django.db import connections

        connections.close_all()
        teardown_databases(old_config, verbosity=0)


def print_profile(recorder: Recorder, kind: str, sort: str) -> None:
    count = sum(recorder.requests.values()) if kind == "all" else recorder.requests[kind]
    print(f"\ncProfile of the {count} {kind} requests ({sort}; the profiler's overhead inflates the times):")
    recorder.profile.stream = sys.stdout
    recorder.profile.sort_stats(sort).print_stats(35)
    if os.environ.get("PROFILE_DUMP"):
        recorder.profile.dump_stats(os.environ["PROFILE_DUMP"])  # for pstats, snakeviz, ...
    # By default the shop's own code: under this checkout, outside its virtualenv.
    pattern = os.environ.get("PROFILE_FUNCTIONS", re.escape(str(ROOT)) + r"/(?!\.venv)")
    print(f"of which the functions matching {pattern!r} (PROFILE_FUNCTIONS):")
    recorder.profile.print_stats(pattern, 40)


def report(recorder: Recorder, paid: int, checkouts: int, engine: str, show: str) -> None:
    print(f"{paid} of {checkouts} checkouts paid ({engine.rsplit('.', 1)[-1]}); statements per request by verb, "
          "and per paid checkout")
    columns = ["SELECT", "INSERT", "UPDATE", "DELETE", "SAVEPOINT", "RELEASE", "other"]
    print(f"{'request':<15}{'count':>6}{'per req':>9}  " + "".join(f"{c[:7]:>8}" for c in columns)
          + f"{'commits':>9}{'per paid':>10}{'CPU ms':>8}")
    total = 0.0
    web_total = 0.0
    web_cpu = 0.0
    for kind in sorted(recorder.requests, key=lambda k: -sum(recorder.verbs[k].values())):
        n = recorder.requests[kind]
        verbs = recorder.verbs[kind]
        statements = sum(verbs.values())
        per_paid = statements / max(paid, 1)
        total += per_paid
        if not kind.startswith("worker"):
            web_total += per_paid
            web_cpu += recorder.cpu[kind] / max(paid, 1)
        print(f"{kind:<15}{n:>6}{statements / n:>9.1f}  " + "".join(f"{verbs[c] / n:>8.1f}" for c in columns)
              + f"{recorder.transactions[kind] / n:>9.1f}{per_paid:>10.1f}{recorder.cpu[kind] * 1000 / n:>8.1f}")
    print(f"web server: {web_total:.1f} statements per paid checkout (plus the driver's BEGIN/COMMIT per "
          f"transaction); with the worker's charge: {total:.1f}")
    print(f"web server: {web_cpu * 1000:.1f} ms of CPU per paid checkout in Django's request threads "
          "(CPU ms column: per request)")
    if show:
        print(f"\nstatements of one {show} request:")
        for sql in recorder.samples.get(show, []):
            print("  ", re.sub(r"\s+", " ", sql)[:220])


if __name__ == "__main__":
    sys.exit(main())
