"""Sweeps running at once on PostgreSQL, with real threads and connections."""

from collections import Counter
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from payments.models import GatewayCall, Payment, PaymentTransition
from payments.sweeps import alert_stuck_payments, sync_due_payments
from tests.payments.psp_plant import age, make_due, pending_hosted_payment
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_sweeps_at_once_check_every_due_payment_exactly_once(postgres_only, psp):
    payments = [pending_hosted_payment() for _ in range(12)]
    for payment in payments[::2]:
        psp.complete(payment.psp_reference, "captured")  # half of them were paid meanwhile
    make_due(*payments)
    started = timezone.now()

    reports = run_at_once(2, lambda i: sync_due_payments(batch_size=3))

    assert not [r for r in reports if isinstance(r, Exception)], reports
    assert sum(r.claimed for r in reports) == 12
    # One status call per payment: no payment was asked about twice, none skipped.
    calls = Counter(GatewayCall.objects.filter(operation="retrieve", created_at__gte=started)
                    .values_list("payment_id", flat=True))
    assert calls == Counter({p.pk: 1 for p in payments})
    captures = Counter(PaymentTransition.objects.filter(to_state="captured").values_list("payment_id", flat=True))
    assert captures == Counter({p.pk: 1 for p in payments[::2]})
    states = dict(Payment.objects.values_list("pk", "state"))
    assert [states[p.pk] for p in payments] == ["captured", "pending"] * 6
    assert all(check_count == 1 for check_count in Payment.objects.values_list("check_count", flat=True))


def test_two_alert_sweeps_at_once_report_each_stuck_payment_once(postgres_only, psp, settings):
    settings.ADMINS = [("Operations", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    stuck = [pending_hosted_payment() for _ in range(6)]
    age(*stuck, by=timedelta(minutes=settings.PAYMENT_ALERT_AFTER_MINUTES, seconds=30))

    results = run_at_once(2, lambda i: alert_stuck_payments())

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(p.pk for r in results for p in r) == sorted(p.pk for p in stuck)
    bodies = "\n".join(message.body for message in mail.outbox)
    assert all(bodies.count(str(p.pk)) == 1 for p in stuck)
