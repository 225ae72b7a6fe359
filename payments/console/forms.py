"""The console's small action forms. A reason is required wherever money or state changes."""

from __future__ import annotations

import re
import uuid

from django import forms

from payments.models import Refund
from payments.resolution import ResolveOutcome
from shop.money import currency_exponent, format_money

REASON_HELP = "Goes into the audit trail with your name: what you saw and why you do this."


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=REASON_HELP,
                             error_messages={"required": "Give a reason: it goes into the audit trail."})

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give a reason: it goes into the audit trail.")
        return reason


class ResolveForm(ReasonForm):
    outcome = forms.ChoiceField(choices=ResolveOutcome.CHOICES, widget=forms.RadioSelect,
                                error_messages={"required": "Choose what happened to the payment."})
    override = forms.BooleanField(
        required=False, label="Override: the PSP does not confirm a capture, but the money was taken",
        help_text="Only with the override permission.")
    field_order = ["outcome", "reason", "override"]

    def __init__(self, *args, can_override: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not can_override:
            del self.fields["override"]


def refund_form_id(form: forms.Form) -> forms.Form:
    """Give a form the hidden one-time refund id: submitting the same page twice makes one refund."""
    form.fields["refund_id"] = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)
    return form


class CloseDiscrepancyForm(forms.Form):
    resolution = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What was done about it (refunded, resolved, confirmed with the PSP by phone, ...).",
        error_messages={"required": "Give a resolution note: it goes into the audit trail."})

    def clean_resolution(self) -> str:
        resolution = self.cleaned_data["resolution"].strip()
        if not resolution:
            raise forms.ValidationError("Give a resolution note: it goes into the audit trail.")
        return resolution


def parse_amount(text: str, currency: str) -> int:
    """'12.50' EUR -> 1250, without a float. Raises ValueError with a sentence for the form."""
    exponent = currency_exponent(currency)
    text = text.strip().replace(" ", "")
    decimals = rf"(\.\d{{1,{exponent}}})?" if exponent else ""
    if not re.fullmatch(rf"\d+{decimals}", text):
        example = "12" if not exponent else "12." + "5".ljust(exponent, "0")
        raise ValueError(f"Enter an amount like {example} ({currency}, at most {exponent} decimals).")
    whole, _, frac = text.partition(".")
    return int(whole) * 10**exponent + int(frac.ljust(exponent, "0") or 0)


def minor_to_text(amount_minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    whole, frac = divmod(amount_minor, 10**exponent)
    return f"{whole}.{frac:0{exponent}d}" if exponent else str(whole)


class RefundForm(ReasonForm):
    amount = forms.CharField(max_length=20)
    # A fresh id per rendered form: submitting the same form twice makes one refund.
    refund_id = forms.UUIDField(widget=forms.HiddenInput)
    field_order = ["refund_id", "amount", "reason"]

    def __init__(self, *args, currency: str, refundable_minor: int, **kwargs) -> None:
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("refund_id", uuid.uuid4())
        kwargs["initial"].setdefault("amount", minor_to_text(refundable_minor, currency))
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.refundable_minor = refundable_minor
        self.fields["amount"].label = f"Amount ({currency})"
        self.fields["amount"].help_text = (f"At most {format_money(refundable_minor, currency)} (captured, minus "
                                           "refunded and refunds in flight). The full amount is filled in.")

    def clean_amount(self) -> int:
        try:
            amount = parse_amount(self.cleaned_data["amount"], self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if amount <= 0:
            raise forms.ValidationError("The amount must be more than zero.")
        refund_id = self.cleaned_data.get("refund_id")
        if refund_id and Refund.objects.filter(pk=refund_id).exists():
            return amount  # the same form again: refund_create finds the first refund
        if amount > self.refundable_minor:
            raise forms.ValidationError(
                f"At most {format_money(self.refundable_minor, self.currency)} can be refunded; you asked for "
                f"{format_money(amount, self.currency)}.")
        return amount
