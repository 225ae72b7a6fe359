"""Staff sessions as the console requires them: signed in and verified by a second factor."""

from __future__ import annotations

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.staff_auth import enrol, is_enrolled


def login_verified(client, user):
    """force_login plus the session key django-otp sets after a good code (enrolling the user if need be)."""
    if not is_enrolled(user):
        enrol(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return client


def current_code(user, *, steps_ahead: int = 0) -> str:
    """What the user's authenticator app shows now (or `steps_ahead` 30-second steps later)."""
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"
