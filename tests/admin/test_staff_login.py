"""Staff sign-in: a password and a second factor for every console session, and lockout after wrong passwords."""

import io
import re

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.admin.conftest import PASSWORD, make_support_user
from tests.staff import current_code

pytestmark = pytest.mark.django_db
LOGIN = reverse("admin:login")
INDEX = reverse("admin:index")


def sign_in(client, username="sam", password=PASSWORD, code="", address="127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": code, "next": INDEX},
                       REMOTE_ADDR=address)


def backup_codes(output: str) -> list[str]:
    return re.findall(r"^    ([a-z2-7]{8})$", output, flags=re.M)


def test_create_support_user_prints_the_enrolment_and_password_plus_code_signs_in(client):
    out = io.StringIO()
    import os

    os.environ["RECKON_TEST_PW"] = PASSWORD
    try:
        call_command("create_support_user", "sam", "--email", "sam@example.com", "--password-from-env",
                     "RECKON_TEST_PW", stdout=out)
    finally:
        del os.environ["RECKON_TEST_PW"]
    printed = out.getvalue()
    assert "otpauth://totp/" in printed and "secret=" in printed
    assert len(backup_codes(printed)) == 8
    user = TOTPDevice.objects.get().user

    password_only = sign_in(client)
    assert password_only.status_code == 200
    assert "Enter the code from your authenticator app" in password_only.content.decode()
    assert client.get(INDEX).status_code == 302

    wrong_code = sign_in(client, code="000000" if current_code(user) != "000000" else "111111")
    assert "That code is not right" in wrong_code.content.decode()
    # django-otp's throttle: after a wrong code, the device refuses every code for a growing while (1 s, 2 s, ...).
    throttled = sign_in(client, code=current_code(user))
    assert "Verification temporarily disabled" in throttled.content.decode()
    TOTPDevice.objects.get(user=user).throttle_reset()  # as if that second had passed

    signed_in = sign_in(client, code=current_code(user))
    assert signed_in.status_code == 302 and signed_in["Location"] == INDEX
    assert client.get(INDEX).status_code == 200


def test_a_backup_code_signs_in_once():
    out = io.StringIO()
    user = make_support_user("sam")
    call_command("enrol_otp", "sam", "--reset", stdout=out)
    code = backup_codes(out.getvalue())[0]

    first = Client()
    assert sign_in(first, code=code).status_code == 302
    assert first.get(INDEX).status_code == 200
    again = sign_in(Client(), code=code)
    assert again.status_code == 200 and "That code is not right" in again.content.decode()
    assert StaticDevice.objects.get(user=user).token_set.count() == 7


def test_a_session_with_a_password_but_no_code_is_not_let_in(client):
    user = make_support_user("sam")
    client.force_login(user)
    response = client.get(reverse("admin:payments_payment_changelist"))
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_a_staff_user_without_a_second_factor_is_told_how_to_get_one(client):
    user = make_support_user("sam")
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    page = sign_in(client, code="123456").content.decode()
    assert "manage.py enrol_otp" in page
    assert client.get(INDEX).status_code == 302


def test_five_wrong_passwords_lock_the_account_from_every_address_and_the_address_for_every_account():
    user = make_support_user("sam")
    make_support_user("kim")
    client = Client()
    for _ in range(4):
        assert sign_in(client, password="guess-again-1", address="10.0.0.1").status_code == 200
    assert sign_in(client, password="guess-again-1", address="10.0.0.1").status_code == 429  # the fifth locks
    locked = sign_in(client, code=current_code(user), address="10.0.0.1")
    assert locked.status_code == 429
    assert "Sign-in locked for now" in locked.content.decode()
    assert client.get(INDEX).status_code == 302  # the right password and code did not get in

    # The same account from another address, and another account from the same address.
    assert sign_in(Client(), code=current_code(user), address="10.0.0.2").status_code == 429
    assert sign_in(Client(), username="kim", address="10.0.0.1").status_code == 429
    # Someone else elsewhere is not affected.
    assert "Enter the code" in sign_in(Client(), username="kim", address="10.0.0.3").content.decode()

    # The documented recovery: an administrator lifts the lock early.
    call_command("axes_reset_username", "sam", stdout=io.StringIO())
    call_command("axes_reset_ip", "10.0.0.1", stdout=io.StringIO())
    assert sign_in(Client(), code=current_code(user), address="10.0.0.2").status_code == 302


def test_a_correct_sign_in_clears_the_count_of_wrong_passwords():
    user = make_support_user("sam")
    for _ in range(4):
        sign_in(Client(), password="guess-again-1")
    assert sign_in(Client(), code=current_code(user)).status_code == 302
    for _ in range(4):
        sign_in(Client(), password="guess-again-1")
    assert sign_in(Client(), code=current_code(user, steps_ahead=1)).status_code == 302


def test_enrol_otp_resets_a_lost_second_factor_and_refuses_mistakes():
    user = make_support_user("sam")
    old_code = current_code(user)
    with pytest.raises(CommandError, match="already has a second factor"):
        call_command("enrol_otp", "sam", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no user named"):
        call_command("enrol_otp", "nobody", stdout=io.StringIO())
    user.is_staff = False
    user.save()
    with pytest.raises(CommandError, match="not staff"):
        call_command("enrol_otp", "sam", "--reset", stdout=io.StringIO())
    user.is_staff = True
    user.save()

    out = io.StringIO()
    call_command("enrol_otp", "sam", "--reset", stdout=out)
    assert "otpauth://" in out.getvalue()
    assert TOTPDevice.objects.filter(user=user).count() == 1
    if current_code(user) != old_code:  # one chance in a million that the new key gives the same code
        assert sign_in(Client(), code=old_code).status_code == 200
        TOTPDevice.objects.get(user=user).throttle_reset()  # the failure throttles the device for 1 s
    assert sign_in(Client(), code=current_code(user)).status_code == 302


def test_the_console_never_shows_a_device_secret():
    assert not admin.site.is_registered(TOTPDevice)
    assert not admin.site.is_registered(StaticDevice)
