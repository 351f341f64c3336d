from __future__ import annotations

import time

from sqlalchemy import text
from sqlmodel import select

from engine.db import reading, unit_of_work
from engine.services.setup import Runtime
from engine.tables import Round


def test_a_reader_does_not_wait_for_a_writer(rt: Runtime) -> None:
    with unit_of_work(rt.engine) as writer:
        writer.execute(text("UPDATE round SET title = title"))  # the writer holds its lock (SQLite: the database's)
        started = time.monotonic()
        with reading(rt.engine) as reader:
            assert len(reader.exec(select(Round)).all()) == 4
        assert time.monotonic() - started < 5  # the lock wait is 10 s: it was never waited for
