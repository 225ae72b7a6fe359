"""The status socket through Channels' WebsocketCommunicator, against the real ASGI application."""

import asyncio
import json
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection

from live.hub import hub
from live.selectors import live_changes
from live.templatetags.live_status import live_status_path
from live.tokens import live_token_for
from orders.models import TransitionSource
from payments.gateways.base import GatewayResult, PspStatus
from payments.services import payment_apply_result
from tests.live.aio import run
from tests.payments.factories import start_payment

ORIGIN = (b"origin", b"http://testserver")
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_hub(settings):
    settings.LIVE_TAIL_INTERVAL_MS = 50
    hub.__init__()
    yield
    hub.__init__()


def application():
    from config.asgi import application
    return application


def communicator(payment, *, path=None, origin=ORIGIN):
    return WebsocketCommunicator(application(), path or live_status_path(payment.pk), headers=[origin] if origin else [])


def capture(payment):
    payment_apply_result(payment_id=payment.pk, result=GatewayResult(
        status=PspStatus.CAPTURED, psp_reference="psp_live_1", amount_minor=payment.amount_minor,
        currency=payment.currency, amount_captured_minor=payment.amount_minor), source=TransitionSource.WEBHOOK)


def test_a_socket_gets_the_current_state_then_a_transition_made_by_a_service_call():
    payment = start_payment()

    async def scenario():
        ws = communicator(payment)
        connected, _ = await ws.connect()
        assert connected
        first = await ws.receive_json_from(timeout=3)
        assert (first["state"], first["final"]) == ("created", False)
        await database_sync_to_async(capture)(payment)
        pushed = await ws.receive_json_from(timeout=3)
        closed = await ws.receive_output(timeout=3)
        await ws.disconnect()
        return pushed, closed

    pushed, closed = run(scenario())
    assert pushed["state"] == "captured" and pushed["final"] is True
    assert pushed["title"] == "Payment received" and pushed["order_state"] == "paid"
    assert pushed["action_url"] == ""
    assert closed == {"type": "websocket.close", "code": 1000}  # final: nothing more will come
    assert hub.sockets == 0 and not hub.per_address


def test_a_page_opened_after_the_outcome_gets_it_at_once_and_the_socket_closes():
    payment = start_payment()
    capture(payment)

    async def scenario():
        ws = communicator(payment)
        assert (await ws.connect())[0]
        message = await ws.receive_json_from(timeout=3)
        closed = await ws.receive_output(timeout=3)
        return message, closed

    message, closed = run(scenario())
    assert message["state"] == "captured"
    assert closed["type"] == "websocket.close"


@pytest.mark.parametrize("case", ["other payment's token", "garbage", "no token", "tampered"])
def test_a_socket_without_this_payments_signed_token_is_refused(case):
    payment = start_payment()
    other = start_payment()
    good = live_token_for(payment.pk)
    token = {"other payment's token": live_token_for(other.pk), "garbage": "abc", "no token": "",
             "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB")}[case]

    async def scenario():
        ws = communicator(payment, path=f"/ws/payments/{payment.pk}/?t={token}")
        connected, code = await ws.connect()
        return connected

    assert run(scenario()) is False
    assert hub.sockets == 0 and not hub.per_address


def test_a_foreign_origin_is_refused():
    payment = start_payment()

    async def scenario():
        ws = communicator(payment, origin=(b"origin", b"https://evil.example"))
        return (await ws.connect())[0]

    assert run(scenario()) is False


def test_an_unknown_payment_is_refused_even_with_a_valid_token_for_it():
    import uuid
    missing = uuid.uuid4()

    async def scenario():
        ws = WebsocketCommunicator(application(), live_status_path(missing), headers=[ORIGIN])
        return (await ws.connect())[0]

    assert run(scenario()) is False
    assert not hub.per_address


def test_what_a_client_sends_changes_nothing_and_an_oversized_message_closes(settings):
    settings.LIVE_MAX_MESSAGE_BYTES = 100
    payment = start_payment()

    async def scenario():
        ws = communicator(payment)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=3)
        await ws.send_to(text_data=json.dumps({"state": "captured", "action": "capture"}))
        await ws.send_to(text_data="list")
        quiet = await ws.receive_nothing(timeout=0.3)
        await ws.send_to(text_data="x" * 101)
        closed = await ws.receive_output(timeout=3)
        return quiet, closed

    quiet, closed = run(scenario())
    assert quiet
    assert closed == {"type": "websocket.close", "code": 1009}
    payment.refresh_from_db()
    assert payment.state == "created" and payment.transitions.count() == 1


def test_a_client_address_gets_at_most_the_cap_of_sockets(settings):
    settings.LIVE_SOCKETS_PER_ADDRESS = 2
    payment = start_payment()

    async def scenario():
        sockets = [communicator(payment) for _ in range(3)]
        results = [(await ws.connect())[0] for ws in sockets]
        for ws in sockets[:2]:
            await ws.disconnect()
        again = communicator(payment)
        results.append((await again.connect())[0])
        await again.disconnect()
        return results

    assert run(scenario()) == [True, True, False, True]


def test_an_idle_socket_is_closed_so_the_page_falls_back_to_polling(settings):
    settings.LIVE_IDLE_SECONDS = 1
    payment = start_payment()

    async def scenario():
        ws = communicator(payment)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=3)
        return await ws.receive_output(timeout=3)

    assert run(scenario()) == {"type": "websocket.close", "code": 4408}
    assert hub.sockets == 0


def test_with_a_cross_process_layer_a_transition_is_published_after_its_commit(settings):
    """LIVE_PUBLISH (on with REDIS_URL): the push comes from the layer, not the tail."""
    settings.LIVE_PUBLISH = True
    settings.LIVE_TAIL_INTERVAL_MS = 60_000  # the tail would be far too late
    payment = start_payment()
    failed = []

    async def scenario():
        ws = communicator(payment)
        assert (await ws.connect())[0]
        await ws.receive_json_from(timeout=3)
        loop = asyncio.get_running_loop()

        def capture_in_another_thread():
            # As the worker would: a plain thread, outside the event loop.
            thread = threading.Thread(target=lambda: _safe(capture, payment, failed))
            thread.start()
            thread.join()

        await loop.run_in_executor(None, capture_in_another_thread)
        return await ws.receive_json_from(timeout=3)

    pushed = run(scenario())
    assert not failed
    assert pushed["state"] == "captured"


def _safe(fn, payment, failed):
    try:
        fn(payment)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        failed.append(exc)
    finally:
        connection.close()


def test_the_tail_is_one_query_per_tick_whatever_the_number_of_watched_payments(django_assert_num_queries):
    payments = [start_payment() for _ in range(30)]
    cursors = {p.pk: p.transitions.get().pk for p in payments}
    with django_assert_num_queries(1):
        assert live_changes(cursors) == {}
    capture_target = payments[7]
    capture(capture_target)
    with django_assert_num_queries(2):  # the new rows, the changed payment (a socket is sent no receipt)
        changes = live_changes(cursors)
    assert list(changes) == [capture_target.pk]
    assert changes[capture_target.pk]["state"] == "captured"


def test_a_socket_opened_while_the_database_is_away_is_refused_and_frees_its_place(monkeypatch):
    from django.db import OperationalError

    import live.consumers

    payment = start_payment()

    async def database_away(payment_id):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(live.consumers, "_read_snapshot", database_away)

    async def scenario():
        ws = communicator(payment)
        return (await ws.connect())[0]

    assert run(scenario()) is False
    assert not hub.per_address and hub.sockets == 0


def test_a_publish_that_times_out_is_cancelled_and_a_forked_child_gets_its_own_loop():
    """live.publish's loop: a hung publish (Redis away) must not pile up tasks; a fork starts afresh."""
    import os

    from live.publish import _PublishLoop

    publisher = _PublishLoop()
    outcome = {}

    async def hang():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            outcome["cancelled"] = True
            raise

    with pytest.raises(TimeoutError):
        publisher.run(hang, 0.2)
    parent_loop = publisher._running_loop()
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), parent_loop).result(2)  # the cancellation has run
    assert outcome == {"cancelled": True}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new loop of its own, which runs
        try:
            ok = publisher._loop is None and publisher._running_loop() is not parent_loop
            publisher.run(lambda: asyncio.sleep(0), 2)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
