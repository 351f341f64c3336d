"""The audit trail's hash chain: every path that writes events chains them, and an edit
made in the database by any path (as an insider past the triggers) is found at the
event it touched, on SQLite and on PostgreSQL; two writers at once do not fork it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session
from typer.testing import CliRunner

from cli.main import app
from domain.audit_chain import GENESIS, event_hash
from domain.lifecycle import Role
from engine.db import get_engine, reading, unit_of_work
from engine.services import audit
from engine.services.applications import transition
from engine.services.audit_trail import Break, verify
from engine.services.setup import Runtime
from engine.settings import Settings
from engine.tables import AuditEvent, table_of
from tests.conftest import AFTER_CLOSE, run

EVENTS = table_of(AuditEvent)


def _as_insider(rt: Runtime, statement: str, **params: object) -> None:
    """Change the trail past its guards, as the tables' owner could."""
    with rt.engine.begin() as conn:
        if rt.engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            conn.execute(text(statement), params)
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DROP TRIGGER audit_event_no_delete"))
            conn.execute(text(statement), params)


def _ids(rt: Runtime) -> list[int]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(EVENTS.c.id).order_by(EVENTS.c.id)).scalars())


@pytest.fixture
def trail(imported: Runtime) -> Runtime:
    """Events written by every path: single records (rounds, parties), intake's batch,
    screening's batch with its transitions, and one transition on its own."""
    run(imported)
    with unit_of_work(imported.engine) as session:
        transition(
            session,
            "SIP-2018-R1-0001",
            "withdraw",
            key="withdraw:1",
            actor="secretariat",
            role=Role.SECRETARIAT,
            at=AFTER_CLOSE,
            reason="the applicant asked",
        )
    return imported


def test_every_path_chains_its_events_and_the_trail_verifies(trail: Runtime) -> None:
    with trail.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
        actions = set(conn.execute(select(EVENTS.c.action)).scalars())
        first = conn.execute(select(EVENTS.c.prev_hash).order_by(EVENTS.c.id).limit(1)).scalar_one()
    assert {"application.submit", "application.screening_recorded", "application.withdraw"} <= actions
    assert first == GENESIS
    seen: list[tuple[int, int]] = []
    result = verify(trail.engine, page=7, progress=lambda checked, total: seen.append((checked, total)))
    assert result.ok and result.checked == result.total == count >= 20
    assert seen[-1] == (count, count) and len(seen) == -(-count // 7)  # page by page
    assert result.head_id == _ids(trail)[-1]


def test_an_event_edited_in_the_database_is_found_at_that_event(trail: Runtime) -> None:
    target = _ids(trail)[10]
    _as_insider(trail, "UPDATE audit_event SET reason = 'nothing to see' WHERE id = :id", id=target)
    result = verify(trail.engine)
    assert result.broken is not None
    assert (result.broken.event_id, result.broken.kind) == (target, Break.CONTENT_EDITED)
    assert result.checked == 10
    answer = CliRunner().invoke(app, ["audit", "verify"])
    assert answer.exit_code == 1
    assert f"event {target}: content edited" in answer.stderr


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(trail: Runtime) -> None:
    ids = _ids(trail)
    target = ids[5]
    with trail.engine.connect() as conn:
        row = conn.execute(select(EVENTS).where(EVENTS.c.id == target)).mappings().one()
    forged = dict(row, actor="someone else")
    _as_insider(
        trail,
        "UPDATE audit_event SET actor = :actor, hash = :hash WHERE id = :id",
        actor="someone else",
        hash=event_hash(row["prev_hash"], forged),
        id=target,
    )
    result = verify(trail.engine)
    assert result.broken is not None
    assert (result.broken.event_id, result.broken.kind) == (ids[6], Break.LINK_BROKEN)


def test_a_deleted_event_is_found_at_the_one_after_it(trail: Runtime) -> None:
    ids = _ids(trail)
    _as_insider(trail, "DELETE FROM audit_event WHERE id = :id", id=ids[3])
    result = verify(trail.engine)
    assert result.broken is not None
    assert (result.broken.event_id, result.broken.kind, result.broken.previous_id) == (
        ids[4],
        Break.ROW_MISSING,
        ids[2],
    )
    answer = CliRunner().invoke(app, ["audit", "verify", "--json"])
    assert answer.exit_code == 1 and '"kind": "row missing"' in answer.stdout


def test_the_first_events_deleted_are_found(trail: Runtime) -> None:
    ids = _ids(trail)
    _as_insider(trail, "DELETE FROM audit_event WHERE id <= :id", id=ids[1])
    result = verify(trail.engine)
    assert result.broken is not None
    assert (result.broken.event_id, result.broken.kind, result.checked) == (ids[2], Break.ROW_MISSING, 0)


def test_an_intact_trail_verifies_on_the_command_line(open_round1: Runtime) -> None:
    answer = CliRunner().invoke(app, ["audit", "verify"])
    assert answer.exit_code == 0, answer.output
    assert "audit trail OK:" in answer.stdout and "event(s) checked; last event" in answer.stdout


def test_truncating_the_trail_is_refused_on_postgresql(open_round1: Runtime) -> None:
    if open_round1.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DBAPIError, match="append-only"), open_round1.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_event"))
    assert verify(open_round1.engine).checked > 0


def test_two_writers_at_once_do_not_fork_the_chain(open_round1: Runtime) -> None:
    """Each transaction reads the last hash, waits a moment, then commits: without the
    lock both would chain to the same event."""
    before = verify(open_round1.engine).checked
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                with unit_of_work(open_round1.engine) as session:
                    audit.record(
                        session,
                        at=datetime.now(UTC),
                        actor=name,
                        role=Role.SECRETARIAT,
                        action="test.append",
                        subject_type="test",
                        subject_id=f"{name}-{i}",
                    )
                    time.sleep(0.005)
                    audit.append(
                        session,
                        [
                            dict(
                                at=datetime.now(UTC),
                                actor=name,
                                role=Role.SYSTEM,
                                action="test.batch",
                                subject_type="test",
                                subject_id=f"{name}-{i}-{n}",
                                details={"n": n, "ratio": 1.0, "big": 1e16, "text": "é≠"},
                            )
                            for n in range(3)
                        ],
                    )
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = verify(open_round1.engine)
    assert result.ok, result.broken and result.broken.describe()
    assert result.checked == before + 2 * 15 * 4


def test_on_sqlite_a_deferred_transaction_overtaken_by_a_writer_cannot_fork_the_chain(
    sqlite_settings: Settings,
) -> None:
    """Writers begin IMMEDIATE (engine.db); a transaction begun deferred that read the
    last hash before another writer committed is refused when it tries to append,
    rather than chaining to an event that is no longer the last."""
    engine = get_engine(sqlite_settings.url)

    def event(session: Session, name: str) -> None:
        audit.record(
            session,
            at=datetime.now(UTC),
            actor=name,
            role=Role.SECRETARIAT,
            action="test.append",
            subject_type="test",
            subject_id=name,
        )

    started = time.monotonic()
    with reading(engine) as stale:
        stale.execute(select(EVENTS.c.hash).order_by(EVENTS.c.id.desc()).limit(1)).scalar_one()
        with unit_of_work(engine) as writer:
            event(writer, "first")
        with pytest.raises(OperationalError, match="locked"):
            event(stale, "stale")
    assert time.monotonic() - started < 5  # refused at once, not after the busy timeout
    result = verify(engine)
    assert result.ok and result.checked == result.total
