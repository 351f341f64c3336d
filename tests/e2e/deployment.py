"""What the tests of the deployed engine share: the engine's settings for its
processes, the applications, the people's acts between stages, runs and their logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlmodel import select

from domain.committee import DecisionIn
from engine.db import get_engine, reading, unit_of_work
from engine.services.committee.decisions import record_decisions
from engine.services.committee.meeting import set_funds
from engine.services.review.register import load_reviewers, parse_reviewers
from engine.services.setup import Runtime
from engine.settings import Settings
from engine.tables import (
    Application,
)
from tests.conftest import (
    REGISTER,
    ROUND1,
    ROUND4,
    SECRET,
    changed,
    example,
    received,
)
from tests.processes import (
    VENV_BIN,
    deployments_on,
    quiet_env,
    running,
)

SIP = str(VENV_BIN / "sip")
ENGINE_DEPLOYMENTS = {
    *(
        f"{flow}/on-demand"
        for flow in (
            "open-round",
            "close-round",
            "import-applications",
            "screen-applications",
            "assign-gmp-reviewers",
            "invite-gmp-reviewers",
            "send-to-committee",
            "prepare-committee-bundles",
            "send-decision-letters",
        )
    ),
    "round-dates/every-15-minutes",
    "review-day/daily",
    "grants-day/daily",
    "deliver-notifications/every-5-minutes",
}


def engine_env(database: str, api: str, home: Path, **extra: str) -> dict[str, str]:
    """The settings every machine of one engine shares; migrations are a step of their own."""
    return quiet_env(
        DATABASE_URL=database,
        SIP_SECRET_KEY=SECRET,
        SIP_MIGRATE_ON_START="false",
        PREFECT_API_URL=api,
        PREFECT_HOME=str(home),
        **extra,
    )


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
    (r4 / "ben.json").write_bytes(
        changed(example("ben-asgm-complete.json"), round=ROUND4, received_at="2024-07-01T10:00:00+02:00")
    )
    (r4 / "lso.json").write_bytes(
        changed(
            example("ben-asgm-complete.json"),
            round=ROUND4,
            applicant__party="LSO",
            received_at="2024-07-02T10:00:00+02:00",
            form_a__title="Products",
        )
    )
    return {ROUND1: r1, ROUND4: r4}


def run(deployment: str, **parameters: object) -> dict[str, object]:
    return {"deployment": deployment, "parameters": parameters}


def completed(runs: list[dict[str, str]]) -> list[dict[str, str]]:
    assert [r["state"] for r in runs] == ["COMPLETED"] * len(runs), runs
    return runs


def runtime_on(database: str, files: Path) -> Runtime:
    settings = Settings(DATABASE_URL=database, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=files, SIP_MIGRATE_ON_START=False)
    return Runtime(settings, get_engine(database))


def statuses(rt: Runtime, round_id: str) -> dict[str, str]:
    with reading(rt.engine) as session:
        return dict(
            session.exec(select(Application.party, Application.status).where(Application.round_id == round_id)).all()
        )


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
        benin = session.exec(
            select(Application.reference).where(Application.round_id == ROUND1, Application.party == "BEN")
        ).one()
        record_decisions(
            session,
            ROUND1,
            [(DecisionIn(reference=benin, decision="approved", amount=Decimal("150000")), "row 1")],
            actor="officer",
            at=datetime(2018, 10, 4, tzinfo=UTC),
        )


def sign_the_grant(rt: Runtime) -> None:
    """Benin's agreement signed by both on 20 October 2018: its grant (without conditions) is active."""
    from engine.services.grants import record_signature

    at = datetime(2018, 10, 20, 9, tzinfo=UTC)
    with unit_of_work(rt.engine) as session:
        benin = session.exec(
            select(Application.reference).where(Application.round_id == ROUND1, Application.party == "BEN")
        ).one()
        for kind, signer in (("recipient", "Aïcha Dossou"), ("secretariat", "Monika Stankiewicz")):
            record_signature(
                session, benin, kind=kind, signer=signer, signed_on=at.date(), file_name="agreement.pdf",
                content=b"%PDF-1.7\n% signed\n", actor="officer", at=at,
            )  # fmt: skip


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
        logs = httpx.post(
            f"{api}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200, "sort": "TIMESTAMP_ASC"},
        ).json()
        if any(line["message"].startswith("Finished in state") for line in logs) or datetime.now(UTC) > deadline:
            return logs
        time.sleep(0.5)
