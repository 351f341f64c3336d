"""GMP reviewers: the register and the assignment of a round's screened applications
(round 4, the first with GMP review), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import unit_of_work
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.intake import import_batch
from engine.services.review import assign_reviewers, load_reviewers, parse_reviewers
from engine.services.rounds import open_round
from engine.services.screening import screen_batch, start_screening, to_screen
from engine.services.setup import Runtime
from engine.tables import AuditEvent, ReviewAssignment
from tests.conftest import changed, example

ROUND4 = "sip-2024-r4"
AFTER = datetime(2024, 8, 5, 9, tzinfo=UTC)
HEADER = "name,email,organisation,country,areas,languages,max_load\n"
REGISTER = HEADER + (
    "Ana Gold,ana@example.org,Universidad de Lima,PER,artisanal_gold_mining;waste_management,es;en,3\n"
    "Kofi Mine,kofi@example.org,Ghana EPA,GHA,artisanal_gold_mining,en,3\n"
    "Bénédicte Or,bene@example.org,Université d'Abomey,BEN,artisanal_gold_mining,fr,3\n"
    "Paul Retort,paul@example.org,Ministère du Cadre de Vie et du Développement Durable,TGO,"
    "artisanal_gold_mining,fr;en,3\n"
    "Lena Lamp,lena@example.org,Zero Mercury,DEU,products;waste_management,en,3\n")


@pytest.fixture
def round4(rt: Runtime) -> Runtime:
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND4, actor="s", at=datetime(2024, 4, 25, tzinfo=UTC))
    files = [("ben.json", changed(example("ben-asgm-complete.json"), round=ROUND4,
                                  received_at="2024-07-01T10:00:00+02:00")),
             ("lso.json", changed(example("ben-asgm-complete.json"), round=ROUND4, applicant__party="LSO",
                                  received_at="2024-07-02T10:00:00+02:00", form_a__convention_articles=[4, 11],
                                  form_a__title="Mercury-added products and their wastes",
                                  form_a__summary="Inventory of products", form_a__objective="Regulate products"))]
    assert all(r.ok for r in import_batch(rt.engine, rt.settings, ROUND4, files, actor="s", now=AFTER))
    with unit_of_work(rt.engine) as session:
        start_screening(session, ROUND4, actor="s", at=AFTER)
        ids = to_screen(session, ROUND4)
    screen_batch(rt.engine, rt.settings, ROUND4, ids, actor="s", at=AFTER)
    with unit_of_work(rt.engine) as session:
        load_reviewers(session, parse_reviewers(REGISTER, "r.csv"), source="r.csv", actor="s", at=AFTER)
    return rt


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
        assert session.exec(select(func.count()).select_from(AuditEvent)
                            .where(AuditEvent.action == "application.reviewers_proposed")).one() == 2
    assert all(p.unfilled == 0 and len(p.reviewers) == 2 for p in again)


def test_a_round_without_gmp_review_is_refused(open_round1: Runtime) -> None:
    with pytest.raises(NotAllowed, match="has no GMP review stage"), unit_of_work(open_round1.engine) as session:
        assign_reviewers(session, "sip-2018-r1", actor="o", at=AFTER)


def test_a_reviewer_file_with_duplicate_emails_or_unknown_areas_is_refused_whole() -> None:
    text = HEADER + ("A,a@example.org,Org,PER,artisanal_gold_mining,en,2\n"
                     "B,A@example.org,Org,PER,gold,en,2\n"
                     "C,c@example.org,Org,Peru,cement,de,-1\n"
                     "D,a@example.org,Org,PER,cement,en,2\n")
    with pytest.raises(InvalidInput) as caught:
        parse_reviewers(text, "r.csv")
    problems = {e.path: e.message for e in caught.value.errors}
    assert "'gold' is not a partnership area" in problems["r.csv:3: areas"]
    assert {"r.csv:4: country", "r.csv:4: languages", "r.csv:4: max_load"} <= set(problems)
    assert problems["r.csv:5: email"] == "duplicate e-mail a@example.org (first on line 2)"


@pytest.mark.prefect
def test_review_assign_through_the_cli_gives_the_json_the_secretariat_reads(round4: Runtime,
                                                                            prefect_harness: None) -> None:
    import json

    from typer.testing import CliRunner

    from engine.cli import app

    result = CliRunner().invoke(app, ["review", "assign", ROUND4, "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {r["reference"]: r for r in json.loads(result.stdout)}
    assert set(rows["SIP-2024-R4-0001"]) == {"reference", "reviewers", "unfilled", "reasons"}
    assert rows["SIP-2024-R4-0001"]["unfilled"] == 0 and len(rows["SIP-2024-R4-0002"]["reviewers"]) == 2
    listed = CliRunner().invoke(app, ["reviewers", "list"])
    assert listed.exit_code == 0 and len(listed.stdout.strip().splitlines()) == 5
