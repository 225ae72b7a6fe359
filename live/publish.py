"""Publish each committed transition on the channel layer, when the layer crosses processes.

With REDIS_URL set the layer is channels-redis: every web process subscribed
to the payment's group gets the message right after the commit, whichever
process made the transition. The hub's tail (live/hub.py) stays the
guarantee: a publish lost to a crash between commit and publish, or to a
Redis restart, still reaches the socket on the tail's next tick. Without
Redis nothing is published (an in-memory layer reaches no other process).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from payments.models import Payment
from payments.signals import payment_transitioned

logger = logging.getLogger(__name__)


PUBLISH_TIMEOUT_SECONDS = 2.0


def payment_group(payment_id: uuid.UUID | str) -> str:
    return f"live.payment.{uuid.UUID(str(payment_id)).hex}"


class _PublishLoop:
    """One event loop per process, on a thread of its own, that sends every publish of the process.

    The publishes come from plain threads: a web request's (config/asgi.py
    runs Django's WSGI handler in a thread pool) or a worker's. There
    async_to_sync would make an event loop, and channels-redis a Redis
    connection on it, for each message; this loop and its connection last
    as long as the process. Made again in a child process (django-q2 forks
    its workers), where the parent's thread does not exist.
    """

    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # Also in a forked child: the parent's thread is not there, and its lock may have been held.
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, make_coroutine, timeout: float) -> None:
        """Run make_coroutine() on the loop and wait for it; on a timeout it is cancelled, not left to pile up."""
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(make_coroutine(), loop)
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="live-publish", daemon=True).start()
                self._loop = loop
            return self._loop


_publish_loop = _PublishLoop()


def live_publish(*, payment_id: uuid.UUID, seq: int) -> None:
    """Send the payment's current message to its group; a failure is logged, the tail delivers."""
    from live.selectors import live_message

    try:
        payment = Payment.objects.select_related("order").get(pk=payment_id)
        message = {"type": "payment.status", "message": live_message(payment, seq)}
        layer = get_channel_layer()
        _publish_loop.run(lambda: layer.group_send(payment_group(payment_id), message), PUBLISH_TIMEOUT_SECONDS)
    except Exception:  # noqa: BLE001 - the tail delivers what a failed publish could not
        logger.warning("live status: could not publish payment %s; the tail will deliver it", payment_id,
                       exc_info=True)


@receiver(payment_transitioned, dispatch_uid="live.publish_after_commit")
def _publish_after_commit(sender, payment: Payment, transition, **kwargs) -> None:
    if not settings.LIVE_PUBLISH:
        return
    payment_id, seq = payment.pk, transition.pk
    transaction.on_commit(lambda: live_publish(payment_id=payment_id, seq=seq), robust=True)
