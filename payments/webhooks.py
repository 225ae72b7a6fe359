"""PSP webhooks as an inbox: verify, store raw, then apply idempotently."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Mapping
from contextlib import nullcontext

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from orders.models import TransitionSource
from payments.gateways import get_gateway
from payments.gateways.base import InvalidWebhook, PspStatus, WebhookEnvelope
from payments.models import Payment, WebhookEvent
from payments.services import _call_recorder, discrepancy_record, payment_apply_result, payment_result_is_news

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
_KEPT_HEADERS = {"content-type", "user-agent", "sim-signature", "stripe-signature", "content-length"}


class RetryLater(Exception):
    """The event is stored, but could not be applied yet."""


def _safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}


def webhook_receive(*, gateway_name: str, headers: Mapping[str, str], body: bytes) -> tuple[str, WebhookEvent]:
    """Verify and store an event, then apply it. Returns ("processed"|"duplicate"|"stored", event).

    An event that only repeats what we hold for its payment (the webhook
    after the PSP's response or the return page applied the same answer) is
    stored already marked applied: one INSERT, no lock, no write to the
    payment. Anything else is stored raw before it is applied.

    Raises InvalidWebhook, having written nothing.
    """
    gateway = get_gateway(gateway_name)
    try:
        envelope = gateway.parse_webhook(headers, body)
    except InvalidWebhook as exc:
        # Nothing is written for an event we cannot verify.
        logger.warning("refused a %s webhook: %s", gateway_name, exc)
        raise
    payment, is_news = _payment_and_news(gateway_name, envelope)
    applied = {} if is_news else {"payment": payment, "attempts": 1, "processed_at": timezone.now()}
    try:
        # In autocommit (a web request) one INSERT is durable at once and a duplicate fails alone; inside
        # a caller's transaction a savepoint keeps a duplicate from breaking it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            event = WebhookEvent.objects.create(
                gateway=gateway_name, event_id=envelope.event_id, event_type=envelope.event_type,
                headers=_safe_headers(headers), body=body.decode("utf-8", errors="replace"), **applied,
            )
    except IntegrityError:
        return "duplicate", WebhookEvent.objects.get(gateway=gateway_name, event_id=envelope.event_id)
    if not is_news:
        return "processed", event
    ok = webhook_process(event=event, envelope=envelope, payment=payment)
    return ("processed" if ok else "stored"), event


def _payment_and_news(gateway_name: str, envelope: WebhookEnvelope) -> tuple[Payment | None, bool]:
    """The event's payment, read without a lock, and whether the event can change it (payment_result_is_news).

    Only an event that carries its answer, for a payment we know, can be a
    repeat. Should the read fail, the event counts as news: it is stored raw
    and webhook_process applies it, or keeps the error for a retry.
    """
    if envelope.result is None or envelope.result.status == PspStatus.UNKNOWN:
        return None, True
    try:
        payment = _find_payment(gateway_name, envelope)
    except Exception:  # noqa: BLE001 - the raw-first path below records the event whatever happened here
        logger.warning("could not read the payment of webhook %s:%s before storing it", gateway_name,
                       envelope.event_id, exc_info=True)
        return None, True
    if payment is None:
        return None, True
    return payment, payment_result_is_news(payment, envelope.result)


def _find_payment(gateway_name: str, envelope: WebhookEnvelope) -> Payment | None:
    try:
        return Payment.objects.get(pk=uuid.UUID(envelope.merchant_reference))
    except (ValueError, Payment.DoesNotExist):
        pass
    if envelope.psp_reference:
        return Payment.objects.filter(gateway=gateway_name, psp_reference=envelope.psp_reference).first()
    return None


def webhook_process(*, event: WebhookEvent, envelope: WebhookEnvelope | None = None,
                    payment: Payment | None = None) -> bool:
    """Apply a stored, verified event. On failure keep the error for a retry; True when applied.

    `payment` is the event's payment when the caller has just read it.
    """
    if event.processed_at is not None:
        return True
    try:
        gateway = get_gateway(event.gateway, recorder=_call_recorder(None))
        if envelope is None:
            envelope = gateway.parse_webhook(event.headers, event.body.encode(), verify=False)
        if payment is None:
            payment = _find_payment(event.gateway, envelope)
        if payment is None:
            # Our payment row is committed before the PSP ever hears of it, so
            # this is not a race: flag it for staff and stop.
            reference = envelope.merchant_reference or envelope.psp_reference
            discrepancy_record(
                kind="unknown_reference", dedupe_key=f"unknown_reference:{event.gateway}:{envelope.psp_reference}",
                gateway=event.gateway, psp_reference=envelope.psp_reference,
                summary=f"Webhook {event.event_id} names a payment we do not know ({reference})",
                details={"event_id": event.event_id, "merchant_reference": envelope.merchant_reference},
            )
            _save_outcome(event, payment=None, processed=True, error=f"Unknown payment {reference}")
            return True
        result = envelope.result
        if result is None:
            # The payload is only a hint: ask the PSP for the current state.
            result = get_gateway(event.gateway, recorder=_call_recorder(payment.pk)).retrieve(
                envelope.psp_reference or payment.psp_reference)
        if result.status == PspStatus.UNKNOWN:
            raise RetryLater("the PSP did not answer while applying the event")
        if payment_result_is_news(payment, result):
            payment_apply_result(payment_id=payment.pk, order_id=payment.order_id, result=result,
                                 source=TransitionSource.WEBHOOK, reason=f"{event.event_type} ({event.event_id})")
    except Exception as exc:  # noqa: BLE001 - stored durably, retried by the worker
        _save_outcome(event, payment=payment, error=f"{type(exc).__name__}: {exc}"[:2000],
                      trace=traceback.format_exc()[-8000:])
        logger.warning("webhook %s:%s not applied yet: %s", event.gateway, event.event_id, exc)
        return False
    _save_outcome(event, payment=payment, processed=True)
    return True


def _save_outcome(event: WebhookEvent, *, payment: Payment | None, processed: bool = False, error: str = "",
                  trace: str = "") -> None:
    event.attempts += 1
    event.payment = payment
    event.error, event.traceback = error, trace
    if processed:
        event.processed_at = timezone.now()
    event.save(update_fields=["attempts", "payment", "error", "traceback", "processed_at"])
