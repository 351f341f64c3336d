"""Bring a database to the current schema and give it the shipped defaults: the
Parties register (when it is empty) and the real rounds (those not stored yet).
Where migrations are a step of their own (SIP_MIGRATE_ON_START=false), only check
that the schema is current. Either way, check that this machine's secret key is the
one the database was set up with."""

from __future__ import annotations

import gc
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import select

from domain.hints import Hint, Step
from engine import migrate
from engine.db import get_engine, reading, separate_engine, unit_of_work
from engine.services.database_roles import current_role, grant_application_role
from engine.services.errors import NotAllowed, Unavailable
from engine.services.parties import DEFAULT_REGISTER, read_parties_file, replace_register
from engine.services.rounds import read_round_file, store_round
from engine.settings import Settings
from engine.tables import Installation, PartyRecord, Round
from rounds import shipped_round_files

SYSTEM = "engine"
KEY_CHECK = "secret_key_check"


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
        if not session.exec(select(func.count()).select_from(PartyRecord)).one():
            counts = replace_register(
                session, read_parties_file(DEFAULT_REGISTER), source="default register", actor=SYSTEM, at=at
            )
            loaded["parties"] = counts["parties"]
        stored = set(session.exec(select(Round.id)).all())
        for path in shipped_round_files():
            definition = read_round_file(path)
            if definition.id not in stored:
                store_round(session, definition, source=f"rounds/{path.name}", actor=SYSTEM, at=at)
                loaded["rounds"] += 1
    return loaded


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def unreachable(url: str, exc: OperationalError, setting: str = "DATABASE_URL") -> Unavailable:
    """The database does not answer: said with its address (never its password), why,
    and the setting that names it."""
    why = str(exc.orig or exc).strip().splitlines()[0][:200]
    return Unavailable(
        f"the database at {safe_url(url)} does not answer ({why}): check {setting} and that the "
        "database server runs, then try again"
    )


def ensure_current(engine: Engine, url: str) -> None:
    """The schema is the one this engine needs (where migrations are their own step)."""
    at, needed = migrate.current(engine), migrate.head()
    if at != needed:
        raise Unavailable(
            f"the database at {safe_url(url)} is at schema revision {at or 'none'} and this engine "
            f"needs {needed}: run the migrations first (the deployment's migration step), then start "
            "this again",
            hints=(Hint(Step.MIGRATE),),
        )


def check_secret_key(engine: Engine, settings: Settings) -> None:
    """Every machine of one engine must use the same SIP_SECRET_KEY: access codes and
    links are derived from it. The database keeps a check of the key it was set up
    with (an HMAC of a fixed text, never the key); another key is refused."""
    check = hmac.new(settings.key(), b"sip-engine: secret key check", hashlib.sha256).hexdigest()
    with reading(engine) as session:
        stored = session.get(Installation, KEY_CHECK)
    if stored is None:
        try:
            with unit_of_work(engine) as session:
                session.add(Installation(name=KEY_CHECK, value=check, recorded_at=datetime.now(UTC)))
        except IntegrityError:  # another machine recorded its key at the same moment
            with reading(engine) as session:
                stored = session.get(Installation, KEY_CHECK)
    if stored is not None and not hmac.compare_digest(stored.value, check):
        raise NotAllowed(
            "SIP_SECRET_KEY is not the key this database was set up with: every machine of the engine "
            "must use the same key (applicants' access codes and people's links are derived from it). "
            "Set the key the other machines use (kept with the database's backups); a new key would "
            "break every code and link already sent. (A database only the demo used can start afresh.)",
            hints=(Hint(Step.START_FRESH),),
        )


def migrate_as_owner(settings: Settings, engine: Engine) -> None:
    """Apply the migrations; where the tables' owner is another role than the
    application's (SIP_MIGRATION_DATABASE_URL), as that owner, then grant the
    application's role what it needs (`database_roles`)."""
    if settings.migration_url == settings.url:
        migrate.upgrade(engine)
        return
    owner = separate_engine(settings.migration_url)
    try:
        migrate.upgrade(owner)
        grant_application_role(owner, current_role(engine))
    except OperationalError as exc:
        raise unreachable(settings.migration_url, exc, "SIP_MIGRATION_DATABASE_URL") from None
    except SQLAlchemyError as exc:  # e.g. the owner may not grant: said, never a traceback
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise Unavailable(
            f"the migrations ran as the owner of SIP_MIGRATION_DATABASE_URL, but it could not grant the "
            f"application's role what it needs ({why}): make that role the tables' owner, then try again "
            '(README, "Database roles")'
        ) from None
    finally:
        owner.dispose()


_prepared: set[tuple[str, bool]] = set()


def prepare(settings: Settings, *, defaults: bool = True) -> Runtime:
    """Migrate the database (and load the defaults), or check its schema where
    migrations are their own step; once per process and database."""
    engine = get_engine(settings.url, pool_size=settings.db_pool_size)
    if (settings.url, defaults) not in _prepared:
        try:
            if settings.migrate_on_start:
                migrate_as_owner(settings, engine)
            else:
                ensure_current(engine, settings.url)
            check_secret_key(engine, settings)
            if defaults and settings.migrate_on_start:
                load_defaults(engine, datetime.now(UTC))
        except OperationalError as exc:
            raise unreachable(settings.url, exc) from None
        _prepared.add((settings.url, defaults))
        # What exists now (modules, the engine, compiled templates) lives as long as the
        # process: keep it out of the garbage collector's full passes, which would
        # otherwise walk all of it again and again during a large intake.
        gc.collect()
        gc.freeze()
    return Runtime(settings, engine)
