"""How the console shows states, money, ages and links: formatted, never floats, never secrets."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

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


def badge(key: str, label: str) -> SafeString:
    colour = _COLOURS.get(key, "#616161")
    return format_html('<span class="console-badge" data-state="{}" style="background:{};color:#fff;'
                       'padding:1px 7px;border-radius:9px;white-space:nowrap">{}</span>', key, colour, label)


def age(since) -> str:
    return timesince(since, timezone.now(), depth=1) if since else ""


def admin_link(model_label: str, pk, text) -> SafeString:
    app_label, model = model_label.split(".")
    return format_html('<a href="{}">{}</a>', reverse(f"admin:{app_label}_{model}_change", args=[pk]), text)
