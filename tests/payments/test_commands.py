"""The worker's management commands and schedules: output, exit codes, error messages."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from payments.models import Discrepancy, Payment
from tests.payments.factories import start_payment
from tests.payments.psp_plant import age, make_due, pending_hosted_payment, plant_charge

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# -- sync_payments ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "one of the arguments --payment --due is required"),
        (("--due", "--payment", "x"), "not allowed with argument"),
        (("--payment", "not-a-uuid"), "--payment must be a payment id (a UUID"),
        (("--payment", "3f2b1c9e-8d4a-4b6f-9e1d-2a7c5b8e0f13"),
         "No payment has the id 3f2b1c9e-8d4a-4b6f-9e1d-2a7c5b8e0f13."),
    ],
)
def test_sync_payments_refuses_bad_arguments_in_one_sentence(args, message):
    with pytest.raises(CommandError) as error:
        run("sync_payments", *args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_sync_payments_checks_one_payment_now(psp):
    payment = pending_hosted_payment()
    psp.complete(payment.psp_reference, "captured")
    out, _ = run("sync_payments", "--payment", str(payment.pk))
    assert f"Payment {payment.pk} (order {payment.order.number}): pending -> captured." in out
    out, _ = run("sync_payments", "--payment", str(payment.pk))
    assert "is captured, a final state; nothing to ask the PSP" in out


def test_sync_payments_due_runs_the_sweep(psp):
    due, later = pending_hosted_payment(), pending_hosted_payment()
    make_due(due)
    out, _ = run("sync_payments", "--due")
    assert out.startswith("1 due payment(s) checked: 0 settled, 1 still open")
    assert Payment.objects.get(pk=due.pk).check_count == 1 and Payment.objects.get(pk=later.pk).check_count == 0


# -- expire_payments, stuck_payments ---------------------------------------------------

def test_expire_payments_prints_what_it_did(psp, settings):
    payment = pending_hosted_payment()
    age(payment, by=timedelta(minutes=settings.PAYMENT_DEADLINE_MINUTES, seconds=1))
    out, _ = run("expire_payments")
    assert out.startswith("1 payment(s) past their deadline: 1 expired")
    assert Payment.objects.get(pk=payment.pk).state == "expired"


def test_stuck_payments_says_so_and_exits_0_when_there_are_none(psp):
    pending_hosted_payment()
    out, err = run("stuck_payments")
    assert out == "No payment has been open for more than 60 minutes.\n" and err == ""


def test_stuck_payments_prints_a_table_and_exits_1(psp, settings):
    stuck = pending_hosted_payment()
    age(stuck, by=timedelta(minutes=settings.PAYMENT_ALERT_AFTER_MINUTES, hours=2))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("stuck_payments", stdout=out, stderr=err)
    assert exit_.value.code == 1
    header, rule, row = out.getvalue().splitlines()
    assert header.split() == ["payment", "order", "state", "age", "PSP", "reference", "created", "(UTC)", "alerted"]
    assert row.split()[:5] == [str(stuck.pk), stuck.order.number, "pending", "3h", "00m"]
    assert "1 payment(s) open for more than 60 minutes" in err.getvalue()


# -- reconcile ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since must be an ISO date or date-time, such as 2026-11-23"),
        (("--until", "2026-02-30"), "--until must be an ISO date or date-time"),
        (("--since", "2026-01-02", "--until", "2026-01-01"), "must be before --until"),
        (("--since", "2999-01-01", "--until", "2999-01-02"), "is in the future"),
    ],
)
def test_reconcile_refuses_bad_dates_in_one_sentence(args, message):
    with pytest.raises(CommandError) as error:
        run("reconcile", *args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_reconcile_reports_planted_mismatches_and_a_summary(psp):
    plant_charge(psp, merchant_reference="stranger", amount=100)
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    out, _ = run("reconcile", "--since", since)
    assert "1 PSP transaction(s) and 0 of our payment(s) checked" in out
    assert "1 mismatch(es) (unknown_reference 1), 1 new." in out
    out, _ = run("reconcile", "--since", since)
    assert "1 mismatch(es) (unknown_reference 1), 0 new." in out
    assert Discrepancy.objects.count() == 1


def test_reconcile_shows_progress_on_long_runs(psp, monkeypatch):
    monkeypatch.setattr("payments.management.commands.reconcile.PROGRESS_EVERY", 1)
    plant_charge(psp, merchant_reference="stranger", amount=100)
    out, _ = run("reconcile")
    assert "  1 PSP transactions checked" in out


def test_reconcile_with_the_psp_down_says_so(psp):
    psp.faults(error_rate=1.0)
    with pytest.raises(CommandError, match="Could not read the PSP's transactions: .* run it again"):
        run("reconcile")


# -- schedules and tasks --------------------------------------------------------------

def test_setup_schedules_twice_leaves_one_row_each_and_repairs_edits():
    out, _ = run("setup_schedules")
    assert out == "Worker schedules: 8 created.\n"
    Schedule.objects.filter(func="payments.tasks.sync_payments").update(minutes=30)
    next_run = Schedule.objects.get(func="payments.tasks.reconcile_recent").next_run
    out, _ = run("setup_schedules")
    assert out == "Worker schedules: 1 updated, 7 unchanged.\n"
    assert Schedule.objects.count() == 8
    every = dict(Schedule.objects.values_list("func", "minutes"))
    assert every == {
        "payments.tasks.sync_payments": 1, "payments.tasks.expire_payments": 1,
        "payments.tasks.alert_stuck_payments": 5, "payments.tasks.retry_webhooks": 1,
        "payments.tasks.retry_refunds": 1, "payments.tasks.reconcile_recent": None,
        "notifications.tasks.send_notifications": 1, "payments.tasks.prune_old_rows": None,
    }
    reconcile = Schedule.objects.get(func="payments.tasks.reconcile_recent")
    assert reconcile.schedule_type == Schedule.DAILY and reconcile.next_run == next_run
    assert (reconcile.next_run.hour, reconcile.next_run.minute) == (2, 0)


def test_every_scheduled_task_runs(psp, settings):
    """What the cluster does with each schedule, run inline (Q_SYNC)."""
    run("setup_schedules")
    payment = pending_hosted_payment()
    make_due(payment)
    results = {s.func: async_task(s.func, sync=True) for s in Schedule.objects.all()}
    from django_q.models import Task

    outcomes = {t.func: (t.success, t.result) for t in Task.objects.filter(id__in=results.values())}
    assert all(success for success, _ in outcomes.values()), outcomes
    assert outcomes["payments.tasks.sync_payments"][1].startswith("1 due payment(s) checked")
    assert outcomes["payments.tasks.reconcile_recent"][1] == "25 reconcile window(s) queued."
    assert Task.objects.filter(func="payments.tasks.reconcile_window", success=True).count() == 25
    assert Payment.objects.get(pk=payment.pk).check_count == 1


def test_a_redelivered_sync_task_does_nothing_twice(psp):
    payment = start_payment("hosted")
    make_due(payment)
    from payments.tasks import sync_payments

    assert sync_payments().startswith("1 due payment(s)")
    assert sync_payments().startswith("0 due payment(s)")
