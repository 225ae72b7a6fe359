"""The gaps between us and the PSP: lost answers, dead processes, a PSP that is down."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import Payment
from payments.services import payment_charge, payment_open_session, payment_sync
from tests.payments.factories import start_payment
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


def charges_at_psp(psp) -> list[dict]:
    return [t for t in psp.transactions() if t["status"] == "captured"]


def test_charge_but_lose_the_response(psp, django_capture_on_commit_callbacks):
    token = psp.token(CARDS["success"])
    psp.faults(seed=1, lose_response_rate=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=token)
    payment.refresh_from_db()
    assert payment.state == "unknown" and payment.psp_reference == ""
    assert payment.calls.get().outcome == "unknown"

    psp.faults(lose_response_rate=0.0)
    payment = payment_sync(payment_id=payment.pk)
    assert payment.state == "captured" and payment.order.state == "paid"
    assert len(charges_at_psp(psp)) == 1
    # Retrying the charge itself (a re-delivered task) charges nothing more.
    payment_charge(payment_id=payment.pk)
    assert len(charges_at_psp(psp)) == 1


def test_a_retried_charge_replays_instead_of_charging_twice(psp):
    token = psp.token(CARDS["success"])
    payment = start_payment("direct", card_token=token)  # on_commit not run: the task "died"
    psp.faults(lose_response_rate=1.0)
    payment_charge(payment_id=payment.pk)
    psp.faults(lose_response_rate=0.0)
    Payment.objects.filter(pk=payment.pk).update(card_token=token)  # as if the task were re-delivered
    Payment.objects.filter(pk=payment.pk).update(state="created")
    payment = payment_charge(payment_id=payment.pk)
    assert payment.state == "captured"
    assert len(psp.transactions()) == 1


def test_shop_dies_between_the_psp_answer_and_our_commit(psp, monkeypatch):
    payment = start_payment("hosted")

    def die(**kwargs):
        raise SystemExit("process killed")

    monkeypatch.setattr("payments.services.payment_apply_result", die)
    with pytest.raises(SystemExit):
        payment_open_session(payment_id=payment.pk)
    monkeypatch.undo()
    payment.refresh_from_db()
    assert payment.state == "created" and payment.psp_reference == ""

    # The customer paid on the PSP's page meanwhile (the session exists there).
    txn = psp.transactions()[0]
    assert txn["merchant_reference"] == str(payment.pk)
    psp.complete(txn["id"], "captured")
    payment = payment_sync(payment_id=payment.pk)
    assert payment.state == "captured" and payment.psp_reference == txn["id"]
    assert payment.order.state == "paid"
    assert len(psp.transactions()) == 1


def test_psp_down_makes_the_payment_unknown_and_blocks_a_second_payment(client, psp):
    from django.urls import reverse

    psp.faults(error_rate=1.0)
    payment = start_payment("hosted")
    payment = payment_open_session(payment_id=payment.pk)
    assert payment.state == "unknown"
    order = payment.order
    page = client.post(reverse("payments:pay-hosted", args=[order.number, order.access_token]), follow=True)
    assert "Confirming your payment" in page.content.decode()
    assert Payment.objects.filter(order=order).count() == 1
    assert psp.ledger()["transactions"] == []


def test_a_payment_the_psp_never_heard_of_fails_after_the_grace_period(psp, settings):
    psp.faults(error_rate=1.0)
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.faults(error_rate=0.0)
    assert payment_sync(payment_id=payment.pk).state == "unknown"  # too early to be sure
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(
        seconds=settings.PAYMENT_CREATED_GRACE_SECONDS + 1))
    payment = payment_sync(payment_id=payment.pk)
    assert payment.state == "failed" and payment.failure_code == "not_at_psp"
    assert payment.next_check_at is None


def test_sync_pushes_the_next_check_out_along_the_ladder(psp, settings):
    settings.PAYMENT_SYNC_BACKOFF_SECONDS = [30, 60, 120]
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    delays = []
    for _ in range(4):
        before = timezone.now()
        payment = payment_sync(payment_id=payment.pk)
        delays.append(round((payment.next_check_at - before).total_seconds()))
    assert delays == [60, 120, 120, 120]
    assert payment.check_count == 4 and payment.state == "pending"
