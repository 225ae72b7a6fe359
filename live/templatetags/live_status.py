from django import template
from django.utils.http import urlencode

from live.tokens import live_token_for

register = template.Library()


@register.simple_tag
def live_status_path(payment_id) -> str:
    """The path of a payment's status socket (live/routing.py), with the signed token that opens it."""
    return f"/ws/payments/{payment_id}/?" + urlencode({"t": live_token_for(payment_id)})
