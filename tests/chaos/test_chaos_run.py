"""The small chaos run (bench/chaos.py) as part of the PostgreSQL run of the suite.

It brings up its own throwaway stack (PostgreSQL, the PSP simulator, gunicorn,
the django-q2 cluster) in a subprocess, so it needs only the PostgreSQL
binaries that the PostgreSQL run has anyway; on the SQLite run it is skipped.
About two minutes on a 2-core machine; deselect it with -m "not slow".
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="part of the PostgreSQL run (scripts/test); needs the PostgreSQL binaries")
def test_200_checkouts_under_faults_lose_and_double_no_charge():
    run = subprocess.run([sys.executable, "bench/chaos.py", "--checkouts", "200", "--seed", "7"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    table = run.stdout
    assert run.returncode == 0, f"chaos run failed (exit {run.returncode}):\n{table[-6000:]}\n{run.stderr[-3000:]}"

    def row(name: str) -> str:
        found = re.search(rf"^  {name}\s+(.+)$", table, re.MULTILINE)
        assert found, f"no {name!r} row in:\n{table}"
        return found.group(1)

    assert row("double charges") == "0"
    assert row("lost charges") == "0"
    assert row("payments still open") == "0"
    assert row("charged, order not paid") == "0" and row("paid, nothing charged") == "0"
    assert row("audit_ledger") == "exit 0, 0 violation(s)"
    # The outbox: one receipt per paid order, one expiry mail per expired order, no event mailed twice.
    assert row("customer e-mail problems") == "0"
    assert "payment_succeeded" in row(r"customer e-mail \(kind status\)")
    # The faults really happened: the required process faults, and PSP faults of every kind.
    process = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)", row("process faults")))
    assert process.get("kill_q_worker", 0) >= 3 and process.get("restart_postgres", 0) >= 2
    assert process.get("kill_web_worker", 0) >= 1
    psp = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)", row("PSP faults injected")))
    assert all(psp.get(kind, 0) > 0 for kind in ("timeout", "error", "lose_response", "webhook_drop",
                                                  "webhook_duplicate", "webhook_reorder")), psp
    # The worker kept working through its killed workers (a killed worker once stalled the whole cluster,
    # and card payments waited until they were failed as never sent).
    outcomes = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)", row("customer outcomes")))
    assert outcomes.get("left_while_created", 0) <= 10, outcomes
    assert int(row("paid orders")) > 100
