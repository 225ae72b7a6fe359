"""Read an HTTP request's body on the event loop, before a pool thread takes the request.

config.asgi runs Django's WSGI handler in a pool of WEB_THREADS threads
(a2wsgi). a2wsgi hands the body to the thread as it arrives, so a client that
declares a body and sends it slowly would hold a thread while it waits, and
WEB_THREADS such clients would stop the process's HTTP. Django's own ASGI
handler read the body first; this does the same, in memory, up to
`max_bytes`:

- a body declared larger than that goes to the app unread, where Django and
  the views refuse it from its Content-Length (the webhook's 413);
- a body sent without a Content-Length (chunked) is read whole and given one,
  since Django's WSGI request reads only as many bytes as that header says;
  past `max_bytes` it is answered 413 here;
- a client that disconnects before its body is complete is not served.
"""

from __future__ import annotations

import json


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # Django answers a malformed header itself
    return None


class ReadBodyFirst:
    def __init__(self, app, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if declared is None and body:
            scope = {**scope, "headers": [*scope["headers"], (b"content-length", str(len(body)).encode())]}
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body only http.disconnect can come

        await self.app(scope, replay, send)


async def _too_large(send, max_bytes: int) -> None:
    body = json.dumps({"error": f"Body too large: at most {max_bytes} bytes."}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
