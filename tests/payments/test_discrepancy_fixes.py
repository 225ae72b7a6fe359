"""Money the PSP took for a payment we hold as not captured: the console refunds it or attaches it to the order."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.services import order_expire
from payments.discrepancy_fixes import (
    ATTACH,
    REFUND,
    discrepancy_attach_capture,
    discrepancy_money_fixes,
    discrepancy_refund,
)
from payments.ledger import audit_ledger
from payments.models import Discrepancy, Payment
from payments.reconcile import reconcile
from payments.refunds import refund_create
from payments.resolution import _apply_resolution
from payments.services import PaymentError, payment_charge, payment_start
from tests.admin.conftest import make_support_user
from tests.payments.test_resolution import Outage, unknown_card_payment
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sam(db):
    return make_support_user("sam")


def wrongly_declined(psp, callbacks, sam) -> Payment:
    """What the old console allowed: a payment the PSP captured, resolved as declined while the PSP was down."""
    payment = unknown_card_payment(psp, callbacks)
    from payments.gateways.base import GatewayResult, PspStatus

    payment = _apply_resolution(payment_id=payment.pk, outcome="declined", actor=sam, reason="Looked failed",
                                psp=GatewayResult(status=PspStatus.UNKNOWN), confirmed=False)
    assert payment.state == "declined" and payment.order.state == "awaiting_payment"
    return payment


def found_by_reconcile() -> Discrepancy:
    now = timezone.now()
    reconcile(since=now - timedelta(hours=1), until=now + timedelta(minutes=1))
    return Discrepancy.objects.get(status="open")


def pay_again(psp, order, callbacks) -> Payment:
    token = psp.token(CARDS["success"])
    with callbacks(execute=True):
        payment, _ = payment_start(order_id=order.pk, flow="direct", card_token=token)
    payment.refresh_from_db()
    return payment


def test_a_late_capture_on_an_unpaid_order_is_attached_as_its_payment(psp, sam, django_capture_on_commit_callbacks):
    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    discrepancy = found_by_reconcile()
    assert discrepancy.payment_id == payment.pk
    assert discrepancy_money_fixes(discrepancy) == [REFUND, ATTACH]

    payment = discrepancy_attach_capture(discrepancy_id=discrepancy.pk, actor=sam,
                                         reason="PSP captured €12.50; customer confirmed")

    assert payment.state == "captured" and payment.settles_order
    assert payment.order.state == "paid"
    correction = payment.transitions.first()
    assert (correction.from_state, correction.to_state, correction.source, correction.actor_name) == (
        "declined", "captured", "staff", "sam")
    assert correction.payload["discrepancy"] == discrepancy.pk
    discrepancy.refresh_from_db()
    assert discrepancy.status == "closed" and discrepancy.resolved_by_name == "sam"
    assert audit_ledger().ok
    with pytest.raises(PaymentError, match="already closed"):
        discrepancy_attach_capture(discrepancy_id=discrepancy.pk, actor=sam, reason="again")


def test_a_late_capture_is_refunded_once_at_the_psp(psp, sam, django_capture_on_commit_callbacks):
    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    order_expire(order_id=payment.order_id, reason="Not paid in time")  # the shop gave the order up
    discrepancy = found_by_reconcile()
    assert discrepancy_money_fixes(discrepancy) == [REFUND]  # an expired order cannot be paid
    with pytest.raises(PaymentError, match="does not show money taken"):
        discrepancy_attach_capture(discrepancy_id=discrepancy.pk, actor=sam, reason="x")

    refund_id = uuid.uuid4()
    refund = discrepancy_refund(discrepancy_id=discrepancy.pk, actor=sam, reason="Charged for an expired order",
                                refund_id=refund_id)
    again = discrepancy_refund(discrepancy_id=discrepancy.pk, actor=sam, reason="Charged for an expired order",
                               refund_id=refund_id)  # the form submitted twice

    assert again.pk == refund.pk and refund.state == "succeeded" and refund.amount_minor == payment.amount_minor
    payment.refresh_from_db()
    assert payment.state == "refunded" and payment.order.state == "expired"
    assert [t.to_state for t in payment.transitions.order_by("created_at", "id")][-2:] == ["captured", "refunded"]
    txn = psp.transactions()[0]
    assert txn["amount_refunded"] == payment.amount_minor and len(txn["refunds"]) == 1
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == "closed"
    assert audit_ledger().ok


def test_refunding_a_second_charge_leaves_the_order_paid_by_the_first(psp, sam, django_capture_on_commit_callbacks):
    first = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    second = pay_again(psp, first.order, django_capture_on_commit_callbacks)  # the customer was invited to
    assert second.state == "captured" and second.settles_order and second.order.state == "paid"
    discrepancy = found_by_reconcile()
    assert discrepancy.payment_id == first.pk
    assert discrepancy_money_fixes(discrepancy) == [REFUND]

    discrepancy_refund(discrepancy_id=discrepancy.pk, actor=sam, reason="Double charge", refund_id=uuid.uuid4())

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == "refunded" and not first.settles_order
    assert second.state == "captured" and second.order.state == "paid"  # the order keeps its payment
    assert audit_ledger().ok


def test_an_ordinary_refund_of_an_extra_capture_does_not_refund_the_order(psp, sam,
                                                                           django_capture_on_commit_callbacks):
    first = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    second = pay_again(psp, first.order, django_capture_on_commit_callbacks)
    refund_create(payment_id=second.pk, amount_minor=500, refund_id=uuid.uuid4(), actor=sam, reason="Goodwill")
    second.refresh_from_db()
    assert second.state == "partially_refunded" and second.order.state == "partially_refunded"


@pytest.mark.parametrize("kind", ["refused", "5xx", "timeout"])
def test_no_fix_without_the_psps_word(kind, psp, settings, sam, django_capture_on_commit_callbacks):
    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    discrepancy = found_by_reconcile()
    outage = Outage(kind, psp, settings)
    outage.start()
    for fix in (lambda: discrepancy_attach_capture(discrepancy_id=discrepancy.pk, actor=sam, reason="x"),
                lambda: discrepancy_refund(discrepancy_id=discrepancy.pk, actor=sam, reason="x",
                                           refund_id=uuid.uuid4())):
        with pytest.raises(PaymentError, match="The PSP did not answer"):
            fix()
    outage.end()
    payment.refresh_from_db()
    assert payment.state == "declined" and payment.order.state == "awaiting_payment"
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == "open"
    assert not payment.refunds.exists()


def test_fixes_need_the_permissions(psp, sam, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    discrepancy = found_by_reconcile()
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    with pytest.raises(PaymentError, match="permission"):
        discrepancy_refund(discrepancy_id=discrepancy.pk, actor=viewer, reason="x", refund_id=uuid.uuid4())
    with pytest.raises(PaymentError, match="permission"):
        discrepancy_attach_capture(discrepancy_id=discrepancy.pk, actor=viewer, reason="x")
    assert Payment.objects.get(pk=payment.pk).state == "declined"


def test_the_charge_task_retried_after_a_fix_charges_nothing(psp, sam, django_capture_on_commit_callbacks):
    payment = wrongly_declined(psp, django_capture_on_commit_callbacks, sam)
    discrepancy_attach_capture(discrepancy_id=found_by_reconcile().pk, actor=sam, reason="Attach")
    payment_charge(payment_id=payment.pk)  # a re-delivered task
    assert [t["status"] for t in psp.transactions()] == ["captured"]
