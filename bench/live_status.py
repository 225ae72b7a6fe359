"""Live status at load: N customers wait on open payments at once over WebSockets.

    flock /work/bench.lock .venv/bin/python bench/live_status.py [--db sqlite|postgres] [--sockets 500]

Starts the shop as separate processes (bench/live_stack.py): the PSP
simulator, the production web layout (gunicorn with --web-workers uvicorn
workers serving config.asgi) and, later, the django-q2 worker; on a SQLite
file or a throwaway PostgreSQL. Then:

1. --sockets + --pollers customers check out over HTTP; half pay on the PSP's
   hosted page (the payment is pending there), half with the card form (the
   charge is queued for the worker, which is not running yet);
2. the socket customers open the status page and its WebSocket, the pollers
   wait by polling status.json as payment-status.js does (the "before");
3. the payments are settled: the worker is started and captures the card
   payments, and the hosted ones are completed at the PSP over 10 s, whose
   webhooks the web processes apply;
4. it prints the delay from the commit of the final transition (its audit
   row's created_at) to the message at the client (p50, p99, max), missed
   final states, sockets per web process, memory per socket, and shop
   requests per paid checkout for the socket customers and for the pollers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
import requests  # noqa: E402
import websockets  # noqa: E402

from bench.live_stack import _CSRF, ShopProcesses, card_token, check_out, live_path, pay_by_card  # noqa: E402
from bench.stack import Postgres  # noqa: E402

_PAYMENT = re.compile(r'href="/payments/([0-9a-f-]{36})/"')


@dataclass
class Waiter:
    index: int
    flow: str  # "hosted" or "card"
    listens: bool  # socket (after) or polling (before)
    session: requests.Session = field(default_factory=requests.Session)
    requests: int = 0
    payment_id: str = ""
    status_path: str = ""
    final_at: float = 0.0
    final_seq: int = 0
    final_state: str = ""
    messages: int = 0
    error: str = ""

    def __post_init__(self) -> None:
        self.session.trust_env = False
        original = self.session.request

        def counted(*args, **kwargs):
            self.requests += 1
            return original(*args, **kwargs)

        self.session.request = counted


def prepare(w: Waiter, shop: ShopProcesses) -> None:
    """Check out and pay; leaves the payment open."""
    order_path = check_out(w.session, shop.url, index=w.index)
    if w.flow == "card":
        w.status_path = pay_by_card(w.session, shop.url, order_path, card_token(shop.psp.url, "4242424242424242"))
    else:
        number, access = order_path.strip("/").split("/")[1:3]
        page = w.session.get(shop.url + order_path, timeout=30)
        paid = w.session.post(f"{shop.url}/payments/orders/{number}/{access}/pay/hosted/", allow_redirects=False,
                              timeout=30, data={"csrfmiddlewaretoken": _CSRF.search(page.text).group(1)})
        assert paid.status_code == 302, paid.status_code
        # The customer came back from the PSP's page before the outcome: the order page links the status.
        order_page = w.session.get(shop.url + order_path, timeout=30)
        w.status_path = f"/payments/{_PAYMENT.search(order_page.text).group(1)}/"
    w.payment_id = w.status_path.strip("/").split("/")[1]


async def listen(w: Waiter, shop: ShopProcesses, opened: asyncio.Event, count: list[int], deadline: float) -> None:
    page = await asyncio.to_thread(w.session.get, shop.url + w.status_path, timeout=60)
    w.session.close()  # only the WebSocket stays open, so the sockets per process count it alone
    url = shop.url.replace("http://", "ws://") + live_path(page.text)
    try:
        async with websockets.connect(url, origin=shop.url, open_timeout=60, ping_interval=None) as ws:
            count[0] += 1
            ws_ports.add(ws.local_address[1])
            if count[0] == count[1]:
                opened.set()
            async with asyncio.timeout(max(1, deadline - time.time())):
                async for raw in ws:
                    data = json.loads(raw)
                    w.messages += 1
                    if data["final"]:
                        w.final_at, w.final_seq, w.final_state = time.time(), data["seq"], data["state"]
                        break
    except Exception as exc:  # noqa: BLE001 - counted as missed
        w.error = repr(exc)
        count[0] += 0


def poll(w: Waiter, shop: ShopProcesses, deadline: float) -> None:
    """payment-status.js: first poll after 1 s, then x1.5 up to 10 s; reload the page when final."""
    w.session.get(shop.url + w.status_path, timeout=60)
    delay = 1.0
    while time.time() < deadline:
        time.sleep(delay)
        data = w.session.get(f"{shop.url}{w.status_path}status.json", timeout=60).json()
        if data["final"]:
            w.final_at, w.final_state = time.time(), data["state"]
            w.session.get(shop.url + w.status_path, timeout=60)
            return
        delay = min(delay * 1.5, 10.0)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


ws_ports: set[int] = set()  # the benchmark's own WebSocket ends


def established_sockets(pid: int, port: int) -> int:
    """The benchmark's WebSockets that this web process holds (Linux /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote = int(parts[1].split(":")[1], 16), int(parts[2].split(":")[1], 16)
        if local == port and remote in ws_ports and parts[3] == "01":
            inodes.add(parts[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def commit_times(shop: ShopProcesses, seqs: list[int]) -> dict[int, float]:
    query = "SELECT id, created_at FROM payments_paymenttransition WHERE id IN ({})"
    if shop.database_url.startswith("sqlite"):
        with sqlite3.connect(shop.database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(query.format(",".join("?" * len(seqs))), seqs).fetchall()
        return {i: datetime.fromisoformat(c).replace(tzinfo=timezone.utc).timestamp() for i, c in rows}
    with psycopg.connect(shop.database_url) as conn:
        rows = conn.execute(query.format(",".join(["%s"] * len(seqs))), seqs).fetchall()
    return {i: c.timestamp() for i, c in rows}


def settle_hosted(shop: ShopProcesses, waiters: list[Waiter], spread: float) -> None:
    http = requests.Session()
    http.trust_env = False
    http.headers["Authorization"] = "Bearer sk_sim_test"
    ledger = http.get(f"{shop.psp.url}/control/ledger", timeout=30).json()["transactions"]
    by_ref = {t["merchant_reference"]: t["id"] for t in ledger}
    start = time.time()
    plan = sorted((random.uniform(0, spread), by_ref[w.payment_id]) for w in waiters)

    def complete(at_and_id):
        at, tid = at_and_id
        time.sleep(max(0, start + at - time.time()))
        http.post(f"{shop.psp.url}/control/transactions/{tid}/complete", json={"status": "captured"}, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(complete, plan))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, databases)")
    args = parser.parse_args()
    random.seed(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="reckon-live-bench."))
    folder.chmod(0o755)
    pg = Postgres(folder / "pg") if args.db == "postgres" else None
    shop = None
    try:
        database_url = pg.start().url() if pg else ""
        shop = ShopProcesses(database_url=database_url, folder=folder, web="gunicorn", web_workers=args.web_workers,
                             env={"LIVE_SOCKETS_PER_ADDRESS": str(args.sockets + 100), "Q_WORKERS": "2",
                                  "CONN_MAX_AGE": "60"})
        shop.start(worker=False)
        if pg:
            with psycopg.connect(pg.url(), autocommit=True) as conn:
                conn.execute("UPDATE shop_product SET stock = 1000000")
        else:
            with sqlite3.connect(folder / "db.sqlite3") as conn:
                conn.execute("UPDATE shop_product SET stock = 1000000")
        total = args.sockets + args.pollers
        waiters = [Waiter(i, "hosted" if i % 2 else "card", i < args.sockets) for i in range(total)]
        t = time.time()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda w: prepare(w, shop), waiters))
        print(f"{args.db}: {total} open payments made over HTTP in {time.time() - t:.0f} s "
              f"({args.web_workers} uvicorn workers under gunicorn)")
        for w in waiters:
            w.requests_before_wait = w.requests
            w.session.close()
        pids = shop.web_pids()
        rss_before = {pid: rss_kib(pid) for pid in pids}
        deadline = time.time() + 180

        async def run() -> dict:
            opened = asyncio.Event()
            count = [0, args.sockets]
            listeners = [asyncio.create_task(listen(w, shop, opened, count, deadline)) for w in waiters if w.listens]
            await asyncio.wait_for(opened.wait(), 120)
            await asyncio.sleep(1)
            per_process = {pid: established_sockets(pid, shop.web_port) for pid in pids}
            rss_after = {pid: rss_kib(pid) for pid in pids}
            pollers = [asyncio.to_thread(poll, w, shop, deadline) for w in waiters if not w.listens]
            settle_start = time.time()
            shop.start_worker()  # the queued card charges run now
            settle = asyncio.to_thread(settle_hosted, shop, [w for w in waiters if w.flow == "hosted"], 10.0)
            await asyncio.gather(settle, *pollers, *listeners)
            return {"per_process": per_process, "rss_after": rss_after, "settle_seconds": time.time() - settle_start}

        result = asyncio.run(run())
        sockets = [w for w in waiters if w.listens]
        finals = [w for w in sockets if w.final_state]
        commits = commit_times(shop, [w.final_seq for w in finals])
        delays = [w.final_at - commits[w.final_seq] for w in finals if w.final_seq in commits]
        by_flow = {flow: [w.final_at - commits[w.final_seq] for w in finals if w.flow == flow] for flow in
                   ("card", "hosted")}
        missed = [w for w in sockets if w.final_state != "captured"]
        held = result["per_process"]
        delta_kib = sum(result["rss_after"][p] - rss_before[p] for p in pids)
        pollers = [w for w in waiters if not w.listens]
        paid_pollers = [w for w in pollers if w.final_state == "captured"]
        print(f"settled in {result['settle_seconds']:.1f} s: worker captured {args.sockets // 2 + args.pollers // 2} "
              f"card payments, PSP webhooks the hosted ones (over 10 s)")
        print(f"commit -> client delay, {len(delays)} sockets: p50 {statistics.median(delays) * 1000:.0f} ms, "
              f"p99 {percentile(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms")
        for flow, values in by_flow.items():
            if values:
                who = "worker" if flow == "card" else "webhook"
                print(f"  settled by the {who}: p50 {statistics.median(values) * 1000:.0f} ms, "
                      f"p99 {percentile(values, 0.99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")
        print(f"missed final states: {len(missed)} of {len(sockets)}"
              + (f" (e.g. {missed[0].error or missed[0].final_state or 'no final message'})" if missed else ""))
        print(f"sockets per web process: {sorted(held.values())} (pids {sorted(held)})")
        print(f"memory per socket: {delta_kib / max(1, sum(held.values())):.0f} KiB "
              f"(web RSS {sum(rss_before.values()) // 1024} -> {sum(result['rss_after'].values()) // 1024} MiB)")
        after = sum(w.requests for w in sockets) / max(1, len(sockets))
        before = sum(w.requests for w in paid_pollers) / max(1, len(paid_pollers))
        wait_after = sum(w.requests - w.requests_before_wait for w in sockets) / max(1, len(sockets))
        wait_before = sum(w.requests - w.requests_before_wait for w in paid_pollers) / max(1, len(paid_pollers))
        print(f"shop HTTP requests per paid checkout: polling {before:.1f} (waiting: {wait_before:.1f}, "
              f"{len(paid_pollers)} pollers), socket {after:.1f} (waiting: {wait_after:.1f}, plus 1 WebSocket)")
        return 0 if not missed else 1
    except Exception:
        args.keep = True
        if shop is not None:
            print(shop.log_tail(), file=sys.stderr)
        raise
    finally:
        if shop is not None:
            shop.stop()
        if pg is not None:
            pg.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
