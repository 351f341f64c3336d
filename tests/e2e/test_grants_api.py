"""The secretariat's grant routes over HTTP: a report refused field by field, then
recorded, sent back and accepted (releasing the second instalment); a payment over what
is released refused; an extension moving the final report; close-out refused until its
time; a read-only key refused every change."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from api.app import create_app
from domain.keys import KeyScope
from engine.db import unit_of_work
from engine.services.keys import create_key
from engine.services.setup import Runtime
from tests.conftest import Clock
from tests.integration.test_grant_reports import BEN, active, report  # noqa: F401  (the fixture)
from tests.integration.test_opendata import decided  # noqa: F401  (the fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2019, 5, 20, 9, tzinfo=UTC)


@pytest.fixture
def client(active: Runtime) -> Iterator[tuple[TestClient, Clock, dict[str, str], dict[str, str]]]:  # noqa: F811
    with unit_of_work(active.engine) as session:
        keys = {
            scope: create_key(
                session, scope.value, scope=scope, expires_at=NOW + timedelta(days=900), actor="t",
                at=NOW - timedelta(days=300),
            ).key
            for scope in (KeyScope.FULL, KeyScope.READ)
        }  # fmt: skip
    clock = Clock(NOW)
    with TestClient(create_app(active.settings, now=clock)) as http:
        yield (
            http,
            clock,
            {"Authorization": f"Bearer {keys[KeyScope.FULL]}"},
            {"Authorization": f"Bearer {keys[KeyScope.READ]}"},
        )


def test_a_report_goes_through_the_api_from_refused_to_accepted_releasing_an_instalment(
    client: tuple[TestClient, Clock, dict[str, str], dict[str, str]],
) -> None:
    http, clock, full, read = client
    refused = http.post(f"/grants/{BEN}/reports/1", json=report(indicators=[]), headers=full)
    assert refused.status_code == 422
    assert any(
        e["path"] == "$.indicators" and "has no progress reported" in e["message"] for e in refused.json()["errors"]
    )
    assert http.post(f"/grants/{BEN}/reports/1", json=report(), headers=read).status_code == 403
    sent = http.post(f"/grants/{BEN}/reports/1", json=report({"personnel": 50000}), headers=full)
    assert sent.status_code == 200 and sent.json()["state"] == "submitted"
    assert sent.json()["flags"] == [
        "personnel: 50,000.00 spent of 40,000.00 budgeted, 25.0 % over (the round's tolerance is 10 %)"
    ]
    no_reason = http.post(f"/grants/{BEN}/reports/1/revision", json={"reasons": " "}, headers=full)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["path"].endswith("reasons")
    back = http.post(
        f"/grants/{BEN}/reports/1/revision", json={"reasons": "Explain the personnel costs."}, headers=full
    )
    assert back.json()["state"] == "revision_requested" and back.json()["revisions"] == 1
    assert http.post(f"/grants/{BEN}/reports/1", json=report(), headers=full).json()["state"] == "submitted"
    over = http.post(
        f"/grants/{BEN}/payments",
        json={"amount": 60000.01, "finance_ref": "F-1", "paid_on": "2019-05-20"},
        headers=full,
    )
    assert over.status_code == 422 and "the instalments released so far leave to pay" in over.json()["message"]
    accepted = http.post(f"/grants/{BEN}/reports/1/acceptance", json={"note": "Thank you."}, headers=full)
    assert accepted.json()["state"] == "accepted"
    grant = http.get(f"/grants/{BEN}", headers=read).json()
    assert (grant["state"], grant["released"], grant["ends_on"]) == ("active", "120000.00", "2020-11-02")
    paid = http.post(
        f"/grants/{BEN}/payments", json={"amount": 120000, "finance_ref": "F-1", "paid_on": "2019-05-20"}, headers=full
    )
    assert paid.status_code == 200 and paid.json()["balance"] == "30000.00"


def test_an_extension_through_the_api_moves_the_final_report_and_close_out_waits(
    client: tuple[TestClient, Clock, dict[str, str], dict[str, str]],
) -> None:
    http, clock, full, read = client
    before = http.get(f"/grants/{BEN}/reports", headers=read).json()
    bad = http.post(
        f"/grants/{BEN}/amendments",
        json={"kind": "extension", "ends_on": "2018-10-01", "reason": "Rains."},
        headers=full,
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.ends_on"
    asked = http.post(
        f"/grants/{BEN}/amendments",
        json={"kind": "extension", "ends_on": "2021-02-02", "reason": "Floods.", "requested": True},
        headers=full,
    )
    assert asked.json()["state"] == "requested"
    assert http.get(f"/grants/{BEN}/reports", headers=read).json() == before
    decided_ = http.post(
        f"/grants/{BEN}/amendments/1/decision", json={"approve": True, "reason": "Documented."}, headers=full
    )
    assert decided_.json()["state"] == "approved" and decided_.json()["after"] == {"ends_on": "2021-02-02"}
    final = http.get(f"/grants/{BEN}/reports", headers=read).json()[-1]
    assert (final["kind"], final["period_end"], final["due_on"]) == ("final", "2021-02-02", "2021-04-03")
    again = http.post(f"/grants/{BEN}/amendments/1/decision", json={"approve": False, "reason": "x"}, headers=full)
    assert again.status_code == 409
    state = http.get(f"/grants/{BEN}/close-out", headers=read).json()
    assert state["missing"] == ["final report is not accepted yet", "lessons are not recorded yet"]
    closing = http.post(f"/grants/{BEN}/closure", headers=full)
    assert closing.status_code == 409 and "closes after its final report" in closing.json()["message"]
    unknown = http.get("/grants/SIP-1999-R0-0001", headers=read)
    assert unknown.status_code == 404


def test_the_agreement_is_sent_through_the_api_and_opened_by_the_recipients_link(
    decided: Runtime,  # noqa: F811
) -> None:
    from sqlmodel import select

    from engine.services.outbox import materialize
    from engine.tables import OutboxMessage

    at = datetime(2018, 10, 20, 9, tzinfo=UTC)
    with unit_of_work(decided.engine) as session:
        full = create_key(
            session, "full", scope=KeyScope.FULL, expires_at=at + timedelta(days=90), actor="t", at=at
        ).key
    headers = {"Authorization": f"Bearer {full}"}
    with TestClient(create_app(decided.settings, now=Clock(at))) as http:
        assert http.get(f"/grants/{BEN}/agreement", headers=headers).status_code == 404  # none sent yet
        sent = http.post(f"/grants/{BEN}/agreement", headers=headers)
        assert sent.status_code == 200 and (sent.json()["version"], sent.json()["language"]) == (1, "fr")
        latest = http.get(f"/grants/{BEN}/agreement?format=pdf", headers=headers)
        if sent.json()["pdf"]:
            assert latest.status_code == 200 and latest.content.startswith(b"%PDF-")
        with unit_of_work(decided.engine) as session:
            message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "grant_agreement_sent")).one()
            link = materialize(session, decided.settings, message).text.split("/agreement?token=")[1].split()[0]
        opened = http.get(f"/agreement?token={link}", headers={"Accept": "text/html"})
        assert opened.status_code == 200 and "Accord de subvention SIP-2018-R1-0001" in opened.text
        assert opened.headers["content-security-policy"].startswith("default-src 'none'")
        wrong = http.get("/agreement?token=not-a-token", headers={"Accept": "text/html"})
        assert wrong.status_code == 404 and "<html" in wrong.text and "Check the address" in wrong.text
