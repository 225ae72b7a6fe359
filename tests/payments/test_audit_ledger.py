"""manage.py audit_ledger: the invariants that say no charge is lost or doubled."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from payments.ledger import audit_ledger, legal_moves
from payments.models import Payment, PaymentTransition
from payments.services import payment_open_session
from tests.payments.factories import start_payment
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


def paid_payment(psp) -> Payment:
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.pay_on_hosted_page(payment.redirect_url, CARDS["success"])
    from payments.services import payment_sync

    return payment_sync(payment_id=payment.pk)


def rules(report) -> set[str]:
    return {v.rule for v in report.violations}


def test_a_clean_ledger_passes(psp, capsys):
    assert paid_payment(psp).state == "captured"
    payment_open_session(payment_id=start_payment("hosted").pk)  # an open one, within the threshold
    report = audit_ledger()
    assert report.ok, report.violations
    assert (report.psp_transactions, report.psp_captures, report.payments_checked) == (2, 1, 2)
    call_command("audit_ledger")
    assert "Ledger OK" in capsys.readouterr().out


def test_a_capture_we_did_not_record_is_a_lost_charge(psp):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.pay_on_hosted_page(payment.redirect_url, CARDS["success"])  # we never heard back
    report = audit_ledger()
    assert rules(report) == {"capture-owned", "sums"}
    assert "lost charge" in str(report.violations[0])


def test_a_hole_in_the_audit_trail_is_reported(psp):
    payment = paid_payment(psp)
    PaymentTransition.objects.filter(payment=payment, to_state="pending").delete()
    report = audit_ledger()
    assert rules(report) == {"audit"} and "gap in the trail" in str(report.violations[0])


def test_an_open_payment_past_the_threshold_is_stuck(psp, settings):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    Payment.objects.filter(pk=payment.pk).update(
        created_at=timezone.now() - timedelta(minutes=settings.PAYMENT_ALERT_AFTER_MINUTES + 1))
    assert rules(audit_ledger()) == {"stuck"}


def test_two_captures_for_one_order_is_a_double_charge(psp):
    first = paid_payment(psp)
    second = Payment.objects.create(order=first.order, gateway="simulator", flow="hosted",
                                    amount_minor=first.amount_minor, currency=first.currency, state="captured",
                                    deadline_at=timezone.now())
    PaymentTransition.objects.create(payment=second, from_state="", to_state="created", source="system")
    PaymentTransition.objects.create(payment=second, from_state="created", to_state="captured", source="system")
    assert "double-charge" in rules(audit_ledger())


def test_legal_moves_come_from_the_state_machine():
    moves = legal_moves()
    assert ("created", "captured") in moves and ("pending", "expired") in moves
    assert ("captured", "pending") not in moves and ("declined", "captured") not in moves
    # A late capture proved by a discrepancy is corrected by staff only.
    assert ("declined", "captured") in legal_moves(staff=True)


def test_the_command_exits_1_on_violations_and_explains_bad_dates(psp):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.pay_on_hosted_page(payment.redirect_url, CARDS["success"])
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_ledger")
    assert exit_info.value.code == 1
    with pytest.raises(CommandError, match="ISO date-time"):
        call_command("audit_ledger", since="yesterday")
    with pytest.raises(CommandError, match="before --until"):
        call_command("audit_ledger", since="2026-01-02T00:00:00Z", until="2026-01-01T00:00:00Z")
