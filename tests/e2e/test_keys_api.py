"""The secretariat's API keys at the door of the API: a key of the database opens the
secretariat's routes and its use shows in the list; an expired or revoked key is
refused with 401 saying so; a read-only key reads every secretariat route and changes
nothing (403, naming the scope needed); the keys of SIP_SECRETARIAT_KEYS still work."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlmodel import select

from api.app import create_app
from api.committee import router as committee_router
from api.deps import get_secretariat, needs, secretariat_reader, secretariat_writer
from api.grants import router as grants_router
from api.secretariat import outbox_router, reviewers_router
from api.secretariat import router as rounds_router
from domain.keys import KeyScope
from engine.db import reading, unit_of_work
from engine.services import keys
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.tables import AuditEvent, ReviewerRecord
from tests.conftest import AFTER_CLOSE, ROUND1, Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SETTINGS_KEY = "an-officer-key-0123456789abcdef0123456789"
REFERENCE = "SIP-2018-R1-0001"
REVIEWER = {
    "name": "Ana Lopez",
    "organisation": "GMP ASGM area",
    "country": "PER",
    "areas": ["artisanal_gold_mining"],
    "languages": ["es", "en"],
    "max_load": 3,
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(rt: Runtime, name: str, scope: KeyScope, days: int = 365) -> keys.NewKey:
    made_at = AFTER_CLOSE - timedelta(days=1)
    with unit_of_work(rt.engine) as session:
        return keys.create_key(
            session, name, scope=scope, expires_at=made_at + timedelta(days=days), actor="admin", at=made_at
        )


@pytest.fixture
def clock() -> Clock:
    return Clock(AFTER_CLOSE)


@pytest.fixture
def client(imported: Runtime, clock: Clock) -> Iterator[TestClient]:
    settings = imported.settings.model_copy(
        update={
            "secretariat_keys": f"old.officer:{token_hash(SETTINGS_KEY)}",
            # the route walk below sends every route without a key: out of reach of the rate limit
            "rate_limit_failed_attempts": "1000/minute",
        }
    )
    with TestClient(create_app(settings, now=clock)) as client:
        yield client


def runtime_of(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def listed(client: TestClient, key_id: int) -> keys.KeyView:
    with reading(runtime_of(client).engine) as session:
        return next(v for v in keys.list_keys(session, {}, at=AFTER_CLOSE) if v.id == key_id)


def test_a_key_of_the_database_opens_the_secretariats_routes_and_its_last_use_is_listed(
    client: TestClient, clock: Clock
) -> None:
    made = new_key(runtime_of(client), "amina.diallo", KeyScope.FULL)
    assert listed(client, made.id).last_used_at is None
    answer = client.get(f"/rounds/{ROUND1}/screening", headers=bearer(made.key))
    assert answer.status_code == 200 and answer.json()["round"] == ROUND1
    assert listed(client, made.id).last_used_at == AFTER_CLOSE
    clock.now = AFTER_CLOSE + timedelta(seconds=30)  # within the minute: nothing written
    assert client.put("/reviewers/ana@gmp.example.org", headers=bearer(made.key), json=REVIEWER).status_code == 200
    assert listed(client, made.id).last_used_at == AFTER_CLOSE
    clock.now = AFTER_CLOSE + timedelta(minutes=5)
    assert client.get("/reviewers", headers=bearer(made.key)).status_code == 200
    assert listed(client, made.id).last_used_at == AFTER_CLOSE + timedelta(minutes=5)


def test_an_expired_key_is_refused_with_401_saying_it_expired_and_what_to_do(client: TestClient, clock: Clock) -> None:
    made = new_key(runtime_of(client), "amina.diallo", KeyScope.FULL, days=30)
    assert client.get("/reviewers", headers=bearer(made.key)).status_code == 200
    clock.now = AFTER_CLOSE + timedelta(days=29)  # made the day before AFTER_CLOSE, for 30 days
    answer = client.get("/reviewers", headers=bearer(made.key))
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    body = answer.json()
    assert body["error"] == "unauthorized"
    assert "expired on 2018-10-02 09:00 UTC and no longer works" in body["message"]
    assert "`sip keys new NAME`" in body["message"] and made.prefix in body["message"]


def test_a_revoked_key_is_refused_with_401_from_the_next_request_on(client: TestClient) -> None:
    made = new_key(runtime_of(client), "amina.diallo", KeyScope.FULL)
    assert client.get("/outbox", headers=bearer(made.key)).status_code == 200
    with unit_of_work(runtime_of(client).engine) as session:
        keys.revoke_keys(session, "amina.diallo", reason="left", actor="admin", at=AFTER_CLOSE)
    answer = client.get("/outbox", headers=bearer(made.key))
    assert answer.status_code == 401
    assert "was revoked on" in answer.json()["message"] and "`sip keys new NAME`" in answer.json()["message"]
    put = client.put("/reviewers/ana@gmp.example.org", headers=bearer(made.key), json=REVIEWER)
    assert put.status_code == 401


def test_a_read_only_key_reads_and_is_refused_403_on_what_changes_the_engine_with_nothing_changed(
    client: TestClient,
) -> None:
    reader = bearer(new_key(runtime_of(client), "bo.chen", KeyScope.READ).key)
    for path in (f"/rounds/{ROUND1}/screening", "/reviewers", "/outbox", "/committee", f"/rounds/{ROUND1}/bundles"):
        assert client.get(path, headers=reader).status_code == 200, path
    for method, path, body in (
        ("post", f"/rounds/{ROUND1}/screening", None),
        ("post", f"/rounds/{ROUND1}/screening/scores", {"scores": [{"reference": REFERENCE, "criterion": "x"}]}),
        ("put", "/reviewers/ana@gmp.example.org", REVIEWER),
        ("patch", "/reviewers/ana@gmp.example.org", {"max_load": 1}),
        ("put", f"/rounds/{ROUND1}/funds", {"amount": "300000"}),
        ("post", f"/rounds/{ROUND1}/decisions", {"decisions": []}),
        ("delete", f"/rounds/{ROUND1}/applications/{REFERENCE}/reviewers/ana@gmp.example.org", None),
    ):
        answer = client.request(method, path, headers=reader, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        refused = answer.json()
        assert refused["error"] == "forbidden"
        assert "has scope read" in refused["message"] and "needs a key with scope full" in refused["message"]
        assert f"{method.upper()} {path}" in refused["message"] and "--scope full" in refused["message"]
        assert refused["next"] == [
            {
                "step": "new_key",
                "what": "ask the engine's administrator for a new secretariat API key",
                "option": "scope_full",
            }
        ]
    with reading(runtime_of(client).engine) as session:
        assert session.exec(select(ReviewerRecord)).all() == []
        refusals = session.exec(select(AuditEvent).where(AuditEvent.action == "api.put_reviewer.refused")).all()
    assert [(e.actor, e.details["error"]) for e in refusals] == [("bo.chen", "forbidden")]  # type: ignore[index]


def test_a_full_key_and_a_key_of_the_settings_change_what_a_read_only_key_may_not(client: TestClient) -> None:
    full = bearer(new_key(runtime_of(client), "amina.diallo", KeyScope.FULL).key)
    for headers, email in ((full, "ana@gmp.example.org"), (bearer(SETTINGS_KEY), "luis@gmp.example.org")):
        answer = client.put(f"/reviewers/{email}", headers=headers, json=REVIEWER)
        assert answer.status_code == 200 and answer.json()["outcome"] == "added", answer.text
    assert client.get("/reviewers", headers=bearer(SETTINGS_KEY)).status_code == 200


def _secretariat_operations(client: TestClient) -> list[tuple[str, str]]:
    """Every operation of the app's OpenAPI document that takes a secretariat key."""
    paths: dict[str, dict[str, Any]] = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return [
        (method.upper(), path)
        for path, item in paths.items()
        for method, operation in item.items()
        if {"SecretariatKey": []} in operation.get("security", [])
    ]


def test_every_secretariat_route_that_changes_state_needs_the_full_scope_and_every_read_takes_a_read_key(
    client: TestClient,
) -> None:
    """Walks the app's route table, so a route added later cannot forget its scope."""
    reader = bearer(new_key(runtime_of(client), "bo.chen", KeyScope.READ).key)
    operations = _secretariat_operations(client)
    assert len(operations) >= 29 and len({m for m, _ in operations}) >= 5  # GET, POST, PUT, PATCH, DELETE
    values = {
        "round_id": ROUND1, "reference": REFERENCE, "email": "ana@gmp.example.org", "term_start": "2018-01-01",
        "number": "1",
    }  # fmt: skip
    for method, template in operations:
        path = template.format(**values)
        documented = client.app.openapi()["paths"][template][method.lower()]["responses"]  # type: ignore[attr-defined]
        assert client.request(method, path, json={}).status_code == 401, (method, path)
        answer = client.request(method, path, headers=reader, json={})
        if method == "GET":
            assert answer.status_code not in (401, 403), (method, path, answer.text)
            assert "403" not in documented, (method, template)
        else:
            assert answer.status_code == 403 and answer.json()["error"] == "forbidden", (method, path, answer.text)
            assert "403" in documented, (method, template)
    checked = 0
    for router in (rounds_router, reviewers_router, outbox_router, committee_router, grants_router):
        for route in router.routes:
            if not isinstance(route, APIRoute) or not needs(route, get_secretariat):
                continue
            reads = route.methods == {"GET"}
            assert needs(route, secretariat_reader) is reads and needs(route, secretariat_writer) is not reads, route
            checked += 1
    assert checked == len(operations)


def test_an_expired_key_is_audited_under_its_officer_and_not_counted_as_a_guess(imported: Runtime) -> None:
    """A key that names an officer is theirs: its refusals go to the audit trail under
    their name, and do not use up the address's allowance of refused attempts (which
    would lock out every officer behind it)."""
    clock = Clock(AFTER_CLOSE)
    made = new_key(imported, "amina.diallo", KeyScope.FULL, days=30)
    clock.now = AFTER_CLOSE + timedelta(days=29)
    settings = imported.settings.model_copy(update={"rate_limit_failed_attempts": "3/minute"})
    with TestClient(create_app(settings, now=clock)) as client:
        for _ in range(6):
            assert client.get("/reviewers", headers=bearer(made.key)).status_code == 401
        assert client.get("/reviewers", headers=bearer("a-guess")).status_code == 401  # a guess still counts
    with reading(imported.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "api.key.refused")).all()
    assert [e.actor for e in refused] == ["amina.diallo"] * 6 + ["unknown"]
