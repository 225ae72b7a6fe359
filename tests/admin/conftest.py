"""Support console fixtures: a support user made by the real command, and payments in the states they meet."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command

from payments.models import Payment
from payments.services import payment_open_session, payment_sync
from tests.payments.factories import start_payment
from tests.staff import login_verified

PASSWORD = "a-long-support-password-1"


def make_support_user(username: str = "sam"):
    import os

    os.environ["RECKON_TEST_SUPPORT_PASSWORD"] = PASSWORD
    try:
        call_command("create_support_user", username, "--email", f"{username}@example.com",
                     "--password-from-env", "RECKON_TEST_SUPPORT_PASSWORD", stdout=io.StringIO())
    finally:
        del os.environ["RECKON_TEST_SUPPORT_PASSWORD"]
    return get_user_model().objects.get(username=username)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The real hasher costs ~0.3 s per user on purpose; these tests make several users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def support_user(db):
    return make_support_user("sam")


@pytest.fixture
def support_client(client, support_user):
    return login_verified(client, support_user)


@pytest.fixture
def override_client(client, db):
    """A support lead: the group plus the override permission, given to a person."""
    user = make_support_user("lead")
    user.user_permissions.add(Permission.objects.get(codename="resolve_payment_override"))
    return login_verified(client, user)


def pending_payment() -> Payment:
    """A hosted payment the PSP holds as pending (the customer is on its page)."""
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    assert payment.state == "pending"
    return payment


def paid_at_psp_only(psp) -> Payment:
    """The customer paid on the PSP's page, but neither the return nor the webhook reached us."""
    payment = pending_payment()
    psp.pay_on_hosted_page(payment.redirect_url)
    payment.refresh_from_db()
    assert payment.state == "pending"
    return payment


def captured_payment(psp) -> Payment:
    payment = paid_at_psp_only(psp)
    payment = payment_sync(payment_id=payment.pk)
    assert payment.state == "captured" and payment.order.state == "paid"
    return payment


def make_stuck(payment: Payment, *, hours: int = 3) -> Payment:
    """Age a payment past the alert threshold (PAYMENT_ALERT_AFTER_MINUTES, 60 by default)."""
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(hours=hours))
    payment.refresh_from_db()
    return payment
