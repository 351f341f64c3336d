"""The application file format `sip-application/1` (forms A, B and C).

Intake rejects only what cannot be stored: wrong types, an unknown format, shapes
that are not the format's. Everything else (a missing form, amounts that do not add
up, an ineligible Party) is for screening, so forms and most of their fields are
optional here. Pure: parsing text is the caller's job (`parse_document`).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from domain.money import Amount

FORMAT = "sip-application/1"
LANGUAGES = ("en", "fr", "es")

PartyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3, e.g. BEN")]
Text = Annotated[str, Field(max_length=20_000)]
Short = Annotated[str, Field(max_length=300)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2018-08-24T10:00:00+02:00")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ExecutingAgency(_Strict):
    name: Short = Field(min_length=1)
    address: Short | None = None
    country: PartyCode


class Contact(_Strict):
    name: Short = Field(min_length=1)
    function: Short | None = None
    email: EmailStr
    phone: Short | None = None


class Applicant(_Strict):
    party: PartyCode
    co_applicants: list[PartyCode] = Field(default_factory=list, max_length=60)
    executing_agency: ExecutingAgency
    contact: Contact
    language: Literal["en", "fr", "es"] = "en"


class Output(_Strict):
    id: Short
    title: Short | None = None
    activities: list[Text] = Field(default_factory=list, max_length=200)
    indicators: list[Text] = Field(default_factory=list, max_length=200)


class WorkplanItem(_Strict):
    activity: Short
    start_month: int = Field(ge=1, le=240)
    end_month: int = Field(ge=1, le=240)


class FormA(_Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    scope: Literal["national", "regional", "inter-regional"] | None = None
    # Whether each is an article of the Convention is for screening to say.
    convention_articles: list[Annotated[int, Field(ge=1, le=999)]] = Field(default_factory=list, max_length=50)
    summary: Text | None = None
    objective: Text | None = None
    national_priority: Text | None = None
    outputs: list[Output] = Field(default_factory=list, max_length=100)
    workplan: list[WorkplanItem] = Field(default_factory=list, max_length=500)
    duration_months: int | None = Field(default=None, ge=1, le=240)
    gender: Text | None = None
    consultation: Text | None = None
    sustainability: Text | None = None
    related_projects: Text | None = None


BUDGET_CATEGORIES = (
    "personnel",
    "contractual_services",
    "travel",
    "meetings_training",
    "equipment_supplies",
    "communication",
    "monitoring_evaluation",
    "project_management",
)


class BudgetLine(_Strict):
    category: Literal[BUDGET_CATEGORIES]  # type: ignore[valid-type]
    output: Short | None = None
    year: int = Field(ge=1, le=20)
    amount: Amount
    description: Short | None = None


class CoFinancing(_Strict):
    source: Short
    kind: Literal["cash", "in-kind"]
    amount: Amount


class FormB(_Strict):
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    lines: list[BudgetLine] = Field(default_factory=list, max_length=1000)
    total_requested: Amount | None = None
    co_financing: list[CoFinancing] = Field(default_factory=list, max_length=100)


class FormC(_Strict):
    signed_by: Short | None = None
    function: Short | None = None
    signed_on: date | None = None
    consultation_confirmed: bool | None = None


class ApplicationDocument(_Strict):
    format: Literal["sip-application/1"]
    round: str = Field(min_length=1, max_length=40)
    received_at: Annotated[datetime, AfterValidator(_aware)] | None = None
    applicant: Applicant
    form_a: FormA | None = None
    form_b: FormB | None = None
    form_c: FormC | None = None

    @property
    def title(self) -> str | None:
        return self.form_a.title if self.form_a else None

    @property
    def amount_requested(self) -> Decimal | None:
        return self.form_b.total_requested if self.form_b else None


NUL = "contains a NUL character (U+0000), which no text may hold"


def no_nul(value: Any) -> Any:
    """A field's value with no NUL character in any of its text (PostgreSQL cannot store
    one; SQLite would, and pass it on into reports): refused, naming the field."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(NUL)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return value


#: JSON Schema patterns (ECMA-262, searched) of the text the inputs take: no NUL
#: character anywhere; and, for what must say something, at least one other than a space.
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


def text_without_nul(schema: dict[str, Any]) -> None:
    """Say in a JSON schema what `no_nul` refuses: every text without a pattern of its own
    (and every key of a mapping) gets `NO_NUL`. Changes the schema in place."""
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        if item.get("type") == "string" and not ({"pattern", "format", "enum", "const"} & item.keys()):
            item["pattern"] = NO_NUL
        if item.get("type") == "object" and isinstance(item.get("additionalProperties"), dict):
            item.setdefault("propertyNames", {"pattern": NO_NUL})
        for key in ("properties", "$defs"):
            if isinstance(item.get(key), dict):
                stack.extend(item[key].values())
        for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
            if key in item:
                stack.append(item[key])


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


#: The domains an address cannot have (RFC 6761 and 7686's special-use names, as the
#: address checker refuses them), in the JSON Schema of every address a person sends.
SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")
NOT_SPECIAL_USE = "^(?![\\s\\S]*[.@](" + "|".join(_any_case(w) for w in SPECIAL_USE) + ")\\.?$)"

#: An e-mail address as the inputs take it: what the address checker takes, and a schema that says so.
Email = Annotated[EmailStr, Field(json_schema_extra={"pattern": NOT_SPECIAL_USE})]


def _iso_date(value: Any) -> Any:
    """A date is written YYYY-MM-DD: a number (read as seconds since 1970) or a date and
    time is refused rather than taken for a day nobody meant."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ValueError("is not a date written YYYY-MM-DD")
    if isinstance(value, bool | int | float | Decimal):
        raise ValueError("is not a date written YYYY-MM-DD")
    return value


def _not_text(value: Any) -> Any:
    """A whole number is a JSON number (2 or 2.0, as JSON Schema's `integer`), never "2" or true."""
    if isinstance(value, str | bool):
        raise ValueError("must be a whole number, not text or true/false")
    return value


#: A whole number as the inputs take it: what JSON Schema calls an integer (2.0 too).
#: `Annotated[int, Field(ge=0), Integer]` keeps the bounds in the JSON schema.
Integer = BeforeValidator(_not_text)

#: A day as the inputs take it: `YYYY-MM-DD` only (pydantic would read 0 as 1970-01-01).
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class Input(BaseModel):
    """What a person sends (a review, a decision, a member, a reason...): every field is
    refused, by its name, if its text holds a NUL character (and its JSON schema says so)."""

    model_config = ConfigDict(json_schema_extra=lambda schema, _model: text_without_nul(schema))

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return no_nul(value)


class FieldError(BaseModel):
    path: str
    message: str
    #: What kind of problem (pydantic's error type, e.g. `missing`, `string_too_long`) and
    #: its bounds, for a page to say it in the person's language; not part of the answer.
    kind: str = Field(default="", exclude=True)
    bounds: dict[str, Any] = Field(default_factory=dict, exclude=True)


class DocumentError(Exception):
    """The document cannot be stored as an application. `errors` names every
    offending field by its JSON path."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))


def json_path(loc: tuple[Any, ...]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _message(err: ErrorDetails) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of sip-application/1 (check its spelling)"
    if kind == "literal_error" and err["loc"] == ("format",):
        return f"must be {FORMAT!r}"
    if kind == "string_too_long":
        limit = err.get("ctx", {}).get("max_length")
        return f"is too long ({len(err['input']):,} characters; at most {limit})"
    if kind == "string_pattern_mismatch" and err["loc"] and err["loc"][-1] in ("party", "country", "co_applicants"):
        return "must be an ISO 3166-1 alpha-3 code in capitals, e.g. BEN"
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else kind


#: How deep a document may nest, and how many digits a number may have: far beyond any
#: application (forms A to C nest five levels; amounts have a dozen digits), far below
#: what would exhaust the parser (Python refuses integers of over 4,300 digits and
#: recurses once per level).
MAX_DEPTH = 64
MAX_DIGITS = 64
#: A string (and whether a colon follows: an object's key), a number, or a bracket or comma.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|-?\d[\d.eE+-]*|[\[\]{},]')


def _refused_in_text(text: str) -> FieldError | None:
    """The first place where a document nests deeper than `MAX_DEPTH` or holds a number of
    more than `MAX_DIGITS` digits, named by its path; None if there is none. One pass
    over the tokens, without recursion: for text the parser could not read."""
    path: list[str | int | None] = []  # per open bracket: the current key, or index
    for token in _TOKENS.finditer(text):
        found = token.group()
        first = found[0]
        if first == '"':
            if token.group(1) and path and not isinstance(path[-1], int):
                path[-1] = json.loads(found[: -len(token.group(1))])
        elif first in "{[":
            if len(path) >= MAX_DEPTH:
                return FieldError(
                    path=json_path(tuple(p for p in path if p is not None)),
                    message=f"nests deeper than {MAX_DEPTH} levels",
                )
            path.append(0 if first == "[" else None)
        elif first in "}]":
            if path:
                path.pop()
        elif first == ",":
            if path and isinstance(path[-1], int):
                path[-1] += 1
        elif sum(c.isdigit() for c in found) > MAX_DIGITS:
            return FieldError(
                path=json_path(tuple(p for p in path if p is not None)),
                message=f"has a number of more than {MAX_DIGITS} digits",
            )
    return None


_TOO_MANY_DIGITS = 10**MAX_DIGITS


def _within_bounds(data: Any) -> bool:
    """Whether `_refused_in_data` finds nothing, decided the cheap way: one pass over
    the document level by level, without the path of each value (which only an answer
    naming a field needs). The same checks, so the two never disagree."""
    level = [data]
    depth = 0
    while level:
        below: list[Any] = []
        for value in level:
            kind = type(value)
            if kind is str:
                if "\x00" in value:
                    return False
            elif kind is dict:
                if depth >= MAX_DEPTH or "\x00" in "".join(value):  # its keys (a parsed object's are text)
                    return False
                below.extend(value.values())
            elif kind is list:
                if depth >= MAX_DEPTH:
                    return False
                below.extend(value)
            elif kind is int:
                if not -_TOO_MANY_DIGITS < value < _TOO_MANY_DIGITS:
                    return False
            elif kind is Decimal:
                if len(value.as_tuple().digits) > MAX_DIGITS:
                    return False
            elif kind not in (bool, type(None), float):
                return False  # not what the parser gives: the full walk judges it
        level = below
        depth += 1
    return True


def _refused_in_data(data: Any) -> FieldError | None:
    """The same bounds on a parsed document (it may nest within the parser's reach and
    still too deep for what reads it next), and no NUL character in its text (PostgreSQL
    cannot store one, and nothing a person types holds one), walked without recursion."""
    return None if _within_bounds(data) else _first_refusal(data)


def _first_refusal(data: Any) -> FieldError | None:
    """What `_refused_in_data` finds, named by its path."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict | list):
            if len(where) >= MAX_DEPTH:
                return FieldError(path=json_path(where), message=f"nests deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict) and any("\x00" in k for k in value):
                return FieldError(path=json_path(where), message=NUL)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, (*where, k)) for k, v in items)
        elif isinstance(value, str):
            if "\x00" in value:
                return FieldError(path=json_path(where), message=NUL)
        elif isinstance(value, int | Decimal) and not isinstance(value, bool):
            digits = len(str(abs(value))) if isinstance(value, int) else len(value.as_tuple().digits)
            if digits > MAX_DIGITS:
                return FieldError(path=json_path(where), message=f"has a number of more than {MAX_DIGITS} digits")
    return None


def load_json(text: str | bytes) -> Any:
    """JSON with numbers read as exact decimals; `DocumentError` says where it breaks,
    including where it nests too deep or holds a number too long to be an answer."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise DocumentError([FieldError(path="$", message=f"is not valid JSON{where}: {exc.args[0]}")]) from None
    except (RecursionError, ValueError):  # nested beyond the parser, or an integer beyond Python's limit
        decoded = text.decode(json.detect_encoding(text), "surrogatepass") if isinstance(text, bytes) else text
        found = _refused_in_text(decoded) or FieldError(path="$", message="nests too deep or holds too long a number")
        raise DocumentError([found]) from None
    if (beyond := _refused_in_data(data)) is not None:
        raise DocumentError([beyond])
    return data


def parse_document(text: str | bytes) -> ApplicationDocument:
    """Parse and validate one application. Raises `DocumentError` listing every problem."""
    return validate_document(load_json(text))


def validate_document(data: Any) -> ApplicationDocument:
    if not isinstance(data, dict):
        kind = type(data).__name__.replace("NoneType", "null").replace("dict", "object").replace("list", "array")
        raise DocumentError([FieldError(path="$", message=f"must be a JSON object (an application), not {kind}")])
    try:
        return ApplicationDocument.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(path=json_path(e["loc"]), message=_message(e), kind=e["type"], bounds=dict(e.get("ctx") or {}))
            for e in exc.errors()
        ]
        raise DocumentError(errors) from None
