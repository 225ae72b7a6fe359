"""The customer's status socket: one payment, read only."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from live.hub import hub
from live.publish import payment_group
from live.selectors import live_snapshot
from live.tokens import live_token_allows

logger = logging.getLogger(__name__)
# Not thread_sensitive: a socket's first read must not queue behind the process's sync views.
_read_snapshot = database_sync_to_async(live_snapshot, thread_sensitive=False)

# Close codes the page understands (static/js/live-status.js).
CLOSE_FINAL = 1000          # the payment is final: nothing more will come
CLOSE_TOO_BIG = 1009        # a client message over LIVE_MAX_MESSAGE_BYTES
CLOSE_IDLE = 4408           # no news for LIVE_IDLE_SECONDS: the page falls back to polling


class PaymentStatusConsumer(AsyncWebsocketConsumer):
    """Sends `{state, final, title, message, action_url, ...}` now and on every later transition.

    The handshake is refused (403) without a token signed for this payment,
    past the per-address cap, or for an unknown payment. Nothing a client
    sends changes anything: messages are ignored, an oversized one closes.
    """

    payment_id: uuid.UUID | None = None
    address: str | None = None
    last_seq = -1
    last_message: dict | None = None
    _idle: asyncio.Task | None = None
    _grouped = False
    _last_sent = 0.0

    async def connect(self) -> None:
        payment_id = self.scope["url_route"]["kwargs"]["payment_id"]
        token = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("t", [""])[0]
        if not live_token_allows(token, payment_id):
            await self.close()
            return
        address = (self.scope.get("client") or ("?", 0))[0]
        if not hub.admit(address):
            logger.info("live status: refused a socket from %s over LIVE_SOCKETS_PER_ADDRESS", address)
            await self.close()
            return
        self.address = address
        if settings.LIVE_PUBLISH:
            # Subscribe before reading the snapshot, so nothing committed in between is missed.
            await self.channel_layer.group_add(payment_group(payment_id), self.channel_name)
            self._grouped = True
        try:
            snapshot = await _read_snapshot(payment_id)
        except Exception:  # the database is away: refuse, the page polls and tries again
            logger.warning("live status: could not read payment %s for a socket", payment_id, exc_info=True)
            snapshot = None
        if snapshot is None:
            await self.close()
            return
        self.payment_id = payment_id
        await self.accept()
        await self.offer(snapshot)
        if snapshot["final"]:
            return
        hub.watch(self, payment_id, snapshot["seq"])
        self._idle = asyncio.get_running_loop().create_task(self._close_when_idle())

    async def offer(self, message: dict) -> None:
        """Send a message unless the socket already has it (the tail and the layer may both bring it)."""
        if message["seq"] < self.last_seq:
            return
        if self.last_message is not None and {**message, "seq": 0} == {**self.last_message, "seq": 0}:
            self.last_seq = message["seq"]
            return
        self.last_seq, self.last_message = message["seq"], message
        self._last_sent = asyncio.get_running_loop().time()
        await self.send(text_data=json.dumps(message))
        if message["final"]:
            await self.close(code=CLOSE_FINAL)

    async def payment_status(self, event: dict) -> None:
        """A message published after a commit (channels-redis, live/publish.py)."""
        await self.offer(event["message"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.LIVE_MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
        # Anything else is ignored: a status socket only ever reads.

    async def _close_when_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = self._last_sent + settings.LIVE_IDLE_SECONDS - loop.time()
            if wait <= 0:
                await self.close(code=CLOSE_IDLE)
                return
            await asyncio.sleep(wait)

    async def close(self, code=None, reason=None) -> None:
        await super().close(code=code, reason=reason)
        await self._leave()

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        """Give back the hub place, the group and the address slot; safe to call twice."""
        if self._idle is not None and self._idle is not asyncio.current_task():
            self._idle.cancel()
        self._idle = None
        if self.payment_id is not None:
            hub.unwatch(self, self.payment_id)
            self.payment_id = None
        if self._grouped:
            self._grouped = False
            await self.channel_layer.group_discard(payment_group(self.scope["url_route"]["kwargs"]["payment_id"]),
                                                   self.channel_name)
        if self.address is not None:
            hub.release(self.address)
            self.address = None
