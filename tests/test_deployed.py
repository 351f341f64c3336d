"""The engine as production runs it: a real Prefect server (`prefect server start`),
the engine's deployments served by `sip flows serve` from another working folder or
run by two `prefect worker start` processes, runs started through Prefect's client
from a third process (or through two API processes), and the database checked
afterwards. PostgreSQL where it answers, SQLite otherwise."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, text
from sqlmodel import select

from domain.committee import DecisionIn
from engine.db import dispose_all, get_engine, reading, unit_of_work
from engine.services.committee import record_decisions, set_funds
from engine.services.review import load_reviewers, parse_reviewers
from engine.services.rounds import parse_round, store_round
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.settings import Settings
from engine.tables import (
    Application,
    AuditEvent,
    CommitteeBundle,
    DecisionRecord,
    OutboxMessage,
    ReviewAssignment,
    Round,
    ScreeningRecord,
    StatusChange,
)
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    REGISTER,
    ROUND1,
    ROUND4,
    SECRET,
    _postgres_reachable,
    changed,
    example,
    received,
)
from tests.processes import (
    VENV_BIN,
    deployments_on,
    free_port,
    prefect_server,
    quiet_env,
    running,
    start_runs,
    wait_for,
)

pytestmark = pytest.mark.deployed

SIP = str(VENV_BIN / "sip")
ENGINE_DEPLOYMENTS = {
    *(f"{flow}/on-demand" for flow in (
        "open-round", "close-round", "import-applications", "screen-applications", "assign-gmp-reviewers",
        "invite-gmp-reviewers", "send-to-committee", "prepare-committee-bundles", "send-decision-letters")),
    "round-dates/every-15-minutes", "review-day/daily", "deliver-notifications/every-5-minutes"}


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One real Prefect server for the module: its API URL and PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home) as api:
        yield api, home


@pytest.fixture
def shared_database(tmp_path: Path) -> Iterator[str]:
    """The database every process of the test shares: a PostgreSQL database of its
    own where PostgreSQL answers, a SQLite file otherwise."""
    if _postgres_reachable() is not None:
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    name = f"sip_deployed_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    dispose_all()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def engine_env(database: str, api: str, home: Path, **extra: str) -> dict[str, str]:
    """The settings every machine of one engine shares; migrations are a step of their own."""
    return quiet_env(DATABASE_URL=database, SIP_SECRET_KEY=SECRET, SIP_MIGRATE_ON_START="false",
                     PREFECT_API_URL=api, PREFECT_HOME=str(home), **extra)


def migrate(env: dict[str, str], cwd: Path) -> None:
    import subprocess

    done = subprocess.run([SIP, "db", "upgrade"], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def write_applications(folder: Path) -> dict[str, Path]:
    """Round 1: complete (Benin), incomplete (Lesotho), ineligible (Switzerland). Round 4:
    two complete applications (Benin, Lesotho)."""
    r1, r4 = folder / "round-1", folder / "round-4"
    r1.mkdir(parents=True)
    r4.mkdir(parents=True)
    for name in ("ben-asgm-complete.json", "lso-inventory-no-form-c.json", "che-products-ineligible.json"):
        (r1 / name).write_bytes(received(name))
    (r4 / "ben.json").write_bytes(changed(example("ben-asgm-complete.json"), round=ROUND4,
                                          received_at="2024-07-01T10:00:00+02:00"))
    (r4 / "lso.json").write_bytes(changed(example("ben-asgm-complete.json"), round=ROUND4, applicant__party="LSO",
                                          received_at="2024-07-02T10:00:00+02:00", form_a__title="Products"))
    return {ROUND1: r1, ROUND4: r4}


def run(deployment: str, **parameters: object) -> dict[str, object]:
    return {"deployment": deployment, "parameters": parameters}


def completed(runs: list[dict[str, str]]) -> list[dict[str, str]]:
    assert [r["state"] for r in runs] == ["COMPLETED"] * len(runs), runs
    return runs


def runtime_on(database: str, files: Path) -> Runtime:
    settings = Settings(DATABASE_URL=database, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=files,
                        SIP_MIGRATE_ON_START=False)
    return Runtime(settings, get_engine(database))


def statuses(rt: Runtime, round_id: str) -> dict[str, str]:
    with reading(rt.engine) as session:
        return dict(session.exec(select(Application.party, Application.status)
                                 .where(Application.round_id == round_id)).all())


def people_between_stages(rt: Runtime) -> None:
    """What people do between the flows: the register of reviewers (round 4), the
    committee's members and funds (round 1)."""
    from tests.conftest import members

    at = datetime(2018, 9, 20, tzinfo=UTC)
    with unit_of_work(rt.engine) as session:
        load_reviewers(session, parse_reviewers(REGISTER, "r.csv"), source="r.csv", actor="officer", at=at)
    members(rt)
    with unit_of_work(rt.engine) as session:
        set_funds(session, ROUND1, Decimal("300000"), actor="officer", at=at)


def decide(rt: Runtime) -> None:
    with unit_of_work(rt.engine) as session:
        benin = session.exec(select(Application.reference).where(Application.round_id == ROUND1,
                                                                 Application.party == "BEN")).one()
        record_decisions(session, ROUND1, [(DecisionIn(reference=benin, decision="approved", amount=Decimal("150000")),
                                            "row 1")], actor="officer", at=datetime(2018, 10, 4, tzinfo=UTC))


@contextmanager
def serving(api: str, env: dict[str, str], cwd: Path, log: Path) -> Iterator[None]:
    """`sip flows serve`, once every deployment of the engine is on the Prefect server."""
    with running([SIP, "flows", "serve"], env=env, cwd=cwd, log=log) as served:
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while not deployments_on(api) >= ENGINE_DEPLOYMENTS:
            assert served.poll() is None and datetime.now(UTC) < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield


def run_logs(api: str, run_id: str) -> list[dict[str, str]]:
    """A run's log as the Prefect UI shows it (the server stores it a moment after the run ends)."""
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while True:
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200,
                                                      "sort": "TIMESTAMP_ASC"}).json()
        if any(line["message"].startswith("Finished in state") for line in logs) or datetime.now(UTC) > deadline:
            return logs
        time.sleep(0.5)


def test_every_stage_runs_as_a_served_deployment_started_from_another_process(
        prefect: tuple[str, Path], shared_database: str, tmp_path: Path) -> None:
    api, home = prefect
    serving_in = tmp_path / "served-from"  # the engine's files: a relative SIP_DATA_DIR, made absolute by serve
    serving_in.mkdir()
    env = engine_env(shared_database, api, home, SIP_DATA_DIR="sip-data")
    migrate(env, serving_in)
    folders = write_applications(tmp_path / "incoming")
    rt = runtime_on(shared_database, serving_in / "sip-data")
    with serving(api, env, serving_in, tmp_path / "serve.log"):
        runs = completed(start_runs(api, home, [
            [run("open-round/on-demand", round_id=ROUND1, at="2018-06-05T09:00:00+00:00"),
             run("open-round/on-demand", round_id=ROUND4, at="2024-04-25T09:00:00+00:00")],
            [run("import-applications/on-demand", round_id=ROUND1, paths=[str(folders[ROUND1])]),
             run("import-applications/on-demand", round_id=ROUND4, paths=[str(folders[ROUND4])])],
            [run("close-round/on-demand", round_id=ROUND1, at="2018-09-01T00:00:00+02:00"),
             run("close-round/on-demand", round_id=ROUND4, at="2024-08-01T00:00:00+02:00")],
            [run("screen-applications/on-demand", round_id=ROUND1, at="2018-09-03T09:00:00+00:00"),
             run("screen-applications/on-demand", round_id=ROUND4, at="2024-08-05T09:00:00+00:00")],
        ], cwd=tmp_path))
        assert statuses(rt, ROUND1) == {"BEN": "screened", "LSO": "incomplete", "CHE": "ineligible"}
        assert statuses(rt, ROUND4) == {"BEN": "screened", "LSO": "screened"}
        people_between_stages(rt)
        runs += completed(start_runs(api, home, [
            [run("assign-gmp-reviewers/on-demand", round_id=ROUND4, at="2024-08-06T09:00:00+00:00"),
             run("send-to-committee/on-demand", round_id=ROUND1, at="2018-09-10T09:00:00+00:00")],
            [run("invite-gmp-reviewers/on-demand", round_id=ROUND4, at="2024-08-07T09:00:00+00:00"),
             run("prepare-committee-bundles/on-demand", round_id=ROUND1, at="2018-09-25T09:00:00+00:00",
                 pdf=False)],
        ], cwd=tmp_path))
        decide(rt)
        runs += completed(start_runs(api, home, [
            [run("send-decision-letters/on-demand", round_id=ROUND1, at="2018-10-10T09:00:00+00:00")],
            [run("deliver-notifications/every-5-minutes")],
        ], cwd=tmp_path))
        refused = start_runs(api, home, [[run("screen-applications/on-demand", round_id="sip-1999-r0")]], cwd=tmp_path)
        logs = run_logs(api, refused[0]["id"])  # while its process may still be sending them

    with reading(rt.engine) as session:
        invited = session.exec(select(func.count()).select_from(ReviewAssignment)
                               .where(ReviewAssignment.state == "invited")).one()
        bundles = session.exec(select(CommitteeBundle)).all()
        outbox = session.exec(select(OutboxMessage)).all()
        actors = set(session.exec(select(AuditEvent.actor).where(AuditEvent.action.like("round.%"))).all())
        round4 = session.get(Round, ROUND4)
    assert invited == 4 and round4 is not None and round4.status == "review"  # two reviewers on each application
    assert len(bundles) == 10 and all((serving_in / "sip-data" / b.path).is_file() for b in bundles)
    kinds = Counter(m.kind for m in outbox)
    assert kinds["receipt"] == 5 and kinds["review_invitation"] >= 2 and kinds["bundle_ready"] == 10
    assert kinds["decision_approved"] == 1 and kinds["screening_incomplete"] == kinds["screening_ineligible"] == 1
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
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [
        "screen-applications-sip-2018-r1", "send-decision-letters-sip-2018-r1"]}}}).json()
    screening = next(a for a in artifacts if a["key"] == "screen-applications-sip-2018-r1")
    assert "| screened now | 3 |" in screening["data"] and len(artifacts) == 2


def test_a_served_engine_opens_and_closes_a_round_on_its_dates(
        prefect: tuple[str, Path], shared_database: str, tmp_path: Path) -> None:
    api, home = prefect
    env = engine_env(shared_database, api, home, SIP_DATA_DIR=str(tmp_path / "data"))
    migrate(env, tmp_path)
    rt = runtime_on(shared_database, tmp_path / "data")
    opens = (datetime.now(UTC) + timedelta(seconds=25)).replace(microsecond=0)
    closes = opens + timedelta(seconds=10)
    source = Path("rounds/sip-2024-r4.toml").read_text()
    source = re.sub(r"(?m)^opens_at = .*$", f"opens_at = {opens.isoformat()}", source)
    source = re.sub(r"(?m)^closes_at = .*$", f"closes_at = {closes.isoformat()}", source)
    with unit_of_work(rt.engine) as session:
        store_round(session, parse_round(source.replace(ROUND4, "sip-test-dates"), "test"), source="test",
                    actor="officer", at=datetime.now(UTC))
    log = tmp_path / "serve.log"
    with serving(api, env, tmp_path, log):
        scheduled = completed(start_runs(api, home, [[run("round-dates/every-15-minutes")]], cwd=tmp_path))
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while True:
            with reading(rt.engine) as session:
                status = session.get(Round, "sip-test-dates").status  # type: ignore[union-attr]
            if status == "closed" or datetime.now(UTC) > deadline:
                break
            time.sleep(0.5)
        # Running it again (as the schedule does) neither opens twice nor schedules twice.
        completed(start_runs(api, home, [[run("round-dates/every-15-minutes")]], cwd=tmp_path))
    with reading(rt.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.subject_id == "sip-test-dates",
                                                       AuditEvent.action.in_(["round.opened", "round.closed"]))
                              .order_by(AuditEvent.id)).all()
    assert status == "closed", (scheduled, log.read_text()[-3000:])
    assert [e.action for e in events] == ["round.opened", "round.closed"]
    assert events[0].actor.startswith("open-round/on-demand run ")
    assert events[1].actor.startswith("close-round/on-demand run ")
    assert opens <= events[0].at < opens + timedelta(seconds=20)  # at its instant, not at the next look


def test_two_workers_and_two_api_processes_run_a_round_with_nothing_done_twice(
        prefect: tuple[str, Path], shared_database: str, tmp_path: Path) -> None:
    api, home = prefect
    files = tmp_path / "shared-files"  # the folder every machine mounts
    key = "officer-key-" + uuid.uuid4().hex
    env = engine_env(shared_database, api, home, SIP_DATA_DIR=str(files), PREFECT_WORKER_QUERY_SECONDS="1",
                     SIP_SECRETARIAT_KEYS=f"amina.diallo:{token_hash(key)}")
    machines = [tmp_path / f"machine-{n}" for n in (1, 2)]
    for folder in machines:
        folder.mkdir()
    migrate(env, machines[0])
    import subprocess

    deployed = subprocess.run([SIP, "flows", "deploy", "--pool", "sip-test"], env=env, cwd=machines[0],
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stderr
    assert "12 deployments in work pool 'sip-test'" in deployed.stdout
    folders = write_applications(tmp_path / "incoming")
    rt = runtime_on(shared_database, files)
    ports = [free_port(), free_port()]
    officer = {"Authorization": f"Bearer {key}"}
    with running([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "sip-test", "--name", "worker-1"],
                 env=env, cwd=machines[0], log=tmp_path / "worker-1.log"), \
            running([str(VENV_BIN / "prefect"), "worker", "start", "--pool", "sip-test", "--name", "worker-2"],
                    env=env, cwd=machines[1], log=tmp_path / "worker-2.log"), \
            running([SIP, "serve", "--port", str(ports[0])], env=env, cwd=machines[0],
                    log=tmp_path / "api-1.log") as api1, \
            running([SIP, "serve", "--port", str(ports[1])], env=env, cwd=machines[1],
                    log=tmp_path / "api-2.log") as api2:
        for port, process, name in ((ports[0], api1, "api-1"), (ports[1], api2, "api-2")):
            wait_for(f"http://127.0.0.1:{port}/health/ready", process, tmp_path / f"{name}.log")
        twice = [run("open-round/on-demand", round_id=ROUND1, at="2018-06-05T09:00:00+00:00")] * 2
        completed(start_runs(api, home, [twice, [run("import-applications/on-demand", round_id=ROUND1,
                                                     paths=[str(folders[ROUND1])])] * 2,
                                         [run("close-round/on-demand", round_id=ROUND1,
                                              at="2018-09-01T00:00:00+02:00")] * 2], cwd=tmp_path))

        def both_apis(path: str, follow: str | None = None) -> None:
            """The same stage asked of both API processes at once; both runs end completed."""
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda port: httpx.post(f"http://127.0.0.1:{port}{path}", headers=officer,
                                                                timeout=30), ports))
            assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
            ids = [a.json()["flow_run_id"] for a in answers]
            deadline = datetime.now(UTC) + timedelta(seconds=240)
            while True:
                states = [httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["type"] for run_id in ids]
                if all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in states):
                    break
                assert datetime.now(UTC) < deadline, states
                time.sleep(0.5)
            assert states == ["COMPLETED", "COMPLETED"], (path, states)

        both_apis(f"/rounds/{ROUND1}/screening")
        people_between_stages(rt)
        both_apis(f"/rounds/{ROUND1}/review/close")  # a round without GMP review: screening closes
        both_apis(f"/rounds/{ROUND1}/bundles")
        decide(rt)
        both_apis(f"/rounds/{ROUND1}/letters")
        completed(start_runs(api, home, [[run("deliver-notifications/every-5-minutes")] * 2], cwd=tmp_path))
        workers = {httpx.get(f"{api}/flow_runs/{r['id']}").json()["work_pool_name"]
                   for r in start_runs(api, home, [[run("send-decision-letters/on-demand", round_id=ROUND1)]],
                                       cwd=tmp_path)}

    with reading(rt.engine) as session:
        applications = session.exec(select(func.count()).select_from(Application)).one()
        changes = session.exec(select(StatusChange.application_id, StatusChange.to_status)).all()
        records = session.exec(select(ScreeningRecord.application_id)).all()
        bundles = session.exec(select(CommitteeBundle.email, CommitteeBundle.version)).all()
        decisions = session.exec(select(func.count()).select_from(DecisionRecord)).one()
        outbox = session.exec(select(OutboxMessage)).all()
        requested = session.exec(select(AuditEvent).where(AuditEvent.action == "stage.requested")).all()
    assert applications == 3 and len(records) == 3
    assert not [c for c, n in Counter(changes).items() if n > 1]  # each transition once
    assert sorted(Counter(email for email, _ in bundles).values()) == [1] * 10  # one version per member
    assert decisions == 1
    assert Counter(m.kind for m in outbox) == {"receipt": 3, "screening_incomplete": 1, "screening_ineligible": 1,
                                               "bundle_ready": 10, "decision_approved": 1}
    assert {(m.state, m.attempts) for m in outbox} == {("sent", 1)}  # each sent once
    assert len(list((files / "mail").glob("*.eml"))) == len(outbox)
    assert len(requested) == 8 and {e.actor for e in requested} == {"amina.diallo"}
    assert workers == {"sip-test"}
