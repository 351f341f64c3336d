"""The engine as production runs it on several machines: a real Prefect server, the
deployments in a process work pool run by two `prefect worker start` processes, two
API processes starting the stages, and nothing done twice. PostgreSQL where it
answers, SQLite otherwise."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import reading
from engine.services.tokens import token_hash
from engine.tables import (
    Application,
    AuditEvent,
    CommitteeBundle,
    DecisionRecord,
    OutboxMessage,
    ScreeningRecord,
    StatusChange,
)
from tests.conftest import (
    ROUND1,
)
from tests.e2e.deployment import (
    SIP,
    completed,
    decide,
    engine_env,
    migrate,
    people_between_stages,
    run,
    runtime_on,
    write_applications,
)
from tests.processes import (
    VENV_BIN,
    free_port,
    running,
    start_runs,
    wait_for,
)

pytestmark = pytest.mark.deployed


def test_two_workers_and_two_api_processes_run_a_round_with_nothing_done_twice(
    prefect: tuple[str, Path], shared_database: str, tmp_path: Path
) -> None:
    api, home = prefect
    files = tmp_path / "shared-files"  # the folder every machine mounts
    key = "officer-key-" + uuid.uuid4().hex
    env = engine_env(
        shared_database,
        api,
        home,
        SIP_DATA_DIR=str(files),
        PREFECT_WORKER_QUERY_SECONDS="1",
        SIP_SECRETARIAT_KEYS=f"amina.diallo:{token_hash(key)}",
    )
    machines = [tmp_path / f"machine-{n}" for n in (1, 2)]
    for folder in machines:
        folder.mkdir()
    migrate(env, machines[0])
    import subprocess

    deployed = subprocess.run(
        [SIP, "flows", "deploy", "--pool", "sip-test"],
        env=env,
        cwd=machines[0],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "13 deployments in work pool 'sip-test'" in deployed.stdout
    folders = write_applications(tmp_path / "incoming")
    rt = runtime_on(shared_database, files)
    ports = [free_port(), free_port()]
    officer = {"Authorization": f"Bearer {key}"}
    with (
        running(
            [str(VENV_BIN / "prefect"), "worker", "start", "--pool", "sip-test", "--name", "worker-1"],
            env=env,
            cwd=machines[0],
            log=tmp_path / "worker-1.log",
        ),
        running(
            [str(VENV_BIN / "prefect"), "worker", "start", "--pool", "sip-test", "--name", "worker-2"],
            env=env,
            cwd=machines[1],
            log=tmp_path / "worker-2.log",
        ),
        running([SIP, "serve", "--port", str(ports[0])], env=env, cwd=machines[0], log=tmp_path / "api-1.log") as api1,
        running([SIP, "serve", "--port", str(ports[1])], env=env, cwd=machines[1], log=tmp_path / "api-2.log") as api2,
    ):
        for port, process, name in ((ports[0], api1, "api-1"), (ports[1], api2, "api-2")):
            wait_for(f"http://127.0.0.1:{port}/health/ready", process, tmp_path / f"{name}.log")
        twice = [run("open-round/on-demand", round_id=ROUND1, at="2018-06-05T09:00:00+00:00")] * 2
        completed(
            start_runs(
                api,
                home,
                [
                    twice,
                    [run("import-applications/on-demand", round_id=ROUND1, paths=[str(folders[ROUND1])])] * 2,
                    [run("close-round/on-demand", round_id=ROUND1, at="2018-09-01T00:00:00+02:00")] * 2,
                ],
                cwd=tmp_path,
            )
        )

        def both_apis(path: str, follow: str | None = None) -> None:
            """The same stage asked of both API processes at once; both runs end completed."""
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(
                        lambda port: httpx.post(f"http://127.0.0.1:{port}{path}", headers=officer, timeout=30), ports
                    )
                )
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
        workers = {
            httpx.get(f"{api}/flow_runs/{r['id']}").json()["work_pool_name"]
            for r in start_runs(api, home, [[run("send-decision-letters/on-demand", round_id=ROUND1)]], cwd=tmp_path)
        }

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
    assert Counter(m.kind for m in outbox) == {
        "receipt": 3,
        "screening_incomplete": 1,
        "screening_ineligible": 1,
        "bundle_ready": 10,
        "decision_approved": 1,
    }
    assert {(m.state, m.attempts) for m in outbox} == {("sent", 1)}  # each sent once
    assert len(list((files / "mail").glob("*.eml"))) == len(outbox)
    assert len(requested) == 8 and {e.actor for e in requested} == {"amina.diallo"}
    assert workers == {"sip-test"}
