import uuid

from django import forms
from django.conf import settings


class QuantityForm(forms.Form):
    """A quantity for one product: a whole number from 1 up to what is in stock."""

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

    def clean_quantity(self) -> int:
        quantity = self.cleaned_data["quantity"]
        total = quantity if self.replace else quantity + self.already_in_cart
        if total > settings.CART_MAX_QUANTITY:
            raise forms.ValidationError(f"You can buy at most {settings.CART_MAX_QUANTITY} of one product.")
        if total > self.product.stock:
            if self.product.stock == 0:
                raise forms.ValidationError(f"{self.product.name} is out of stock.")
            raise forms.ValidationError(
                f"Only {self.product.stock} of {self.product.name} in stock"
                + (f" (you already have {self.already_in_cart} in your cart)." if self.already_in_cart and not self.replace else ".")
            )
        return total


class CheckoutForm(forms.Form):
    email = forms.EmailField(max_length=254)
    full_name = forms.CharField(max_length=200, label="Full name")
    address_line1 = forms.CharField(max_length=200, label="Address")
    address_line2 = forms.CharField(max_length=200, required=False, label="Address (line 2)")
    city = forms.CharField(max_length=100)
    postal_code = forms.CharField(max_length=20, label="Postal code")
    country = forms.RegexField(
        regex=r"^[A-Za-z]{2}$",
        max_length=2,
        help_text="Two-letter country code, such as DE or FR.",
        error_messages={"invalid": "Enter a two-letter country code, such as DE."},
    )
    # One-time token: a double-submitted form creates one order.
    checkout_token = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def clean_country(self) -> str:
        return self.cleaned_data["country"].upper()
