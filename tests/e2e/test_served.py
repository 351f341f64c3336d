"""The engine as production runs it, served: a real Prefect server, the deployments
served by `sip flows serve` from another working folder, runs started through
Prefect's client from a third process, and the database checked afterwards.
PostgreSQL where it answers, SQLite otherwise."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import reading, unit_of_work
from engine.services.rounds import parse_round, store_round
from engine.tables import (
    AuditEvent,
    CommitteeBundle,
    OutboxMessage,
    ReviewAssignment,
    Round,
)
from tests.conftest import (
    ROUND1,
    ROUND4,
)
from tests.e2e.deployment import (
    completed,
    decide,
    engine_env,
    migrate,
    people_between_stages,
    run,
    run_logs,
    runtime_on,
    serving,
    sign_the_grant,
    statuses,
    write_applications,
)
from tests.processes import (
    start_runs,
)

pytestmark = pytest.mark.deployed


def test_every_stage_runs_as_a_served_deployment_started_from_another_process(
    prefect: tuple[str, Path], shared_database: str, tmp_path: Path
) -> None:
    api, home = prefect
    serving_in = tmp_path / "served-from"  # the engine's files: a relative SIP_DATA_DIR, made absolute by serve
    serving_in.mkdir()
    env = engine_env(shared_database, api, home, SIP_DATA_DIR="sip-data")
    migrate(env, serving_in)
    folders = write_applications(tmp_path / "incoming")
    rt = runtime_on(shared_database, serving_in / "sip-data")
    with serving(api, env, serving_in, tmp_path / "serve.log"):
        runs = completed(
            start_runs(
                api,
                home,
                [
                    [
                        run("open-round/on-demand", round_id=ROUND1, at="2018-06-05T09:00:00+00:00"),
                        run("open-round/on-demand", round_id=ROUND4, at="2024-04-25T09:00:00+00:00"),
                    ],
                    [
                        run("import-applications/on-demand", round_id=ROUND1, paths=[str(folders[ROUND1])]),
                        run("import-applications/on-demand", round_id=ROUND4, paths=[str(folders[ROUND4])]),
                    ],
                    [
                        run("close-round/on-demand", round_id=ROUND1, at="2018-09-01T00:00:00+02:00"),
                        run("close-round/on-demand", round_id=ROUND4, at="2024-08-01T00:00:00+02:00"),
                    ],
                    [
                        run("screen-applications/on-demand", round_id=ROUND1, at="2018-09-03T09:00:00+00:00"),
                        run("screen-applications/on-demand", round_id=ROUND4, at="2024-08-05T09:00:00+00:00"),
                    ],
                ],
                cwd=tmp_path,
            )
        )
        assert statuses(rt, ROUND1) == {"BEN": "screened", "LSO": "incomplete", "CHE": "ineligible"}
        assert statuses(rt, ROUND4) == {"BEN": "screened", "LSO": "screened"}
        people_between_stages(rt)
        runs += completed(
            start_runs(
                api,
                home,
                [
                    [
                        run("assign-gmp-reviewers/on-demand", round_id=ROUND4, at="2024-08-06T09:00:00+00:00"),
                        run("send-to-committee/on-demand", round_id=ROUND1, at="2018-09-10T09:00:00+00:00"),
                    ],
                    [
                        run("invite-gmp-reviewers/on-demand", round_id=ROUND4, at="2024-08-07T09:00:00+00:00"),
                        run(
                            "prepare-committee-bundles/on-demand",
                            round_id=ROUND1,
                            at="2018-09-25T09:00:00+00:00",
                            pdf=False,
                        ),
                    ],
                ],
                cwd=tmp_path,
            )
        )
        decide(rt)
        runs += completed(
            start_runs(
                api,
                home,
                [[run("send-decision-letters/on-demand", round_id=ROUND1, at="2018-10-10T09:00:00+00:00")]],
                cwd=tmp_path,
            )
        )
        sign_the_grant(rt)  # active from 20 October 2018: its first report is due on 20 May 2019
        runs += completed(
            start_runs(
                api,
                home,
                [
                    [run("grants-day/daily", at="2019-05-10T09:00:00+00:00")],
                    [run("grants-day/daily", at="2019-05-10T15:00:00+00:00")],  # again the same day: nothing more
                    [run("deliver-notifications/every-5-minutes")],
                ],
                cwd=tmp_path,
            )
        )
        refused = start_runs(api, home, [[run("screen-applications/on-demand", round_id="sip-1999-r0")]], cwd=tmp_path)
        logs = run_logs(api, refused[0]["id"])  # while its process may still be sending them

    with reading(rt.engine) as session:
        invited = session.exec(
            select(func.count()).select_from(ReviewAssignment).where(ReviewAssignment.state == "invited")
        ).one()
        bundles = session.exec(select(CommitteeBundle)).all()
        outbox = session.exec(select(OutboxMessage)).all()
        actors = set(session.exec(select(AuditEvent.actor).where(AuditEvent.action.like("round.%"))).all())
        round4 = session.get(Round, ROUND4)
    assert invited == 4 and round4 is not None and round4.status == "review"  # two reviewers on each application
    assert len(bundles) == 10 and all((serving_in / "sip-data" / b.path).is_file() for b in bundles)
    kinds = Counter(m.kind for m in outbox)
    assert kinds["receipt"] == 5 and kinds["review_invitation"] >= 2 and kinds["bundle_ready"] == 10
    assert kinds["decision_approved"] == 1 and kinds["screening_incomplete"] == kinds["screening_ineligible"] == 1
    assert kinds["grant_report_reminder"] == 1  # the report due in ten days, from the first grants-day only
    assert [m.key.startswith("grants_day:") for m in outbox if m.kind == "secretariat_notice"].count(True) == 1
    grants_days = [r for r in runs if r["deployment"] == "grants-day/daily"]
    assert len(grants_days) == 2 and all(r["state"] == "COMPLETED" for r in grants_days)
    assert {m.state for m in outbox} == {"sent"}
    assert len(list((serving_in / "sip-data" / "mail").glob("*.eml"))) == len(outbox)
    # Who did it: the deployment and the run, as Prefect knows them.
    opened = {r["id"] for r in runs if r["deployment"] == "open-round/on-demand"}
    assert {f"open-round/on-demand run {run_id}" for run_id in opened} <= actors
    # An unknown round: the run fails with the refusal as its message, and its log has no traceback.
    assert refused[0]["state"] == "FAILED" and refused[0]["message"].startswith("no round 'sip-1999-r0'")
    assert any(line["message"].startswith("refused: no round 'sip-1999-r0'") for line in logs)
    assert not any("Traceback" in line["message"] for line in logs)
    # Each run left its summary in the Prefect UI.
    artifacts = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["screen-applications-sip-2018-r1", "send-decision-letters-sip-2018-r1"]}}},
    ).json()
    screening = next(a for a in artifacts if a["key"] == "screen-applications-sip-2018-r1")
    assert "| screened now | 3 |" in screening["data"] and len(artifacts) == 2


def test_a_served_engine_opens_and_closes_a_round_on_its_dates(
    prefect: tuple[str, Path], shared_database: str, tmp_path: Path
) -> None:
    api, home = prefect
    env = engine_env(shared_database, api, home, SIP_DATA_DIR=str(tmp_path / "data"))
    migrate(env, tmp_path)
    rt = runtime_on(shared_database, tmp_path / "data")
    log = tmp_path / "serve.log"
    with serving(api, env, tmp_path, log):
        # The dates count from when the flows are served (a loaded machine takes a while to start them).
        opens = (datetime.now(UTC) + timedelta(seconds=40)).replace(microsecond=0)
        closes = opens + timedelta(seconds=15)
        source = Path("rounds/sip-2024-r4.toml").read_text()
        source = re.sub(r"(?m)^opens_at = .*$", f"opens_at = {opens.isoformat()}", source)
        source = re.sub(r"(?m)^closes_at = .*$", f"closes_at = {closes.isoformat()}", source)
        with unit_of_work(rt.engine) as session:
            store_round(
                session,
                parse_round(source.replace(ROUND4, "sip-test-dates"), "test"),
                source="test",
                actor="officer",
                at=datetime.now(UTC),
            )
        scheduled = completed(start_runs(api, home, [[run("round-dates/every-15-minutes")]], cwd=tmp_path))
        deadline = datetime.now(UTC) + timedelta(seconds=150)
        while True:
            with reading(rt.engine) as session:
                status = session.get(Round, "sip-test-dates").status  # type: ignore[union-attr]
            if status == "closed" or datetime.now(UTC) > deadline:
                break
            time.sleep(0.5)
        # Running it again (as the schedule does) neither opens twice nor schedules twice.
        completed(start_runs(api, home, [[run("round-dates/every-15-minutes")]], cwd=tmp_path))
    with reading(rt.engine) as session:
        events = session.exec(
            select(AuditEvent)
            .where(AuditEvent.subject_id == "sip-test-dates", AuditEvent.action.in_(["round.opened", "round.closed"]))
            .order_by(AuditEvent.id)
        ).all()
    assert status == "closed", (scheduled, log.read_text()[-3000:])
    assert [e.action for e in events] == ["round.opened", "round.closed"]
    assert events[0].actor.startswith("open-round/on-demand run ")
    assert events[1].actor.startswith("close-round/on-demand run ")
    assert opens <= events[0].at < opens + timedelta(seconds=20)  # at its instant, not at the next look


def test_the_console_starts_a_stage_on_the_prefect_server_and_links_its_run(
    prefect: tuple[str, Path], shared_database: str, tmp_path: Path
) -> None:
    """An officer in the console starts screening on a served engine: the run is the
    deployment's on the Prefect server, and the round's page shows its state and links it
    in the Prefect UI."""
    from domain.staff import StaffRole
    from engine.services import staff
    from engine.services.intake import import_batch
    from engine.services.rounds import close_round, open_round
    from tests.conftest import received
    from tests.e2e.deployment import SIP
    from tests.processes import free_port, running, wait_for

    api, home = prefect
    serving_in = tmp_path / "served-from"
    serving_in.mkdir()
    env = engine_env(shared_database, api, home, SIP_DATA_DIR=str(serving_in / "sip-data"))
    migrate(env, serving_in)
    rt = runtime_on(shared_database, serving_in / "sip-data")
    opened, closed = datetime(2018, 6, 5, 9, tzinfo=UTC), datetime(2018, 9, 1, tzinfo=UTC)
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND1, actor="officer", at=opened)
        staff.add_staff(session, "ana@example.org", "Ana", StaffRole.OFFICER, "p" * 16, actor="setup", at=opened)
    names = ("ben-asgm-complete.json", "lso-inventory-no-form-c.json")
    assert all(
        r.ok
        for r in import_batch(rt.engine, rt.settings, ROUND1, [(n, received(n)) for n in names], actor="s", now=opened)
    )
    with unit_of_work(rt.engine) as session:
        close_round(session, ROUND1, actor="officer", at=closed)
    port = free_port()
    with (
        serving(api, env, serving_in, tmp_path / "serve.log"),
        running([SIP, "serve", "--port", str(port)], env=env, cwd=serving_in, log=tmp_path / "api.log") as process,
    ):
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health/ready", process, tmp_path / "api.log")
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
            assert (
                browser.post("/console/sign-in", data={"email": "ana@example.org", "password": "p" * 16}).status_code
                == 303
            )
            page = browser.get(f"/console/rounds/{ROUND1}").text
            token = re.search(r'name="csrf" value="(\w+)"', page).group(1)  # type: ignore[union-attr]
            started = browser.post(f"/console/rounds/{ROUND1}/stages/screening", data={"csrf": token})
            assert started.status_code == 303, started.text
            run_id = started.headers["location"].rsplit(":", 1)[-1]  # ...?started=screen-applications:<run id>
            deadline = time.monotonic() + 180
            while "✓ Completed" not in (page := browser.get(f"/console/rounds/{ROUND1}").text):
                assert "state-failed" not in page and time.monotonic() < deadline, page[-2000:]
                time.sleep(1)
    assert f'href="{api.removesuffix("/api")}/runs/flow-run/{run_id}"' in page  # the run, in the Prefect UI
    assert statuses(rt, ROUND1) == {"BEN": "screened", "LSO": "incomplete"}
    run = httpx.get(f"{api}/flow_runs/{run_id}").json()
    assert run["deployment_id"] is not None and "requested-by:ana@example.org" in run["tags"]
