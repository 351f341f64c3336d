"""Appraisal scores, overrides and the screening report, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import unit_of_work
from engine.services.appraisal import override, parse_score_sheet, record_scores
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.intake import import_batch
from engine.services.report import report_csv, report_rows, write_report
from engine.services.rounds import definition_of, get_round, open_round
from engine.services.setup import Runtime
from engine.tables import Application, AppraisalScore, AuditEvent, OutboxMessage, ScreeningRecord
from tests.conftest import AFTER_CLOSE, received

SHEET = "reference,criterion,score,comment\n"
BEN, LSO, CHE, CMR = "SIP-2018-R1-0001", "SIP-2018-R1-0002", "SIP-2018-R1-0003", "SIP-2018-R1-0004"


def record(rt: Runtime, reference: str) -> ScreeningRecord:
    with unit_of_work(rt.engine) as session:
        return session.exec(select(ScreeningRecord).join(Application).where(Application.reference == reference)).one()


def scores(rt: Runtime) -> int:
    with unit_of_work(rt.engine) as session:
        return session.exec(select(func.count()).select_from(AppraisalScore)).one()


def test_a_scoring_sheet_updates_the_weighted_score(screened: Runtime) -> None:
    rows = parse_score_sheet(
        SHEET + f"{BEN},convention_obligations,4,Article 7 action plan\n{BEN},country_driven,2,\n", "sheet.csv"
    )
    with unit_of_work(screened.engine) as session:
        assert record_scores(session, "sip-2018-r1", rows, actor="officer", at=AFTER_CLOSE) == 2
    ben = record(screened, BEN)
    assert ben.weighted_score == 80  # (1x1 + 2x1 + 2x0.5) / 5 criteria weights scored
    assert [c["id"] for c in ben.appraisal if c["score"] is None] == [
        "logical_framework",
        "feasibility",
        "sustainability",
        "cost_effectiveness",
        "gender_mainstreaming",
        "no_gef_duplication",
    ]
    with unit_of_work(screened.engine) as session:  # the same sheet again changes nothing
        assert record_scores(session, "sip-2018-r1", rows, actor="officer", at=AFTER_CLOSE) == 0


def test_a_bad_scoring_sheet_is_refused_whole_with_every_problem_by_line(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        open_round(session, "sip-2019-r2", actor="s", at=datetime(2019, 3, 6, tzinfo=UTC))
    [other] = import_batch(
        screened.engine,
        screened.settings,
        "sip-2019-r2",
        [("r2.json", received("ben-asgm-complete.json", round="sip-2019-r2", received_at="2019-04-01T10:00:00+02:00"))],
        actor="s",
        now=datetime(2019, 4, 2, tzinfo=UTC),
    )
    sheet = SHEET + (
        f"{BEN},feasibility,3,fine\n"  # line 2: good, but the sheet is refused whole
        f"{BEN},elegance,3,\n"  # 3: no such criterion
        f"{BEN},sustainability,7,\n"  # 4: off the scale
        f"{BEN},national_consultation,1,\n"  # 5: a check, not scored by people
        f"{other.reference},feasibility,2,\n"  # 6: another round's application
        f"{LSO},feasibility,2,\n"  # 7: incomplete, not appraised
        f"{BEN},feasibility,three,\n"
    )  # 8: twice, and not a number
    with pytest.raises(InvalidInput) as caught, unit_of_work(screened.engine) as session:
        record_scores(session, "sip-2018-r1", parse_score_sheet(sheet, "s.csv"), actor="o", at=AFTER_CLOSE)
    problems = {e.path: e.message for e in caught.value.errors}
    assert set(problems) == {
        "s.csv:3: criterion",
        "s.csv:4: score",
        "s.csv:5: criterion",
        "s.csv:6: reference",
        "s.csv:7: reference",
        "s.csv:8: score",
        "s.csv:8: criterion",
    }
    assert "not on the scale of sustainability (0, 1, 2, 3, 4)" in problems["s.csv:4: score"]
    assert "is an application of round sip-2019-r2" in problems["s.csv:6: reference"]
    assert scores(screened) == 0


def test_an_override_needs_a_reason_and_changes_nothing_without_one(screened: Runtime) -> None:
    audit = _count(screened, AuditEvent)
    with pytest.raises(InvalidInput, match="needs a reason"), unit_of_work(screened.engine) as session:
        override(session, screened.settings, "sip-2018-r1", CMR, "screened", reason="  ", actor="o", at=AFTER_CLOSE)
    assert _count(screened, AuditEvent) == audit and record(screened, CMR).override is None


def test_a_person_decides_what_screening_could_not(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        assert override(
            session,
            screened.settings,
            "sip-2018-r1",
            CMR,
            "screened",
            reason="Party since 2019-03-18 per the depositary; but the deadline question is moot here",
            actor="officer",
            at=AFTER_CLOSE,
        )
        assert not override(
            session, screened.settings, "sip-2018-r1", CMR, "screened", reason="again", actor="officer", at=AFTER_CLOSE
        )
    cmr = record(screened, CMR)
    assert cmr.override["automatic"] == "needs_judgement" and cmr.override["by"] == "officer"
    assert cmr.weighted_score == 100  # appraised from now on
    with unit_of_work(screened.engine) as session:
        assert session.exec(select(Application.status).where(Application.reference == CMR)).one() == "screened"


def test_overriding_a_pass_to_ineligible_tells_the_applicant_why(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        override(
            session,
            screened.settings,
            "sip-2018-r1",
            BEN,
            "ineligible",
            reason="The executing agency is not a government body.",
            actor="officer",
            at=AFTER_CLOSE,
        )
    with unit_of_work(screened.engine) as session:
        notice = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind == "screening_ineligible", OutboxMessage.recipient == "focal.point@example.bj"
            )
        ).one()
    assert notice.language == "fr" and "The executing agency is not a government body." in notice.body_text


def test_an_application_not_screened_cannot_be_overridden(open_round1: Runtime) -> None:
    import_batch(
        open_round1.engine,
        open_round1.settings,
        "sip-2018-r1",
        [("b.json", received("ben-asgm-complete.json"))],
        actor="s",
        now=AFTER_CLOSE,
    )
    with pytest.raises(NotAllowed, match="has not been screened yet"), unit_of_work(open_round1.engine) as session:
        override(session, open_round1.settings, "sip-2018-r1", BEN, "screened", reason="r", actor="o", at=AFTER_CLOSE)


def test_the_report_groups_by_region_shows_ldc_and_sids_and_ranks_the_screened(
    screened: Runtime, tmp_path: Path
) -> None:
    with unit_of_work(screened.engine) as session:  # Cameroon passes too, by a person's decision
        override(
            session,
            screened.settings,
            "sip-2018-r1",
            CMR,
            "screened",
            reason="Party on the deadline",
            actor="o",
            at=AFTER_CLOSE,
        )
        record_scores(
            session,
            "sip-2018-r1",
            parse_score_sheet(SHEET + f"{BEN},feasibility,1,\n{CMR},feasibility,4,\n", "s"),
            actor="o",
            at=AFTER_CLOSE,
        )
        rows = {r.reference: r for r in report_rows(session, "sip-2018-r1")}
        html, text = write_report(session, "sip-2018-r1", tmp_path)
    assert (rows[CMR].weighted_score, rows[BEN].weighted_score) == (Decimal("100.0"), Decimal("62.5"))
    assert (rows[CMR].rank, rows[BEN].rank) == (None, None)  # no ranking while judgement criteria are unscored
    assert (rows[BEN].region, rows[BEN].ldc) == ("Africa", True)
    assert "feasibility" not in rows[BEN].unscored.split() and "cost_effectiveness" in rows[BEN].unscored.split()
    assert rows[BEN].scored_weight == 18  # national_consultation (1) and feasibility (1) of 11
    assert (rows[CHE].verdict, rows[CHE].failed, rows[CHE].rank) == ("ineligible", "economy:CHE amount_range", None)
    assert rows[CMR].needs_judgement == "party:CMR" and rows[CMR].overridden == "needs_judgement"
    parsed = list(csv.DictReader(io.StringIO(report_csv(list(rows.values())))))
    assert [r["region"] for r in parsed] == ["Africa", "Africa", "Africa", "Western European and Others"]
    assert [r["ldc"] for r in parsed if r["party"] == "LSO"] == ["true"]
    page = html.read_text()
    assert "<h2>Africa (3)</h2>" in page and "on criteria making up 18% of the weight" in page
    assert "<h2>Western European and Others (1)</h2>" in page
    # titles, not ids; a mark and a word as well as colour; no ranking while judgement scores are missing
    assert "amount_range" not in page and "convention_obligations" not in page.split("</p>", 4)[-1]
    assert '<div class="fail">✗ ' in page and '<div class="judge">? ' in page
    assert "No ranking yet." in page and '<th scope="col" class="num">Rank</th>' not in page
    assert page.count("<table") == 1  # one table: the regions' columns line up
    assert '<span class="flag">LDC</span>' in page and text.read_bytes().decode() == report_csv(list(rows.values()))


def _count(rt: Runtime, table: type) -> int:
    with unit_of_work(rt.engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def test_a_ranking_is_given_once_every_judgement_criterion_is_scored_and_not_before(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        rows = {r.reference: r for r in report_rows(session, "sip-2018-r1")}
        definition = definition_of(get_round(session, "sip-2018-r1"))
    assert (rows[BEN].weighted_score, rows[BEN].rank) == (None, None)  # the engine's checks alone are not a score
    judgements = [c.id for c in definition.criteria if c.kind == "judgement"]
    sheet = SHEET + "".join(f"{BEN},{c},{2 if c == judgements[0] else 4},\n" for c in judgements)
    with unit_of_work(screened.engine) as session:
        record_scores(session, "sip-2018-r1", parse_score_sheet(sheet, "s"), actor="o", at=AFTER_CLOSE)
        rows = {r.reference: r for r in report_rows(session, "sip-2018-r1")}
    assert rows[BEN].rank == 1 and rows[BEN].weighted_score is not None and rows[BEN].unscored == ""
    assert rows[LSO].rank is None and rows[LSO].weighted_score is None  # incomplete: not appraised
