"""Keep what a person sees clean: Prefect's own console logging and the lines its
ephemeral server prints while shutting down ("Error flushing events",
CancelledError) are not for the user."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_NOISY = ("prefect", "httpx", "uvicorn", "docket", "alembic")


@contextmanager
def quiet_prefect(level: int = logging.CRITICAL) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY]
    before = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lvl, _ in before:
            lg.setLevel(lvl)
