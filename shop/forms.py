import functools
import uuid

from django import forms
from django.conf import settings
from django.core.validators import MinValueValidator
from django.forms.utils import flatatt
from django.utils import translation
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django_countries import countries


class QuantityForm(forms.Form):
    """A quantity for one product: a whole number from 1 up to what is in stock.

    In the cart (replace=True) 0 is allowed too: it removes the line.
    """

    quantity = forms.IntegerField(
        min_value=1,
        error_messages={
            "required": "Enter a quantity.",
            "invalid": "Enter a whole number.",
            "min_value": "The quantity must be at least 1.",
        },
        widget=forms.NumberInput(attrs={"min": 1, "inputmode": "numeric", "class": "qty"}),
    )

    def __init__(self, *args, product, already_in_cart: int = 0, replace: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.product = product
        self.already_in_cart = already_in_cart
        self.replace = replace
        self.fields["quantity"].widget.attrs["max"] = max(1, min(product.stock, settings.CART_MAX_QUANTITY))
        if replace:
            self.fields["quantity"].min_value = 0
            self.fields["quantity"].validators = [v for v in self.fields["quantity"].validators
                                                  if not isinstance(v, MinValueValidator)]
            self.fields["quantity"].validators.append(MinValueValidator(0))
            self.fields["quantity"].widget.attrs["min"] = 0
            self.fields["quantity"].error_messages["min_value"] = "The quantity cannot be negative; 0 removes it."

    def clean_quantity(self) -> int:
        quantity = self.cleaned_data["quantity"]
        total = quantity if self.replace else quantity + self.already_in_cart
        # The stock first: with 5 left, "at most 99" would be true but no help.
        if total > self.product.stock:
            if self.product.stock == 0:
                raise forms.ValidationError(f"{self.product.name} is out of stock.")
            raise forms.ValidationError(
                f"Only {self.product.stock} of {self.product.name} in stock"
                + (f" (you already have {self.already_in_cart} in your cart)." if self.already_in_cart and not self.replace else ".")
            )
        if total > settings.CART_MAX_QUANTITY:
            raise forms.ValidationError(f"You can buy at most {settings.CART_MAX_QUANTITY} of one product.")
        return total


def _country_choices() -> list[tuple[str, str]]:
    return [("", "Choose a country"), *countries]


@functools.lru_cache(maxsize=32)
def _country_options(language: str | None) -> tuple[tuple[str, str, str], ...]:
    """The country choices as (value, escaped value, escaped name), made once per language."""
    return tuple((str(code), escape(code), escape(name)) for code, name in _country_choices())


@functools.lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    return frozenset(str(code) for code, _ in _country_choices())


class PlainSelect(forms.Select):
    """Django's Select, HTML for HTML, built in Python instead of a template per option.

    Django renders every <option> through the form renderer's templates: for
    the 250 countries that was 25 of the checkout page's 30 ms of CPU
    (bench/README.md, checkout_profile.py). Flat choices only (no groups).
    """

    def options(self):
        """(value, escaped value, escaped label) of each choice."""
        return ((str(choice), escape(choice), escape(label)) for choice, label in self.choices)

    def render(self, name, value, attrs=None, renderer=None) -> str:
        chosen = set(self.format_value(value))
        options = "".join(f'<option value="{escaped}"{" selected" if choice in chosen else ""}>{label}</option>'
                          for choice, escaped, label in self.options())
        attributes = flatatt(self.build_attrs(self.attrs, attrs))
        return mark_safe(f'<select name="{escape(name)}"{attributes}>{options}</select>')  # noqa: S308 - escaped


class CountrySelect(PlainSelect):
    """The country list, escaped once per language: iterating Django's choices normalizes each of the 250
    and escaping them costs as much again, 4.8 ms of CPU a checkout page (bench/README.md)."""

    def options(self):
        return _country_options(translation.get_language())

    def use_required_attribute(self, initial) -> bool:
        # Select's asks whether the first choice is the empty one, which walks the whole list: ours is.
        return forms.Widget.use_required_attribute(self, initial)


class CountryField(forms.TypedChoiceField):
    """A country from the list, checked against a set instead of a walk through the 250 choices."""

    widget = CountrySelect

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=_country_choices, **kwargs)

    def valid_value(self, value) -> bool:
        return str(value) in _country_codes()


class CheckoutForm(forms.Form):
    email = forms.EmailField(max_length=254)
    full_name = forms.CharField(max_length=200, label="Full name")
    address_line1 = forms.CharField(max_length=200, label="Address")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address (line 2)")
    city = forms.CharField(max_length=100)
    postal_code = forms.CharField(max_length=20, label="Postal code")
    # A real list, checked on the server: a free box turned "Germany" into "GE" (Georgia).
    country = CountryField(
        error_messages={"required": "Choose your country.",
                        "invalid_choice": "Choose your country from the list."},
    )

    # One-time token: a double-submitted form creates one order.
    checkout_token = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)
