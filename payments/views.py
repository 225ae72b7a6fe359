import logging
import re
import uuid

from django.contrib import messages
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orders.models import Order, TransitionSource
from orders.selectors import order_by_number_and_token
from payments.gateways import UnknownGateway
from payments.gateways.base import InvalidWebhook
from payments.models import Payment
from payments.selectors import customer_payments, payment_customer_view
from payments.services import (
    PaymentError,
    payment_open_session,
    payment_start,
    payment_switch_to_card,
    payment_sync,
)
from payments.webhooks import MAX_BODY_BYTES, webhook_receive
from shop.ratelimits import rate_limited

logger = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{4,100}$")


def _order_or_404(number: str, token: str):
    order = order_by_number_and_token(number=number, token=token)
    if order is None:
        raise Http404("No such order.")
    return order


def _next_step(payment: Payment) -> HttpResponse:
    """Send the customer where their payment needs them: the PSP's page or our status page."""
    if payment.state == "pending" and payment.redirect_url:
        return redirect(payment.redirect_url)
    return redirect("payments:status", payment_id=payment.pk)


@never_cache
@require_POST
@rate_limited("pay")
def pay_hosted(request: HttpRequest, number: str, token: str) -> HttpResponse:
    try:
        # The link is checked by the read that locks the order (payment_start).
        payment, created = payment_start(customer_link=(number, token), flow=Payment.Flow.HOSTED)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None
    except PaymentError as exc:
        messages.error(request, exc.message)
        return redirect("orders:detail", number=number, token=token)
    if created:
        payment = payment_open_session(payment_id=payment.pk, payment=payment)
    return _next_step(payment)


@never_cache
@require_POST
@rate_limited("pay")
def pay_direct(request: HttpRequest, number: str, token: str) -> HttpResponse:
    card_token = request.POST.get("card_token", "")
    if not _TOKEN_RE.match(card_token):
        order = _order_or_404(number, token)
        messages.error(request, "Your card details did not reach the payment provider. Please enter them again.")
        return redirect(order.get_absolute_url())
    try:
        if request.POST.get("pay_another_way"):
            payment, created = payment_switch_to_card(order_id=_order_or_404(number, token).pk, card_token=card_token)
        else:
            # The link is checked by the read that locks the order (payment_start).
            payment, created = payment_start(customer_link=(number, token), flow=Payment.Flow.DIRECT,
                                             card_token=card_token)
    except Order.DoesNotExist:
        raise Http404("No such order.") from None
    except PaymentError as exc:
        messages.error(request, exc.message)
        return redirect("orders:detail", number=number, token=token)
    if not created:
        messages.info(request, "A payment for this order is already in progress, so your card was not charged.")
    return redirect("payments:status", payment_id=payment.pk)


@never_cache
@require_GET
def payment_return(request: HttpRequest, payment_id: uuid.UUID) -> HttpResponse:
    """Where the PSP sends the customer back. The query string is never trusted."""
    try:
        # Asks the PSP only while the payment is open; one read when it is settled already.
        payment = payment_sync(payment_id=payment_id, source=TransitionSource.CUSTOMER)
    except Payment.DoesNotExist:
        raise Http404("No such payment.") from None
    return redirect("payments:status", payment_id=payment.pk)


@never_cache
@require_GET
def payment_status(request: HttpRequest, payment_id: uuid.UUID) -> HttpResponse:
    payment = get_object_or_404(customer_payments(), pk=payment_id)
    view = payment_customer_view(payment)
    return render(request, "payments/status.html", {"payment": payment, "view": view, "step": 4 if view["paid_at"] else 3})


@never_cache
@require_GET
def payment_status_json(request: HttpRequest, payment_id: uuid.UUID) -> JsonResponse:
    payment = customer_payments().filter(pk=payment_id).first()
    if payment is None:
        return JsonResponse({"error": "No such payment."}, status=404)
    return JsonResponse(payment_customer_view(payment))


def _webhook_body(request: HttpRequest) -> bytes | JsonResponse:
    """The raw body, at most MAX_BODY_BYTES: a bigger one is refused from its Content-Length, before it is read."""
    too_large = JsonResponse({"error": f"Body too large: at most {MAX_BODY_BYTES} bytes."}, status=413)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return JsonResponse({"error": "Invalid Content-Length."}, status=400)
    if declared > MAX_BODY_BYTES:
        return too_large
    body = request.read(MAX_BODY_BYTES + 1)  # a body without (or beyond) its Content-Length is cut off here
    return too_large if len(body) > MAX_BODY_BYTES else body


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, gateway: str) -> JsonResponse:
    body = _webhook_body(request)
    if isinstance(body, JsonResponse):
        return body
    try:
        outcome, event = webhook_receive(gateway_name=gateway, headers=dict(request.headers), body=body)
    except UnknownGateway:
        return JsonResponse({"error": f"Unknown gateway {gateway!r}."}, status=404)
    except InvalidWebhook as exc:
        return JsonResponse({"error": f"Invalid webhook: {exc}."}, status=400)
    except DatabaseError:
        logger.exception("could not store a %s webhook", gateway)
        # Not stored: a non-2xx makes the PSP deliver it again.
        return JsonResponse({"error": "Temporarily unable to accept events."}, status=503)
    # "stored": we hold it durably and will retry applying it, so the PSP
    # must not resend it.
    return JsonResponse({"status": outcome, "event": event.event_id})


