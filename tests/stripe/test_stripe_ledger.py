"""The ledger audit (reconcile) reads Stripe's PaymentIntents and refunds by creation time."""

import uuid

import pytest
from django.core.management import call_command

from payments.ledger import audit_ledger
from payments.models import Discrepancy
from payments.refunds import refund_create
from payments.services import _payment_request, gateway_for
from tests.payments.factories import start_payment
from tests.stripe.conftest import CARDS

pytestmark = pytest.mark.django_db


def charged(localstripe, django_capture_on_commit_callbacks, card: str = "success"):
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=localstripe.payment_method(CARDS[card]))
    payment.refresh_from_db()
    return payment


def test_our_books_agree_with_stripe(localstripe, django_capture_on_commit_callbacks, capsys):
    paid = charged(localstripe, django_capture_on_commit_callbacks)
    refund_create(payment_id=paid.pk, amount_minor=100, refund_id=uuid.uuid4(), reason="goodwill")
    declined = charged(localstripe, django_capture_on_commit_callbacks, "declined")
    assert (paid.state, declined.state) == ("captured", "declined")

    report = audit_ledger(gateway_name="stripe")

    assert report.ok, report.violations
    assert (report.psp_transactions, report.psp_captures) == (2, 1)
    call_command("audit_ledger", "--gateway", "stripe")
    assert "Ledger OK: 2 PSP transactions (1 captured)" in capsys.readouterr().out


def test_a_charge_we_never_recorded_is_reported(localstripe):
    payment = start_payment("direct", card_token=localstripe.payment_method())
    gateway_for(payment).charge(_payment_request(payment))  # charged; our process died before writing it down

    report = audit_ledger(gateway_name="stripe")

    assert [v.rule for v in report.violations] == ["capture-owned", "sums"]
    assert "lost charge" in str(report.violations[0])


def test_the_reconcile_command_finds_nothing_to_flag(localstripe, django_capture_on_commit_callbacks):
    paid = charged(localstripe, django_capture_on_commit_callbacks)
    refund_create(payment_id=paid.pk, amount_minor=100, refund_id=uuid.uuid4(), reason="goodwill")
    charged(localstripe, django_capture_on_commit_callbacks, "declined")

    call_command("reconcile", "--gateway", "stripe")

    assert not Discrepancy.objects.exists()
