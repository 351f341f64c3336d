"""The applicant portal's form and the `sip-application/1` document it stands for.

Each field of the form is named by its place in the document (`form_a.outputs.0.title`),
so that a problem intake finds at a JSON path (`$.form_a.outputs[0].title`) is shown
beside its field. The form is read into the document as leniently as a person types:
blank fields and empty rows are left out, numbers written the way the page's language
writes them are read, and what cannot be read is kept as it was typed, for intake's own
check to refuse beside its field (nothing a person typed is dropped)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from babel.numbers import format_decimal

from domain.application import BUDGET_CATEGORIES, FieldError

#: The fields of the form (`*` stands for a row's number), and how each is read.
TEXT, INTEGER, AMOUNT, LINES, NUMBERS, CODES, FLAG = "text", "integer", "amount", "lines", "numbers", "codes", "flag"
FIELDS = {
    "applicant.party": TEXT,
    "applicant.co_applicants": CODES,
    "applicant.executing_agency.name": TEXT,
    "applicant.executing_agency.address": TEXT,
    "applicant.executing_agency.country": TEXT,
    "applicant.contact.name": TEXT,
    "applicant.contact.function": TEXT,
    "applicant.contact.email": TEXT,
    "applicant.contact.phone": TEXT,
    "applicant.language": TEXT,
    "form_a.title": TEXT,
    "form_a.scope": TEXT,
    "form_a.convention_articles": NUMBERS,
    "form_a.summary": TEXT,
    "form_a.objective": TEXT,
    "form_a.national_priority": TEXT,
    "form_a.outputs.*.id": TEXT,
    "form_a.outputs.*.title": TEXT,
    "form_a.outputs.*.activities": LINES,
    "form_a.outputs.*.indicators": LINES,
    "form_a.workplan.*.activity": TEXT,
    "form_a.workplan.*.start_month": INTEGER,
    "form_a.workplan.*.end_month": INTEGER,
    "form_a.duration_months": INTEGER,
    "form_a.gender": TEXT,
    "form_a.consultation": TEXT,
    "form_a.sustainability": TEXT,
    "form_a.related_projects": TEXT,
    "form_b.lines.*.category": TEXT,
    "form_b.lines.*.output": TEXT,
    "form_b.lines.*.year": INTEGER,
    "form_b.lines.*.amount": AMOUNT,
    "form_b.lines.*.description": TEXT,
    "form_b.co_financing.*.source": TEXT,
    "form_b.co_financing.*.kind": TEXT,
    "form_b.co_financing.*.amount": AMOUNT,
    "form_c.signed_by": TEXT,
    "form_c.function": TEXT,
    "form_c.signed_on": TEXT,
    "form_c.consultation_confirmed": FLAG,
}
#: The lists of rows, and how many rows at most a form may send for each (the format's own limits).
ROWS = {"form_a.outputs": 100, "form_a.workplan": 500, "form_b.lines": 1000, "form_b.co_financing": 100}
#: Where a whole group is missing, its problem is shown beside its first field.
FIRST_FIELD = {
    "applicant": "applicant.party",
    "applicant.executing_agency": "applicant.executing_agency.name",
    "applicant.contact": "applicant.contact.name",
}
_NUMBER = re.compile(r"[0-9]+")
#: An amount as the document holds it: whole dollars, and at most two decimals.
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_SPACES = re.compile(r"[\s\u00a0\u202f']")
#: An amount as typed: whole dollars (grouped by thousands with `.` or `,`, the first group
#: without a leading zero), then `.` or `,` and one or two digits of cents.
_TYPED_AMOUNT = re.compile(r"([1-9][0-9]{0,2}(?:[.,][0-9]{3})+|[0-9]+)(?:[.,]([0-9]{1,2}))?")


#: A row's number in a field's name: ASCII digits, at most four (the format's lists are shorter).
_ROW = re.compile(r"[0-9]{1,4}")


def _is_row(part: str) -> bool:
    return _ROW.fullmatch(part) is not None


def pattern_of(name: str) -> str:
    """A field's name with its rows' numbers as `*`."""
    return ".".join("*" if _is_row(part) else part for part in name.split("."))


def read_amount(text: str) -> str:
    """An amount as typed in any of the page's languages (`45,000.50`, `45 000,50`,
    `45.000,50`), as the document writes it, to the cent (`45000.50`); the text as typed
    if it is not one.
    A separator followed by exactly three digits groups thousands; by one or two, the cents."""
    plain = _SPACES.sub("", text.strip()).removeprefix("$").removeprefix("US$").removesuffix("USD")
    digits = _TYPED_AMOUNT.fullmatch(plain)
    if digits is None:
        return text.strip()
    whole = re.sub(r"[.,]", "", digits.group(1)).lstrip("0") or "0"
    return f"{whole}.{(digits.group(2) or '').ljust(2, '0')}"


def _value(kind: str, values: list[str]) -> Any:
    """A field's value in the document; None for a blank one."""
    if kind == CODES:
        return [v.strip() for v in values if v.strip()] or None
    text = values[-1].strip() if values else ""
    if kind == FLAG:
        return {"yes": True, "no": False}.get(text)
    if not text:
        return None
    if kind == INTEGER:
        return int(text) if _NUMBER.fullmatch(text) and len(text) < 7 else text
    if kind == AMOUNT:
        return read_amount(text)
    if kind == LINES:
        return [line.strip() for line in text.splitlines() if line.strip()]
    if kind == NUMBERS:
        parts = [p for p in re.split(r"[\s,;]+", text) if p]
        return [int(p) if _NUMBER.fullmatch(p) and len(p) < 7 else p for p in parts]
    return values[-1].strip() if kind == TEXT else text


def content_from_form(items: Iterable[tuple[str, str]], *, currency: str) -> dict[str, Any]:
    """The document's content (without `format` and `round`) from the form's fields; the
    budget's total is the sum of its lines (the page shows it as it adds up)."""
    given: dict[str, list[str]] = {}
    for name, value in items:
        if pattern_of(name) in FIELDS and isinstance(value, str):
            given.setdefault(name, []).append(value)
    tree: dict[str, Any] = {}
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for name, values in given.items():
        value = _value(FIELDS[pattern_of(name)], values)
        if value is None:
            continue
        parts = name.split(".")
        row = next((i for i, part in enumerate(parts) if _is_row(part)), None)
        if row is None:
            node = tree
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
            continue
        listing, number = ".".join(parts[:row]), int(parts[row])
        if number >= ROWS[listing]:
            continue  # beyond the format's limit: a form of this page never has that many rows
        rows.setdefault(listing, {}).setdefault(number, {})[".".join(parts[row + 1 :])] = value
    for listing, numbered in rows.items():
        form, key = listing.split(".")
        tree.setdefault(form, {})[key] = [numbered[n] for n in sorted(numbered)]
    budget = tree.get("form_b")
    if budget:
        budget["currency"] = currency
        amounts = [line.get("amount") for line in budget.get("lines", [])]
        if amounts and all(isinstance(a, str) and _AMOUNT.fullmatch(a) for a in amounts):
            budget["total_requested"] = f"{sum(Decimal(a) for a in amounts):.2f}"
    return tree


def field_of(path: str) -> str:
    """The form's field of a problem found at a JSON path (`$.form_a.outputs[0].activities[2]`
    is `form_a.outputs.0.activities`); a group's first field for a missing group."""
    name = re.sub(r"\[([0-9]+)\]", r".\1", path.removeprefix("$").removeprefix("."))
    while name:
        if pattern_of(name) in FIELDS:
            return name
        if name in FIRST_FIELD:
            return FIRST_FIELD[name]
        name = name.rpartition(".")[0]
    return ""


def problem_of(error: FieldError) -> dict[str, Any]:
    """What a page says of a problem intake found: its kind, in words of the catalogue."""
    kind, bounds, message = error.kind, error.bounds, error.message
    if kind == "missing":
        said = "missing"
    elif kind == "too_large":
        return {"field": "", "kind": "too_large", "limit": round(bounds.get("le", 0) / 1e6, 1)}
    elif kind in ("string_too_long", "too_long"):
        said = "too_long"
    elif "email" in message:
        said = "email"
    elif kind in ("greater_than_equal", "greater_than"):
        said = "at_least"
    elif kind in ("less_than_equal", "less_than"):
        said = "at_most"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        said = "whole"
    elif "not in the Parties register" in message:
        said = "party"
    elif kind == "literal_error" or kind == "string_pattern_mismatch":
        said = "choice"
    elif "YYYY-MM-DD" in message or kind.startswith("date"):
        said = "date"
    elif "number" in message or "decimal places" in message or "negative" in message or "largest amount" in message:
        said = "amount"
    else:
        said = "invalid"
    limit = next((bounds[k] for k in ("max_length", "le", "ge", "lt", "gt") if k in bounds), None)
    return {"field": field_of(error.path), "kind": said, "limit": limit}


def value_at(content: dict[str, Any], name: str, language: str = "en") -> Any:
    """A field's value as its form shows it: text ("" where there is none), an amount as
    the page's language writes it (`45 000,50` in French; read back as typed), a list of
    lines as lines, a list of numbers with commas, a list of codes as the list."""
    node: Any = content
    for part in name.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and _is_row(part) and int(part) < len(node):
            node = node[int(part)]
        else:
            return ""
        if node is None:
            return ""
    kind = FIELDS.get(pattern_of(name))
    if isinstance(node, list):
        if kind == CODES:
            return [str(v) for v in node]
        return (", " if kind == NUMBERS else "\n").join(str(v) for v in node)
    if kind == FLAG:
        return "yes" if node is True else "no" if node is False else ""
    if kind == AMOUNT and isinstance(node, str) and _AMOUNT.fullmatch(node):
        return format_decimal(Decimal(node), format="#,##0.00", locale=language)
    return str(node)


def budget_of(content: dict[str, Any]) -> dict[str, Any]:
    """The budget's totals by category and year, and overall, from the lines whose amount
    and year could be read (`unread`: how many amounts could not be)."""
    lines = ((content.get("form_b") or {}).get("lines")) or []
    totals: dict[str, dict[int, Decimal]] = {}
    unread = 0
    for line in lines:
        amount, year = line.get("amount"), line.get("year")
        if amount is None:
            continue
        if not (isinstance(amount, str) and _AMOUNT.fullmatch(amount)) or not isinstance(year, int):
            unread += 1
            continue
        category = str(line.get("category") or "")
        by_year = totals.setdefault(category, {})
        by_year[year] = by_year.get(year, Decimal(0)) + Decimal(amount)
    years = sorted({year for by_year in totals.values() for year in by_year})
    order = {c: i for i, c in enumerate(BUDGET_CATEGORIES)}
    rows = [
        (category, by_year, sum(by_year.values(), Decimal(0)))
        for category, by_year in sorted(totals.items(), key=lambda item: order.get(item[0], len(order)))
    ]
    by_year_total = {year: sum((b.get(year, Decimal(0)) for b in totals.values()), Decimal(0)) for year in years}
    return {
        "years": years,
        "rows": rows,
        "by_year": by_year_total,
        "total": sum(by_year_total.values(), Decimal(0)),
        "unread": unread,
    }
