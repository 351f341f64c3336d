"""GMP reviewers: the register and the assignment of a round's screened applications
(round 4, the first with GMP review), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import unit_of_work
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.review.assignment import assign_reviewers
from engine.services.review.register import parse_reviewers
from engine.services.setup import Runtime
from engine.tables import AuditEvent, ReviewAssignment
from tests.conftest import AFTER_R4 as AFTER
from tests.conftest import HEADER, ROUND4
from tests.tables import printed_row, table_rows


def test_each_screened_application_gets_two_reviewers_of_its_area_and_none_conflicted(round4: Runtime) -> None:
    with unit_of_work(round4.engine) as session:
        placements = {p.reference: p for p in assign_reviewers(session, ROUND4, actor="officer", at=AFTER)}
    ben, lso = placements["SIP-2024-R4-0001"], placements["SIP-2024-R4-0002"]
    assert sorted(ben.reviewers) == ["ana@example.org", "kofi@example.org"] and ben.unfilled == 0
    assert "bene@example.org not chosen: conflict of interest (country)" in ben.reasons
    assert "paul@example.org not chosen: conflict of interest (organisation)" in ben.reasons
    assert sorted(lso.reviewers) == ["ana@example.org", "lena@example.org"]  # products and wastes


def test_assigning_again_fills_only_open_places(round4: Runtime) -> None:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER)
    with unit_of_work(round4.engine) as session:
        again = assign_reviewers(session, ROUND4, actor="officer", at=AFTER)
        assert session.exec(select(func.count()).select_from(ReviewAssignment)).one() == 4
        assert (
            session.exec(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "application.reviewers_proposed")
            ).one()
            == 2
        )
    assert all(p.unfilled == 0 and len(p.reviewers) == 2 for p in again)


def test_a_round_without_gmp_review_is_refused(open_round1: Runtime) -> None:
    with pytest.raises(NotAllowed, match="has no GMP review stage"), unit_of_work(open_round1.engine) as session:
        assign_reviewers(session, "sip-2018-r1", actor="o", at=AFTER)


def test_a_reviewer_file_with_duplicate_emails_or_unknown_areas_is_refused_whole() -> None:
    text = HEADER + (
        "A,a@example.org,Org,PER,artisanal_gold_mining,en,2\n"
        "B,A@example.org,Org,PER,gold,en,2\n"
        "C,c@example.org,Org,Peru,cement,de,-1\n"
        "D,a@example.org,Org,PER,cement,en,2\n"
    )
    with pytest.raises(InvalidInput) as caught:
        parse_reviewers(text, "r.csv")
    problems = {e.path: e.message for e in caught.value.errors}
    assert "'gold' is not a partnership area" in problems["r.csv:3: areas"]
    assert {"r.csv:4: country", "r.csv:4: languages", "r.csv:4: max_load"} <= set(problems)
    assert problems["r.csv:5: email"] == "duplicate e-mail a@example.org (first on line 2)"


@pytest.mark.prefect
def test_review_assign_through_the_cli_gives_the_json_the_secretariat_reads(
    round4: Runtime, prefect_harness: None
) -> None:
    import json

    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, ["review", "assign", ROUND4, "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {r["reference"]: r for r in json.loads(result.stdout)}
    assert set(rows["SIP-2024-R4-0001"]) == {"reference", "reviewers", "unfilled", "reasons"}
    assert rows["SIP-2024-R4-0001"]["unfilled"] == 0 and len(rows["SIP-2024-R4-0002"]["reviewers"]) == 2
    listed = CliRunner().invoke(app, ["reviewers", "list"])
    assert listed.exit_code == 0 and len(table_rows(listed.stdout)) == 5


@pytest.mark.prefect
def test_the_whole_review_stage_runs_from_the_command_line(round4: Runtime, prefect_harness: None) -> None:
    from typer.testing import CliRunner

    from cli import app

    def sip(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result.stdout + result.stderr

    assert "missing" not in sip("reviewers", "set", "lena@example.org", "--max-load", "5")
    refused = sip("reviewers", "set", "new@example.org", "--name", "New", code=1)
    assert "organisation: is required" in refused and "country: is required" in refused
    sip("review", "assign", ROUND4)
    shown = sip("review", "show", ROUND4)
    printed_row(shown, "kofi@example.org", "proposed")
    assert "must be after today" in sip("review", "invite", ROUND4, "--due", "2020-01-01", code=1)
    invited = sip("review", "invite", ROUND4)
    assert "4 assignment(s) invited, 3 invitation(s) queued, 2 application(s) into review" in invited
    assert "reviews not due soon; 4 review(s) outstanding, 0 reminder(s)" in sip("review", "daily")
    printed_row(sip("review", "summary", ROUND4), "SIP-2024-R4-0001", "0/2", "2")
    closed = sip("review", "close", ROUND4, "--reason", "the committee meets")
    assert "2 application(s) ready for the committee" in closed and "SIP-2024-R4-0001" in closed
    assert "already with the committee" in sip("screen", "close", ROUND4)
    assert "is committee" in sip("review", "add", ROUND4, "SIP-2024-R4-0001", "lena@example.org", code=1)


def test_a_refused_reviewer_file_changes_nothing_and_the_attempt_is_audited(round4: Runtime, tmp_path) -> None:
    from typer.testing import CliRunner

    from cli import app
    from engine.tables import ReviewerRecord

    bad = tmp_path / "reviewers.csv"
    bad.write_text(HEADER + "A,a@example.org,Org,PER,gold,en,2\nB,a@example.org,Org,PER,cement,en,2\n")
    result = CliRunner().invoke(app, ["reviewers", "load", str(bad)])
    assert result.exit_code == 1 and "2 problems; nothing was changed" in result.stderr
    assert "'gold' is not a partnership area" in result.stderr and "duplicate e-mail" in result.stderr
    with unit_of_work(round4.engine) as session:
        assert session.exec(select(func.count()).select_from(ReviewerRecord)).one() == 5
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "cli.reviewers.load.refused")).one()
    assert event.subject_id == "sip reviewers load" and "the register was not changed" in event.reason


def test_served_flows_run_the_review_day_every_morning_and_the_stages_on_demand() -> None:
    from flows.deployments import deployments

    served = {(d.flow_name, d.name): d for d in deployments()}
    daily = served["review-day", "daily"].schedules[0].schedule
    assert (daily.cron, daily.timezone) == ("0 7 * * *", "Europe/Zurich")
    assert {
        ("prepare-committee-bundles", "on-demand"),
        ("send-decision-letters", "on-demand"),
        ("invite-gmp-reviewers", "on-demand"),
    } <= set(served)
