"""Does the sync sweep scale out with workers? Due payments checked per second with 1, 2 and 4 worker processes.

Starts, on 127.0.0.1 in a folder under /tmp: a throwaway PostgreSQL, the PSP
simulator with a fixed latency on every call (50 ms), and a Redis server
(Debian's `redis-server`). Seeds `--due` real open payments (an order each,
a hosted session at the simulator: pending there and here), then for each
broker (django-q2's ORM broker, then Redis with `REDIS_URL`) and each worker
count: makes every payment due, starts `manage.py qcluster` with that many
workers, queues the scheduled task `payments.tasks.sync_payments` once (which
fans the backlog out to helper sweeps, docs/worker.md), and times until every
payment has been asked about. It prints the seconds, payments checked per
second, and the speed-up over one worker on the same broker (aim: 3x with 4).

The payments stay pending at the PSP, so each run checks the same ones
again: a check is a real `retrieve` at the PSP and the write of its answer
(the next check on the back-off ladder); settling would add one transition
and one order update per payment, on the same claim.

    .venv/bin/python bench/sweep_throughput.py [--due 10000] [--latency-ms 50] [--workers 1,2,4]

About 35 minutes at the defaults (the one-worker runs are 10,000 x ~60 ms);
every process it starts is stopped at the end, also on Ctrl-C or a failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.stack import PYTHON, ManagedProcess, Postgres, RedisServer  # noqa: E402
from psp_simulator.process import SimulatorProcess  # noqa: E402


def shop_env(database_url: str, psp_url: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSP_SIM", "Q_", "DJANGO_", "REDIS"))}
    env.update(DEBUG="0", SECRET_KEY="bench-only-secret-key-" + "x" * 40, DATABASE_URL=database_url,
               RECKON_VAR_DIR=str(folder / "var"), PSP_SIMULATOR_URL=psp_url, PSP_SIMULATOR_PUBLIC_URL=psp_url,
               EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend", RATELIMIT_ENABLE="0",
               LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               # One sweep may run the whole backlog: the one-worker run takes ~10 minutes.
               Q_TIMEOUT="1800", Q_RETRY="1900", CONN_MAX_AGE="60")
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def checked() -> int:
    """Payments asked about since make_all_due (it set check_count to 0); the database holds only the seeded."""
    from payments.models import Payment

    return Payment.objects.filter(check_count__gte=1).count()


def one_run(env: dict[str, str], folder: Path, workers: int, ids: list, label: str) -> float:
    from django.db import connection

    from bench.sweep_scale import make_all_due

    make_all_due(ids)
    connection.close()
    cluster_env = {**env, "Q_WORKERS": str(workers), "LOG_LEVEL": "INFO"}  # INFO: its "ready for work" lines
    log = folder / f"qcluster-{label}-{workers}.log"
    cluster = ManagedProcess("qcluster", [PYTHON, "manage.py", "qcluster"], cluster_env, log).start()
    try:
        deadline = time.monotonic() + 60
        while log.read_text(errors="replace").count("ready for work at") < workers:
            if time.monotonic() > deadline or not cluster.running():
                raise RuntimeError(f"qcluster did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        started = time.monotonic()
        manage(cluster_env, "shell", "-c", "from django_q.tasks import async_task; "
                                           "async_task('payments.tasks.sync_payments')")
        while (done := checked()) < len(ids):
            if time.monotonic() - started > 3600:
                raise RuntimeError(f"only {done}/{len(ids)} checked after an hour")
            time.sleep(0.25)
        return time.monotonic() - started
    finally:
        cluster.stop()
        with connection.cursor() as cursor:  # helpers still queued would only find nothing due; drop them
            cursor.execute("DELETE FROM django_q_ormq")
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--due", type=int, default=10_000, help="due payments (default 10000)")
    parser.add_argument("--latency-ms", type=int, default=50, help="PSP latency on every call (default 50)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to try (default 1,2,4)")
    parser.add_argument("--brokers", default="orm,redis", help="brokers to try (default orm,redis)")
    args = parser.parse_args()
    try:
        worker_counts = [int(n) for n in args.workers.split(",")]
        brokers = [b.strip() for b in args.brokers.split(",")]
    except ValueError:
        print("--workers takes numbers separated by commas, e.g. 1,2,4", file=sys.stderr)
        return 2
    if set(brokers) - {"orm", "redis"} or args.due < 1:
        print("--brokers takes orm and/or redis; --due must be at least 1", file=sys.stderr)
        return 2

    folder = Path(tempfile.mkdtemp(prefix="reckon-sweep-throughput."))
    folder.chmod(0o755)
    pg = Postgres(folder / "pg")
    psp = SimulatorProcess(folder / "psp.sqlite3", folder / "psp.log")
    redis = None
    try:
        pg.start()
        psp.start()
        env = shop_env(pg.url(), psp.url, folder)
        (folder / "var").mkdir()
        manage(env, "migrate", "--noinput", "-v0")
        if "redis" in brokers:
            redis = RedisServer(folder / "redis").start()
            redis_url = redis.url
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        import django

        django.setup()
        from bench.sweep_scale import seed_due_payments
        from tests.psp import Simulator

        simulator = Simulator(psp.url)
        simulator.faults(latency_ms=[0, 0])
        print(f"==> seeding {args.due} open payments", flush=True)
        seeded = time.monotonic()
        ids = seed_due_payments(args.due)
        print(f"    {time.monotonic() - seeded:.0f} s", flush=True)
        simulator.faults(latency_ms=[args.latency_ms, args.latency_ms])

        results: dict[tuple[str, int], float] = {}
        for broker in brokers:
            broker_env = {**env, "REDIS_URL": redis_url} if broker == "redis" else env
            for workers in worker_counts:
                print(f"==> {broker} broker, {workers} worker(s)", flush=True)
                seconds = one_run(broker_env, folder, workers, ids, broker)
                results[broker, workers] = seconds
                print(f"    {seconds:.1f} s, {len(ids) / seconds:.1f} payments checked/s", flush=True)

        print(f"\nSWEEP THROUGHPUT ({len(ids)} due payments, PSP latency {args.latency_ms} ms, "
              f"PAYMENT_SYNC_BATCH_SIZE 100, 2 cores shared with PostgreSQL and the simulator)")
        print(f"  {'broker':<8}{'workers':>8}{'seconds':>10}{'checked/s':>11}{'speed-up':>10}")
        for (broker, workers), seconds in results.items():
            base = results.get((broker, worker_counts[0]))
            print(f"  {broker:<8}{workers:>8}{seconds:>10.1f}{len(ids) / seconds:>11.1f}"
                  f"{(base / seconds if base else 0):>9.2f}x")
        return 0
    finally:
        from django.db import connections

        connections.close_all()
        psp.stop()
        if redis:
            redis.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
