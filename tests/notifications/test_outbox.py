"""Every customer-facing event writes its message once, in the transaction of the change that causes it."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from notifications.models import Notification
from notifications.outbox import notice_slow_payments
from orders.models import Order
from payments.refunds import refund_create
from payments.services import payment_open_session
from payments.sweeps import expire_overdue
from tests.admin.conftest import captured_payment
from tests.notifications.helpers import kinds
from tests.orders.factories import make_order
from tests.payments.factories import start_payment
from tests.payments.psp_plant import age
from tests.payments.test_webhooks import deliver, event_body
from tests.psp import CARDS

pytestmark = pytest.mark.django_db
K = Notification.Kind


class Rollback(Exception):
    pass


def test_placing_an_order_writes_the_order_mail_once():
    order = make_order()
    [row] = Notification.objects.all()
    assert (row.kind, row.order, row.to, row.status) == (K.ORDER_PLACED, order, "ada@example.com", "pending")
    assert row.dedupe_key == f"order_placed:{order.pk}"


def test_a_rolled_back_checkout_writes_no_message():
    with pytest.raises(Rollback), transaction.atomic():
        make_order()
        assert kinds() == [K.ORDER_PLACED]
        raise Rollback
    assert not Notification.objects.exists()


def test_a_rolled_back_decline_writes_nothing(psp):
    from payments.services import _transition

    payment = start_payment("hosted")
    Notification.objects.all().delete()
    with pytest.raises(Rollback), transaction.atomic():
        payment.refresh_from_db()
        _transition(payment, "decline", source="psp_response")
        payment.save()
        assert kinds() == [K.PAYMENT_DECLINED]  # written inside the transaction ...
        raise Rollback
    assert kinds() == []  # ... and gone with it


def test_a_webhook_that_settles_writes_one_receipt_and_its_duplicates_none(client, psp):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    body = event_body(payment, "captured")
    assert deliver(client, body).json()["status"] == "processed"
    assert deliver(client, body).json()["status"] == "duplicate"
    deliver(client, event_body(payment, "captured"))  # another event with the same news
    assert kinds(payment.order) == [K.ORDER_PLACED, K.PAYMENT_SUCCEEDED]


def test_a_declined_card_writes_the_declined_mail(psp, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=psp.token(CARDS["declined"]))
    payment.refresh_from_db()
    assert payment.state == "declined"
    row = Notification.objects.get(kind=K.PAYMENT_DECLINED)
    assert (row.payment, row.order) == (payment, payment.order)


def test_each_refund_writes_its_own_mail_with_its_amount(psp):
    payment = captured_payment(psp)  # €12.50
    first, second = uuid.uuid4(), uuid.uuid4()
    refund_create(payment_id=payment.pk, amount_minor=250, refund_id=first, reason="damaged box")
    refund_create(payment_id=payment.pk, amount_minor=250, refund_id=first, reason="damaged box")  # same form twice
    refund_create(payment_id=payment.pk, amount_minor=1000, refund_id=second, reason="returned")
    rows = Notification.objects.filter(kind=K.REFUND_ISSUED).order_by("created_at")
    assert [(r.context["amount_minor"], r.context["full"]) for r in rows] == [(250, False), (1000, True)]


def test_an_expired_order_writes_one_expiry_mail(psp):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    age(payment, by=timedelta(hours=2))
    Order.objects.filter(pk=payment.order_id).update(created_at=timezone.now() - timedelta(days=2))
    expire_overdue()
    expire_overdue()
    payment.order.refresh_from_db()
    assert payment.order.state == "expired"
    assert kinds(payment.order) == [K.ORDER_EXPIRED, K.ORDER_PLACED]


def test_a_slow_payment_gets_one_notice_of_the_right_kind(psp, settings):
    settings.NOTIFY_SLOW_PAYMENT_MINUTES = 10
    waits_for_customer = payment_open_session(payment_id=start_payment("hosted").pk)  # on the PSP's page
    psp.faults(seed=3, lose_response_rate=1.0)
    waits_for_psp = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.faults(lose_response_rate=0.0)
    waits_for_psp.refresh_from_db()
    assert (waits_for_customer.state, waits_for_psp.state) == ("pending", "unknown")
    fresh = payment_open_session(payment_id=start_payment("hosted").pk)
    age(waits_for_customer, waits_for_psp, by=timedelta(minutes=11))

    assert notice_slow_payments() == 2
    assert notice_slow_payments() == 0  # once per payment
    assert Notification.objects.get(payment=waits_for_customer).kind == K.PAYMENT_ACTION_NEEDED
    assert Notification.objects.get(payment=waits_for_psp).kind == K.PAYMENT_DELAYED
    assert not Notification.objects.filter(payment=fresh).exists()
