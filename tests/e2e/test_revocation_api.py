"""Ending access at once, through the HTTP API and the command line: a deactivated
reviewer, a reviewer taken off an application or conflicted on it, a reviewer who
signs out, and a person whose every link and session the secretariat withdraws. Each
ending is audited with who did it (and why, for a withdrawal)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from cli import app as sip_app
from engine.db import reading
from engine.services.setup import Runtime
from engine.tables import AuditEvent, OutboxMessage
from tests.conftest import AFTER_R4, ROUND4, Clock, bundle_link_token
from tests.e2e.test_review_api import BEN, LSO, OFFICER, _client, link, signed_in

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KOFI, ANA = "kofi@example.org", "ana@example.org"


@pytest.fixture
def clock() -> Clock:
    return Clock(AFTER_R4)


@pytest.fixture
def invited(round4: Runtime, clock: Clock) -> Iterator[TestClient]:
    from engine.db import unit_of_work
    from engine.services.review.assignment import assign_reviewers
    from engine.services.review.invitations import invite

    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    yield from _client(round4, clock)


def events(client: TestClient, action: str) -> list[AuditEvent]:
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))).all()
        )


def messages_to(client: TestClient, email: str) -> int:
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        return len(session.exec(select(OutboxMessage.id).where(OutboxMessage.recipient == email)).all())


def unused_link(client: TestClient, clock: Clock, email: str) -> str:
    """A new sign-in link asked for by e-mail (an hour later: one an hour), not used yet: its token."""
    clock.now += timedelta(hours=1)
    assert client.post("/reviewer/links", json={"email": email}).status_code == 202
    return re.search(r"token=([\w-]+)", link(client, email)).group(1)  # type: ignore[union-attr]


def test_a_deactivated_reviewers_session_and_unused_link_stop_working_at_once(
    invited: TestClient, clock: Clock
) -> None:
    kofi = signed_in(invited, KOFI)
    token = unused_link(invited, clock, KOFI)
    assert invited.get(f"/reviewer/assignments/{BEN}", headers=kofi).status_code == 200
    assert invited.patch(f"/reviewers/{KOFI}", headers=OFFICER, json={"active": False}).status_code == 200
    for answer in (
        invited.get(f"/reviewer/assignments/{BEN}", headers=kofi),
        invited.get("/reviewer/assignments", headers=kofi),
        invited.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json={"scores": {"feasibility": 2}}),
        invited.post("/reviewer/sessions", json={"token": token}),
    ):
        assert answer.status_code == 401, answer.text
        assert "withdrawn" in answer.json()["message"] or "closed" in answer.json()["message"]
    [revoked] = events(invited, "access.revoked")
    assert (revoked.actor, revoked.subject_id) == ("amina.diallo", KOFI)
    assert revoked.details == {"cause": "deactivated", "sessions": 1, "links": 1, "bundle_links": 0}
    # No new link for an inactive reviewer (the answer stays the same for everyone).
    clock.now += timedelta(hours=1)
    before = messages_to(invited, KOFI)
    assert invited.post("/reviewer/links", json={"email": KOFI}).status_code == 202
    assert messages_to(invited, KOFI) == before
    # Active again: the old credentials stay ended; a new link works.
    assert invited.patch(f"/reviewers/{KOFI}", headers=OFFICER, json={"active": True}).status_code == 200
    assert invited.get("/reviewer/assignments", headers=kofi).status_code == 401
    assert invited.post("/reviewer/sessions", json={"token": token}).status_code == 401


def test_a_reviewer_deactivated_by_put_loses_access_too(invited: TestClient) -> None:
    kofi = signed_in(invited, KOFI)
    whole = {
        "name": "Kofi Mine",
        "organisation": "Ghana EPA",
        "country": "GHA",
        "areas": ["artisanal_gold_mining"],
        "languages": ["en"],
        "max_load": 3,
        "active": False,
    }
    assert invited.put(f"/reviewers/{KOFI}", headers=OFFICER, json=whole).json()["active"] is False
    assert invited.get("/reviewer/assignments", headers=kofi).status_code == 401


def test_a_reviewer_taken_off_an_application_or_conflicted_on_it_no_longer_sees_it(invited: TestClient) -> None:
    ana = signed_in(invited, ANA)
    assert {a["reference"] for a in invited.get("/reviewer/assignments", headers=ana).json()} == {BEN, LSO}
    removed = invited.delete(
        f"/rounds/{ROUND4}/applications/{BEN}/reviewers/{ANA}", headers=OFFICER, params={"reason": "stepped back"}
    )
    assert removed.status_code == 200
    assert invited.get(f"/reviewer/assignments/{BEN}", headers=ana).status_code == 404
    save = invited.put(f"/reviewer/assignments/{BEN}/review", headers=ana, json={"scores": {"feasibility": 2}})
    assert save.status_code == 404
    conflict = invited.post(
        f"/rounds/{ROUND4}/applications/{LSO}/conflicts",
        headers=OFFICER,
        json={"email": ANA, "reason": "consults for the applicant"},
    )
    assert conflict.json()["recorded"] is True
    assert invited.get(f"/reviewer/assignments/{LSO}", headers=ana).status_code == 404
    assert invited.get("/reviewer/assignments", headers=ana).json() == []


def test_a_reviewer_signs_out_and_the_session_ends(invited: TestClient) -> None:
    kofi = signed_in(invited, KOFI)
    other = signed_in(invited, ANA)
    out = invited.delete("/reviewer/sessions/current", headers=kofi)
    assert out.status_code == 200 and out.json()["email"] == KOFI and out.json()["signed_out_at"]
    ended = invited.get("/reviewer/assignments", headers=kofi)
    assert ended.status_code == 401 and "signed out" in ended.json()["message"]
    assert invited.delete("/reviewer/sessions/current", headers=kofi).status_code == 401
    assert invited.delete("/reviewer/sessions/current").status_code == 401
    assert invited.get("/reviewer/assignments", headers=other).status_code == 200  # only that session
    assert [e.actor for e in events(invited, "reviewer.signed_out")] == [KOFI]


def test_the_pages_sign_out_button_ends_the_session_in_the_reviewers_language(invited: TestClient) -> None:
    url = link(invited, ANA)
    page = invited.get(url[url.index("/reviewer") :])
    token = re.search(r'name="token" value="([\w-]+)"', page.text).group(1)  # type: ignore[union-attr]
    signed = invited.post("/reviewer/sign-in", data={"token": token, "lang": "es"})
    assert '/reviewer/sign-out"' in signed.text and "Cerrar sesión" in signed.text  # from any page of the workspace
    session = invited.cookies["sip_reviewer_session"]  # the browser's cookie holds the session
    assert session not in signed.text  # never shown
    assert invited.get("/reviewer/assignments", headers={"Authorization": f"Bearer {session}"}).status_code == 200
    csrf = re.search(r'name="csrf" value="(\w+)"', signed.text).group(1)  # type: ignore[union-attr]
    out = invited.post("/reviewer/sign-out", data={"lang": "es", "csrf": csrf})
    assert out.status_code == 200 and "Ha cerrado la sesión" in out.text
    assert out.headers["cache-control"] == "no-store" and "sip_reviewer_session" not in invited.cookies
    assert invited.get("/reviewer/assignments", headers={"Authorization": f"Bearer {session}"}).status_code == 401
    again = invited.post("/reviewer/sign-out", data={"session_token": session, "lang": "fr"})
    assert again.status_code == 401 and 'href="links?lang=fr"' in again.text


def test_the_secretariat_withdraws_every_session_and_link_of_a_person(invited: TestClient, clock: Clock) -> None:
    first = signed_in(invited, KOFI)
    second_link = unused_link(invited, clock, KOFI)
    second = {
        "Authorization": "Bearer "
        + invited.post("/reviewer/sessions", json={"token": second_link}).json()["session_token"]
    }
    token = unused_link(invited, clock, KOFI)
    path = f"/reviewers/{KOFI}/revocation"
    assert invited.post(path, json={"reason": "laptop stolen"}).status_code == 401
    assert invited.post(path, headers=OFFICER, json={}).status_code == 422
    assert invited.post(path, headers=OFFICER, json={"reason": ""}).status_code == 422
    unknown = invited.post("/reviewers/who@example.org/revocation", headers=OFFICER, json={"reason": "x"})
    assert unknown.status_code == 404
    answer = invited.post(path, headers=OFFICER, json={"reason": "laptop stolen"})
    assert answer.status_code == 200, answer.text
    assert {k: answer.json()[k] for k in ("email", "sessions", "links", "bundle_links")} == {
        "email": KOFI,
        "sessions": 2,
        "links": 1,
        "bundle_links": 0,
    }
    for headers in (first, second):
        assert invited.get("/reviewer/assignments", headers=headers).status_code == 401
    assert invited.post("/reviewer/sessions", json={"token": token}).status_code == 401
    [revoked] = events(invited, "access.revoked")
    assert (revoked.actor, revoked.reason, revoked.details["cause"]) == ("amina.diallo", "laptop stolen", "withdrawn")
    # Still an active reviewer: a new link, sent to their address, lets them back in.
    again = unused_link(invited, clock, KOFI)
    assert invited.post("/reviewer/sessions", json={"token": again}).status_code == 201


def test_the_command_line_withdraws_access_and_deactivates(invited: TestClient) -> None:
    runner = CliRunner()
    kofi = signed_in(invited, KOFI)
    result = runner.invoke(
        sip_app, ["reviewers", "revoke", KOFI, "--reason", "forwarded the invitation", "--by", "Amina Diallo"]
    )
    assert result.exit_code == 0, result.output
    # (counted: those still valid by the command's clock, today; the API's test clock is in 2024)
    assert f"{KOFI}: access withdrawn;" in result.stdout
    assert invited.get("/reviewer/assignments", headers=kofi).status_code == 401
    [revoked] = events(invited, "access.revoked")
    assert (revoked.actor, revoked.reason) == ("Amina Diallo", "forwarded the invitation")
    refused = runner.invoke(sip_app, ["reviewers", "revoke", "who@example.org", "--reason", "x"])
    assert refused.exit_code == 1 and "neither a reviewer nor a committee member" in refused.stderr
    ana = signed_in(invited, ANA)
    assert runner.invoke(sip_app, ["reviewers", "set", ANA, "--inactive"]).exit_code == 0
    assert invited.get("/reviewer/assignments", headers=ana).status_code == 401


GHANA = "kwame.boateng@committee.example.org"


@pytest.fixture
def committee_client(committee: Runtime) -> Iterator[TestClient]:
    from datetime import UTC, datetime

    from engine.db import unit_of_work
    from engine.services.committee.bundles import prepare_bundles

    at = datetime(2018, 9, 20, 9, tzinfo=UTC)
    with unit_of_work(committee.engine) as session:
        prepare_bundles(session, committee.settings, "sip-2018-r1", actor="officer", at=at, pdf=False)
    yield from _client(committee, Clock(datetime(2018, 10, 3, 15, tzinfo=UTC)))


def bundle_token(client: TestClient, email: str, version: int = 1) -> str:
    return bundle_link_token(client.app.state.runtime, email, version)  # type: ignore[attr-defined]


def test_a_program_sends_the_bundle_token_as_a_header_and_the_link_keeps_working(committee_client: TestClient) -> None:
    token = bundle_token(committee_client, GHANA)
    by_header = committee_client.get("/committee/bundle", headers={"Authorization": f"Bearer {token}"})
    assert by_header.status_code == 200 and "Kwame Boateng" in by_header.text
    assert committee_client.get("/committee/bundle", params={"token": token}).status_code == 200  # the e-mailed link
    forged = committee_client.get("/committee/bundle", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 404


def test_the_secretariat_withdraws_a_committee_members_bundle_links(committee_client: TestClient) -> None:
    token = bundle_token(committee_client, GHANA)
    path = f"/committee/members/{GHANA}/revocation"
    assert committee_client.post(path, json={"reason": "left"}).status_code == 401
    answer = committee_client.post(path, headers=OFFICER, json={"reason": "resigned from the committee"})
    assert answer.status_code == 200 and answer.json()["bundle_links"] == 1
    refused = committee_client.get("/committee/bundle", params={"token": token}, headers={"Accept": "application/json"})
    assert refused.status_code == 410 and "withdrawn" in refused.json()["message"]
    page = committee_client.get("/committee/bundle", params={"token": token})
    assert page.status_code == 410 and "The secretariat has withdrawn this link" in page.text
    assert committee_client.get("/committee/bundle", headers={"Authorization": f"Bearer {token}"}).status_code == 410
    # The same through the reviewers' route (a person may be both), and the command line.
    again = committee_client.post(f"/reviewers/{GHANA}/revocation", headers=OFFICER, json={"reason": "again"})
    assert again.status_code == 200 and again.json()["bundle_links"] == 0
    result = CliRunner().invoke(sip_app, ["committee", "revoke", GHANA, "--reason", "resigned", "--by", "Amina"])
    assert result.exit_code == 0 and "0 bundle link(s) ended" in result.stdout
    assert [(e.actor, e.reason) for e in events(committee_client, "access.revoked")] == [
        ("amina.diallo", "resigned from the committee"),
        ("amina.diallo", "again"),
        ("Amina", "resigned"),
    ]
