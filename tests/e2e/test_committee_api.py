"""The committee's routes through the HTTP API: the secretariat's (with its key), and a
member's download of their bundle through the personal link of its message."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from api.app import create_app
from api.headers import BUNDLE_POLICY
from engine.db import reading
from engine.services import outbox
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.tables import AuditEvent, OutboxMessage
from tests.conftest import ROUND1, Clock, wait_for_run

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "an-officer-key-0123456789abcdef0123456789"
OFFICER = {"Authorization": f"Bearer {KEY}"}
BEN, CMR = "SIP-2018-R1-0001", "SIP-2018-R1-0004"


@pytest.fixture
def client(committee: Runtime) -> Iterator[TestClient]:
    settings = committee.settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(KEY)}"})
    with TestClient(create_app(settings, now=Clock(datetime(2018, 10, 3, 15, tzinfo=UTC)))) as client:
        yield client


def events(client: TestClient, action: str) -> list[AuditEvent]:
    with reading(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_the_secretariat_sees_the_committee_of_the_meeting_date_and_edits_a_term(client: TestClient) -> None:
    shown = client.get("/committee", headers=OFFICER, params={"on": "2018-10-02"}).json()
    assert len(shown["members"]) == 10 and shown["composition"] == []
    changed = client.put(
        "/committee/ingrid.hansen@committee.example.org/2018-01-01", headers=OFFICER, json={"term_end": "2018-09-30"}
    )
    assert changed.json()["outcome"] == "updated"
    after = client.get("/committee", headers=OFFICER, params={"on": "2018-10-02"}).json()
    assert after["composition"] == ["9 members serve, not 10", "1 member(s) from WEOG, not 2"]
    bad = client.put("/committee/x@example.org/2018-01-01", headers=OFFICER, json={"name": "X", "role": "chair"})
    assert bad.status_code == 422 and [e["path"] for e in bad.json()["errors"]] == ["$.body.role"]
    partial = client.put("/committee/x@example.org/2018-01-01", headers=OFFICER, json={"name": "X"})
    assert partial.status_code == 422 and {e["path"] for e in partial.json()["errors"]} >= {"role", "country"}
    assert client.get("/committee").status_code == 401


def test_decisions_through_the_api_are_all_or_none_and_refusals_are_audited(client: TestClient) -> None:
    refused = client.post(
        f"/rounds/{ROUND1}/decisions",
        headers=OFFICER,
        json={
            "decisions": [
                {"reference": BEN, "decision": "approved", "amount": "190000"},
                {"reference": CMR, "decision": "approved", "amount": "190000"},
            ]
        },
    )
    assert refused.status_code == 422 and "above the 300,000.00 available" in refused.json()["message"]
    assert [e.actor for e in events(client, "api.decisions.refused")] == ["amina.diallo"]
    recorded = client.post(
        f"/rounds/{ROUND1}/decisions",
        headers=OFFICER,
        json={
            "decisions": [
                {"reference": BEN, "decision": "approved", "amount": "190000"},
                {"reference": CMR, "decision": "deferred", "recommendations": "Confirm the ratification date."},
            ]
        },
    )
    assert recorded.status_code == 200 and recorded.json()["approved_total"] == "190000.00"


@pytest.mark.prefect
def test_bundles_letters_and_open_data_run_through_the_api_and_a_member_downloads_their_bundle(
    client: TestClient, prefect_harness: None
) -> None:
    started = client.post(f"/rounds/{ROUND1}/bundles", headers=OFFICER)
    assert started.status_code == 202 and wait_for_run(started.json()["flow_run_id"]).is_completed()
    assert len(client.get(f"/rounds/{ROUND1}/bundles", headers=OFFICER).json()) == 10
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.recipient == "martin.gomez@committee.example.org")
        ).one()
        text = outbox.materialize(session, rt.settings, message).text
    assert message.language == "es"
    link = re.search(r"http://127\.0\.0\.1:8000(/committee/bundle\?token=[\w-]+)", text).group(1)  # type: ignore[union-attr]
    opened = client.get(link)
    assert opened.status_code == 200 and "Martín Gómez" in opened.text and opened.headers["cache-control"] == "no-store"
    assert opened.headers["content-security-policy"] == BUNDLE_POLICY  # its inline styles, no script
    assert client.get("/committee/bundle", params={"token": "forged"}).status_code == 404
    assert [e.actor for e in events(client, "bundle.downloaded")] == ["martin.gomez@committee.example.org"]
    assert len(events(client, "bundle.download.refused")) == 1
    client.post(
        f"/rounds/{ROUND1}/decisions",
        headers=OFFICER,
        json={
            "decisions": [
                {"reference": BEN, "decision": "approved", "amount": "190000"},
                {"reference": CMR, "decision": "not_approved", "recommendations": "Give the baseline data."},
            ]
        },
    )
    sent = client.post(f"/rounds/{ROUND1}/letters", headers=OFFICER)
    assert wait_for_run(sent.json()["flow_run_id"]).is_completed()
    with reading(rt.engine) as session:
        letters = session.exec(select(OutboxMessage.kind).where(OutboxMessage.kind.startswith("decision_"))).all()  # type: ignore[attr-defined]
    assert sorted(letters) == ["decision_approved", "decision_not_approved"]
    package = client.get(f"/rounds/{ROUND1}/360giving", headers=OFFICER).json()
    assert [g["amountAwarded"] for g in package["grants"]] == [190000]


def test_bundles_before_screening_is_done_are_refused_at_once(imported: Runtime) -> None:
    settings = imported.settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(KEY)}"})
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"/rounds/{ROUND1}/bundles", headers=OFFICER)
    assert answer.status_code == 409 and "the bundles are prepared once screening" in answer.json()["message"]


def test_the_meeting_its_funds_attendance_and_a_members_conflict_through_the_api(client: TestClient) -> None:
    meeting = client.put(
        f"/rounds/{ROUND1}/meeting",
        headers=OFFICER,
        json={"starts_on": "2018-10-02", "ends_on": "2018-10-04", "place": " Geneva "},
    )
    assert meeting.status_code == 200
    assert meeting.json() == {
        "round_id": ROUND1,
        "starts_on": "2018-10-02",
        "ends_on": "2018-10-04",
        "place": "Geneva",
        "funds_available": "300000.00",
        "attendees": None,
        "updated_at": "2018-10-03T15:00:00Z",
    }
    backwards = client.put(
        f"/rounds/{ROUND1}/meeting",
        headers=OFFICER,
        json={"starts_on": "2018-10-02", "ends_on": "2018-10-01", "place": "x"},
    )
    assert backwards.status_code == 422 and backwards.json()["errors"] == [
        {"path": "ends_on", "message": "is before the meeting starts (2018-10-02)"}
    ]
    funds = client.put(f"/rounds/{ROUND1}/funds", headers=OFFICER, json={"amount": "250000.50"})
    assert funds.status_code == 200 and funds.json()["funds_available"] == "250000.50"
    assert client.put(f"/rounds/{ROUND1}/funds", headers=OFFICER, json={"amount": 0}).status_code == 422
    attending = client.put(
        f"/rounds/{ROUND1}/attendance",
        headers=OFFICER,
        json={"attendees": ["Kwame.Boateng@committee.example.org", "ana.souza@committee.example.org"]},
    )
    assert attending.status_code == 200 and attending.json()["attendees"] == [
        "ana.souza@committee.example.org",
        "kwame.boateng@committee.example.org",
    ]
    stranger = client.put(f"/rounds/{ROUND1}/attendance", headers=OFFICER, json={"attendees": ["x@example.org"]})
    assert stranger.status_code == 422 and stranger.json()["error"] == "invalid"
    path = f"/rounds/{ROUND1}/applications/{BEN}/member-conflicts"
    conflict = {"email": "Kadri.Tamm@committee.example.org", "reason": "advised the ministry"}
    assert client.post(path, headers=OFFICER, json=conflict).json() == {
        "reference": BEN,
        "member": "kadri.tamm@committee.example.org",
        "recorded": True,
    }
    assert client.post(path, headers=OFFICER, json=conflict).json()["recorded"] is False
    nobody = client.post(path, headers=OFFICER, json={"email": "x@example.org", "reason": "r"})
    assert nobody.status_code == 404 and nobody.json()["error"] == "not_found"
    assert client.put(f"/rounds/{ROUND1}/meeting", json={}).status_code == 401


def test_a_meeting_from_1970_to_2000_or_a_day_given_as_a_number_is_refused_naming_the_field(
    client: TestClient,
) -> None:
    far = client.put(
        f"/rounds/{ROUND1}/meeting",
        headers=OFFICER,
        json={"starts_on": "1970-01-01", "ends_on": "2000-01-01", "place": "Geneva"},
    )
    assert far.status_code == 422
    assert [e["path"] for e in far.json()["errors"]] == ["starts_on", "ends_on"]
    assert "before the round opens (2018-06-05)" in far.json()["message"]
    late = client.put(f"/rounds/{ROUND1}/meeting", headers=OFFICER, json={"starts_on": "2021-01-04", "place": "x"})
    assert late.status_code == 422 and late.json()["errors"][0]["path"] == "starts_on"
    as_number = client.put(f"/rounds/{ROUND1}/meeting", headers=OFFICER, json={"starts_on": 0, "place": "Geneva"})
    assert as_number.status_code == 422 and as_number.json()["errors"][0]["path"] == "$.body.starts_on"
    assert client.get(f"/rounds/{ROUND1}", headers=OFFICER).status_code == 200
    for day in ("0", "1538438400", "2018-10-02T00:00:00"):
        refused = client.get("/committee", headers=OFFICER, params={"on": day})
        assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "$.query.on", day
