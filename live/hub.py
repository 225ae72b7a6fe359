"""The per-process hub: who watches which payment, and the one tail that feeds them.

Every web process has one hub. While it holds at least one socket, a single
task reads the audit rows (`PaymentTransition`) newer than each watched
payment's cursor, every LIVE_TAIL_INTERVAL_MS, and hands the changed
payments' messages to the local sockets. One query per process per tick,
whatever the number of sockets; none at all while the process has no socket.
Because it reads committed rows from the database that every process shares,
it sees the transitions of every process (web, webhook, worker, admin), and a
process that dies and comes back loses nothing: its sockets reconnect and are
sent the current state.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from live.selectors import live_changes

logger = logging.getLogger(__name__)


class Watcher(Protocol):
    async def offer(self, message: dict) -> None: ...


class Hub:
    def __init__(self) -> None:
        self.watchers: dict[uuid.UUID, set[Watcher]] = {}
        self.cursors: dict[uuid.UUID, int] = {}
        self.per_address: Counter[str] = Counter()
        self._task: asyncio.Task | None = None
        self.ticks = 0

    @property
    def sockets(self) -> int:
        return sum(len(group) for group in self.watchers.values())

    # -- admission: a cap of sockets per client address --------------------------
    def admit(self, address: str) -> bool:
        if self.per_address[address] >= settings.LIVE_SOCKETS_PER_ADDRESS:
            return False
        self.per_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]

    # -- watching ---------------------------------------------------------------
    def watch(self, watcher: Watcher, payment_id: uuid.UUID, seq: int) -> None:
        self.watchers.setdefault(payment_id, set()).add(watcher)
        self.cursors[payment_id] = min(self.cursors.get(payment_id, seq), seq)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._tail(), name="live-status-tail")

    def unwatch(self, watcher: Watcher, payment_id: uuid.UUID) -> None:
        group = self.watchers.get(payment_id)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            del self.watchers[payment_id]
            self.cursors.pop(payment_id, None)

    async def _tail(self) -> None:
        interval = settings.LIVE_TAIL_INTERVAL_MS / 1000
        while self.watchers:
            await asyncio.sleep(interval)
            if not self.watchers:
                break
            try:
                # Not thread_sensitive: the tail must not queue behind the process's sync views.
                changes = await _read_changes(dict(self.cursors))
            except Exception:  # the database may be restarting: try again next tick
                logger.warning("live status: reading the audit rows failed; retrying", exc_info=True)
                continue
            self.ticks += 1
            for payment_id, message in changes.items():
                if payment_id in self.cursors:
                    self.cursors[payment_id] = max(self.cursors[payment_id], message["seq"])
                for watcher in list(self.watchers.get(payment_id, ())):
                    try:
                        await watcher.offer(message)
                    except Exception:  # one broken socket must not stop the others
                        logger.warning("live status: could not send to a socket", exc_info=True)
                        self.unwatch(watcher, payment_id)


_read_changes = database_sync_to_async(live_changes, thread_sensitive=False)

hub = Hub()
