"""The signed token that lets a status page's socket read one payment, and nothing else."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing

_SALT = "live.payment-status"


def live_token_for(payment_id: uuid.UUID | str) -> str:
    """A token naming one payment, rendered into that payment's page."""
    return signing.dumps(str(payment_id), salt=_SALT, compress=False)


def live_token_allows(token: str, payment_id: uuid.UUID | str) -> bool:
    """True when the token was signed by us, for this payment, within LIVE_TOKEN_MAX_AGE_SECONDS."""
    if not token or len(token) > 200:
        return False
    try:
        named = signing.loads(token, salt=_SALT, max_age=settings.LIVE_TOKEN_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return False
    return named == str(payment_id)
