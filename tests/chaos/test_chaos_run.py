"""The small chaos runs (bench/chaos.py) as part of the PostgreSQL run of the suite.

Each brings up its own throwaway stack in a subprocess: PostgreSQL, the PSP
simulator, gunicorn and the django-q2 cluster; the multi-node run also Redis,
nginx, two web nodes and two worker nodes (scripts/test installs redis-server
and nginx). On the SQLite run they are skipped. About two minutes each on a
2-core machine; deselect them with -m "not slow".
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


postgres_run = pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                                  reason="part of the PostgreSQL run (scripts/test); needs the PostgreSQL binaries")


def chaos(*args: str):
    """Run bench/chaos.py; its table, and a reader of one row of it."""
    run = subprocess.run([sys.executable, "bench/chaos.py", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    table = run.stdout
    assert run.returncode == 0, f"chaos run failed (exit {run.returncode}):\n{table[-6000:]}\n{run.stderr[-3000:]}"

    def row(name: str) -> str:
        found = re.search(rf"^  {name}\s+(.+)$", table, re.MULTILINE)
        assert found, f"no {name!r} row in:\n{table}"
        return found.group(1)

    return table, row


def counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"([\w-]+) (\d+)", text)}


def assert_books_balance(row) -> None:
    assert row("double charges") == "0"
    assert row("lost charges") == "0"
    assert row("payments still open") == "0"
    assert row("charged, order not paid") == "0" and row("paid, nothing charged") == "0"
    assert row("audit_ledger") == "exit 0, 0 violation(s)"
    assert row("customer e-mail problems") == "0"


@postgres_run
def test_200_checkouts_under_faults_lose_and_double_no_charge():
    _, row = chaos("--checkouts", "200", "--seed", "7")
    # The books of both ledgers, and the outbox: one receipt per paid order, one expiry mail per
    # expired order, no event mailed twice.
    assert_books_balance(row)
    assert "payment_succeeded" in row(r"customer e-mail \(kind status\)")
    # The faults really happened: the required process faults, and PSP faults of every kind.
    process = counts(row("process faults"))
    assert process.get("kill_q_worker", 0) >= 3 and process.get("restart_postgres", 0) >= 2
    assert process.get("kill_web_worker", 0) >= 1
    psp = counts(row("PSP faults injected"))
    assert all(psp.get(kind, 0) > 0 for kind in ("timeout", "error", "lose_response", "webhook_drop",
                                                  "webhook_duplicate", "webhook_reorder")), psp
    # The worker kept working through its killed workers (a killed worker once stalled the whole cluster,
    # and card payments waited until they were failed as never sent).
    outcomes = counts(row("customer outcomes"))
    assert outcomes.get("left_while_created", 0) <= 10, outcomes
    assert int(row("paid orders")) > 100


@postgres_run
def test_200_checkouts_on_two_web_and_two_worker_nodes_behind_nginx_survive_node_faults():
    """The multi-node run: Redis, nginx over two gunicorn masters, two qclusters, and whole nodes killed."""
    if not (shutil.which("redis-server") and (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK))):
        if os.environ.get("CI"):
            pytest.fail("scripts/test installs redis-server and nginx; they are missing")
        pytest.skip("redis-server or nginx is not installed (scripts/test installs both)")
    _, row = chaos("--cluster", "--checkouts", "200", "--seed", "11")
    assert_books_balance(row)
    assert "Redis broker" in row("stack") and "nginx over 2 web node(s)" in row("stack")
    # Every node fault fired at least twice, on each node in turn, and the supervisor brought the nodes back.
    process = counts(row("process faults"))
    for kind in ("kill_worker_node", "kill_web_master", "restart_redis", "restart_postgres"):
        assert process.get(kind, 0) >= 2, process
    assert process.get("kill_q_worker", 0) >= 3 and process.get("kill_web_worker", 0) >= 1
    assert not any(kind.endswith(("_failed", "_not_fired", "_skipped")) for kind in process), process
    restarts = counts(row(r"node restarts \(supervisor\)"))
    assert all(restarts[name] >= 1 for name in ("web-1", "web-2", "worker-1", "worker-2")), restarts
    assert int(row("nginx upstream changes")) >= 2  # the health check took a killed node out and back in
    assert int(row("paid orders")) > 100
