"""The push across processes: the worker captures, the web process's socket tells the customer."""

import asyncio
import json

import pytest
import requests
import websockets

from bench.live_stack import ShopProcesses, card_token, check_out, live_path, pay_by_card
from tests.live.aio import run
from tests.psp import CARDS, Simulator

pytestmark = pytest.mark.slow


async def _listen(url: str, origin: str, until: str, timeout: float = 20) -> list[dict]:
    seen = []
    async with websockets.connect(url, origin=origin, open_timeout=10) as ws:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                seen.append(json.loads(raw))
                if seen[-1]["state"] == until:
                    break
    return seen


def test_a_socket_receives_captured_pushed_by_the_worker_with_no_poll(shop_processes):
    shop = shop_processes
    psp = Simulator(shop.psp.url)
    session = requests.Session()
    session.trust_env = False
    order_path = check_out(session, shop.url)
    token = card_token(shop.psp.url, CARDS["success"])
    # The worker's charge call takes 1.5 s at the PSP, so the socket is open before the capture.
    psp.faults(latency_ms=1500)
    try:
        status_path = pay_by_card(session, shop.url, order_path, token)
        page = session.get(shop.url + status_path, timeout=30)
        url = shop.url.replace("http://", "ws://") + live_path(page.text)
        seen = run(_listen(url, shop.url, until="captured"))
    finally:
        psp.faults(latency_ms=0)
    assert seen[0]["state"] == "created" and seen[0]["final"] is False
    assert seen[-1]["state"] == "captured" and seen[-1]["final"] is True
    assert seen[-1]["title"] == "Payment received"
    log = shop.web_log.read_text(errors="replace")
    assert status_path in log  # the log does show requests...
    assert "status.json" not in log  # ...and there was no poll
    assert "payments.tasks.charge_payment" in (shop.folder / "worker.log").read_text(errors="replace")


def test_a_token_for_another_payment_opens_nothing(shop_processes):
    shop = shop_processes
    session = requests.Session()
    session.trust_env = False
    order_path = check_out(session, shop.url, index=1)
    status_path = pay_by_card(session, shop.url, order_path, card_token(shop.psp.url, CARDS["async"]))
    page = session.get(shop.url + status_path, timeout=30)
    path = live_path(page.text)
    other = path.replace(status_path.split("/")[2], "00000000-0000-4000-8000-000000000000", 1)
    ws_url = shop.url.replace("http://", "ws://")

    async def attempt(target, origin):
        try:
            async with websockets.connect(ws_url + target, origin=origin, open_timeout=10):
                return "open"
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert run(attempt(other, shop.url)) == 403
    assert run(attempt(path, "http://evil.example")) == 403


def test_with_redis_the_workers_capture_is_published_after_commit(redis_url, tmp_path):
    # The tail is made far too slow to be what delivers: the push comes through channels-redis.
    shop = ShopProcesses(folder=tmp_path, env={"REDIS_URL": redis_url, "LIVE_TAIL_INTERVAL_MS": "60000"}).start()
    try:
        session = requests.Session()
        session.trust_env = False
        order_path = check_out(session, shop.url)
        token = card_token(shop.psp.url, CARDS["success"])
        Simulator(shop.psp.url).faults(latency_ms=1500)
        status_path = pay_by_card(session, shop.url, order_path, token)
        page = session.get(shop.url + status_path, timeout=30)
        url = shop.url.replace("http://", "ws://") + live_path(page.text)
        seen = run(_listen(url, shop.url, until="captured", timeout=15))
    finally:
        shop.stop()
    assert [m["state"] for m in seen] == ["created", "captured"]
