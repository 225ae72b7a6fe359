"""Reconcile: mismatches planted in the simulator's ledger are each found once."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from payments.models import Discrepancy, Payment, Refund
from payments.reconcile import reconcile
from payments.refunds import refund_create
from payments.services import payment_charge
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.payments.psp_plant import pending_hosted_payment, plant_cancel, plant_charge, plant_refund
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


def run() -> object:
    now = timezone.now()
    return reconcile(since=now - timedelta(hours=1), until=now + timedelta(minutes=1))


def paid_payment(psp, **order_kwargs) -> Payment:
    """A payment captured through the real direct flow."""
    payment = start_payment("direct", card_token=psp.token(CARDS["success"]), **order_kwargs)
    payment = payment_charge(payment_id=payment.pk)
    assert payment.state == "captured"
    return payment


def found(kind: str) -> list[Discrepancy]:
    return list(Discrepancy.objects.filter(kind=kind))


def assert_found_once_and_not_again(kind: str, payment: Payment | None = None) -> Discrepancy:
    first = run()
    again = run()
    [discrepancy] = Discrepancy.objects.all()
    assert discrepancy.kind == kind and discrepancy.status == "open"
    if payment is not None:
        assert discrepancy.payment_id == payment.pk
    assert (first.found[kind], first.new) == (1, 1)
    assert (again.found[kind], again.new) == (1, 0)
    return discrepancy


def test_books_that_agree_give_no_discrepancy(psp):
    paid = paid_payment(psp)
    refund_create(payment_id=paid.pk, amount_minor=500, refund_id=uuid.uuid4(), reason="Scratched")
    declined = start_payment("direct", card_token=psp.token(CARDS["declined"]))
    payment_charge(payment_id=declined.pk)
    pending_hosted_payment()

    report = run()

    assert report.total_found == 0 and Discrepancy.objects.count() == 0
    assert report.psp_transactions == 3 and report.payments_checked == 1
    assert "0 mismatch(es)" in str(report)


def test_a_capture_at_the_psp_for_a_payment_we_hold_as_declined(psp):
    payment = start_payment("direct", card_token=psp.token(CARDS["declined"]))
    payment = payment_charge(payment_id=payment.pk)
    assert payment.state == "declined"
    plant_charge(psp, merchant_reference=str(payment.pk), amount=payment.amount_minor)

    discrepancy = assert_found_once_and_not_again("captured_at_psp_only", payment)
    assert "declined" in discrepancy.summary


def test_a_capture_at_the_psp_for_a_payment_we_expired(psp):
    payment = pending_hosted_payment()
    Payment.objects.filter(pk=payment.pk).update(state="expired")
    psp.complete(payment.psp_reference, "captured")  # the customer paid after all

    discrepancy = assert_found_once_and_not_again("captured_at_psp_only", payment)
    assert "expired" in discrepancy.summary


def test_a_capture_here_that_the_psp_cancelled(psp):
    payment = pending_hosted_payment()
    plant_cancel(psp, transaction_id=payment.psp_reference)
    Payment.objects.filter(pk=payment.pk).update(state="captured")  # our books say captured

    discrepancy = assert_found_once_and_not_again("captured_here_only", payment)
    assert "cancelled" in discrepancy.summary


def test_a_capture_here_that_the_psp_never_saw(psp):
    payment = start_payment("hosted")
    Payment.objects.filter(pk=payment.pk).update(state="captured")  # e.g. resolved by hand, wrongly

    discrepancy = assert_found_once_and_not_again("captured_here_only", payment)
    assert "no transaction" in discrepancy.summary


def test_a_capture_of_another_amount(psp):
    payment = start_payment("hosted")
    txn = plant_charge(psp, merchant_reference=str(payment.pk), amount=payment.amount_minor + 100)
    Payment.objects.filter(pk=payment.pk).update(state="captured", psp_reference=txn["id"])

    discrepancy = assert_found_once_and_not_again("amount_mismatch", payment)
    assert discrepancy.details == {"psp_amount_minor": payment.amount_minor + 100, "psp_currency": "EUR"}


def test_a_second_capture_under_the_same_reference(psp):
    payment = paid_payment(psp)
    second = plant_charge(psp, merchant_reference=str(payment.pk), amount=payment.amount_minor)

    discrepancy = assert_found_once_and_not_again("double_capture", payment)
    assert discrepancy.psp_reference == second["id"]


def test_two_captured_payments_for_one_order(psp):
    first = paid_payment(psp)
    second = Payment.objects.create(order=first.order, gateway="simulator", flow="direct",
                                    amount_minor=first.amount_minor, currency=first.currency,
                                    deadline_at=timezone.now())
    txn = plant_charge(psp, merchant_reference=str(second.pk), amount=first.amount_minor)
    Payment.objects.filter(pk=second.pk).update(state="captured", psp_reference=txn["id"])

    assert_found_once_and_not_again("double_capture", second)


def test_a_psp_transaction_with_a_reference_we_do_not_know(psp):
    make_order()
    txn = plant_charge(psp, merchant_reference="order-from-another-shop", amount=999)

    discrepancy = assert_found_once_and_not_again("unknown_reference")
    assert discrepancy.psp_reference == txn["id"] and "order-from-another-shop" in discrepancy.summary


def test_a_refund_at_the_psp_that_we_never_asked_for(psp):
    payment = paid_payment(psp)
    plant_refund(psp, transaction_id=payment.psp_reference, amount=300)

    discrepancy = assert_found_once_and_not_again("refund_mismatch", payment)
    assert "did not ask for" in discrepancy.summary


def test_a_refund_here_that_the_psp_never_made(psp):
    payment = paid_payment(psp)
    Refund.objects.create(payment=payment, amount_minor=300, currency="EUR", state="succeeded", reason="Oops")

    discrepancy = assert_found_once_and_not_again("refund_mismatch", payment)
    assert "has no such refund" in discrepancy.summary


def test_a_refund_of_a_transaction_created_before_the_window_is_found_by_its_update_time(psp):
    payment = paid_payment(psp)
    created = psp.transactions()[0]["created"]
    while time.time() < created + 1:  # the PSP counts whole seconds
        time.sleep(0.05)
    plant_refund(psp, transaction_id=payment.psp_reference, amount=300)

    report = reconcile(since=datetime.fromtimestamp(created + 1, UTC), until=timezone.now() + timedelta(minutes=1))

    assert dict(report.found) == {"refund_mismatch": 1} and report.psp_transactions == 1


def test_an_open_payment_the_psp_has_settled_is_synced_not_flagged(psp):
    payment = pending_hosted_payment()
    psp.complete(payment.psp_reference, "captured")  # the webhook was lost

    report = run()

    payment.refresh_from_db()
    assert (payment.state, report.synced, report.total_found) == ("captured", 1, 0)
    assert payment.order.state == "paid"


def test_every_kind_at_once_and_progress_is_reported(psp):
    declined = payment_charge(payment_id=start_payment("direct", card_token=psp.token(CARDS["declined"])).pk)
    plant_charge(psp, merchant_reference=str(declined.pk), amount=declined.amount_minor)
    doubled = paid_payment(psp)
    plant_charge(psp, merchant_reference=str(doubled.pk), amount=doubled.amount_minor)
    plant_charge(psp, merchant_reference="stranger", amount=100)
    refunded = paid_payment(psp)
    plant_refund(psp, transaction_id=refunded.psp_reference, amount=100)
    seen = []

    now = timezone.now()
    first = reconcile(since=now - timedelta(hours=1), until=now + timedelta(minutes=1), progress=seen.append)
    second = run()

    assert dict(first.found) == {"captured_at_psp_only": 1, "double_capture": 1, "unknown_reference": 1,
                                 "refund_mismatch": 1}
    assert first.new == 4 and second.new == 0 and Discrepancy.objects.count() == 4
    assert seen == [first.psp_transactions] and first.psp_transactions == 6
    assert "4 new" in str(first)


def test_a_psp_that_does_not_answer_the_list_raises_a_connection_error(psp):
    psp.faults(error_rate=1.0)
    with pytest.raises(ConnectionError):
        run()
