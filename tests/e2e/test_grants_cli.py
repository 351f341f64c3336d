"""`sip grants` at the terminal: the round's grants as a table and as JSON, a signature
recorded from a file, and a payment refused before the grant is active, saying why."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from engine.services.setup import Runtime
from tests.conftest import ROUND1
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
