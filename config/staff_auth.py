"""Staff sign-in to the support console: password, then a second factor, with lockout.

- The second factor is django-otp: a TOTP device (an authenticator app) and
  a set of single-use backup codes (a static device) per staff account,
  made by `manage.py enrol_otp` (and printed by `create_support_user`).
  The console's admin site lets in only a session verified by one of them.
- Lockout is django-axes (settings.AXES_*): repeated wrong passwords lock the
  account and the address for a while; `manage.py axes_reset_username` lifts it.

The login form has one code field: six digits are checked against the
authenticator app, anything else against the backup codes, so nobody has to
pick a device. Device secrets are never shown in the admin (the device admins
are unregistered): enrolling and resetting is by the command only.
"""

from __future__ import annotations

from base64 import b32encode
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.db import transaction
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

BACKUP_CODES = 8
TOTP_NAME = "authenticator app"
BACKUP_NAME = "backup codes"


@dataclass(frozen=True)
class Enrolment:
    username: str
    config_url: str  # otpauth://… for the authenticator app (paste or turn into a QR code)
    secret: str  # the same key in base32, for typing in by hand
    backup_codes: list[str]


def is_enrolled(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


@transaction.atomic
def enrol(user, *, reset: bool = False) -> Enrolment:
    """Give `user` a new authenticator key and backup codes; with `reset`, the old ones stop working."""
    if is_enrolled(user) and not reset:
        raise ValueError(f"{user.get_username()!r} already has a second factor; reset it to make a new one.")
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    totp = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=True)
    static = StaticDevice.objects.create(user=user, name=BACKUP_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=static, token=code) for code in codes])
    return Enrolment(user.get_username(), totp.config_url, b32encode(totp.bin_key).decode(), codes)


def enrolment_text(enrolment: Enrolment) -> str:
    codes = "\n".join(f"    {code}" for code in enrolment.backup_codes)
    return (
        f"Second factor for {enrolment.username!r}: the console asks for a code after the password.\n"
        f"  1. Add this key to an authenticator app (it holds the secret; give it to the person only):\n"
        f"    {enrolment.config_url}\n"
        f"    or type in the key by hand: {enrolment.secret}\n"
        f"  2. Keep these single-use backup codes somewhere safe, for when the phone is lost:\n{codes}\n"
        f"A lost phone and no backup codes: manage.py enrol_otp {enrolment.username} --reset"
    )


class StaffLoginForm(OTPAdminAuthenticationForm):
    """The admin login with one "code" field that takes either the app's code or a backup code."""

    otp_token = forms.CharField(required=False, label="Code",
                                help_text="The 6 digits from your authenticator app, or one of your backup codes.",
                                widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}))
    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": "Enter the code from your authenticator app, or a backup code.",
        "invalid_token": "That code is not right, or was already used. Enter the current code.",
        "device_required": "This account has no second factor yet: an administrator enrols it with "
                           "manage.py enrol_otp.",
    }

    def _chosen_device(self, user):
        chosen = super()._chosen_device(user)  # an explicit choice, only among the user's own devices
        if chosen is not None:
            return chosen
        token = (self.cleaned_data.get("otp_token") or "").strip()
        model = TOTPDevice if token.isdigit() else StaticDevice
        return model.objects.filter(user=user, confirmed=True).first()


class ReckonAdminSite(OTPAdminSite):
    """The support console: Django's admin, open only to a session verified by a second factor."""

    login_form = StaffLoginForm
    login_template = "admin/staff_login.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def has_permission(self, request) -> bool:
        if not settings.ADMIN_REQUIRE_OTP:
            return super(OTPAdminSite, self).has_permission(request)
        return super().has_permission(request)

