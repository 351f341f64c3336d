"""`sip grants` at the terminal: the round's grants as a table and as JSON, a signature
recorded from a file, and a payment refused before the grant is active, saying why."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from engine.services.setup import Runtime
from tests.conftest import ROUND1
from tests.integration.test_grant_reports import active  # noqa: F401  (the fixture)
from tests.integration.test_opendata import decided  # noqa: F401  (the fixture)

BEN = "SIP-2018-R1-0001"


def sip(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def test_the_grants_of_a_round_are_listed_signed_and_paid_from_the_terminal(
    decided: Runtime,  # noqa: F811
    tmp_path: Path,
) -> None:
    listed = json.loads(sip("grants", "list", ROUND1, "--json"))
    assert [{k: g[k] for k in ("reference", "state", "award", "paid", "balance")} for g in listed] == [
        {"reference": BEN, "state": "awarded", "award": "150000.00", "paid": "0.00", "balance": "150000.00"}
    ]
    refused = sip("grants", "pay", BEN, "60000", "--finance-ref", "FIN-1", code=1)
    assert "a grant is paid once its agreement is signed by both" in refused
    signed = tmp_path / "agreement-signed.pdf"
    signed.write_bytes(b"%PDF-1.7\n% signed\n")
    out = sip("grants", "sign", BEN, "--as", "recipient", "--signer", "Thabo Mokoena", "--file", str(signed))
    assert "the recipient's signature is recorded (1 of 2); the grant is awarded" in out
    wrong_order = sip("grants", "sign", BEN, "--as", "recipient", "--signer", "Someone", "--file", str(signed), code=1)
    assert "recorded already" in wrong_order
    table = sip("grants", "list", ROUND1)
    assert BEN in table and "150,000.00" in table and "1 of 2" in table
    shown = sip("grants", "show", BEN)
    assert "condition 1: Name the district focal points. (not met yet)" in shown and "first progress report" in shown


def test_the_secretariat_reads_a_rounds_grants_from_the_api(decided: Runtime) -> None:  # noqa: F811
    import warnings

    from api.app import create_app
    from domain.keys import KeyScope
    from engine.db import unit_of_work
    from engine.services.keys import create_key
    from tests.conftest import AFTER_CLOSE, Clock

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from datetime import timedelta

    with unit_of_work(decided.engine) as session:
        key = create_key(
            session, "reader", scope=KeyScope.READ, expires_at=AFTER_CLOSE + timedelta(days=400), actor="t",
            at=AFTER_CLOSE,
        ).key  # fmt: skip
    with TestClient(create_app(decided.settings, now=Clock(AFTER_CLOSE + timedelta(days=40)))) as client:
        answer = client.get(f"/rounds/{ROUND1}/grants", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        assert [(g["reference"], g["state"], g["award"], g["balance"]) for g in answer.json()] == [
            (BEN, "awarded", "150000.00", "150000.00")
        ]
        assert client.get(f"/rounds/{ROUND1}/grants").status_code == 401
        unknown = client.get("/rounds/sip-1999-r0/grants", headers={"Authorization": f"Bearer {key}"})
        assert unknown.status_code == 404 and "no round 'sip-1999-r0'" in unknown.json()["message"]


def test_a_report_is_recorded_sent_back_accepted_and_the_grant_extended_from_the_terminal(
    active: Runtime,  # noqa: F811
    tmp_path: Path,
) -> None:
    from tests.integration.test_grant_reports import report

    listed = sip("grants", "reports", BEN)
    assert "progress" in listed and "2019-06-01" in listed and "final" in listed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(report(indicators=[])))
    refused = sip("grants", "report", BEN, "1", "--file", str(bad), code=1)
    assert "indicator 1 of output 1 has no progress reported" in refused
    good = tmp_path / "report-1.json"
    good.write_text(json.dumps(report({"personnel": 46000})))
    out = sip("grants", "report", BEN, "1", "--file", str(good))
    assert "report 1 (progress) is submitted" in out and "personnel: 46,000.00 spent of 40,000.00 budgeted" in out
    out = sip("grants", "revise", BEN, "1", "--reason", "Explain the personnel costs.", "--reason", "Add the photos.")
    assert "report 1 is sent back for revision" in out
    assert "sent back: Explain the personnel costs." in sip("grants", "reports", BEN)
    sip("grants", "report", BEN, "1", "--file", str(good))
    out = sip("grants", "accept", BEN, "1")
    assert "report 1 is accepted; released 120,000.00 of 150,000.00" in out
    assert "give one change" in sip("grants", "amend", BEN, "--reason", "x", code=1)
    out = sip("grants", "amend", BEN, "--end", "2021-05-02", "--reason", "Floods at the sites.")
    assert "amendment 1 (extension) is approved" in out
    assert json.loads(sip("grants", "reports", BEN, "--json"))[-1]["due_on"] == "2021-07-01"
    assert "1. extension" in sip("grants", "amendments", BEN)
    out = sip("grants", "close-out", BEN)
    assert "before it closes: final report is not accepted yet" in out
    assert "closes after its final report" in sip("grants", "close", BEN, code=1)
