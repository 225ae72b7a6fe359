"""Card validation and the table of test cards.

Full card numbers never leave this module: callers only get brand, last4,
expiry and the simulated *behavior*.  CVCs are checked and discarded.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import bad_request


class Behavior(str, Enum):
    """What happens when a card is charged."""

    SUCCESS = "success"
    DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ASYNC = "async"
    PROCESSING_ERROR = "processing_error"
    REQUIRES_ACTION = "requires_action"


TEST_CARDS: dict[str, Behavior] = {
    "4242424242424242": Behavior.SUCCESS,
    "4000000000000002": Behavior.DECLINED,
    "4000000000009995": Behavior.INSUFFICIENT_FUNDS,
    "4000000000000077": Behavior.ASYNC,
    "4000000000000119": Behavior.PROCESSING_ERROR,
    "4000000000003220": Behavior.REQUIRES_ACTION,
}

FAILURE_MESSAGES: dict[str, str] = {
    "card_declined": "The card was declined.",
    "insufficient_funds": "The card has insufficient funds to complete the purchase.",
    "processing_error": "An error occurred while processing the card. Try again later.",
    "authentication_failed": "The customer failed to authenticate the payment.",
}


@dataclass(frozen=True)
class CardDetails:
    """A validated card, minus anything sensitive."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    behavior: Behavior


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def detect_brand(digits: str) -> str:
    two, three, four = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if digits.startswith("6011") or two == 65 or 644 <= three <= 649:
        return "discover"
    if two == 35:
        return "jcb"
    if two in (36, 38) or 300 <= three <= 305:
        return "diners"
    return "unknown"


def normalize_number(value: Any, param: str = "number") -> str:
    """Digits of a card number (spaces removed), or a 400 ``invalid_number``."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise bad_request(param, "A card number is required.", "invalid_number")
    digits = str(value).replace(" ", "")
    if not digits.isdigit() or not digits.isascii():
        raise bad_request(param, "The card number may only contain digits.", "invalid_number")
    if not 12 <= len(digits) <= 19:
        raise bad_request(param, "The card number must have 12 to 19 digits.", "invalid_number")
    if not luhn_valid(digits):
        raise bad_request(param, "The card number is invalid.", "invalid_number")
    return digits


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value.strip())
    return None


def validate_expiry(exp_month: Any, exp_year: Any, *, month_param: str = "exp_month",
                    year_param: str = "exp_year",
                    today: _dt.date | None = None) -> tuple[int, int]:
    """Return ``(month, four_digit_year)``; a 2-digit year means 20YY."""
    month = _as_int(exp_month)
    if month is None or not 1 <= month <= 12:
        raise bad_request(month_param, "The expiry month is invalid.", "invalid_expiry")
    year = _as_int(exp_year)
    if year is not None and year < 100:
        year += 2000
    if year is None or not 2000 <= year <= 2199:
        raise bad_request(year_param, "The expiry year is invalid.", "invalid_expiry")
    today = today or _dt.date.today()
    if (year, month) < (today.year, today.month):
        raise bad_request(year_param, "The card has expired.", "invalid_expiry")
    return month, year


def validate_cvc(value: Any, param: str = "cvc") -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit() or not value.isascii() \
            or not 3 <= len(value) <= 4:
        raise bad_request(param, "The CVC must be 3 or 4 digits.", "invalid_cvc")


def validate_card(number: Any, exp_month: Any, exp_year: Any, cvc: Any, *,
                  today: _dt.date | None = None) -> CardDetails:
    """Validate raw card input (API field names) and return safe details."""
    digits = normalize_number(number)
    month, year = validate_expiry(exp_month, exp_year, today=today)
    validate_cvc(cvc)
    return CardDetails(brand=detect_brand(digits), last4=digits[-4:], exp_month=month,
                       exp_year=year, behavior=TEST_CARDS.get(digits, Behavior.SUCCESS))


def validate_form_card(number: str, expiry: str, cvc: str, *,
                       today: _dt.date | None = None) -> CardDetails:
    """Validate the hosted page form (expiry as ``MM/YY`` or ``MM/YYYY``)."""
    digits = normalize_number(number.strip())
    parts = expiry.replace(" ", "").split("/")
    if len(parts) != 2:
        raise bad_request("expiry", "Enter the expiry date as MM/YY.", "invalid_expiry")
    month, year = validate_expiry(parts[0], parts[1], month_param="expiry", year_param="expiry",
                                  today=today)
    validate_cvc(cvc.strip())
    return CardDetails(brand=detect_brand(digits), last4=digits[-4:], exp_month=month,
                       exp_year=year, behavior=TEST_CARDS.get(digits, Behavior.SUCCESS))
