"""Status transitions through the state machine, with their history and audit, on
SQLite and PostgreSQL: replays change nothing, concurrent writers conflict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from domain.lifecycle import Role, Status
from engine.db import unit_of_work
from engine.services.applications import applicant_view, transition
from engine.services.errors import Conflict, NotAllowed
from engine.services.intake import submit_application
from engine.services.setup import Runtime
from engine.tables import Application, AuditEvent, StatusChange
from tests.conftest import IN_ROUND1, ROUND1, example

AT = datetime(2018, 9, 10, 9, tzinfo=UTC)


@pytest.fixture
def submitted(open_round1: Runtime) -> tuple[Runtime, str, str]:
    receipt = submit_application(
        open_round1.engine, open_round1.settings, ROUND1, example("ben-asgm-complete.json"), now=IN_ROUND1
    )
    return open_round1, receipt.reference, receipt.access_token


def rows(rt: Runtime, table: type) -> int:
    with unit_of_work(rt.engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def test_a_transition_writes_its_history_and_audit_event(submitted: tuple[Runtime, str, str]) -> None:
    rt, ref, _ = submitted
    with unit_of_work(rt.engine) as session:
        result = transition(
            session, ref, "pass_screening", key="screening:1", actor="officer@sip", role=Role.SECRETARIAT, at=AT
        )
    assert result.changed and result.status is Status.SCREENED and result.version == 2
    with unit_of_work(rt.engine) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "application.pass_screening")).one()
        assert (event.actor, event.role, event.from_status, event.to_status, event.at) == (
            "officer@sip",
            "secretariat",
            "submitted",
            "screened",
            AT,
        )
        change = session.exec(select(StatusChange).where(StatusChange.key == "screening:1")).one()
        assert (change.from_status, change.to_status, change.public_status) == ("submitted", "screened", "under_review")


def test_replaying_a_transition_with_the_same_id_changes_and_emits_nothing(submitted: tuple[Runtime, str, str]) -> None:
    rt, ref, _ = submitted
    for _ in range(2):
        with unit_of_work(rt.engine) as session:
            transition(session, ref, "pass_screening", key="screening:1", actor="s", role=Role.SYSTEM, at=AT)
    history, audit = rows(rt, StatusChange), rows(rt, AuditEvent)
    with unit_of_work(rt.engine) as session:
        again = transition(session, ref, "pass_screening", key="screening:1", actor="s", role=Role.SYSTEM, at=AT)
    assert not again.changed and again.status is Status.SCREENED
    assert (rows(rt, StatusChange), rows(rt, AuditEvent)) == (history, audit)


def test_a_transition_id_reused_for_another_transition_is_refused(submitted: tuple[Runtime, str, str]) -> None:
    rt, ref, _ = submitted
    with unit_of_work(rt.engine) as session:
        transition(session, ref, "pass_screening", key="k", actor="s", role=Role.SYSTEM, at=AT)
    with pytest.raises(Conflict, match="already used for pass_screening"), unit_of_work(rt.engine) as session:
        transition(session, ref, "send_to_committee", key="k", actor="s", role=Role.SYSTEM, at=AT)


def test_a_transition_the_table_does_not_allow_is_refused_and_changes_nothing(
    submitted: tuple[Runtime, str, str],
) -> None:
    rt, ref, _ = submitted
    audit = rows(rt, AuditEvent)
    with (
        pytest.raises(NotAllowed, match="cannot approve an application that is submitted"),
        unit_of_work(rt.engine) as session,
    ):
        transition(session, ref, "approve", key="k", actor="s", role=Role.SECRETARIAT, at=AT)
    assert rows(rt, AuditEvent) == audit


def test_the_version_column_refuses_a_write_based_on_a_stale_read(submitted: tuple[Runtime, str, str]) -> None:
    rt, ref, _ = submitted
    # Writer A reads the application, then writer B commits a change before A writes.
    slow = Session(rt.engine, expire_on_commit=False)
    stale = slow.exec(select(Application).where(Application.reference == ref)).one()
    slow.commit()  # A's read transaction ends; it keeps its (now stale) copy, version 1
    with unit_of_work(rt.engine) as session:
        transition(session, ref, "mark_incomplete", key="b", actor="b", role=Role.SECRETARIAT, at=AT)
    stale.status = Status.SCREENED.value
    slow.add(stale)
    with pytest.raises(Exception) as caught:
        slow.commit()
    slow.rollback()
    slow.close()
    assert "expected to update 1 row(s); 0 were matched" in str(caught.value)
    with unit_of_work(rt.engine) as session:
        assert session.exec(select(Application.status)).one() == "incomplete"


def test_a_stale_expected_version_is_a_conflict(submitted: tuple[Runtime, str, str]) -> None:
    rt, ref, _ = submitted
    with unit_of_work(rt.engine) as session:
        transition(session, ref, "pass_screening", key="a", actor="s", role=Role.SYSTEM, at=AT)
    with pytest.raises(Conflict, match="changed since you read it"), unit_of_work(rt.engine) as session:
        transition(session, ref, "send_to_committee", key="b", actor="s", role=Role.SYSTEM, at=AT, expected_version=1)


def test_the_audit_trail_refuses_updates_and_deletes(submitted: tuple[Runtime, str, str]) -> None:
    rt, _, _ = submitted
    for statement in ("UPDATE audit_event SET actor = 'someone else'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), rt.engine.begin() as conn:
            conn.execute(text(statement))
    assert rows(rt, AuditEvent) >= 1


def test_the_applicant_timeline_shows_public_changes_only(submitted: tuple[Runtime, str, str]) -> None:
    rt, ref, token = submitted
    with unit_of_work(rt.engine) as session:
        transition(session, ref, "pass_screening", key="1", actor="s", role=Role.SYSTEM, at=AT)
        transition(session, ref, "send_to_committee", key="2", actor="s", role=Role.SYSTEM, at=AT)
    with unit_of_work(rt.engine) as session:
        view = applicant_view(session, ref, token)
    assert view is not None
    assert [(t.status.value, t.at) for t in view.timeline] == [("received", IN_ROUND1), ("under_review", AT)]
    with unit_of_work(rt.engine) as session:
        assert applicant_view(session, ref, "wrong") is None
        assert applicant_view(session, ref, None) is None
        assert applicant_view(session, "SIP-2018-R1-9999", token) is None


def _race(rt: Runtime, backend: str, first: tuple[str, str], second: tuple[str, str]) -> object:
    """Writer A reads the application; just before A writes, writer B commits its own
    transition. Returns what A's `transition` call gives (or raises)."""
    if backend == "sqlite":
        pytest.skip(
            "SQLite serialises writers (BEGIN IMMEDIATE takes the lock before A reads): they cannot "
            "interleave, so there is no race to lose"
        )
    from sqlalchemy import event

    ref = _submit(rt)
    with unit_of_work(rt.engine) as a_session:
        fired = []

        @event.listens_for(a_session, "before_flush")
        def b_commits_first(*_: object) -> None:
            if not fired:
                fired.append(True)
                with unit_of_work(rt.engine) as b_session:
                    transition(b_session, ref, second[0], key=second[1], actor="b", role=Role.SECRETARIAT, at=AT)

        return transition(a_session, ref, first[0], key=first[1], actor="a", role=Role.SECRETARIAT, at=AT)


def _submit(rt: Runtime) -> str:
    return submit_application(
        rt.engine, rt.settings, ROUND1, example("ben-asgm-complete.json"), now=IN_ROUND1
    ).reference


def test_the_loser_of_two_racing_writers_gets_a_conflict(open_round1: Runtime, backend: str) -> None:
    with pytest.raises(Conflict, match="changed by someone else at the same time"):
        _race(open_round1, backend, ("pass_screening", "a"), ("mark_incomplete", "b"))
    with unit_of_work(open_round1.engine) as session:
        assert session.exec(select(Application.status)).one() == "incomplete"
        assert session.exec(select(func.count()).select_from(StatusChange)).one() == 2  # submit + b


def test_a_replay_racing_its_original_changes_nothing(open_round1: Runtime, backend: str) -> None:
    result = _race(open_round1, backend, ("pass_screening", "same"), ("pass_screening", "same"))
    assert not result.changed and result.status is Status.SCREENED  # type: ignore[attr-defined]
    with unit_of_work(open_round1.engine) as session:
        assert session.exec(select(func.count()).select_from(StatusChange)).one() == 2  # submit + one screening
        assert (
            session.exec(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "application.pass_screening")
            ).one()
            == 1
        )


def test_a_batch_of_transitions_is_refused_whole_if_one_application_changed_meanwhile(open_round1: Runtime) -> None:
    from engine.services.applications import transition_many

    rt = open_round1
    refs = [_submit(rt) for _ in range(3)]
    with unit_of_work(rt.engine) as session:  # read the three applications ...
        stale = list(session.exec(select(Application).order_by(Application.id)).all())
    with unit_of_work(rt.engine) as session:  # ... someone else changes the second ...
        transition(session, refs[1], "mark_incomplete", key="other", actor="b", role=Role.SECRETARIAT, at=AT)
    history = rows(rt, StatusChange)
    with pytest.raises(Conflict, match="changed by someone else meanwhile"), unit_of_work(rt.engine) as session:
        transition_many(
            session, [(a, "pass_screening", "batch", None) for a in stale], actor="a", role=Role.SYSTEM, at=AT
        )
    assert rows(rt, StatusChange) == history  # nothing of the batch was written
    with unit_of_work(rt.engine) as session:
        assert sorted(session.exec(select(Application.status)).all()) == ["incomplete", "submitted", "submitted"]
