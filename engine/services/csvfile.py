"""Reading the CSV files the secretariat hands in (Parties, reviewers, scoring sheets)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from engine.services.errors import InvalidInput


def csv_rows(text: str, source: str, columns: list[str], required: list[str] | None = None
             ) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with stripped values of `columns`) for each row, after checking
    the header has the required columns (default: all of them)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in (required or columns) if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput(f"{source}: missing columns {', '.join(missing)}; the first line must be "
                           f"{','.join(columns)}")
    for row in reader:
        yield reader.line_num, {k: (row.get(k) or "").strip() for k in columns}
