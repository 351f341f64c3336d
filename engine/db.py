"""One database engine per process, and the unit of work that owns a transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

READ_ONLY = "sip_read_only"
T = TypeVar("T")
#: Connections kept open per engine (per process) where no size is given (SIP_DB_POOL_SIZE).
POOL_SIZE = 16
#: A connection is opened anew after this long (a firewall or the server may close an
#: idle one); a connection the server closed sooner is found when it fails (see `read`).
POOL_RECYCLE_SECONDS = 1800
_engines: dict[str, Engine] = {}
#: The engines `read` uses on PostgreSQL (see `reader`), by database.
_readers: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _begin(conn: Any) -> None:
    # A writer takes SQLite's write lock at BEGIN, so two writers queue instead of
    # failing with "database is locked" when the first upgrades its read lock.
    # Readers (`reading`) begin deferred and never wait for a writer (WAL).
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def get_engine(url: str, *, pool_size: int = POOL_SIZE) -> Engine:
    """The process's engine for this database (made at the first call, with that
    call's pool size)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url, pool_size=pool_size)
            _engines[url] = engine
        return engine


def separate_engine(url: str) -> Engine:
    """An engine of its own, not kept for the process (e.g. the tables' owner, used
    only to migrate): the caller disposes of it."""
    return _create(url)


def _create(url: str, *, pool_size: int = POOL_SIZE) -> Engine:
    parsed = make_url(url)
    # The pool holds as many connections as threads may ask for at once, plus some
    # overflow for a thread that opens a second session inside its first.
    pool = {"pool_size": pool_size, "max_overflow": max(4, pool_size // 2)}
    if parsed.get_backend_name() == "sqlite":
        file = bool(parsed.database and parsed.database != ":memory:")
        if file:
            Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **(pool if file else {}))
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves

        event.listen(engine, "begin", _begin)
        return engine
    # Each connection is checked as it leaves the pool (pool_pre_ping, one short round
    # trip): a connection the server, a proxy or a firewall closed while it sat idle
    # (a restart, a failover, an idle timeout) is replaced before any request uses it,
    # so writes and flow runs do not fail on it. Reads through `read` are also asked
    # again, once, if a connection fails while in use.
    return create_engine(url, pool_pre_ping=True, pool_recycle=POOL_RECYCLE_SECONDS, **pool)


def dispose_all() -> None:
    with _lock:
        for engine in [*_engines.values(), *_readers.values()]:
            engine.dispose()
        _engines.clear()
        _readers.clear()
    from engine.services import setup  # noqa: PLC0415 - the migration cache goes with the engines

    setup._prepared.clear()


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A read-only transaction (on SQLite it does not wait for writers)."""
    # Closing the session ends the transaction and keeps what was read usable.
    with Session(engine.execution_options(**{READ_ONLY: True})) as session:
        yield session


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work` on a connection, read-only (as `reading`, without an ORM session: for the
    statements asked most often), asked once more on a new connection where the
    database had closed the one from the pool (a restart): reading twice changes nothing.

    On PostgreSQL the reads go through a pool of their own (`reader`): each statement
    is its own read-only transaction, and a connection is not checked as it leaves the
    pool, since a read that fails on a closed one is asked again. That is 2 round trips
    for a lookup of two statements instead of 5 (a check, BEGIN, the two, COMMIT): about
    half the time of the status API's lookup. Under PostgreSQL's default isolation (read
    committed) each statement of a transaction sees its own snapshot anyway."""
    try:
        return _read_once(engine, work)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return _read_once(engine, work)


def _read_once(engine: Engine, work: Callable[[Connection], T]) -> T:
    if engine.dialect.name == "postgresql":
        with reader(engine).connect() as connection:
            return work(connection)
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            return work(connection)


def _read_only_session(dbapi_conn: Any, _record: Any) -> None:
    """Nothing read through the reader can write: one statement per new connection (not
    libpq's `options`, which would replace any the database URL sets, and which
    connection poolers such as PgBouncer refuse)."""
    with dbapi_conn.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    if not dbapi_conn.autocommit:
        dbapi_conn.commit()


def read_capacity(engine: Engine) -> int:
    """How many `read`s may run at once in this process without waiting for a
    connection: the reader's pool on PostgreSQL, the engine's pool otherwise."""
    pool = reader(engine).pool
    return pool.size() if isinstance(pool, QueuePool) else POOL_SIZE


def reader(engine: Engine) -> Engine:
    """The engine `read` uses for this engine's database: on PostgreSQL, a pool of its
    own (as many connections as the engine's pool keeps, no overflow) in autocommit,
    read-only, without the check on leaving the pool; elsewhere the engine itself."""
    if engine.dialect.name != "postgresql":
        return engine
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        found = _readers.get(key)
        if found is None:
            size = engine.pool.size() if isinstance(engine.pool, QueuePool) else POOL_SIZE
            found = create_engine(
                engine.url,
                isolation_level="AUTOCOMMIT",
                pool_size=size,
                max_overflow=0,
                pool_recycle=POOL_RECYCLE_SECONDS,
            )
            event.listen(found, "connect", _read_only_session)
            _readers[key] = found
        return found


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: everything written inside commits together, or nothing does."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
