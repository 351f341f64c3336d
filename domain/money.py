"""Money: exact decimal amounts in US dollars, never floats."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, WithJsonSchema

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
    cents = amount.quantize(CENT)
    if amount != cents:
        raise ValueError("has more than two decimal places (cents)")
    return cents


STORED = {"stored": True}


def _validate_amount(value: Any, info: ValidationInfo) -> Decimal:
    # What the engine stored itself holds amounts as strings (see the serialiser);
    # input from people must be JSON numbers.
    if isinstance(value, str) and info.context == STORED:
        value = Decimal(value)
    return to_amount(value)


#: A validated amount; serialised to JSON as a string so that no float ever holds it.
#: Validate stored data with ``context=STORED``.
#: What a person sends for an `Amount` (a JSON number; the engine's own stored data, read
#: back with ``context=STORED``, may hold the string it writes).
AMOUNT_IN_SCHEMA = {
    "type": "number",
    "minimum": 0,
    "maximum": float(MAX_AMOUNT),
    "multipleOf": 0.01,
    "description": "US dollars: a number with at most two decimal places, e.g. 190000 or 190000.50",
}
Amount = Annotated[
    Decimal,
    BeforeValidator(_validate_amount),
    PlainSerializer(lambda d: f"{d:.2f}", when_used="json"),
    WithJsonSchema(AMOUNT_IN_SCHEMA, mode="validation"),
]


_CENTS_TEXT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")
_FLOAT_SLACK = Decimal("1e-15")  # relative: a double holds about 16 significant digits


def to_cents(value: Any) -> Decimal:
    """An amount a person sends to the API: a JSON number of whole cents (a float that is
    a cent value but for binary rounding, e.g. 0.5700000000000001, is that cent value), or
    the same written as a string of digits with at most two after the point."""
    if isinstance(value, str):
        if not _CENTS_TEXT.match(value):
            raise ValueError("must be an amount such as 190000 or 190000.50 (digits, at most two after the point)")
        return to_amount(Decimal(value))
    if isinstance(value, float) and math.isfinite(value) and abs(value) <= MAX_AMOUNT:
        exact = Decimal(repr(value))
        cents = exact.quantize(CENT)
        if abs(exact - cents) <= _FLOAT_SLACK * max(abs(exact), Decimal(1)):
            return to_amount(cents)
    return to_amount(value)


#: The JSON schema of `CentsIn`: what `to_cents` takes.
CENTS_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": float(MAX_AMOUNT), "multipleOf": 0.01},
        {"type": "string", "pattern": _CENTS_TEXT.pattern},
    ],
    "description": "US dollars: a number, or a string of digits with at most two after the point",
}
POSITIVE_CENTS_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0.01, "maximum": float(MAX_AMOUNT), "multipleOf": 0.01},
        {"type": "string", "pattern": r"^(?!0*(\.0*)?$)\d{1,12}(\.\d{1,2})?$"},
    ],
    "description": "US dollars, more than 0: a number, or a string of digits with at most two after the point",
}

#: An amount in a request (US dollars, whole cents), and its JSON schema.
CentsIn = Annotated[Decimal, BeforeValidator(to_cents), WithJsonSchema(CENTS_SCHEMA)]
PositiveCentsIn = Annotated[Decimal, BeforeValidator(to_cents), Field(gt=0), WithJsonSchema(POSITIVE_CENTS_SCHEMA)]
