"""The Steering Committee from the command line: the secretariat's whole meeting,
from the membership to the open data, and refusals that name the line at fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from cli import app
from engine.db import reading
from engine.services.setup import Runtime
from engine.tables import AuditEvent
from tests.conftest import ROUND1
from tests.tables import printed_row

BEN, CMR = "SIP-2018-R1-0001", "SIP-2018-R1-0004"


def sip(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def test_a_decisions_sheet_with_a_separator_or_a_currency_sign_is_refused_by_line(
    committee: Runtime, tmp_path: Path
) -> None:
    sheet = tmp_path / "decisions.csv"
    sheet.write_text(
        "reference,decision,amount,conditions,recommendations\n"
        f'{BEN},approved,"150,000",,\n{CMR},approved,US$ 60000,,\n{CMR},deferred,,,later\n'
    )
    out = sip("decisions", "load", ROUND1, str(sheet), code=1)
    assert f"{sheet}:2: amount" in out and f"{sheet}:3: amount" in out and "without thousands separators" in out
    assert f"{sheet}:4: reference" in out and "nothing was changed" in out
    with reading(committee.engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action == "cli.decisions.load.refused")).one()


def test_the_committee_lists_by_date_and_a_bad_membership_file_is_refused(committee: Runtime, tmp_path: Path) -> None:
    listed = sip("committee", "list", "--on", "2018-10-02")
    assert "10 member(s) on 2018-10-02; as the rule wants" in listed
    printed_row(listed, "kwame.boateng@committee.example.org", "GHA", "AFRICA", "co-chair", "2018-01-01 → 2019-12-31")
    after = sip("committee", "list", "--on", "2020-06-01")
    assert "0 member(s) on 2020-06-01; differs from the rule: 0 members serve, not 10" in after
    bad = tmp_path / "committee.csv"
    bad.write_text(
        "name,email,country,role,term_start,term_end,language\nX,x@example.org,GHA,chair,2020-01-01,2021-12-31,en\n"
    )
    assert f"{bad}:2: role" in sip("committee", "load", str(bad), code=1)


@pytest.mark.prefect
def test_the_meeting_from_bundles_to_open_data_runs_from_the_command_line(
    committee: Runtime, tmp_path: Path, prefect_harness: None
) -> None:
    out = sip("bundles", ROUND1, "--output", str(tmp_path / "bundles"))
    assert "10 new version(s), 0 unchanged, 10 member(s) notified" in out
    printed_row(out, "kwame.boateng@committee.example.org", "1", "new")
    assert len(list((tmp_path / "bundles").glob("*@committee.example.org.html"))) == 10
    again = sip("bundles", ROUND1, "--output", str(tmp_path / "bundles"))
    assert "0 new version(s), 10 unchanged, 0 member(s) notified" in again
    printed_row(again, "kwame.boateng@committee.example.org", "1", "unchanged")
    recorded = sip("decisions", "record", ROUND1, BEN, "--decision", "approved", "--amount", "150000")
    assert "1 decision(s) recorded" in recorded and f"still to decide: {CMR}" in recorded
    refused = sip("decisions", "record", ROUND1, CMR, "--decision", "approved", "--amount", "160000", code=1)
    assert "above the 300,000.00 available" in refused
    sip("decisions", "record", ROUND1, CMR, "--decision", "not_approved", "--recommendations", "Baseline data.")
    decided = sip("decisions", "list", ROUND1)
    printed_row(decided, BEN, "BEN", "approved", "150,000.00")
    printed_row(decided, CMR, "CMR", "not_approved", "-")
    assert "2 letter(s) queued (1 approved, 1 not approved)" in sip("letters", "send", ROUND1)
    assert "0 letter(s) queued (none new); 2 sent before" in sip("letters", "send", ROUND1)
    assert "round report:" in sip("report", ROUND1, "--output", str(tmp_path / "reports"))
    exported = sip("export", "360giving", ROUND1, "--output", str(tmp_path / "grants.json"))
    assert "1 grant(s), valid against the 360Giving schema" in exported
    assert json.loads((tmp_path / "grants.json").read_text())["grants"][0]["amountAwarded"] == 150000
