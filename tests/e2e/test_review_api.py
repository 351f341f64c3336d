"""GMP review through the HTTP API: the reviewer signs in with the link of their
invitation and reviews; the secretariat keeps the register, adjusts the assignment,
runs the stages (real Prefect flows) and follows them. Refusals are tested, and every
refused attempt of a reviewer is audited."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from api.app import create_app
from engine.db import reading, unit_of_work
from engine.services import outbox
from engine.services.review.assignment import assign_reviewers
from engine.services.review.invitations import invite
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.tables import AuditEvent, OutboxMessage, ReviewAssignment
from tests.conftest import AFTER_R4, ROUND4, Clock, wait_for_run

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "an-officer-key-0123456789abcdef0123456789"
OFFICER = {"Authorization": f"Bearer {KEY}"}
BEN, LSO = "SIP-2024-R4-0001", "SIP-2024-R4-0002"
FULL = {
    "scores": {"technical_soundness": 4, "area_relevance": 5, "feasibility": 3, "expected_results": 4},
    "recommendation": "support_with_changes",
    "comments_for_committee": "Sound, but the budget is thin.",
    "comments_for_applicant": "Budget the laboratory analyses.",
}


@pytest.fixture
def clock() -> Clock:
    return Clock(AFTER_R4)


def _client(rt: Runtime, clock: Clock) -> Iterator[TestClient]:
    settings = rt.settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(KEY)}"})
    with TestClient(create_app(settings, now=clock)) as client:
        yield client


@pytest.fixture
def client(round4: Runtime, clock: Clock) -> Iterator[TestClient]:
    yield from _client(round4, clock)


@pytest.fixture
def invited(round4: Runtime, clock: Clock) -> Iterator[TestClient]:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    yield from _client(round4, clock)


def link(client: TestClient, email: str) -> str:
    """The link in the reviewer's latest message, as it is delivered."""
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.recipient == email).order_by(OutboxMessage.id.desc())
        ).first()  # type: ignore[union-attr]
        text = outbox.materialize(session, rt.settings, message).text
    return re.search(r"(http\S+/reviewer/sign-in\?\S+)", text).group(1)  # type: ignore[union-attr]


def signed_in(client: TestClient, email: str) -> dict[str, str]:
    token = re.search(r"token=([\w-]+)", link(client, email)).group(1)  # type: ignore[union-attr]
    answer = client.post("/reviewer/sessions", json={"token": token})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['session_token']}"}


def refusals(client: TestClient, action: str) -> list[AuditEvent]:
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == f"{action}.refused")).all())


def test_a_reviewer_signs_in_once_lists_their_applications_and_submits_a_review(invited: TestClient) -> None:
    kofi = signed_in(invited, "kofi@example.org")
    mine = invited.get("/reviewer/assignments", headers=kofi).json()
    assert [(a["reference"], a["state"], a["due_on"]) for a in mine] == [(BEN, "invited", "2024-08-26")]
    dossier = invited.get(f"/reviewer/assignments/{BEN}", headers=kofi).json()
    assert dossier["form_a"]["title"] and [c["id"] for c in dossier["criteria"]][0] == "technical_soundness"
    draft = invited.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json={"scores": {"feasibility": 2}})
    assert draft.status_code == 200 and draft.json()["state"] == "draft"
    submitted = invited.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json={**FULL, "submit": True})
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    again = invited.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json=FULL)
    assert again.status_code == 409 and "can no longer change" in again.json()["message"]
    assert len(refusals(invited, "review.save")) == 1


def test_the_link_opens_a_page_whose_button_signs_in_once(invited: TestClient) -> None:
    url = link(invited, "ana@example.org")
    page = invited.get(url[url.index("/reviewer") :])
    assert page.status_code == 200 and 'action="sign-in"' in page.text and 'lang="es"' in page.text
    token = re.search(r'name="token" value="([\w-]+)"', page.text).group(1)  # type: ignore[union-attr]
    first = invited.post("/reviewer/sign-in", data={"token": token, "lang": "es"})
    assert first.status_code == 200 and BEN in first.text and LSO in first.text  # the workspace, signed in
    assert [r.status_code for r in first.history] == [303] and first.url.path == "/reviewer/workspace"
    invited.cookies.clear()
    second = invited.post("/reviewer/sign-in", data={"token": token, "lang": "es"})
    assert second.status_code == 410 and 'href="links?lang=es"' in second.text  # asks for a new link
    assert invited.post("/reviewer/sessions", json={"token": token}).status_code == 401
    assert len(refusals(invited, "reviewer.sign_in")) == 2


def test_an_application_not_assigned_answers_as_one_that_does_not_exist(invited: TestClient) -> None:
    kofi = signed_in(invited, "kofi@example.org")
    theirs = invited.get(f"/reviewer/assignments/{LSO}", headers=kofi)
    missing = invited.get("/reviewer/assignments/SIP-2024-R4-0099", headers=kofi)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["message"].replace(LSO, "?") == missing.json()["message"].replace("SIP-2024-R4-0099", "?")
    review = invited.put(f"/reviewer/assignments/{LSO}/review", headers=kofi, json={**FULL, "submit": True})
    assert review.status_code == 404
    events = refusals(invited, "review.read") + refusals(invited, "review.save")
    assert {(e.actor, e.subject_id) for e in events} == {
        ("kofi@example.org", LSO),
        ("kofi@example.org", "SIP-2024-R4-0099"),
    }


def test_without_a_valid_session_nothing_is_seen_and_the_attempt_is_audited(invited: TestClient, clock: Clock) -> None:
    assert invited.get("/reviewer/assignments").status_code == 401
    assert invited.get("/reviewer/assignments", headers={"Authorization": "Bearer forged"}).status_code == 401
    kofi = signed_in(invited, "kofi@example.org")
    clock.now = AFTER_R4 + timedelta(hours=13)  # the session has ended
    ended = invited.get(f"/reviewer/assignments/{BEN}", headers=kofi)
    assert ended.status_code == 401 and "session ended" in ended.json()["message"]
    # Unknown callers' refusals are sampled (one row per source and minute, the rest
    # counted); a session that names its reviewer is audited under their name.
    [unknown] = refusals(invited, "review.list")
    assert unknown.actor == "unknown" and unknown.details and unknown.details["source"] == "testclient"
    [read] = refusals(invited, "review.read")
    assert (read.actor, read.subject_id) == ("kofi@example.org", BEN)


def test_a_bad_review_is_refused_field_by_field_and_nothing_saved(invited: TestClient) -> None:
    kofi = signed_in(invited, "kofi@example.org")
    off = invited.put(
        f"/reviewer/assignments/{BEN}/review",
        headers=kofi,
        json={"scores": {"feasibility": 0, "technical_soundness": "high"}, "opinion": "x"},
    )
    assert off.status_code == 422
    paths = {e["path"] for e in off.json()["errors"]}
    assert paths == {"$.scores.technical_soundness", "$.opinion"}
    scale = invited.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json={"scores": {"feasibility": 0}})
    assert scale.status_code == 422 and scale.json()["errors"] == [
        {"path": "$.scores.feasibility", "message": "0 is not on the scale 1, 2, 3, 4, 5"}
    ]
    assert invited.get(f"/reviewer/assignments/{BEN}", headers=kofi).json()["review"] is None
    assert len(refusals(invited, "review.save")) == 2


def test_a_review_after_the_stage_closed_is_refused(invited: TestClient) -> None:
    from engine.services.stages import send_to_committee

    kofi = signed_in(invited, "kofi@example.org")
    rt = invited.app.state.runtime  # type: ignore[attr-defined]
    with unit_of_work(rt.engine) as session:
        send_to_committee(session, ROUND4, actor="officer", at=AFTER_R4)
    late = invited.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json={**FULL, "submit": True})
    assert late.status_code == 409 and "closed on" in late.json()["message"]


def test_a_reviewer_declines_or_declares_a_conflict_and_the_application_leaves_their_list(invited: TestClient) -> None:
    ana = signed_in(invited, "ana@example.org")
    assert invited.post(f"/reviewer/assignments/{BEN}/decline", headers=ana, json={"reason": ""}).status_code == 422
    assert (
        invited.post(f"/reviewer/assignments/{BEN}/decline", headers=ana, json={"reason": "on leave"}).json()["state"]
        == "declined"
    )
    assert (
        invited.post(
            f"/reviewer/assignments/{LSO}/conflict", headers=ana, json={"reason": "I advised the ministry"}
        ).json()["state"]
        == "conflicted"
    )
    assert invited.get("/reviewer/assignments", headers=ana).json() == []
    shown = {a["reference"]: a for a in invited.get(f"/rounds/{ROUND4}/review/assignment", headers=OFFICER).json()}
    assert ("ana@example.org", "declined", "on leave") in [
        (r["email"], r["state"], r["note"]) for r in shown[BEN]["reviewers"]
    ]


def test_a_new_link_is_sent_only_to_a_reviewer_with_reviews_to_do_and_the_answer_never_tells(
    invited: TestClient,
) -> None:
    answers = [
        invited.post("/reviewer/links", json={"email": e})
        for e in ("lena@example.org", "nobody@example.org", "bene@example.org")
    ]
    assert {a.status_code for a in answers} == {202} and len({a.text for a in answers}) == 1
    assert invited.post("/reviewer/links", json={"email": "not an address"}).status_code == 422
    form = invited.post("/reviewer/links", data={"email": "lena@example.org", "lang": "fr"})
    assert form.status_code == 202 and "lien" in form.text
    rt = invited.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        sent = session.exec(select(OutboxMessage.recipient).where(OutboxMessage.kind == "review_link")).all()
    assert sent == ["lena@example.org"]  # once: at most one an hour
    assert invited.get(link(invited, "lena@example.org")[len("http://127.0.0.1:8000") :]).status_code == 200


def test_the_secretariat_keeps_the_register_through_the_api(client: TestClient) -> None:
    added = client.put(
        "/reviewers/ivan@example.org",
        headers=OFFICER,
        json={
            "name": "Ivan Cement",
            "organisation": "Cement Institute",
            "country": "ARM",
            "areas": ["cement"],
            "languages": ["en"],
            "max_load": 4,
        },
    )
    assert added.status_code == 200 and added.json()["outcome"] == "added"
    partial = client.put("/reviewers/zoe@example.org", headers=OFFICER, json={"name": "Zoe"})
    assert partial.status_code == 422 and {e["path"] for e in partial.json()["errors"]} == {
        f"$.body.{field}" for field in ("organisation", "country", "areas", "languages", "max_load")
    }
    bad = client.patch("/reviewers/ivan@example.org", headers=OFFICER, json={"areas": ["concrete"], "max_load": -2})
    assert bad.status_code == 422 and {e["path"] for e in bad.json()["errors"]} == {
        "$.body.areas[0]",
        "$.body.max_load",
    }
    off = client.patch("/reviewers/ivan@example.org", headers=OFFICER, json={"active": False})
    assert off.json()["active"] is False and off.json()["outcome"] == "updated"
    assert client.patch("/reviewers/who@example.org", headers=OFFICER, json={"max_load": 2}).status_code == 404
    assert client.get("/reviewers").status_code == 401
    assert len(client.get("/reviewers", headers=OFFICER).json()) == 6


def test_the_secretariat_adjusts_the_assignment_by_hand(client: TestClient) -> None:
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with unit_of_work(rt.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
    path = f"/rounds/{ROUND4}/applications/{BEN}/reviewers"
    conflicted = client.put(f"{path}/bene@example.org", headers=OFFICER)
    assert conflicted.status_code == 409 and "conflict of interest" in conflicted.json()["message"]
    assert [(e.actor, e.subject_id) for e in refusals(client, "api.add_reviewer")] == [
        ("amina.diallo", f"PUT {path}/bene@example.org")
    ]
    assert client.delete(f"{path}/kofi@example.org", headers=OFFICER).status_code == 422  # no reason
    removed = client.delete(f"{path}/kofi@example.org", headers=OFFICER, params={"reason": "asked to step back"})
    assert removed.json()["state"] == "removed"
    assert client.put(f"{path}/lena@example.org", headers=OFFICER).json()["outcome"] == "added"
    shown = {a["reference"]: a for a in client.get(f"/rounds/{ROUND4}/review/assignment", headers=OFFICER).json()}
    assert sorted((r["email"], r["state"]) for r in shown[BEN]["reviewers"]) == [
        ("ana@example.org", "proposed"),
        ("kofi@example.org", "removed"),
        ("lena@example.org", "proposed"),
    ]
    conflict = client.post(
        f"/rounds/{ROUND4}/applications/{LSO}/conflicts",
        headers=OFFICER,
        json={"email": "lena@example.org", "reason": "consults for the applicant"},
    )
    assert conflict.json()["recorded"] is True
    with reading(rt.engine) as session:
        states = session.exec(select(ReviewAssignment.state)).all()
    assert sorted(states) == ["conflicted", "proposed", "proposed", "proposed", "removed"]


@pytest.mark.prefect
def test_the_secretariat_runs_the_review_stage_through_the_api_with_real_flows(
    client: TestClient, clock: Clock, prefect_harness: None
) -> None:
    clock.now = datetime.now(UTC)  # the flows date what they do now
    for step, path in (("assign", "/review/assignment"), ("invite", "/review/invitations")):
        started = client.post(f"/rounds/{ROUND4}{path}", headers=OFFICER)
        assert started.status_code == 202, (step, started.text)
        assert wait_for_run(started.json()["flow_run_id"]).is_completed()
    review = client.get(f"/rounds/{ROUND4}/review", headers=OFFICER).json()
    assert review["status"] == "review" and review["stage"]["closed_at"] is None
    assert review["assignments"] == {"invited": 4}
    kofi = signed_in(client, "kofi@example.org")
    client.put(f"/reviewer/assignments/{BEN}/review", headers=kofi, json={**FULL, "submit": True})
    closed = client.post(f"/rounds/{ROUND4}/review/close", headers=OFFICER, json={"reason": "committee meets"})
    assert wait_for_run(closed.json()["flow_run_id"]).is_completed()
    after = client.get(f"/rounds/{ROUND4}/review", headers=OFFICER).json()
    assert after["status"] == "committee" and sorted(after["short_of_reviews"]) == [BEN, LSO]
    ben = next(a for a in after["applications"] if a["reference"] == BEN)
    assert ben["reviews_submitted"] == 1 and ben["reviews"][0]["email"] == "kofi@example.org"


def test_the_review_routes_need_a_secretariat_key(client: TestClient) -> None:
    for method, path in (
        ("get", f"/rounds/{ROUND4}/review"),
        ("post", f"/rounds/{ROUND4}/review/invitations"),
        ("post", f"/rounds/{ROUND4}/review/close"),
        ("get", f"/rounds/{ROUND4}/review/assignment"),
        ("put", f"/rounds/{ROUND4}/applications/{BEN}/reviewers/lena@example.org"),
    ):
        assert client.request(method, path).status_code == 401


def test_a_stage_the_flow_would_refuse_is_refused_at_once_and_audited(client: TestClient) -> None:
    nobody = client.post(f"/rounds/{ROUND4}/review/invitations", headers=OFFICER)
    assert nobody.status_code == 409 and "no reviewers are proposed" in nobody.json()["message"]
    assert nobody.json()["next"] == [
        {
            "step": "assign_reviewers",
            "what": "propose reviewers",
            "round_id": ROUND4,
            "route": f"POST /rounds/{ROUND4}/review/assignment",
        }
    ]
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with unit_of_work(rt.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
    past = client.post(f"/rounds/{ROUND4}/review/invitations", headers=OFFICER, json={"due": "2024-08-01"})
    assert past.status_code == 422 and "must be after today (2024-08-05)" in past.json()["message"]
    early = client.post(f"/rounds/{ROUND4}/review/close", headers=OFFICER)
    assert early.status_code == 409 and "the GMP review stage must be open" in early.json()["message"]
    assert [step["route"] for step in early.json()["next"]] == [f"POST /rounds/{ROUND4}/review/invitations"]
    malformed = client.post(f"/rounds/{ROUND4}/review/invitations", headers=OFFICER, json={"due": "soon"})
    assert malformed.status_code == 422
    assert len(refusals(client, "api.invite")) == 3 and len(refusals(client, "api.close_review")) == 1


def test_the_secretariat_moves_the_due_date_and_the_reviewers_see_it(invited: TestClient) -> None:
    moved = invited.put(f"/rounds/{ROUND4}/review/due", headers=OFFICER, json={"due": "2024-09-09"})
    assert moved.status_code == 200
    assert moved.json() == {"round": ROUND4, "due_on": "2024-09-09", "was": "2024-08-26"}
    past = invited.put(f"/rounds/{ROUND4}/review/due", headers=OFFICER, json={"due": "2024-08-05"})
    assert past.status_code == 422 and past.json()["errors"] == [{"path": "due", "message": "must be after 2024-08-05"}]
    assert invited.put(f"/rounds/{ROUND4}/review/due", json={"due": "2024-09-09"}).status_code == 401
    kofi = signed_in(invited, "kofi@example.org")
    assert [a["due_on"] for a in invited.get("/reviewer/assignments", headers=kofi).json()] == ["2024-09-09"]


def test_the_page_to_ask_for_a_new_link_is_in_the_reviewers_language(client: TestClient) -> None:
    page = client.get("/reviewer/links", params={"lang": "fr"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'lang="fr"' in page.text and 'action="links"' in page.text
