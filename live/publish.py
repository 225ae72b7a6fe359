"""Publish each committed transition on the channel layer, when the layer crosses processes.

With REDIS_URL set the layer is channels-redis: every web process subscribed
to the payment's group gets the message right after the commit, whichever
process made the transition. The hub's tail (live/hub.py) stays the
guarantee: a publish lost to a crash between commit and publish, or to a
Redis restart, still reaches the socket on the tail's next tick. Without
Redis nothing is published (an in-memory layer reaches no other process).
"""

from __future__ import annotations

import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from payments.models import Payment
from payments.signals import payment_transitioned

logger = logging.getLogger(__name__)


def payment_group(payment_id: uuid.UUID | str) -> str:
    return f"live.payment.{uuid.UUID(str(payment_id)).hex}"


def live_publish(*, payment_id: uuid.UUID, seq: int) -> None:
    """Send the payment's current message to its group; a failure is logged, the tail delivers."""
    from live.selectors import live_message

    try:
        payment = Payment.objects.select_related("order").get(pk=payment_id)
        layer = get_channel_layer()
        async_to_sync(layer.group_send)(payment_group(payment_id),
                                        {"type": "payment.status", "message": live_message(payment, seq)})
    except Exception:  # noqa: BLE001 - the tail delivers what a failed publish could not
        logger.warning("live status: could not publish payment %s; the tail will deliver it", payment_id,
                       exc_info=True)


@receiver(payment_transitioned, dispatch_uid="live.publish_after_commit")
def _publish_after_commit(sender, payment: Payment, transition, **kwargs) -> None:
    if not settings.LIVE_PUBLISH:
        return
    payment_id, seq = payment.pk, transition.pk
    transaction.on_commit(lambda: live_publish(payment_id=payment_id, seq=seq), robust=True)
