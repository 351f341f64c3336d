"""Bring a database to the current schema and give it the shipped defaults: the
Parties register (when it is empty) and the real rounds (those not stored yet)."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func
from sqlmodel import select

from engine import migrate
from engine.db import get_engine, unit_of_work
from engine.services.parties import DEFAULT_REGISTER, read_parties_file, replace_register
from engine.services.rounds import read_round_file, store_round
from engine.settings import Settings
from engine.tables import Party, Round
from rounds import shipped_round_files

SYSTEM = "engine"


@dataclass
class Runtime:
    """What every entry point (CLI, API, flow) works with."""

    settings: Settings
    engine: Engine

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


def load_defaults(engine: Engine, at: datetime) -> dict[str, int]:
    loaded = {"parties": 0, "rounds": 0}
    with unit_of_work(engine) as session:
        if not session.exec(select(func.count()).select_from(Party)).one():
            counts = replace_register(session, read_parties_file(DEFAULT_REGISTER), source="default register",
                                      actor=SYSTEM, at=at)
            loaded["parties"] = counts["parties"]
        stored = set(session.exec(select(Round.id)).all())
        for path in shipped_round_files():
            definition = read_round_file(path)
            if definition.id not in stored:
                store_round(session, definition, source=f"rounds/{path.name}", actor=SYSTEM, at=at)
                loaded["rounds"] += 1
    return loaded


_prepared: set[tuple[str, bool]] = set()


def prepare(settings: Settings, *, defaults: bool = True) -> Runtime:
    """Migrate the database (and load the defaults), once per process and database."""
    engine = get_engine(settings.url)
    if (settings.url, defaults) not in _prepared:
        migrate.upgrade(engine)
        if defaults:
            load_defaults(engine, datetime.now(UTC))
        _prepared.add((settings.url, defaults))
        # What exists now (modules, the engine, compiled templates) lives as long as the
        # process: keep it out of the garbage collector's full passes, which would
        # otherwise walk all of it again and again during a large intake.
        gc.collect()
        gc.freeze()
    return Runtime(settings, engine)
