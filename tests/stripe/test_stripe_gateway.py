"""The Stripe adapter on its own: what it answers when Stripe fails, and the parts localstripe lacks."""

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from payments.gateways import get_gateway
from payments.gateways.base import PaymentRequest, PspStatus, RefundStatus
from payments.gateways.stripe import StripeGateway
from psp_simulator.process import free_port
from tests.stripe.conftest import PUBLISHABLE_KEY, SECRET_KEY


def request(**overrides) -> PaymentRequest:
    values = {"payment_id": uuid.uuid4(), "amount_minor": 1250, "currency": "EUR", "order_number": "R-1001",
              "return_url": "http://shop.test/payments/x/return/", "description": "Order R-1001",
              "card_token": "pm_card_visa"}
    return PaymentRequest(**{**values, **overrides})


class StubStripe:
    """A tiny HTTP server that answers as told and remembers what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, dict]] = {}
        self.delay = 0.0
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.requests.append({"method": self.command, "path": self.path.split("?")[0],
                                      "body": self.rfile.read(length).decode(),
                                      "idempotency_key": self.headers.get("Idempotency-Key")})
                time.sleep(stub.delay)
                status, body = stub.answers.get((self.command, self.path.split("?")[0]),
                                                (500, {"error": {"type": "api_error", "message": "boom"}}))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # a client that gave up (the timeout test)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stripe_settings(settings):
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test"
    settings.PSP_CONNECT_TIMEOUT = 0.5
    settings.PSP_READ_TIMEOUT = 0.5
    return settings


@pytest.fixture
def stub(stripe_settings):
    server = StubStripe()
    stripe_settings.STRIPE_API_BASE = server.url
    yield server
    server.stop()


def gateway_and_calls():
    calls = []
    return get_gateway("stripe", recorder=calls.append), calls


def test_no_answer_is_unknown_never_an_exception(stripe_settings):
    stripe_settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nobody listens
    gateway, calls = gateway_and_calls()

    assert gateway.charge(request()).status == PspStatus.UNKNOWN
    assert gateway.retrieve("pi_123").status == PspStatus.UNKNOWN
    assert gateway.find_by_reference(uuid.uuid4()).status == PspStatus.UNKNOWN
    assert gateway.cancel("pi_123", idempotency_key="cancel-1").status == PspStatus.UNKNOWN
    assert gateway.capture("pi_123", amount_minor=1, idempotency_key="capture-1").status == PspStatus.UNKNOWN
    assert gateway.refund("pi_123", refund_id=uuid.uuid4(), amount_minor=1, currency="EUR").status == (
        RefundStatus.UNKNOWN)
    with pytest.raises(ConnectionError):
        list(gateway.list_transactions(since=datetime.now(UTC) - timedelta(days=1), until=datetime.now(UTC)))
    assert calls and all(c.outcome == "unknown" and c.status_code is None and c.error for c in calls)


@pytest.mark.parametrize(("status", "expected"), [(500, PspStatus.UNKNOWN), (503, PspStatus.UNKNOWN),
                                                  (429, PspStatus.UNKNOWN), (409, PspStatus.UNKNOWN),
                                                  (400, PspStatus.FAILED), (401, PspStatus.FAILED)])
def test_an_error_answer_to_a_charge(stub, status, expected):
    stub.answers[("POST", "/v1/payment_intents")] = (status, {"error": {"type": "api_error", "code": "x",
                                                                        "message": "no"}})
    gateway, calls = gateway_and_calls()
    payment = request()

    result = gateway.charge(payment)

    assert result.status == expected
    # The SDK never retries by itself (it would choose the key); a retry is ours.
    assert len(stub.requests) == 1 and stub.requests[0]["idempotency_key"] == str(payment.payment_id)
    assert calls[0].status_code == status and calls[0].outcome == ("unknown" if expected == "unknown" else "rejected")


def test_a_slow_answer_is_unknown(stub, stripe_settings):
    stripe_settings.PSP_READ_TIMEOUT = 0.2
    stub.delay = 0.6
    stub.answers[("POST", "/v1/payment_intents")] = (200, {"id": "pi_late", "object": "payment_intent"})
    gateway, calls = gateway_and_calls()

    started = time.monotonic()
    result = gateway.charge(request())

    assert result.status == PspStatus.UNKNOWN and time.monotonic() - started < 0.6
    assert calls[0].outcome == "unknown" and "timed out" in calls[0].error.lower()


def test_a_card_error_is_a_decline_with_the_banks_reason(stub):
    stub.answers[("POST", "/v1/payment_intents")] = (402, {"error": {
        "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "payment_intent": {"id": "pi_declined", "object": "payment_intent", "status": "requires_payment_method",
                           "client_secret": "pi_declined_secret_x", "metadata": {"payment_id": "p"}}}})
    gateway, calls = gateway_and_calls()

    result = gateway.charge(request())

    assert (result.status, result.failure_code, result.psp_reference) == (PspStatus.DECLINED, "insufficient_funds",
                                                                          "pi_declined")
    assert "secret" not in json.dumps(dict(result.raw)) and calls[0].outcome == "declined"
    assert calls[0].response_body["error"]["payment_intent"]["client_secret"] == "[redacted]"


def intent(status: str, **extra) -> dict:
    return {"id": "pi_1", "object": "payment_intent", "status": status, "amount": 1250, "currency": "eur",
            "created": 1_790_000_000, "metadata": {"payment_id": "abc", "order_number": "R-1"}, **extra}


@pytest.mark.parametrize(("stripe_status", "ours"), [
    ("requires_payment_method", PspStatus.PENDING), ("requires_confirmation", PspStatus.PENDING),
    ("requires_action", PspStatus.PENDING), ("processing", PspStatus.PENDING),
    ("requires_capture", PspStatus.AUTHORIZED), ("succeeded", PspStatus.CAPTURED),
    ("canceled", PspStatus.CANCELLED), ("something_new", PspStatus.UNKNOWN),
])
def test_stripe_statuses_in_our_terms(stripe_status, ours):
    result = StripeGateway.to_result(intent(stripe_status))
    assert result.status == ours
    assert (result.psp_reference, result.merchant_reference, result.currency) == ("pi_1", "abc", "EUR")


def test_a_redirect_for_authentication_and_a_failed_attempt():
    action = StripeGateway.to_result(intent("requires_action", next_action={
        "type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds/x", "return_url": "r"}}))
    assert (action.status, action.redirect_url) == (PspStatus.PENDING, "https://hooks.stripe.com/3ds/x")

    failed = StripeGateway.to_result(intent("requires_payment_method", last_payment_error={
        "code": "card_declined", "decline_code": "expired_card", "message": "Your card has expired."}))
    assert (failed.status, failed.failure_code) == (PspStatus.DECLINED, "expired_card")


def test_a_failed_card_on_a_checkout_page_is_not_the_end_of_it():
    """There the customer may still try another card; the session's expiry ends it."""
    result = StripeGateway.to_result(intent("requires_payment_method", metadata={"payment_id": "abc", "flow": "hosted"},
                                            last_payment_error={"code": "card_declined"}))
    assert result.status == PspStatus.PENDING


def test_captured_amount_and_refunds_come_from_the_charge():
    result = StripeGateway.to_result(intent("succeeded", amount_received=1250, latest_charge={
        "id": "ch_1", "amount": 1250, "captured": True, "amount_refunded": 250,
        "payment_method_details": {"card": {"last4": "4242"}},
        "refunds": {"data": [{"id": "re_1", "amount": 250, "currency": "eur", "status": "succeeded",
                              "metadata": {"refund_id": "r-1"}}]}}))
    assert (result.amount_captured_minor, result.amount_refunded_minor) == (1250, 250)
    (refund,) = result.refunds
    assert (refund.psp_reference, refund.merchant_reference, refund.status) == ("re_1", "r-1", "succeeded")
    assert "4242" not in json.dumps(dict(result.raw))


def test_the_hosted_flow_opens_a_checkout_session(stub):
    """localstripe has no Checkout: the requests and answers here follow Stripe's API reference."""
    payment = request()
    stub.answers[("POST", "/v1/checkout/sessions")] = (200, {
        "id": "cs_test_1", "object": "checkout.session", "status": "open", "payment_status": "unpaid",
        "url": "https://checkout.stripe.com/c/pay/cs_test_1", "client_reference_id": str(payment.payment_id),
        "amount_total": 1250, "currency": "eur", "payment_intent": None, "created": 1_790_000_000})
    gateway, _ = gateway_and_calls()

    result = gateway.create_session(payment)

    assert (result.status, result.psp_reference, result.redirect_url) == (
        PspStatus.PENDING, "cs_test_1", "https://checkout.stripe.com/c/pay/cs_test_1")
    sent = stub.requests[0]
    form = dict(parse_qsl(sent["body"]))
    assert sent["idempotency_key"] == str(payment.payment_id)
    assert form["client_reference_id"] == form["payment_intent_data[metadata][payment_id]"] == str(payment.payment_id)
    assert form["success_url"] == form["cancel_url"] == payment.return_url
    assert form["payment_intent_data[metadata][flow]"] == "hosted"
    assert (form["line_items[0][price_data][unit_amount]"], form["line_items[0][price_data][currency]"]) == (
        "1250", "eur")


def test_a_paid_checkout_session_is_read_through_its_payment_intent(stub):
    stub.answers[("GET", "/v1/checkout/sessions/cs_test_1")] = (200, {
        "id": "cs_test_1", "object": "checkout.session", "status": "complete", "payment_status": "paid",
        "payment_intent": intent("succeeded", amount_received=1250)})
    gateway, _ = gateway_and_calls()

    result = gateway.retrieve("cs_test_1")

    assert (result.status, result.psp_reference, result.amount_captured_minor) == (PspStatus.CAPTURED, "pi_1", 1250)


def test_cancelling_an_open_checkout_session_expires_it(stub):
    session = {"id": "cs_test_1", "object": "checkout.session", "status": "open", "payment_intent": None}
    stub.answers[("GET", "/v1/checkout/sessions/cs_test_1")] = (200, session)
    stub.answers[("POST", "/v1/checkout/sessions/cs_test_1/expire")] = (200, {**session, "status": "expired"})
    gateway, _ = gateway_and_calls()

    result = gateway.cancel("cs_test_1", idempotency_key="cancel-1")

    assert result.status == PspStatus.CANCELLED
    assert stub.requests[-1]["idempotency_key"] == "cancel-1:expire-session"


@pytest.mark.parametrize(("obj", "merchant_reference", "psp_reference"), [
    (intent("succeeded"), "abc", "pi_1"),
    ({"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "metadata": {}}, "", "pi_1"),
    ({"id": "cs_1", "object": "checkout.session", "client_reference_id": "abc", "payment_intent": "pi_1"}, "abc",
     "cs_1"),
])
def test_an_event_names_its_payment_and_carries_no_state(stripe_settings, obj, merchant_reference, psp_reference):
    body = json.dumps({"id": "evt_1", "object": "event", "type": "x.y", "data": {"object": obj}}).encode()

    envelope = get_gateway("stripe").parse_webhook({}, body, verify=False)

    assert (envelope.event_id, envelope.merchant_reference, envelope.psp_reference) == (
        "evt_1", merchant_reference, psp_reference)
    assert envelope.result is None  # the service asks Stripe


def test_the_card_form_gets_the_publishable_key_only(stripe_settings):
    config = get_gateway("stripe").client_config()
    assert config == {"public_key": PUBLISHABLE_KEY, "js_url": stripe_settings.STRIPE_JS_URL}
