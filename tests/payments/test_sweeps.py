"""The worker's sweeps against the simulator process: sync, expire, alert, webhook and refund retries."""

import json
import logging
import time
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orders.models import Order
from payments.models import Discrepancy, GatewayCall, Payment, PaymentTransition, Refund, WebhookEvent
from payments.refunds import refund_create
from payments.services import payment_charge, payment_open_session
from payments.sweeps import (
    alert_stuck_payments,
    claim_due_payments,
    expire_overdue,
    resubmit_pending_refunds,
    retry_webhook_events,
    sync_due_payments,
)
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.payments.psp_plant import age, make_due, pending_hosted_payment
from tests.psp import CARDS
from tests.shop.factories import ProductFactory

pytestmark = pytest.mark.django_db


def captured_at_psp(psp) -> list[dict]:
    return [t for t in psp.transactions() if t["status"] == "captured"]


def refresh(*payments: Payment) -> list[Payment]:
    return [Payment.objects.select_related("order").get(pk=p.pk) for p in payments]


# -- sync -----------------------------------------------------------------------

def test_a_lost_charge_response_is_settled_by_one_sweep_with_one_charge(psp, django_capture_on_commit_callbacks):
    token = psp.token(CARDS["success"])
    psp.faults(seed=1, lose_response_rate=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=token)
    payment.refresh_from_db()
    assert payment.state == "unknown" and payment.psp_reference == ""
    psp.faults(lose_response_rate=0.0)
    make_due(payment)

    report = sync_due_payments()

    [payment] = refresh(payment)
    assert (payment.state, payment.order.state) == ("captured", "paid")
    assert payment.psp_reference == captured_at_psp(psp)[0]["id"]
    assert len(psp.transactions()) == 1 and len(captured_at_psp(psp)) == 1
    assert (report.claimed, report.settled) == (1, 1)
    assert payment.transitions.filter(to_state="captured").get().source == "poller"


def test_a_hosted_payment_we_died_before_recording_is_found_by_its_reference(psp, monkeypatch):
    payment = start_payment("hosted")
    monkeypatch.setattr("payments.services.payment_apply_result", lambda **kw: (_ for _ in ()).throw(
        SystemExit("killed between the PSP's answer and our commit")))
    with pytest.raises(SystemExit):
        payment_open_session(payment_id=payment.pk)
    monkeypatch.undo()
    [txn] = psp.transactions()
    psp.pay_on_hosted_page(txn["redirect_url"], CARDS["success"])  # the customer paid anyway
    make_due(payment)

    sync_due_payments()

    [payment] = refresh(payment)
    assert (payment.state, payment.order.state, payment.psp_reference) == ("captured", "paid", txn["id"])
    assert len(psp.transactions()) == 1 and len(captured_at_psp(psp)) == 1


def test_a_direct_charge_we_died_before_recording_is_found_by_its_reference(psp, monkeypatch):
    payment = start_payment("direct", card_token=psp.token(CARDS["success"]))  # the queued task never ran
    monkeypatch.setattr("payments.services.payment_apply_result", lambda **kw: (_ for _ in ()).throw(
        SystemExit("killed")))
    with pytest.raises(SystemExit):
        payment_charge(payment_id=payment.pk)
    monkeypatch.undo()
    assert Payment.objects.get(pk=payment.pk).state == "created"
    make_due(payment)

    sync_due_payments()

    [payment] = refresh(payment)
    assert (payment.state, payment.order.state) == ("captured", "paid")
    assert payment.card_token == ""
    assert len(captured_at_psp(psp)) == 1


def test_a_psp_that_is_down_leaves_payments_untouched_and_rescheduled(psp, settings):
    settings.PAYMENT_SYNC_BACKOFF_SECONDS = [30, 60, 120]
    payments = [pending_hosted_payment() for _ in range(3)]
    make_due(*payments)
    transitions_before = PaymentTransition.objects.count()
    psp.faults(error_rate=1.0)

    before = timezone.now()
    report = sync_due_payments()

    assert (report.claimed, report.unanswered, report.settled) == (3, 3, 0)
    assert PaymentTransition.objects.count() == transitions_before
    for payment in refresh(*payments):
        assert (payment.state, payment.order.state, payment.check_count) == ("pending", "awaiting_payment", 1)
        assert 59 <= (payment.next_check_at - before).total_seconds() <= 65
    assert psp.ledger()["fault_counts"]["error"] == 3


def test_a_sweep_stops_asking_a_psp_that_keeps_not_answering_and_leaves_the_rest_due(psp):
    payments = [pending_hosted_payment() for _ in range(7)]
    make_due(*payments)
    psp.faults(error_rate=1.0)

    report = sync_due_payments()

    assert report.psp_down and (report.claimed, report.released) == (5, 2)
    payments = refresh(*payments)
    assert sorted(p.check_count for p in payments) == [0, 0, 1, 1, 1, 1, 1]
    untried = [p for p in payments if p.check_count == 0]
    assert all(p.next_check_at <= timezone.now() for p in untried)  # due for the next sweep
    psp.faults(error_rate=0.0)
    assert sync_due_payments().claimed == 2


def test_the_next_check_moves_out_along_the_ladder_and_nothing_is_checked_early(psp, settings):
    settings.PAYMENT_SYNC_BACKOFF_SECONDS = [30, 60, 120]
    payment = pending_hosted_payment()
    delays = []
    for _ in range(4):
        make_due(payment)
        before = timezone.now()
        assert sync_due_payments().claimed == 1
        [payment] = refresh(payment)
        delays.append(round((payment.next_check_at - before).total_seconds()))
        # Not due again yet: a second sweep right away asks the PSP nothing.
        calls = GatewayCall.objects.count()
        assert sync_due_payments().claimed == 0 and GatewayCall.objects.count() == calls
    assert delays == [60, 120, 120, 120]
    assert (payment.check_count, payment.state) == (4, "pending")


def test_a_payment_the_psp_never_heard_of_is_failed_after_the_grace_period(psp, settings):
    payment = start_payment("hosted")  # we died before even calling the PSP
    make_due(payment)
    sync_due_payments()
    [payment] = refresh(payment)
    assert (payment.state, payment.check_count) == ("created", 1)  # too early to be sure

    age(payment, by=timedelta(seconds=settings.PAYMENT_CREATED_GRACE_SECONDS + 1))
    make_due(payment)
    sync_due_payments()

    [payment] = refresh(payment)
    assert (payment.state, payment.failure_code, payment.next_check_at) == ("failed", "not_at_psp", None)
    assert payment.order.state == "awaiting_payment"  # the customer can pay again
    assert psp.transactions() == []


def test_a_card_payment_whose_charge_task_was_lost_is_charged_by_the_sweep_once(psp):
    """The charge_payment task died with its worker or with Redis: the sweep sends the charge itself,
    with the task's idempotency key, so the task arriving late (or running at once) charges nothing more."""
    from payments.services import _payment_request, gateway_for

    token = psp.token(CARDS["success"])
    payment = start_payment("direct", card_token=token)  # committed; its task never ran
    make_due(payment)
    sync_due_payments()

    [payment] = refresh(payment)
    assert (payment.state, payment.order.state, payment.card_token) == ("captured", "paid", "")
    assert len(psp.transactions()) == 1
    assert payment_charge(payment_id=payment.pk).state == "captured"  # the lost task, run after all
    payment.card_token = token  # a copy of the charge that was in flight meanwhile, with the same key
    gateway_for(payment).charge(_payment_request(payment))
    assert len(psp.transactions()) == 1 and len(captured_at_psp(psp)) == 1
    assert GatewayCall.objects.filter(payment=payment, operation="charge").count() == 2


def test_a_payment_past_the_give_up_time_is_no_longer_polled(psp, settings, caplog):
    payment = pending_hosted_payment()
    age(payment, by=timedelta(hours=settings.PAYMENT_SYNC_GIVE_UP_HOURS, minutes=1))
    make_due(payment)
    calls = GatewayCall.objects.count()

    with caplog.at_level(logging.WARNING, logger="payments.sweeps"):
        report = sync_due_payments()

    [payment] = refresh(payment)
    assert (report.given_up, report.claimed) == (1, 0)
    assert payment.state == "pending" and payment.next_check_at is None
    assert GatewayCall.objects.count() == calls
    assert f"giving up polling payment {payment.pk}" in caplog.text
    assert sync_due_payments().given_up == 0  # said once


def test_a_claim_hides_payments_from_other_sweeps_until_its_lease_runs_out(psp):
    payments = [pending_hosted_payment() for _ in range(3)]
    make_due(*payments)
    now = timezone.now()

    first = claim_due_payments(now=now, limit=2)
    second = claim_due_payments(now=now, limit=10)
    third = claim_due_payments(now=now, limit=10)

    assert len(first.payment_ids) == 2 and len(second.payment_ids) == 1 and third.payment_ids == []
    assert set(first.payment_ids) | set(second.payment_ids) == {p.pk for p in payments}
    make_due(*payments)  # the leases ran out (the sweep that held them died)
    assert len(claim_due_payments(now=timezone.now(), limit=10).payment_ids) == 3


def test_a_sweep_works_through_every_batch(psp):
    payments = [pending_hosted_payment() for _ in range(5)]
    make_due(*payments)
    report = sync_due_payments(batch_size=2)
    assert report.claimed == 5
    assert [p.check_count for p in refresh(*payments)] == [1] * 5


def test_a_sweep_out_of_time_hands_its_claim_back(psp):
    payment = pending_hosted_payment()
    make_due(payment)
    report = sync_due_payments(budget_seconds=0)
    [payment] = refresh(payment)
    assert (report.claimed, report.released, payment.check_count) == (0, 1, 0)
    assert payment.next_check_at <= timezone.now()


# -- expire -----------------------------------------------------------------------

def test_a_payment_past_its_deadline_is_cancelled_at_the_psp_then_expired_with_its_order(psp, settings):
    product = ProductFactory(stock=5)
    payment = pending_hosted_payment(product=product, quantity=2)
    assert Order.objects.get(pk=payment.order_id).lines.get().product.stock == 3
    age(payment, by=timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES, seconds=1))

    report = expire_overdue()

    [payment] = refresh(payment)
    product.refresh_from_db()
    assert (payment.state, payment.order.state, product.stock) == ("expired", "expired", 5)
    assert psp.transactions()[0]["status"] == "cancelled"
    assert (report.expired, report.captured) == (1, 0)
    assert expire_overdue().checked == 0
    product.refresh_from_db()
    assert product.stock == 5  # released once


def test_a_payment_captured_at_the_psp_just_before_the_deadline_becomes_captured_not_expired(psp, settings):
    product = ProductFactory(stock=5)
    payment = pending_hosted_payment(product=product)
    # The customer pays on the PSP's page; the webhook and the return page have not reached us yet.
    psp.pay_on_hosted_page(payment.redirect_url, CARDS["success"])
    age(payment, by=timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES, seconds=1))

    report = expire_overdue()

    [payment] = refresh(payment)
    product.refresh_from_db()
    assert (payment.state, payment.order.state, product.stock) == ("captured", "paid", 4)
    assert not payment.transitions.filter(to_state="expired").exists()
    assert (report.expired, report.captured) == (0, 1)
    assert len(captured_at_psp(psp)) == 1


def test_a_payment_whose_cancellation_the_psp_does_not_confirm_stays_open(psp, settings):
    payment = pending_hosted_payment()
    age(payment, by=timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES, seconds=1))
    psp.faults(error_rate=1.0)
    report = expire_overdue()
    [payment] = refresh(payment)
    assert (payment.state, payment.order.state, report.still_open) == ("pending", "awaiting_payment", 1)


def test_an_order_nobody_pays_expires_and_releases_its_stock_once(psp, settings):
    product = ProductFactory(stock=4)
    order = make_order(product=product, quantity=3)
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES, seconds=1))

    assert expire_overdue().orders_expired == 1
    assert expire_overdue().orders_expired == 0

    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.state, product.stock) == ("expired", 4)
    assert order.transitions.filter(to_state="expired").count() == 1


def test_an_old_order_whose_customer_is_still_trying_is_kept(psp, settings):
    deadline = timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES, seconds=1)
    declined_just_now = make_order()
    payment = start_payment("direct", order=declined_just_now, card_token=psp.token(CARDS["declined"]))
    assert payment_charge(payment_id=payment.pk).state == "declined"
    paying_now = make_order()
    pending_hosted_payment_for = start_payment("hosted", order=paying_now)
    declined_long_ago = make_order()
    old = start_payment("direct", order=declined_long_ago, card_token=psp.token(CARDS["declined"]))
    payment_charge(payment_id=old.pk)
    Payment.objects.filter(pk=old.pk).update(updated_at=timezone.now() - deadline)
    Order.objects.filter(pk__in=[declined_just_now.pk, paying_now.pk, declined_long_ago.pk]).update(
        created_at=timezone.now() - deadline)

    expire_overdue()

    states = dict(Order.objects.values_list("pk", "state"))
    assert states[declined_just_now.pk] == "awaiting_payment"
    assert states[paying_now.pk] == "awaiting_payment"
    assert states[declined_long_ago.pk] == "expired"
    assert Payment.objects.get(pk=pending_hosted_payment_for.pk).state == "created"


# -- alert ------------------------------------------------------------------------

@pytest.fixture
def admins(settings):
    settings.ADMINS = [("Operations", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_each_stuck_payment_is_reported_once(psp, settings, admins, caplog):
    stuck = [pending_hosted_payment() for _ in range(2)]
    fresh = pending_hosted_payment()
    age(*stuck, by=timedelta(minutes=settings.PAYMENT_ALERT_AFTER_MINUTES, seconds=30))

    with caplog.at_level(logging.WARNING, logger="payments.sweeps"):
        reported = alert_stuck_payments()
    assert alert_stuck_payments() == []

    assert {p.pk for p in reported} == {p.pk for p in stuck}
    [message] = mail.outbox
    assert message.to == ["ops@example.com"] and message.subject.startswith("[Reckon] 2 payments open for more than")
    for payment in refresh(*stuck):
        assert str(payment.pk) in message.body and payment.order.number in message.body
        assert payment.alerted_at is not None
        assert f"payment {payment.pk}  order {payment.order.number}  pending  open for 1 h 00 min" in caplog.text
    assert str(fresh.pk) not in message.body
    assert refresh(fresh)[0].alerted_at is None


def test_an_alert_that_could_not_be_mailed_is_sent_on_the_next_run(psp, settings, admins, monkeypatch):
    payment = pending_hosted_payment()
    age(payment, by=timedelta(minutes=settings.PAYMENT_ALERT_AFTER_MINUTES, seconds=30))

    def smtp_down(*args, **kwargs):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr("payments.sweeps.mail_admins", smtp_down)
    with pytest.raises(ConnectionRefusedError):
        alert_stuck_payments()
    assert refresh(payment)[0].alerted_at is None
    monkeypatch.undo()
    assert [p.pk for p in alert_stuck_payments()] == [payment.pk]
    assert len(mail.outbox) == 1


# -- webhook retry ------------------------------------------------------------------

def stored_event(payment: Payment, status: str, *, attempts: int, received_ago: timedelta) -> WebhookEvent:
    """An event the inbox stored but could not apply (e.g. the database was away)."""
    txn = {"id": payment.psp_reference, "object": "transaction", "status": status, "amount": payment.amount_minor,
           "currency": payment.currency, "amount_captured": payment.amount_minor if status == "captured" else 0,
           "amount_refunded": 0, "refunds": [], "merchant_reference": str(payment.pk), "created": int(time.time())}
    event_id = f"evt_{uuid.uuid4().hex}"
    event = WebhookEvent.objects.create(
        gateway="simulator", event_id=event_id, event_type=f"transaction.{status}", headers={}, payment=payment,
        body=json.dumps({"id": event_id, "type": f"transaction.{status}", "data": {"object": txn}}),
        attempts=attempts, error="OperationalError: database is away" if attempts else "")
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - received_ago)
    return event


def test_a_failed_webhook_is_retried_after_a_wait_and_applied(psp):
    payment = pending_hosted_payment()
    event = stored_event(payment, "captured", attempts=1, received_ago=timedelta(minutes=1))
    assert retry_webhook_events().retried == 0  # the second try waits two minutes
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=3))

    report = retry_webhook_events()

    event.refresh_from_db()
    [payment] = refresh(payment)
    assert (report.retried, report.applied) == (1, 1)
    assert event.processed_at is not None and event.attempts == 2
    assert (payment.state, payment.order.state) == ("captured", "paid")
    assert payment.transitions.get(to_state="captured").source == "webhook"


def test_a_webhook_that_never_applies_becomes_one_discrepancy(psp, settings):
    payment = pending_hosted_payment()
    event = stored_event(payment, "captured", attempts=settings.WEBHOOK_MAX_ATTEMPTS, received_ago=timedelta(hours=1))

    assert retry_webhook_events().flagged == 1
    assert retry_webhook_events().flagged == 0

    [discrepancy] = Discrepancy.objects.all()
    assert (discrepancy.kind, discrepancy.payment_id) == ("webhook_failed", payment.pk)
    assert event.event_id in discrepancy.summary and "database is away" in discrepancy.details["error"]
    event.refresh_from_db()
    assert event.attempts == settings.WEBHOOK_MAX_ATTEMPTS and event.processed_at is None  # not retried again


# -- refunds -------------------------------------------------------------------------

def test_a_refund_the_psp_never_answered_is_resubmitted_once_at_the_psp(psp):
    payment = start_payment("direct", card_token=psp.token(CARDS["success"]))
    payment = payment_charge(payment_id=payment.pk)
    assert payment.state == "captured"
    psp.faults(error_rate=1.0)
    refund = refund_create(payment_id=payment.pk, amount_minor=payment.amount_minor, refund_id=uuid.uuid4(),
                           reason="Returned")
    assert refund.state == "pending"
    psp.faults(error_rate=0.0)
    assert resubmit_pending_refunds() == 0  # asked less than a minute ago: the request may still be running
    Refund.objects.filter(pk=refund.pk).update(created_at=timezone.now() - timedelta(minutes=2))

    assert resubmit_pending_refunds() == 1
    assert resubmit_pending_refunds() == 0

    refund.refresh_from_db()
    [payment] = refresh(payment)
    assert (refund.state, payment.state, payment.order.state) == ("succeeded", "refunded", "refunded")
    assert len(psp.transactions()[0]["refunds"]) == 1


def test_the_scheduled_sync_fans_a_backlog_out_to_helper_sweeps(psp, settings, monkeypatch):
    """One helper per further batch due (at most PAYMENT_SYNC_FAN_OUT); each takes what was due at the fan-out."""
    import django_q.tasks

    from payments.tasks import sync_payments, sync_payments_batch

    settings.PAYMENT_SYNC_BATCH_SIZE = 2
    settings.PAYMENT_SYNC_FAN_OUT = 8
    payments = [pending_hosted_payment() for _ in range(5)]
    make_due(*payments)
    queued = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda func, *args, **kw: queued.append((func, args)))

    result = sync_payments()

    assert [func for func, _ in queued] == ["payments.tasks.sync_payments_batch"] * 2  # 5 due: 3 batches
    assert result.startswith("5 due payment(s) checked") and result.endswith("2 helper sweep(s) queued.")
    # A helper run after the scheduled sweep took everything finds nothing left: no payment is checked twice.
    assert sync_payments_batch(*queued[0][1]).startswith("0 due payment(s)")
    assert [p.check_count for p in refresh(*payments)] == [1] * 5

    settings.PAYMENT_SYNC_FAN_OUT = 1
    make_due(*payments)
    queued.clear()
    sync_payments()
    assert len(queued) == 1
