"""A staff resolution never tells a charged customer "you have not been charged".

Declined and cancelled need the PSP's positive word that nothing was taken;
with the PSP unreachable (refused connection, 5xx, timeout) every outcome is
refused and nothing changes: the payment stays open under the sync sweep.
"""

import socket
from datetime import timedelta

import pytest

from payments.models import Payment, PaymentTransition
from payments.resolution import PSP_CANNOT_CONFIRM, payment_resolve
from payments.selectors import payment_customer_view
from payments.services import PaymentError, payment_open_session, payment_sync
from tests.admin.conftest import make_support_user
from tests.payments.factories import start_payment
from tests.psp import CARDS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def support_user(db):
    return make_support_user("sam")


def unknown_card_payment(psp, django_capture_on_commit_callbacks, card: str = CARDS["success"]) -> Payment:
    """The walk's payment: charged (or declined) at the PSP, but the answer and the webhooks were lost."""
    token = psp.token(card)
    psp.faults(seed=1, lose_response_rate=1.0, webhook_drop_rate=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        payment = start_payment("direct", card_token=token)
    psp.faults(lose_response_rate=0.0)
    payment.refresh_from_db()
    assert payment.state == "unknown" and payment.next_check_at is not None
    return payment


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Outage:
    """Every PSP call fails the way `kind` says, from start() until end()."""

    def __init__(self, kind: str, psp, settings) -> None:
        self.kind, self.psp, self.settings = kind, psp, settings
        self.url = settings.PSP_SIMULATOR_URL

    def start(self) -> None:
        if self.kind == "refused":
            self.settings.PSP_SIMULATOR_URL = f"http://127.0.0.1:{closed_port()}"
        elif self.kind == "5xx":
            self.psp.faults(error_rate=1.0)
        else:
            self.settings.PSP_READ_TIMEOUT = 0.3
            self.psp.faults(timeout_rate=1.0, timeout_seconds=1)

    def end(self) -> None:
        self.settings.PSP_SIMULATOR_URL = self.url
        self.settings.PSP_READ_TIMEOUT = 2
        self.psp.faults(error_rate=0.0, timeout_rate=0.0)


@pytest.fixture(params=["refused", "5xx", "timeout"])
def outage(request, psp, settings) -> Outage:
    return Outage(request.param, psp, settings)


@pytest.mark.parametrize("outcome", ["declined", "cancelled"])
def test_not_charged_outcomes_are_refused_while_the_psp_is_unreachable(
        outcome, psp, outage, support_user, django_capture_on_commit_callbacks):
    payment = unknown_card_payment(psp, django_capture_on_commit_callbacks)
    assert [t["status"] for t in psp.transactions()] == ["captured"]  # the PSP took the money
    outage.start()
    rows_before = PaymentTransition.objects.count()

    with pytest.raises(PaymentError) as refusal:
        payment_resolve(payment_id=payment.pk, outcome=outcome, actor=support_user, reason="Customer says it failed")

    assert refusal.value.message == PSP_CANNOT_CONFIRM
    payment.refresh_from_db()
    assert payment.state == "unknown" and payment.order.state == "awaiting_payment"
    assert payment.next_check_at is not None  # still under the sync sweep
    assert PaymentTransition.objects.count() == rows_before
    assert "not been charged" not in payment_customer_view(payment)["message"]

    # When the PSP answers again, the same action finds the capture and records it.
    outage.end()
    with pytest.raises(PaymentError, match="The PSP says this payment is captured"):
        payment_resolve(payment_id=payment.pk, outcome=outcome, actor=support_user, reason="Customer says it failed")
    payment.refresh_from_db()
    assert payment.state == "captured" and payment.order.state == "paid"
    assert payment_customer_view(payment)["title"] == "Payment received"


def test_captured_is_refused_while_the_psp_is_unreachable(psp, outage, support_user,
                                                          django_capture_on_commit_callbacks):
    payment = unknown_card_payment(psp, django_capture_on_commit_callbacks)
    outage.start()
    with pytest.raises(PaymentError, match="The PSP does not confirm a capture"):
        payment_resolve(payment_id=payment.pk, outcome="captured", actor=support_user, reason="Customer says paid")
    payment.refresh_from_db()
    assert payment.state == "unknown" and payment.next_check_at is not None


def test_declined_is_accepted_on_the_psps_word(psp, support_user, django_capture_on_commit_callbacks):
    payment = unknown_card_payment(psp, django_capture_on_commit_callbacks, card=CARDS["declined"])
    assert [t["status"] for t in psp.transactions()] == ["declined"]

    payment = payment_resolve(payment_id=payment.pk, outcome="declined", actor=support_user,
                              reason="Bank confirmed by phone: refused")

    assert payment.state == "declined" and payment.failure_code == "resolved_by_staff"
    row = payment.transitions.first()
    assert (row.source, row.actor_name, row.payload["psp_status"], row.payload["psp_confirmed"]) == (
        "staff", "sam", "declined", True)
    assert payment.next_check_at is None


def test_an_open_psp_payment_is_voided_first_and_becomes_cancelled(psp, support_user):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)  # the customer is on the PSP's page
    assert payment.state == "pending"

    payment = payment_resolve(payment_id=payment.pk, outcome="declined", actor=support_user,
                              reason="Customer phoned: gave up")

    assert payment.state == "cancelled"  # what the PSP says after the void, not what was asked
    assert [t["status"] for t in psp.transactions()] == ["cancelled"]
    row = payment.transitions.first()
    assert (row.to_state, row.source, row.actor_name) == ("cancelled", "staff", "sam")


def test_the_customer_paying_at_the_last_second_wins_over_the_void(psp, support_user):
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    psp.pay_on_hosted_page(payment.redirect_url)  # paid; the webhook and return have not reached us

    with pytest.raises(PaymentError, match="The PSP says this payment is captured"):
        payment_resolve(payment_id=payment.pk, outcome="cancelled", actor=support_user, reason="Looks abandoned")

    payment.refresh_from_db()
    assert payment.state == "captured" and payment.order.state == "paid"
    assert [t["status"] for t in psp.transactions()] == ["captured"]


def test_a_payment_the_psp_never_heard_of_needs_the_grace_period(psp, support_user, settings):
    payment = start_payment("direct", card_token="tok_never_sent")  # the charge task never ran
    assert payment.state == "created"

    with pytest.raises(PaymentError, match="no record of this payment yet"):
        payment_resolve(payment_id=payment.pk, outcome="cancelled", actor=support_user, reason="Never charged")
    assert Payment.objects.get(pk=payment.pk).state == "created"

    Payment.objects.filter(pk=payment.pk).update(
        created_at=payment.created_at - timedelta(seconds=settings.PAYMENT_CREATED_GRACE_SECONDS + 1))
    payment = payment_resolve(payment_id=payment.pk, outcome="cancelled", actor=support_user, reason="Never charged")
    assert payment.state == "cancelled"
    assert payment.transitions.first().payload["psp_status"] == "not_found"


def test_a_sweep_after_a_refused_resolution_settles_the_payment(psp, outage, support_user,
                                                               django_capture_on_commit_callbacks):
    payment = unknown_card_payment(psp, django_capture_on_commit_callbacks)
    outage.start()
    with pytest.raises(PaymentError):
        payment_resolve(payment_id=payment.pk, outcome="declined", actor=support_user, reason="x")
    outage.end()
    payment = payment_sync(payment_id=payment.pk)
    assert payment.state == "captured" and payment.order.state == "paid"
