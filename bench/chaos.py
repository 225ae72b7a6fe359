"""Prove it: N customer checkouts against the real stack under PSP and process faults.

    .venv/bin/python bench/chaos.py --checkouts 200 --seed 7      # the fault-injection run
    .venv/bin/python bench/chaos.py --checkouts 2000 --no-faults  # the throughput benchmark
    .venv/bin/python bench/chaos.py --cluster --checkouts 2000    # the multi-node run

Brings up PostgreSQL, the PSP simulator, gunicorn and the django-q2 cluster on
127.0.0.1 (bench/stack.py); with --cluster, Redis (REDIS_URL for every shop
process), two web nodes (each its own gunicorn master) behind nginx, with
/readyz as its health check, and two worker nodes (each its own qcluster), and
on top of the faults below the whole-node ones: a worker node killed, a web
master killed (both restarted by the script as the supervisor), Redis
crash-restarted. It drives the checkouts over HTTP (bench/customers.py) while injecting the seeded faults (bench/plan.py, bench/process_faults.py),
then turns the faults off, sweeps until no payment is open, runs
`manage.py audit_ledger` and prints a table. Exits 1 on any violation (a
double or lost charge, a payment left open, an audit failure), 2 when the run
itself could not be carried out. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from bench import figures  # noqa: E402
from bench.customers import Customer, Outcome, Timings  # noqa: E402
from bench.plan import checkout_plans, plan_digest, process_faults, psp_faults  # noqa: E402
from bench.process_faults import FaultLog, ProcessFaults  # noqa: E402
from bench.stack import Stack, StackConfig  # noqa: E402

# Short timings so that a run settles in minutes (see bench/README.md).
STACK_SETTINGS = {
    "PAYMENT_DEADLINE_MINUTES": "1",
    "PAYMENT_SYNC_BACKOFF_SECONDS": "1,2,5",
    "PAYMENT_CREATED_GRACE_SECONDS": "10",
    "PSP_CONNECT_TIMEOUT": "1",
    "PSP_READ_TIMEOUT": "2",
    "CONN_MAX_AGE": "60",
    "Q_TIMEOUT": "20",
    "Q_RETRY": "25",
    "WEBHOOK_TOLERANCE_SECONDS": "300",
    "LOG_LEVEL": "INFO",
}
SIM_FAULTS_OFF = {"latency_ms": 0, "timeout_rate": 0.0, "error_rate": 0.0, "lose_response_rate": 0.0,
                  "webhook_drop_rate": 0.0, "webhook_duplicate_rate": 0.0, "webhook_delay_ms": 0,
                  "webhook_reorder_rate": 0.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkouts", type=int, default=200, help="number of customer checkouts (default 200)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the customer and fault schedule (default 7)")
    parser.add_argument("--no-faults", action="store_true",
                        help="no faults, every customer pays once: the throughput benchmark, with its baseline")
    parser.add_argument("--concurrency", type=int, help="customers at once (default 16, benchmark 24)")
    parser.add_argument("--cluster", action="store_true",
                        help="the multi-node stack: Redis, nginx over --web-nodes, --worker-nodes, node faults")
    parser.add_argument("--web-nodes", type=int, help="web nodes behind nginx with --cluster (default 2)")
    parser.add_argument("--worker-nodes", type=int, help="worker nodes with --cluster (default 2)")
    parser.add_argument("--web-workers", type=int, help="gunicorn workers per web node (default 4; --cluster 2)")
    parser.add_argument("--web-server", choices=["asgi", "wsgi"], default="asgi",
                        help="asgi: production's uvicorn workers (default); wsgi: gunicorn's threaded sync workers, "
                             "HTTP only, to measure what the ASGI server costs")
    parser.add_argument("--q-workers", type=int, default=2, help="django-q2 workers per worker node (default 2)")
    parser.add_argument("--max-load-minutes", type=float, default=120, help="stop starting checkouts after this")
    parser.add_argument("--quiesce-seconds", type=float, default=240,
                        help="how long to sweep for open payments to settle after the load (default 240)")
    parser.add_argument("--top-statements", type=int, default=0, metavar="N",
                        help="with --no-faults, also print the web server's N most frequent statements per paid "
                             "checkout (pg_stat_statements)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, databases) afterwards")
    args = parser.parse_args(argv)
    if args.checkouts < 1:
        parser.error("--checkouts must be at least 1")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    args.concurrency = args.concurrency or (24 if args.no_faults else 16)
    if not args.cluster and (args.web_nodes or args.worker_nodes):
        parser.error("--web-nodes and --worker-nodes go with --cluster")
    args.web_nodes = args.web_nodes or (2 if args.cluster else 1)
    args.worker_nodes = args.worker_nodes or (2 if args.cluster else 1)
    args.web_workers = args.web_workers or (2 if args.cluster else 4)
    if min(args.web_nodes, args.worker_nodes, args.web_workers, args.q_workers) < 1:
        parser.error("--web-nodes, --worker-nodes, --web-workers and --q-workers must be at least 1")
    return args


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.faults = not args.no_faults
        self.stack = Stack(StackConfig(web_workers=args.web_workers, q_workers=args.q_workers,
                                       env=dict(STACK_SETTINGS), baseline=args.no_faults,
                                       web_nodes=args.web_nodes, worker_nodes=args.worker_nodes,
                                       web_server=args.web_server,
                                       redis=args.cluster, nginx=args.cluster))
        self.timings = Timings()
        self.fault_log = FaultLog()
        self.outcomes: list[Outcome] = []
        self.figures: dict = {}
        self.stop = threading.Event()

    def control(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.stack.psp_url}/control/{path}", json=body, timeout=60,
                                    headers={"Authorization": "Bearer sk_sim_test"})
        response.raise_for_status()
        return response.json()

    def layout(self) -> str:
        a = self.args
        server = "uvicorn" if a.web_server == "asgi" else "gthread (WSGI)"
        if not a.cluster:
            return f"{a.web_workers} gunicorn {server} workers, {a.q_workers} django-q2 workers"
        return (f"nginx over {a.web_nodes} web node(s) of {a.web_workers} gunicorn {server} workers, "
                f"{a.worker_nodes} worker "
                f"node(s) of {a.q_workers} django-q2 workers, Redis broker/cache/channel layer")

    # -- phases ----------------------------------------------------------------
    def execute(self) -> int:
        args = self.args
        print(f"==> starting the stack in {self.stack.folder}", flush=True)
        started = time.monotonic()
        self.stack.start()
        print(f"    up in {time.monotonic() - started:.1f} s: shop {self.stack.shop_url}, psp {self.stack.psp_url}, "
              f"{self.layout()}", flush=True)
        with self.stack.connect() as conn:
            products = conn.execute("SELECT id, slug FROM shop_product WHERE is_active ORDER BY id").fetchall()
        plans = checkout_plans(seed=args.seed, checkouts=args.checkouts, faults=self.faults, products=len(products))
        schedule = process_faults(seed=args.seed, checkouts=args.checkouts, faults=self.faults,
                                  cluster=args.cluster)
        sim_faults = psp_faults(seed=args.seed, faults=self.faults)
        self.figures["plan_digest"] = plan_digest(plans, schedule, sorted(sim_faults.items()))
        self.control("POST", "faults", sim_faults)
        with self.stack.connect() as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

        print(f"==> {args.checkouts} checkouts, {args.concurrency} at a time"
              f"{'' if self.faults else ' (no faults: benchmark)'}; seed {args.seed}, "
              f"plan {self.figures['plan_digest']}", flush=True)
        cpu_before = self.stack.cpu_seconds()
        load_seconds = self.load(plans, products, schedule)
        self.figures["load_cpu"] = _minus(self.stack.cpu_seconds(), cpu_before)
        self.figures["load_seconds"] = load_seconds
        self.figures["shop_requests"] = self.timings.shop_requests()
        with self.stack.connect() as conn:
            books = figures.read_books(conn)
            self.figures["statements"] = figures.statement_counts(conn) if not self.faults else {}
            self.figures["top_statements"] = (figures.top_statements(conn, "reckon_web", args.top_statements)
                                              if not self.faults and args.top_statements else [])
        self.figures["load_books"] = books

        print("==> faults off; sweeping until no payment is open", flush=True)
        self.control("POST", "faults", SIM_FAULTS_OFF)
        self.figures["quiesce_seconds"], self.figures["quiet"] = self.quiesce()

        if not self.faults:
            print("==> baseline: the same number of requests to the bare insert-and-commit view", flush=True)
            cpu_before = self.stack.cpu_seconds()
            self.figures["baseline_seconds"] = self.baseline(self.figures["shop_requests"])
            self.figures["baseline_cpu"] = _minus(self.stack.cpu_seconds(), cpu_before)

        print("==> manage.py audit_ledger", flush=True)
        audit = self.stack.manage("audit_ledger", check=False, timeout=600)
        self.figures["audit"] = audit
        ledger = figures.psp_ledger(self.stack.psp_url)
        with self.stack.connect() as conn:
            books = figures.read_books(conn)
        self.figures["books"] = books
        self.figures["ledger"] = ledger
        self.figures["money"] = figures.check_money(ledger, books)
        return self.report()

    def load(self, plans, products, schedule) -> float:
        wait = 30.0 if self.faults else 60.0
        poll = 1.0  # payment-status.js polls after 1 s, then backs off
        pending_faults = list(schedule)
        injector = ProcessFaults(self.stack, self.args.seed, self.fault_log)
        started = [0]
        lock = threading.Lock()
        deadline = time.monotonic() + self.args.max_load_minutes * 60

        def one(plan):
            with lock:
                started[0] += 1
            if self.stop.is_set() or time.monotonic() > deadline:
                return Outcome(plan.index, result="not_started")
            return Customer(plan, shop=self.stack.shop_url, psp=self.stack.psp_url, products=products,
                            timings=self.timings, poll_start=poll, wait_seconds=wait, stop=self.stop).run()

        start = time.monotonic()
        done = 0
        pool = ThreadPoolExecutor(self.args.concurrency)
        futures = [pool.submit(one, plan) for plan in plans]
        fault_thread = threading.Thread(target=self._fire_faults, args=(pending_faults, injector, started),
                                        daemon=True)
        fault_thread.start()
        try:
            for future in as_completed(futures):
                self.outcomes.append(future.result())
                done += 1
                if done % max(1, len(plans) // 10) == 0:
                    print(f"    {done}/{len(plans)} checkouts done, {time.monotonic() - start:.0f} s", flush=True)
        finally:
            # On Ctrl-C or an error, do not wait for the customers: they see the stop flag at their
            # next request, and the stack is stopped right after this.
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            fault_thread.join(timeout=120)
        return time.monotonic() - start

    def _fire_faults(self, pending, injector: ProcessFaults, started: list[int]) -> None:
        while pending and not self.stop.is_set():
            if started[0] >= pending[0].at_checkout:
                fault = pending.pop(0)
                try:
                    injector.run(fault.kind)
                except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                    self.fault_log.add(f"{fault.kind}_failed", str(exc)[:200])
                print(f"    fault: {self.fault_log.lines[-1]}", flush=True)
            else:
                time.sleep(0.05)
        for fault in pending:
            self.fault_log.add(f"{fault.kind}_not_fired", f"load ended before checkout {fault.at_checkout}")

    def quiesce(self) -> tuple[float, bool]:
        """Flush the PSP's webhooks and run the sweeps until no payment is open and every event is delivered.

        Stored events that failed to apply are left to the worker's retry task
        (minutes apart); they are reported, and the audit asks the PSP itself.
        """
        start = time.monotonic()
        deadline = start + self.args.quiesce_seconds
        sweeps = [cmd for cmd in (("sync_payments", "--due"), ("expire_payments",))
                  if self.stack.has_command(cmd[0])]
        last_report = 0.0
        while True:
            self.control("POST", "webhooks/flush")
            with self.stack.connect() as conn:
                open_payments, unprocessed = figures.count_open(conn)
            undelivered = self._undelivered_webhooks()
            if open_payments == 0 and undelivered == 0:
                return time.monotonic() - start, True
            if time.monotonic() > deadline:
                return time.monotonic() - start, False
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                print(f"    {open_payments} payment(s) open, {unprocessed} stored event(s) not applied, "
                      f"{undelivered} undelivered at the PSP; {time.monotonic() - start:.0f} s", flush=True)
            for cmd in sweeps:
                self.stack.manage(*cmd, check=False, timeout=300)
            time.sleep(1)

    def _undelivered_webhooks(self) -> int:
        events = figures.psp_ledger(self.stack.psp_url)["events"]
        return sum(1 for e in events if not e["delivered"] and not e["dropped"])

    def baseline(self, total_requests: int) -> float:
        url = f"{self.stack.shop_url}/bench/baseline/"
        remaining = [total_requests]
        lock = threading.Lock()

        def worker() -> None:
            http = requests.Session()
            http.trust_env = False
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                started = time.monotonic()
                try:
                    ok = http.post(url, timeout=(3, 20)).status_code == 200
                except requests.RequestException:
                    ok = False
                self.timings.add("baseline:insert", time.monotonic() - started, ok)

        start = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(self.args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - start

    # -- the report ------------------------------------------------------------
    def report(self) -> int:
        f, args = self.figures, self.args
        books, money, ledger = f["books"], f["money"], f["ledger"]
        audit = f["audit"]
        violations = [line for line in audit.stdout.splitlines() if line.startswith("[")]
        outcomes = Counter(o.result for o in self.outcomes)
        rows = [
            ("seed", f"{args.seed} (plan {f['plan_digest']})"),
            ("checkouts", f"{args.checkouts} ({sum(books.orders.values())} orders placed)"),
            ("stack", self.layout()),
        ]
        if self.faults:
            counts = ledger["fault_counts"]
            rows.append(("PSP faults injected", ", ".join(f"{k} {v}" for k, v in counts.items())))
            rows.append(("process faults", ", ".join(f"{k} {v}" for k, v in sorted(self.fault_log.counts.items()))))
            if args.cluster:
                rows.append(("node restarts (supervisor)", ", ".join(
                    f"{n.name} {n.restarts}" for n in self.stack.webs + self.stack.workers)))
                rows.append(("nginx upstream changes", str(self.stack.nginx.reloads)))
        rows += [
            ("paid orders", str(books.paid_orders)),
            ("double charges", str(len(money.double_charges))),
            ("lost charges", str(len(money.lost_charges))),
            ("payments still open", str(books.open_payments)),
            ("charged, order not paid", str(len(books.charged_not_paid))),
            ("paid, nothing charged", str(len(books.paid_not_charged))),
            ("audit_ledger", f"exit {audit.returncode}, {len(violations)} violation(s)"),
            ("time to quiescence", f"{f['quiesce_seconds']:.1f} s{'' if f['quiet'] else ' (gave up: still open)'}"),
            ("load time", f"{f['load_seconds']:.1f} s"),
            ("PSP transactions", f"{money.psp_transactions} ({money.psp_captures} captured)"),
            ("payments by state", ", ".join(f"{k} {v}" for k, v in sorted(books.payments.items()))),
            ("orders by state", ", ".join(f"{k} {v}" for k, v in sorted(books.orders.items()))),
            ("stored webhook events not applied", str(books.webhooks_unprocessed)),
            ("discrepancies", ", ".join(f"{k} {v}" for k, v in sorted(books.discrepancies.items())) or "none"),
            ("customer e-mail (kind status)", ", ".join(f"{k} {v}" for k, v in sorted(books.mail.items())) or "none"),
            ("customer e-mail problems", str(len(books.mail_problems))),
            ("customer outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))),
            ("why customers gave up", ", ".join(f"{k} ({v})" for k, v in Counter(
                o.note for o in self.outcomes if o.result == "gave_up").most_common(6)) or "none"),
            ("requests that failed", ", ".join(f"{k} {v}" for k, v in sorted(self.timings.errors.items())) or "none"),
        ]
        if not self.faults:
            rows += self._benchmark_rows()
        width = max(len(k) for k, _ in rows)
        print()
        print(("CHAOS RUN" if self.faults else "THROUGHPUT BENCHMARK") + f" ({args.checkouts} checkouts)")
        for key, value in rows:
            print(f"  {key.ljust(width)}  {value}")
        print("\nlatency by request kind (ms):")
        print(f"  {'kind'.ljust(20)} {'count':>7} {'p50':>8} {'p99':>8}")
        for kind, values in sorted(self.timings.samples.items()):
            print(f"  {kind.ljust(20)} {len(values):>7} {figures.percentile(values, 50) * 1000:>8.1f} "
                  f"{figures.percentile(values, 99) * 1000:>8.1f}")
        if f.get("top_statements"):
            paid = max(1, books.paid_orders)
            print("\nthe web server's most frequent statements (per paid checkout):")
            for calls, query in f["top_statements"]:
                print(f"  {calls / paid:6.2f}  {query[:150]}")
        for line in self.fault_log.lines:
            print(f"  fault at {line}")
        problems = violations + [f"double charge: {d}" for d in money.double_charges] + \
            [f"lost charge: {c}" for c in money.lost_charges]
        problems += [f"charged for order {o}, which is not paid, and no discrepancy says so"
                     for o in books.charged_not_paid]
        problems += [f"order {o} is paid with no captured payment" for o in books.paid_not_charged]
        problems += books.mail_problems
        if books.open_payments:
            problems.append(f"{books.open_payments} payment(s) still open after {f['quiesce_seconds']:.0f} s")
        if audit.returncode != 0 and not violations:
            problems.append(f"audit_ledger failed: {audit.stderr.strip()[-500:]}")
        for problem in problems[:50]:
            print(f"VIOLATION {problem}")
        ok = not problems
        args.keep = args.keep or not ok  # the logs of a failed run are kept for the post-mortem
        print(f"\n{'OK' if ok else 'FAILED'}: seed {args.seed}, logs in {self.stack.folder}" if not ok or args.keep
              else f"\nOK: seed {args.seed}")
        return 0 if ok else 1

    def _benchmark_rows(self) -> list[tuple[str, str]]:
        f = self.figures
        paid = max(1, f["load_books"].paid_orders)
        shop_requests = f["shop_requests"]
        rate = f["load_books"].paid_orders / f["load_seconds"]
        baseline_rate = (shop_requests / f["baseline_seconds"]) / (shop_requests / paid)
        calls = f["load_books"].gateway_calls
        rows = [
            ("paid checkouts per second", f"{rate:.2f}"),
            ("shop requests per checkout", f"{shop_requests / paid:.2f} ({shop_requests} in all)"),
            ("baseline", f"{shop_requests} requests in {f['baseline_seconds']:.1f} s = "
                         f"{shop_requests / f['baseline_seconds']:.1f} req/s = {baseline_rate:.2f} checkouts/s"),
            ("ratio to baseline", f"{rate / baseline_rate:.2f} (aim: at least 0.5)"),
            ("PSP calls per paid checkout", f"{sum(calls.values()) / paid:.2f} ("
                                            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) + ")"),
        ]
        per = lambda cpu, n: ", ".join(f"{k} {v * 1000 / n:.0f}" for k, v in cpu.items())  # noqa: E731
        rows.append(("CPU ms per paid checkout", per(f["load_cpu"], paid)))
        rows.append(("CPU ms per baseline checkout", per(f["baseline_cpu"], paid)))
        for role, counts in sorted(f["statements"].items()):
            if role in ("reckon_web", "reckon_worker"):
                rows.append((f"SQL per paid checkout ({role[7:]})",
                             f"{counts['all'] / paid:.1f} statements, of which {counts['tx_control'] / paid:.1f} "
                             f"BEGIN/COMMIT/SAVEPOINT and {counts['django_q'] / paid:.1f} on django-q2's tables"))
        return rows


def _minus(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run(args)
    # SIGTERM (a CI timeout) stops the run like Ctrl-C: the finally below stops every process.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (a background job)
    try:
        return run.execute()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the stack", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, and the logs are kept
        args.keep = True
        print(f"\nthe run could not be carried out: {type(exc).__name__}: {exc}\nlogs in {run.stack.folder}",
              file=sys.stderr)
        return 2
    finally:
        run.stop.set()
        run.stack.stop()
        if not args.keep:
            run.stack.remove()


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    sys.exit(main())
