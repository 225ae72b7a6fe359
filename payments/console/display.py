"""How the console shows states, money, ages and links: formatted, never floats, never secrets."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from shop.money import format_money

_COLOURS = {
    # open: someone may need to act
    "created": "#8a6d00", "pending": "#b26b00", "unknown": "#c0392b", "authorized": "#1f6fb2",
    # money taken
    "captured": "#2e7d32", "partially_refunded": "#00796b", "refunded": "#546e7a",
    # nothing taken
    "declined": "#ad1457", "failed": "#ad1457", "cancelled": "#616161", "expired": "#616161",
    # discrepancies, webhook events
    "open": "#c0392b", "closed": "#616161", "applied": "#2e7d32", "waiting": "#b26b00", "error": "#c0392b",
}


_TIMEOUTS = ("ReadTimeout", "ConnectTimeout", "Timeout", "timed out")
_UNREACHABLE = ("ConnectionError", "ConnectionRefused", "Max retries", "NewConnectionError", "APIConnectionError")


def plain_psp_error(text: str) -> str:
    """A PSP call's error in words for support staff; the raw text stays in the call's details."""
    text = (text or "").strip()
    if not text:
        return ""
    if any(marker in text for marker in _TIMEOUTS):
        return "The PSP did not answer in time."
    if any(marker in text for marker in _UNREACHABLE):
        return "The shop could not reach the PSP (network or PSP down)."
    if text.startswith("HTTP 5") or text.startswith("HTTP 409") or text.startswith("HTTP 429"):
        return f"The PSP could not handle the request just then ({text})."
    if text.startswith("HTTP 4"):
        return f"The PSP refused the request ({text})."
    if text.startswith("unreadable"):
        return "The PSP's answer could not be read."
    if ": " in text and text.split(": ", 1)[0].isidentifier():
        return "The call to the PSP failed without an answer."  # an exception's text: shown in the details
    return text


def badge(key: str, label: str) -> SafeString:
    colour = _COLOURS.get(key, "#616161")
    return format_html('<span class="console-badge" data-state="{}" style="background:{};color:#fff;'
                       'padding:1px 7px;border-radius:9px;white-space:nowrap">{}</span>', key, colour, label)


def age(since) -> str:
    return timesince(since, timezone.now(), depth=1) if since else ""


def admin_link(model_label: str, pk, text) -> SafeString:
    app_label, model = model_label.split(".")
    return format_html('<a href="{}">{}</a>', reverse(f"admin:{app_label}_{model}_change", args=[pk]), text)


class PaymentColumns:
    """The payment columns that the payment list and the order page's payments inline share."""

    @admin.display(description="state")
    def state_badge(self, payment) -> SafeString:
        return badge(payment.state, payment.get_state_display())

    @admin.display(description="age", ordering="created_at")
    def age(self, payment) -> str:
        return age(payment.created_at)

    @admin.display(description="amount")
    def amount(self, payment) -> str:
        return format_money(payment.amount_minor, payment.currency)

    @admin.display(description="refunded")
    def refunded(self, payment) -> str:
        return format_money(payment.amount_refunded_minor, payment.currency)
