"""Counting the statements an engine runs (a behaviour: how many queries a lookup makes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block, and its reads through
    `engine.db.read` (on PostgreSQL they have a pool of their own), not SQLite's BEGIN,
    which the engine sends itself on every transaction."""
    from engine.db import reader

    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE"):
            seen.append(statement)

    engines = {engine, reader(engine)}
    for one in engines:
        event.listen(one, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        for one in engines:
            event.remove(one, "before_cursor_execute", note)
