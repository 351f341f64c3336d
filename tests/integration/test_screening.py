"""Screening a round through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import unit_of_work
from engine.services.errors import NotAllowed
from engine.services.screening import screen_batch, start_screening, to_screen
from engine.services.setup import Runtime
from engine.tables import Application, AuditEvent, OutboxMessage, ScreeningRecord, StatusChange
from tests.conftest import AFTER_CLOSE, ROUND1, run


def state(rt: Runtime) -> dict[str, object]:
    with unit_of_work(rt.engine) as session:
        return {
            "statuses": dict(session.exec(select(Application.party, Application.status)).all()),
            "records": session.exec(select(func.count()).select_from(ScreeningRecord)).one(),
            "history": session.exec(select(func.count()).select_from(StatusChange)).one(),
            "audit": session.exec(select(func.count()).select_from(AuditEvent)).one(),
            "outbox": session.exec(select(func.count()).select_from(OutboxMessage)).one(),
        }


def test_screening_sorts_the_round_into_screened_incomplete_ineligible_and_to_be_judged(imported: Runtime) -> None:
    [summary] = run(imported)
    assert summary.verdicts == {"screened": 1, "incomplete": 1, "ineligible": 1, "needs_judgement": 1}
    assert state(imported)["statuses"] == {
        "BEN": "screened",
        "LSO": "incomplete",
        "CHE": "ineligible",
        "CMR": "submitted",
    }
    with unit_of_work(imported.engine) as session:
        che = session.exec(select(ScreeningRecord).join(Application).where(Application.party == "CHE")).one()
        failed = {c["id"]: c for c in che.checks if c["outcome"] == "fail"}
        assert set(failed) == {"economy:CHE", "amount_range"}
        assert failed["amount_range"]["evidence"] == "form_b.total_requested = 300,000.00"
        ben = session.exec(select(ScreeningRecord).join(Application).where(Application.party == "BEN")).one()
        assert ben.weighted_score == 100  # only the automatic criterion is scored so far


def test_applicants_are_told_in_their_language_when_incomplete_or_ineligible_not_when_passed(imported: Runtime) -> None:
    run(imported)
    with unit_of_work(imported.engine) as session:
        notices = {m.kind: m for m in session.exec(select(OutboxMessage)).all() if m.kind != "receipt"}
    assert set(notices) == {"screening_incomplete", "screening_ineligible"}
    lso, che = notices["screening_incomplete"], notices["screening_ineligible"]
    assert lso.language == "en"
    assert "Form C (the transmittal letter signed by the national focal point)" in lso.body_text
    assert che.language == "fr" and "demande non recevable" in che.subject
    assert "300 000,00 $US" in che.body_text.replace("\u202f", " ").replace("\xa0", " ")
    assert "n'en fait pas partie" in che.body_text


def test_rescreening_an_unchanged_round_changes_nothing_and_queues_nothing(imported: Runtime) -> None:
    run(imported)
    before = state(imported)
    [summary] = run(imported)
    assert (summary.screened, summary.unchanged, summary.notices) == (0, 1, 0)  # only Cameroon is looked at again
    assert state(imported) == before


def test_a_run_stopped_between_batches_is_finished_by_a_rerun_without_repeating_anything(imported: Runtime) -> None:
    with unit_of_work(imported.engine) as session:
        start_screening(session, ROUND1, actor="officer", at=AFTER_CLOSE)
        ids = to_screen(session, ROUND1)
    screen_batch(imported.engine, imported.settings, ROUND1, ids[:2], actor="officer", at=AFTER_CLOSE)
    # ... the run stops here (tests/test_cli.py kills a real one); the second batch never ran ...
    run(imported, batch=1)
    final = state(imported)
    assert final["records"] == 4 and final["statuses"] == {
        "BEN": "screened",
        "LSO": "incomplete",
        "CHE": "ineligible",
        "CMR": "submitted",
    }
    with unit_of_work(imported.engine) as session:  # as many as one clean run records
        screenings = session.exec(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "application.screening_recorded")
        ).one()
        notices = session.exec(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind != "receipt")
        ).one()
    assert (screenings, notices) == (4, 2)


def test_a_register_correction_rescreens_the_application_waiting_for_judgement(imported: Runtime) -> None:
    from engine.services.parties import DEFAULT_REGISTER, read_parties_file, replace_register

    run(imported)
    parties = [
        p.model_copy(update={"party_since": datetime(2019, 6, 1).date()}) if p.iso3 == "CMR" else p
        for p in read_parties_file(DEFAULT_REGISTER)
    ]
    with unit_of_work(imported.engine) as session:
        replace_register(session, parties, source="corrected", actor="officer", at=AFTER_CLOSE)
    [summary] = run(imported)
    assert summary.verdicts == {"ineligible": 1}  # Cameroon joined after the 2018 deadline
    assert state(imported)["statuses"]["CMR"] == "ineligible"


def test_a_round_still_open_cannot_be_screened(imported: Runtime) -> None:
    before = state(imported)
    with pytest.raises(NotAllowed, match="still open for applications"), unit_of_work(imported.engine) as session:
        start_screening(session, ROUND1, actor="officer", at=datetime(2018, 8, 1, tzinfo=UTC))
    with pytest.raises(NotAllowed, match="start screening first"):
        screen_batch(imported.engine, imported.settings, ROUND1, [1], actor="officer", at=AFTER_CLOSE)
    assert state(imported) == before
