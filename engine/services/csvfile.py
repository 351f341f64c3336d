"""Reading the CSV files the secretariat hands in (Parties, reviewers, scoring sheets),
and writing the ones the engine hands out (the screening and round reports, the public
list of approved projects), safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from domain.application import NUL, FieldError
from engine.services.errors import InvalidInput

T = TypeVar("T")


def csv_rows(
    text: str, source: str, columns: list[str], required: list[str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with stripped values of `columns`) for each row, after checking
    the header has the required columns (default: all of them)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in (required or columns) if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(
            f"{source}: missing columns {', '.join(missing)}; the first line must be {','.join(columns)}"
        )
    try:
        for row in reader:
            values = {k: (row.get(k) or "").strip() for k in columns}
            for column, value in values.items():
                if "\x00" in value:
                    where = f"{source}:{reader.line_num}: {column}"
                    raise InvalidInput(f"{where}: {NUL}", [FieldError(path=where, message=NUL)])
            yield reader.line_num, values
    except csv.Error as exc:  # e.g. a field longer than the csv module takes (128 KB)
        where = f"{source}:{reader.line_num + 1}"
        raise InvalidInput(
            f"{where}: the line cannot be read as CSV ({exc})", [FieldError(path=where, message=str(exc))]
        ) from None


def row_errors(
    exc: ValidationError, where: str, explain: Callable[[str, ErrorDetails], str | None] | None = None
) -> list[FieldError]:
    """A refused row's problems, one per column (`where`: e.g. "file.csv:4: "). A
    list's "too short" is left out where one of its items was refused already;
    `explain` may word a column's error better (None: the library's words)."""
    errors = []
    specific = {err["loc"][0] for err in exc.errors() if err["loc"] and err["type"] != "too_short"}
    for err in exc.errors():
        column = str(err["loc"][0]) if err["loc"] else "row"
        if err["type"] == "too_short" and column in specific:
            continue
        message = (
            "is required"
            if err["type"] == "missing"
            else ((explain(column, err) if explain else None) or err["msg"].removeprefix("Value error, "))
        )
        errors.append(FieldError(path=f"{where}{column}", message=message))
    return errors


def all_or_nothing(items: list[T], errors: list[FieldError], source: str, *, what: str, unchanged: str) -> list[T]:
    """The rows of a file, or `InvalidInput` listing every problem (or saying it is empty)."""
    if errors:
        raise InvalidInput(f"{source}: {len(errors)} problem(s); {unchanged}", errors)
    if not items:
        raise InvalidInput(f"{source}: no {what} in the file; {unchanged}")
    return items


#: What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def spreadsheet_cell(value: object) -> str:
    """A value as a CSV cell: empty for none, `true`/`false` for a truth value, and text a
    spreadsheet would run as a formula (`=HYPERLINK(...)`, `@SUM(...)`, `+1+1`) kept as
    text by a leading apostrophe; a plain number, negative or not, stays a number."""
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV file the engine writes: a header, then one line per row, every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([spreadsheet_cell(v) for v in row] for row in rows)
    return out.getvalue()
