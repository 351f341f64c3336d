"""Money: exact decimal amounts in US dollars, never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

CENT = Decimal("0.01")
#: The largest amount the engine stores (Numeric(14, 2)); far above any SIP grant.
MAX_AMOUNT = Decimal("999999999999.99")


def to_amount(value: Any) -> Decimal:
    """Accept a JSON number (int or Decimal; floats only if they hold an exact cent
    value) and return a Decimal with two places. Strings, booleans, negatives, more
    than two decimal places and non-finite values are refused."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise ValueError("must be a number, e.g. 190000 or 190000.50 (no quotes, separators or currency sign)")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if amount < 0:
        raise ValueError("must not be negative")
    if amount > MAX_AMOUNT:
        raise ValueError(f"is larger than the largest amount the engine stores ({MAX_AMOUNT})")
    if amount != amount.quantize(CENT):
        raise ValueError("has more than two decimal places (cents)")
    return amount.quantize(CENT)


STORED = {"stored": True}


def _validate_amount(value: Any, info: ValidationInfo) -> Decimal:
    # What the engine stored itself holds amounts as strings (see the serialiser);
    # input from people must be JSON numbers.
    if isinstance(value, str) and info.context == STORED:
        value = Decimal(value)
    return to_amount(value)


#: A validated amount; serialised to JSON as a string so that no float ever holds it.
#: Validate stored data with ``context=STORED``.
Amount = Annotated[Decimal, BeforeValidator(_validate_amount), PlainSerializer(lambda d: f"{d:.2f}", when_used="json")]
