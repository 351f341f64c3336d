"""The routes that take a secret, attacked through the HTTP API on SQLite and
PostgreSQL: refused attempts are limited per source (429 with Retry-After, the
engine's JSON error), officers' and reviewers' normal use is not, and a flood of
refused requests from unknown callers adds only a handful of audit rows."""

from __future__ import annotations

import re
import time
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlmodel import col, func, select

from api.app import create_app
from engine.db import reading, unit_of_work
from engine.services import outbox
from engine.services.committee.bundles import prepare_bundles
from engine.services.review.assignment import assign_reviewers
from engine.services.review.invitations import invite
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.settings import Settings
from engine.tables import AuditEvent, OutboxMessage
from tests.conftest import AFTER_R4, IN_ROUND1, ROUND1, ROUND4, Clock, example

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "an-officer-key-0123456789abcdef0123456789"
OFFICER = {"Authorization": f"Bearer {KEY}"}
ELSEWHERE = ("127.0.0.2", 50000)  # another client address (nothing is sent to it)


def app_for(rt: Runtime, clock: Clock, **settings: Any) -> FastAPI:
    update = {"secretariat_keys": f"amina.diallo:{token_hash(KEY)}", **settings}
    return create_app(rt.settings.model_copy(update=update), now=clock)


@pytest.fixture
def invited(round4: Runtime) -> Runtime:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    return round4


def link_token(rt: Runtime, email: str) -> str:
    with reading(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.recipient == email).order_by(col(OutboxMessage.id).desc())
        ).first()
        assert message is not None
        text = outbox.materialize(session, rt.settings, message).text
    return re.search(r"/reviewer/sign-in\?\S*?token=([\w-]+)", text).group(1)  # type: ignore[union-attr]


def audit_rows(rt: Runtime) -> int:
    with reading(rt.engine) as session:
        return session.exec(select(func.count()).select_from(AuditEvent)).one()


def refusals(rt: Runtime, action: str) -> list[AuditEvent]:
    with reading(rt.engine) as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))).all()
        )


JSON = {"Accept": "application/json"}  # the pages people open answer a page otherwise (tests/e2e/test_error_pages.py)


def assert_too_many(answer: Any, window: int = 60) -> None:
    assert answer.status_code == 429, answer.text
    assert 1 <= int(answer.headers["retry-after"]) <= window
    body = answer.json()
    assert body["error"] == "too_many_requests"
    assert f"wait {answer.headers['retry-after']} seconds (Retry-After), then " in body["message"]


def flood(client: TestClient, count: int) -> dict[int, int]:
    """`count` refused requests of unknown callers, on the three routes of issue 12."""
    statuses: dict[int, int] = {}
    for i in range(count):
        match i % 3:
            case 0:
                answer = client.get("/reviewer/assignments", headers={"Authorization": f"Bearer forged-{i}"})
            case 1:
                answer = client.post("/reviewer/sessions", json={"token": f"forged-{i}"})
            case _:
                answer = client.get("/committee/bundle", params={"token": f"forged-{i}"})
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return statuses


def test_a_thousand_refused_unauthenticated_requests_add_at_most_a_handful_of_audit_rows(round4: Runtime) -> None:
    # Without the rate limit (set out of reach), to measure the sampler alone.
    before = audit_rows(round4)
    with TestClient(app_for(round4, Clock(AFTER_R4), rate_limit_failed_attempts="100000/minute")) as client:
        statuses = flood(client, 1000)
        during = audit_rows(round4) - before
    after = audit_rows(round4) - before  # the API stopped: the minute's count is written
    print(f"\n1,000 refused unauthenticated requests, no rate limit: {during} audit rows, {after} once stopped")
    assert statuses == {401: 667, 404: 333}
    assert during == 1 and after == 2
    [count] = refusals(round4, "refusals.counted")
    assert count.details and count.details["refused"] == 1000 and count.details["source"] == "testclient"
    assert count.details["by_action"] == {
        "review.list.refused": 334,
        "reviewer.sign_in.refused": 333,
        "bundle.download.refused": 333,
    }
    # With the default limits: ten are refused as before, the others get 429.
    before = audit_rows(round4)
    with TestClient(app_for(round4, Clock(AFTER_R4))) as client:
        statuses = flood(client, 1000)
    added = audit_rows(round4) - before
    print(f"1,000 refused unauthenticated requests, default rate limits: {statuses}, {added} audit rows")
    assert statuses[429] == 990 and added == 2
    count = refusals(round4, "refusals.counted")[-1]  # every one of the 1,000 is in the count
    assert count.details and (count.details["refused"], count.details["audited_one_by_one"]) == (1000, 1)
    limited = {a: n for a, n in count.details["by_action"].items() if a.endswith(".rate_limited")}
    assert sum(limited.values()) == 990 and "api.open_session.rate_limited" in limited


def test_the_attempt_after_the_limit_gets_429_even_with_the_right_secret_and_other_sources_are_not_affected(
    invited: Runtime,
) -> None:
    app = app_for(invited, Clock(AFTER_R4), rate_limit_failed_attempts="3/minute")
    with TestClient(app) as client:
        for i in range(3):
            assert client.post("/reviewer/sessions", json={"token": f"forged-{i}"}).status_code == 401
        limited = client.post("/reviewer/sessions", json={"token": "forged-3"})
        assert_too_many(limited)
        assert "try again with the link, code or key exactly as it was sent" in limited.json()["message"]
        right = link_token(invited, "kofi@example.org")
        assert_too_many(client.post("/reviewer/sessions", json={"token": right}))  # guessing stops, right or not
        assert_too_many(client.get("/reviewer/assignments"))  # on every route that takes a secret
        assert_too_many(client.get("/committee/bundle", params={"token": "x"}, headers=JSON))
        assert_too_many(client.post("/reviewer/sign-in", data={"token": right}, headers=JSON))
        page = client.post("/reviewer/sign-in", data={"token": right, "lang": "es"})
        assert page.status_code == 429 and page.headers["retry-after"] and "<h1>" in page.text
        elsewhere = TestClient(app, client=ELSEWHERE)
        signed = elsewhere.post("/reviewer/sessions", json={"token": right})
        assert signed.status_code == 201
        session = {"Authorization": f"Bearer {signed.json()['session_token']}"}
        assert elsewhere.get("/reviewer/assignments", headers=session).status_code == 200


def test_use_under_the_limit_works_and_a_reviewers_normal_use_is_never_limited(invited: Runtime) -> None:
    with TestClient(app_for(invited, Clock(AFTER_R4), rate_limit_failed_attempts="3/minute")) as client:
        for i in range(2):
            assert client.post("/reviewer/sessions", json={"token": f"mistyped-{i}"}).status_code == 401
        signed = client.post("/reviewer/sessions", json={"token": link_token(invited, "kofi@example.org")})
        assert signed.status_code == 201
        session = {"Authorization": f"Bearer {signed.json()['session_token']}"}
        for _ in range(20):
            assert client.get("/reviewer/assignments", headers=session).status_code == 200
        # A reviewer asking for an application not theirs is refused and audited under
        # their name, one by one (an insider's act), and is no guess of a secret.
        for _ in range(5):
            assert client.get("/reviewer/assignments/SIP-2024-R4-0099", headers=session).status_code == 404
        assert [e.actor for e in refusals(invited, "review.read.refused")] == ["kofi@example.org"] * 5


def test_the_limit_lets_the_source_try_again_once_its_window_is_over(invited: Runtime) -> None:
    with TestClient(app_for(invited, Clock(AFTER_R4), rate_limit_failed_attempts="2 per 2 seconds")) as client:
        for _ in range(2):
            assert client.get("/reviewer/assignments", headers={"Authorization": "Bearer x"}).status_code == 401
        limited = client.get("/reviewer/assignments", headers={"Authorization": "Bearer x"})
        assert_too_many(limited, window=2)
        time.sleep(int(limited.headers["retry-after"]) + 0.2)
        assert client.get("/reviewer/assignments", headers={"Authorization": "Bearer x"}).status_code == 401


def test_refused_secretariat_keys_are_limited_per_source_and_an_officers_use_is_not(round4: Runtime) -> None:
    app = app_for(round4, Clock(AFTER_R4), rate_limit_failed_attempts="3/minute")
    with TestClient(app) as client:
        for _ in range(15):
            assert client.get("/reviewers", headers=OFFICER).status_code == 200
        for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Bearer guess"}):
            assert client.get("/reviewers", headers=headers).status_code == 401
        assert_too_many(client.get("/reviewers", headers={"Authorization": "Bearer another-guess"}))
        assert_too_many(client.get(f"/rounds/{ROUND4}/review", headers=OFFICER))
        assert TestClient(app, client=ELSEWHERE).get("/reviewers", headers=OFFICER).status_code == 200
    [refused] = refusals(round4, "api.key.refused")  # sampled: one row for the source's minute
    assert refused.actor == "unknown" and refused.details and refused.details["source"] == "testclient"
    [count] = refusals(round4, "refusals.counted")  # the three refused keys and the two 429s
    assert count.details and count.details["refused"] == 5
    assert count.details["by_action"] == {
        "api.key.refused": 3,
        "api.list_reviewers.rate_limited": 1,
        "api.review.rate_limited": 1,
    }


def test_wrong_access_codes_on_the_status_form_and_api_are_limited(open_round1: Runtime) -> None:
    app = create_app(
        open_round1.settings.model_copy(update={"rate_limit_failed_attempts": "3/minute"}), now=Clock(IN_ROUND1)
    )
    with TestClient(app) as client:
        receipt = client.post(f"/rounds/{ROUND1}/applications", content=example("ben-asgm-complete.json")).json()
        reference, code = receipt["reference"], receipt["access_token"]
        form = {"reference": reference, "access_code": "wrong", "lang": "fr"}
        assert client.post("/status", data=form).status_code == 404
        assert client.get(f"/applications/{reference}", headers={"Authorization": "Bearer wrong"}).status_code == 404
        assert (
            client.put(f"/applications/{reference}/forms", json={}, headers={"Authorization": "Bearer w"}).status_code
            == 404
        )
        assert_too_many(client.post("/status", data={**form, "access_code": code}, headers=JSON))
        assert_too_many(client.get(f"/applications/{reference}", headers={"Authorization": f"Bearer {code}"}))
        elsewhere = TestClient(app, client=ELSEWHERE)
        shown = elsewhere.post("/status", data={**form, "access_code": code})
        assert shown.status_code == 200 and reference in shown.text
    assert len(refusals(open_round1, "application.status_page.refused")) == 1  # the source's first, sampled


def test_requests_for_a_new_link_are_limited_per_source(invited: Runtime) -> None:
    app = app_for(invited, Clock(AFTER_R4), rate_limit_link_requests="2/minute")
    with TestClient(app) as client:
        for _ in range(2):
            assert client.post("/reviewer/links", json={"email": "kofi@example.org"}).status_code == 202
        assert_too_many(client.post("/reviewer/links", json={"email": "kofi@example.org"}))
        assert_too_many(client.post("/reviewer/links", data={"email": "kofi@example.org", "lang": "fr"}))
        assert (
            TestClient(app, client=ELSEWHERE).post("/reviewer/links", json={"email": "x@example.org"}).status_code
            == 202
        )


def test_a_members_expired_bundle_link_is_audited_under_their_name_and_is_not_counted_as_a_guess(
    committee: Runtime,
) -> None:
    with unit_of_work(committee.engine) as session:
        prepare_bundles(session, committee.settings, ROUND1, actor="officer", at=datetime(2018, 9, 20, 9, tzinfo=UTC))
        message = session.exec(select(OutboxMessage).where(col(OutboxMessage.key).startswith("bundle_ready:"))).first()
        assert message is not None
        member, text = message.recipient, outbox.materialize(session, committee.settings, message).text
    token = re.search(r"token=([\w-]+)", text).group(1)  # type: ignore[union-attr]
    late = Clock(datetime(2018, 12, 1, tzinfo=UTC))  # more than 30 days after the meeting
    with TestClient(app_for(committee, late, rate_limit_failed_attempts="1/minute")) as client:
        for _ in range(3):
            expired = client.get("/committee/bundle", params={"token": token}, headers=JSON)
            assert expired.status_code == 410 and "expired" in expired.json()["message"]
        assert client.get("/committee/bundle", params={"token": "forged"}).status_code == 404
        assert_too_many(client.get("/committee/bundle", params={"token": "forged"}, headers=JSON))
    assert [e.actor for e in refusals(committee, "bundle.download.refused")] == [member] * 3 + ["unknown"]


def test_rates_and_storage_that_the_limits_do_not_know_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="SIP_RATE_LIMIT_FAILED_ATTEMPTS"):
        Settings(SIP_RATE_LIMIT_FAILED_ATTEMPTS="many")
    with pytest.raises(ValidationError, match="SIP_RATE_LIMIT_STORAGE"):
        Settings(SIP_RATE_LIMIT_STORAGE="postgres://x")


def test_the_openapi_document_declares_the_429_and_its_retry_after(round4: Runtime) -> None:
    paths = app_for(round4, Clock(AFTER_R4)).openapi()["paths"]
    for path, method in (
        ("/reviewer/sessions", "post"),
        ("/reviewer/links", "post"),
        ("/reviewer/assignments", "get"),
        ("/committee/bundle", "get"),
        ("/applications/{reference}", "get"),
        ("/status", "post"),
        ("/reviewers", "get"),
    ):
        answer = paths[path][method]["responses"]["429"]
        assert "Retry-After" in answer["headers"], (path, method)


def test_where_the_limits_storage_does_not_answer_the_routes_still_work_and_refusals_are_still_audited(
    round4: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("redis", reason="the redis client (Prefect brings it) makes the limits' redis storage")
    app = app_for(
        round4, Clock(AFTER_R4), rate_limit_storage="redis://127.0.0.1:1", rate_limit_failed_attempts="1/minute"
    )
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/reviewer/sessions", json={"token": "forged"}).status_code == 401
        assert client.get("/reviewers", headers=OFFICER).status_code == 200
    assert "the rate limits' storage does not answer" in caplog.text
    assert len(refusals(round4, "reviewer.sign_in.refused")) == 1
