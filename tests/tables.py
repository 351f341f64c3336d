"""Reading the tables `sip` prints (plain text, as to a pipe) by their content, not by
their padding: a row is a line whose cells stand apart by two spaces or more."""

from __future__ import annotations

import re


def printed_row(printed: str, *cells: str) -> str:
    """The one printed line that shows these cells, whole and in this order (other cells
    may stand between them)."""
    whole = [rf"(?:^|(?<=  )){re.escape(cell)}(?=  |$)" for cell in cells]
    pattern = re.compile(".*".join(whole))
    found = [line for line in printed.splitlines() if pattern.search(line)]
    assert len(found) == 1, f"{len(found)} lines show {cells}:\n{printed}"
    return found[0]


def table_rows(printed: str) -> list[str]:
    """The lines under the first table's header rule, up to the first blank line."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line and set(line) == {"─"})
    body = lines[start + 1 :]
    return body[: body.index("")] if "" in body else body
