"""config.asgi reads an HTTP request's body on the event loop before a pool thread takes it (config/asgi_body.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import requests

from config.asgi_body import ReadBodyFirst
from tests.live.aio import run


class App:
    """Records what the wrapped app was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, list[dict]]] = []

    async def __call__(self, scope, receive, send) -> None:
        first = await receive()
        self.calls.append((scope, [first]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def drive(app, messages: list[dict], headers: list[tuple[bytes, bytes]]) -> list[dict]:
    sent: list[dict] = []
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    run(asyncio.wait_for(app(scope, receive, send), 5))
    return sent


def chunks(*parts: bytes) -> list[dict]:
    return [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]


def test_the_app_gets_the_whole_body_in_one_message():
    inner = App()
    drive(ReadBodyFirst(inner, max_bytes=100), chunks(b"ab", b"cd", b"ef"), [(b"content-length", b"6")])
    scope, (message,) = inner.calls[0]
    assert message == {"type": "http.request", "body": b"abcdef", "more_body": False}
    assert dict(scope["headers"])[b"content-length"] == b"6"


def test_a_chunked_body_is_given_its_content_length():
    """Django's WSGI request reads as many bytes as Content-Length says: without one, none."""
    inner = App()
    drive(ReadBodyFirst(inner, max_bytes=100), chunks(b'{"a":', b" 1}"), [(b"content-type", b"application/json")])
    scope, (message,) = inner.calls[0]
    assert message["body"] == b'{"a": 1}' and dict(scope["headers"])[b"content-length"] == b"8"


def test_a_body_declared_too_large_goes_to_the_app_unread():
    """Django and the views refuse it from its Content-Length (the webhook's JSON 413)."""
    inner = App()
    drive(ReadBodyFirst(inner, max_bytes=10), chunks(b"x" * 5, b"y" * 5), [(b"content-length", b"500")])
    scope, (message,) = inner.calls[0]
    assert message["body"] == b"x" * 5 and message["more_body"] is True  # the client's own first message


def test_a_chunked_body_past_the_limit_is_a_json_413_and_never_reaches_the_app():
    inner = App()
    sent = drive(ReadBodyFirst(inner, max_bytes=10), chunks(b"x" * 6, b"y" * 6, b"z"), [])
    assert not inner.calls
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"]) == {"error": "Body too large: at most 10 bytes."}


def test_a_client_gone_before_its_body_came_is_not_served():
    inner = App()
    sent = drive(ReadBodyFirst(inner, max_bytes=100),
                 [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}],
                 [(b"content-length", b"10")])
    assert not inner.calls and not sent


@pytest.mark.slow
def test_slow_bodies_hold_no_thread_of_the_real_server(tmp_path):
    """More clients than WEB_THREADS declare a body and send half of it: the shop still answers at once."""
    from bench.live_stack import ShopProcesses

    shop = ShopProcesses(folder=tmp_path, web="gunicorn", env={"WEB_THREADS": "2"}).start(worker=False)
    stalled = []
    try:
        port = int(shop.url.rsplit(":", 1)[1])
        for _ in range(6):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(b"POST /payments/webhooks/simulator/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b"{" * 500)
            stalled.append(client)
        time.sleep(0.5)
        session = requests.Session()
        session.trust_env = False
        started = time.monotonic()
        assert session.get(shop.url + "/healthz", timeout=10).status_code == 200
        assert session.get(shop.url + "/", timeout=10).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for client in stalled:
            client.close()
        shop.stop()
