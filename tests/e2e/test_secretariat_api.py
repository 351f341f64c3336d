"""The secretariat's routes: screening triggered through the API runs the real flow
(on the session's Prefect test server); without a key, nothing."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import pytest

from api.app import create_app
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from tests.conftest import AFTER_CLOSE, ROUND1, Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "an-officer-key-0123456789abcdef0123456789"
OFFICER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(imported: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    settings = imported.settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(KEY)}"})
    with TestClient(create_app(settings, now=Clock(AFTER_CLOSE))) as client:
        yield client


def test_without_a_secretariat_key_the_routes_answer_401(client: TestClient) -> None:
    for method, path in (
        ("post", f"/rounds/{ROUND1}/screening"),
        ("get", f"/rounds/{ROUND1}/screening"),
        ("post", f"/rounds/{ROUND1}/screening/scores"),
    ):
        for headers in ({}, {"Authorization": "Bearer not-a-key"}):
            answer = client.request(method, path, headers=headers, json={})
            assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"


@pytest.mark.prefect
def test_screening_started_through_the_api_runs_the_flow_and_can_be_followed(
    client: TestClient, prefect_harness: None
) -> None:
    started = client.post(f"/rounds/{ROUND1}/screening", headers=OFFICER)
    assert started.status_code == 202 and started.json()["progress"] == f"/rounds/{ROUND1}/screening"
    deadline = time.monotonic() + 60
    while True:
        progress = client.get(f"/rounds/{ROUND1}/screening", headers=OFFICER).json()
        if progress["counts"]["not_screened"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        while not (run := prefect.read_flow_run(started.json()["flow_run_id"])).state.is_final():
            assert time.monotonic() < deadline, "the flow run did not finish"
            time.sleep(0.3)
    assert run.state.is_completed() and "actor" not in run.parameters  # nobody types who they are
    from sqlmodel import select

    from engine.db import reading
    from engine.tables import AuditEvent

    with reading(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        requested = session.exec(select(AuditEvent).where(AuditEvent.action == "stage.requested")).one()
        screened = session.exec(select(AuditEvent).where(AuditEvent.action == "application.pass_screening")).one()
    assert (requested.actor, requested.details["flow_run_id"], requested.details["flow"]) == (
        "amina.diallo",
        str(run.id),
        "screen-applications",
    )
    assert screened.actor == f"the API for amina.diallo, flow run {run.id}"
    import threading

    from prefect.logging.handlers import APILogWorker

    for thread in threading.enumerate():  # the run's thread logs its end after the state is final
        if thread.name == f"flow-run-{run.id}":
            thread.join(30)
    APILogWorker.drain_all(timeout=5)  # its last log lines, before the test server stops
    # As the run left it: the ranks are written after the last batch, so read again once it is over.
    progress = client.get(f"/rounds/{ROUND1}/screening", headers=OFFICER).json()
    assert progress["status"] == "screening"
    assert progress["counts"] == {
        "screened": 1,
        "incomplete": 1,
        "ineligible": 1,
        "needs_judgement": 1,
        "not_screened": 0,
    }
    ben = next(a for a in progress["applications"] if a["party"] == "BEN")
    assert ben["ldc"] is True and ben["region"] == "Africa"
    # no judgement criterion scored yet: no weighted score ("100" on the checks alone), and no ranking
    assert ben["rank"] is None and ben["weighted_score"] is None
    scored = client.post(
        f"/rounds/{ROUND1}/screening/scores",
        headers=OFFICER,
        json={"scores": [{"reference": "SIP-2018-R1-0001", "criterion": "feasibility", "score": 3}]},
    )
    assert scored.json() == {"scores": 1, "recorded": 1}
    bad = client.post(
        f"/rounds/{ROUND1}/screening/scores",
        headers=OFFICER,
        json={"scores": [{"reference": "SIP-2018-R1-0001", "criterion": "feasibility", "score": 9}]},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.scores[0]: score"
    judged = client.post(
        f"/rounds/{ROUND1}/applications/SIP-2018-R1-0004/override",
        headers=OFFICER,
        json={"verdict": "screened", "reason": "Party on the deadline per the depositary"},
    )
    assert judged.json() == {"reference": "SIP-2018-R1-0004", "verdict": "screened", "changed": True}
    asked = client.post(
        f"/rounds/{ROUND1}/applications/SIP-2018-R1-0002/information-request",
        headers=OFFICER,
        json={"items": ["Form C, signed"], "due": "2018-09-30"},
    )
    assert asked.json()["status"] == "information_requested"


def test_screening_a_round_still_open_through_the_api_is_409(open_round1: Runtime) -> None:
    from datetime import UTC, datetime

    settings = open_round1.settings.model_copy(update={"secretariat_keys": f"amina:{token_hash(KEY)}"})
    with TestClient(create_app(settings, now=Clock(datetime(2018, 8, 1, tzinfo=UTC)))) as client:
        answer = client.post(f"/rounds/{ROUND1}/screening", headers=OFFICER)
    assert answer.status_code == 409 and "still open for applications" in answer.json()["message"]
