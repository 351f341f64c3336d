"""Fixtures: a real database per test (SQLite file, and PostgreSQL where reachable),
and one Prefect test harness per session for the tests that run flows."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
for _handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):  # as the CLI: no Prefect console logs
    os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{_handler}_LEVEL", "WARNING")

from engine.db import dispose_all, get_engine, unit_of_work  # noqa: E402
from engine.services.rounds import open_round  # noqa: E402
from engine.services.setup import Runtime, load_defaults, prepare  # noqa: E402
from engine.settings import Settings, get_settings  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"  # copies of shared/sip/examples

POSTGRES_ADMIN_URL = os.environ.get("SIP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROUND1 = "sip-2018-r1"
IN_ROUND1 = datetime(2018, 7, 2, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-0123456789abcdef0123456789"


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: skip, and say why
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:120]}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with the defaults, copied for each test."""
    folder = tmp_path_factory.mktemp("template")
    settings = Settings(SIP_DATA_DIR=folder, SIP_SECRET_KEY=SECRET)
    rt = prepare(settings)
    rt.engine.dispose()
    dispose_all()
    return folder / "sip.db"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    problem = _postgres_reachable()
    if problem:
        pytest.skip(
            f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({problem}); PostgreSQL tests skipped. "
            "Start PostgreSQL or set SIP_TEST_POSTGRES_URL to run them."
        )
    name = f"sip_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    prepare(Settings(DATABASE_URL=url, SIP_SECRET_KEY=SECRET), defaults=False)
    yield url
    dispose_all()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text("select tablename from pg_tables where schemaname = 'public' and tablename <> 'alembic_version'")
            )
        ]
        # The audit trail refuses TRUNCATE (a trigger); the tests' superuser empties it past the triggers.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _fresh_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("SIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SIP_SECRET_KEY", SECRET)
    if backend == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "sip.db")
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
        monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    settings = get_settings()
    load_defaults(get_engine(settings.url), datetime.now(UTC))
    return settings


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for a fresh database with the defaults (Parties, shipped rounds), also
    exported to the environment so that flows and the CLI use the same database."""
    return _fresh_settings(backend, request, tmp_path, monkeypatch)


@pytest.fixture
def sqlite_settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """For tests that need one database only (the embedded default)."""
    return _fresh_settings("sqlite", request, tmp_path, monkeypatch)


@pytest.fixture
def rt(settings: Settings) -> Runtime:
    return Runtime(settings, get_engine(settings.url))


@pytest.fixture
def open_round1(rt: Runtime) -> Runtime:
    """Round 1 opened on its real opening day."""
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND1, actor="secretariat", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    return rt


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes 10-30 s to start)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


def changed(raw: bytes, **paths: object) -> bytes:
    """A JSON document with fields replaced; `a__b=1` sets document["a"]["b"] = 1."""
    import json

    doc = json.loads(raw)
    for dotted, value in paths.items():
        target = doc
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return json.dumps(doc).encode()


AFTER_CLOSE = datetime(2018, 9, 3, 9, tzinfo=UTC)
RECEIVED = "2018-08-20T10:00:00+02:00"


def received(name: str, **changes: object) -> bytes:
    """An example application as the secretariat would import it (received in the round)."""
    return changed(example(name), **{"received_at": RECEIVED, **changes})


@pytest.fixture
def imported(open_round1: Runtime) -> Runtime:
    """Round 1 with four imported applications: complete (Benin), incomplete (Lesotho),
    ineligible (Switzerland), and one whose Party's date is unknown (Cameroon)."""
    from engine.services.intake import import_batch

    files = [
        (n, received(n))
        for n in ("ben-asgm-complete.json", "lso-inventory-no-form-c.json", "che-products-ineligible.json")
    ]
    files.append(("cmr.json", received("ben-asgm-complete.json", applicant__party="CMR", form_a__title="Cameroon")))
    assert all(
        r.ok for r in import_batch(open_round1.engine, open_round1.settings, ROUND1, files, actor="s", now=AFTER_CLOSE)
    )
    return open_round1


def run(rt: Runtime, batch: int = 500) -> list:
    """Screen round 1 as the flow does, batch by batch."""
    from engine.services.screening import screen_batch, start_screening, to_screen

    with unit_of_work(rt.engine) as session:
        start_screening(session, ROUND1, actor="officer", at=AFTER_CLOSE)
        ids = to_screen(session, ROUND1)
    return [
        screen_batch(rt.engine, rt.settings, ROUND1, ids[i : i + batch], actor="officer", at=AFTER_CLOSE)
        for i in range(0, len(ids), batch)
    ]


def access_code(rt: Runtime, reference: str) -> str:
    """An imported application's access code, as its receipt gives it (derived again from
    the import's key and the secret key)."""
    from sqlmodel import select

    from engine.services.tokens import derive_token
    from engine.tables import Application, IntakeKey

    with unit_of_work(rt.engine) as session:
        key, round_id = session.exec(
            select(IntakeKey.key, Application.round_id).join(Application).where(Application.reference == reference)
        ).one()
    return derive_token(rt.settings.key(), round_id, key)


def bundle_link_token(rt: Runtime, email: str, version: int = 1, round_id: str = ROUND1) -> str:
    """The token of a committee member's bundle link, as their message delivers it."""
    import re

    from sqlmodel import select

    from engine.db import reading
    from engine.services import outbox
    from engine.tables import OutboxMessage

    with reading(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.key == f"bundle_ready:{round_id}:{email}:v{version}")
        ).one()
        text = outbox.materialize(session, rt.settings, message).text
    return re.search(r"/committee/bundle\?token=([\w-]+)", text).group(1)  # type: ignore[union-attr]


def delivered(rt: Runtime, kind: str, recipient: str) -> str:
    """The text of the latest message of `kind` to `recipient`, as delivery sends it
    (its secrets put in)."""
    from sqlmodel import col, select

    from engine.db import reading
    from engine.services import outbox
    from engine.tables import OutboxMessage

    with reading(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == kind, OutboxMessage.recipient == recipient)
            .order_by(col(OutboxMessage.id).desc())
        ).first()
        assert message is not None, f"no {kind} message to {recipient}"
        return outbox.materialize(session, rt.settings, message).text


def draft_link(rt: Runtime, email: str) -> str:
    """The address (path and query) of the latest link to a draft sent to `email`."""
    import re

    found = re.search(r"https?://[^/\s]+(/apply/draft\?token=[\w-]+&lang=\w+)", delivered(rt, "draft_link", email))
    assert found is not None
    return found.group(1)


#: What the secretariat asks Lesotho's applicant for, and by when (`ask_for_information`).
ASKED = (["Form C, signed by the national focal point", "The workplan"], date(2018, 9, 28))


def ask_for_information(rt: Runtime, reference: str) -> None:
    from engine.services.follow_up import request_information

    with unit_of_work(rt.engine) as session:
        request_information(
            session, rt.settings, ROUND1, reference, ASKED[0], due=ASKED[1], actor="officer", at=AFTER_CLOSE
        )


@pytest.fixture
def screened(imported: Runtime) -> Runtime:
    run(imported)
    return imported


ROUND4 = "sip-2024-r4"
AFTER_R4 = datetime(2024, 8, 5, 9, tzinfo=UTC)
HEADER = "name,email,organisation,country,areas,languages,max_load\n"
REGISTER = HEADER + (
    "Ana Gold,ana@example.org,Universidad de Lima,PER,artisanal_gold_mining;waste_management,es;en,3\n"
    "Kofi Mine,kofi@example.org,Ghana EPA,GHA,artisanal_gold_mining,en,3\n"
    "Bénédicte Or,bene@example.org,Université d'Abomey,BEN,artisanal_gold_mining,fr,3\n"
    "Paul Retort,paul@example.org,Ministère du Cadre de Vie et du Développement Durable,TGO,"
    "artisanal_gold_mining,fr;en,3\n"
    "Lena Lamp,lena@example.org,Zero Mercury,DEU,products;waste_management,en,3\n"
)


@pytest.fixture
def round4(rt: Runtime) -> Runtime:
    """Round 4 (the first with GMP review), screened: a gold-mining application from
    Benin (SIP-2024-R4-0001) and one on products and wastes from Lesotho (-0002); and
    a register of five reviewers."""
    from engine.services.intake import import_batch
    from engine.services.review.register import load_reviewers, parse_reviewers
    from engine.services.screening import screen_batch, start_screening, to_screen

    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND4, actor="s", at=datetime(2024, 4, 25, tzinfo=UTC))
    files = [
        ("ben.json", changed(example("ben-asgm-complete.json"), round=ROUND4, received_at="2024-07-01T10:00:00+02:00")),
        (
            "lso.json",
            changed(
                example("ben-asgm-complete.json"),
                round=ROUND4,
                applicant__party="LSO",
                received_at="2024-07-02T10:00:00+02:00",
                form_a__convention_articles=[4, 11],
                form_a__title="Mercury-added products and their wastes",
                form_a__summary="Inventory of products",
                form_a__objective="Regulate products",
            ),
        ),
    ]
    assert all(r.ok for r in import_batch(rt.engine, rt.settings, ROUND4, files, actor="s", now=AFTER_R4))
    with unit_of_work(rt.engine) as session:
        start_screening(session, ROUND4, actor="s", at=AFTER_R4)
        ids = to_screen(session, ROUND4)
    screen_batch(rt.engine, rt.settings, ROUND4, ids, actor="s", at=AFTER_R4)
    with unit_of_work(rt.engine) as session:
        load_reviewers(session, parse_reviewers(REGISTER, "r.csv"), source="r.csv", actor="s", at=AFTER_R4)
    return rt


COMMITTEE_AT = datetime(2018, 10, 3, 15, tzinfo=UTC)


def members(rt: Runtime, text: str | None = None) -> dict[str, int]:
    """Load a committee membership (default: the demo's 2018-2019 committee)."""
    from demo.committee import MEMBERS
    from engine.services.committee.membership import known_parties, load_members, parse_members

    with unit_of_work(rt.engine) as session:
        return load_members(
            session,
            parse_members(text or MEMBERS, "c.csv", known_parties(session)),
            source="c.csv",
            actor="officer",
            at=COMMITTEE_AT,
        )


@pytest.fixture
def committee(screened: Runtime) -> Runtime:
    """Round 1 with the committee: Benin's and Cameroon's applications on the agenda
    (Lesotho's is incomplete, Switzerland's ineligible); funds of US$ 300,000."""
    from decimal import Decimal

    from engine.services.appraisal import override
    from engine.services.committee.meeting import set_funds
    from engine.services.stages import send_to_committee

    with unit_of_work(screened.engine) as session:
        override(
            session,
            screened.settings,
            ROUND1,
            "SIP-2018-R1-0004",
            "screened",
            reason="Party since 2017",
            actor="o",
            at=AFTER_CLOSE,
        )
        send_to_committee(session, ROUND1, actor="officer", at=AFTER_CLOSE)
    members(screened)
    with unit_of_work(screened.engine) as session:
        set_funds(session, ROUND1, Decimal("300000"), actor="officer", at=COMMITTEE_AT)
    return screened


class Clock:
    """The API's clock, set by a test."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def wait_for_run(run_id: str) -> Any:
    """The final state of a flow run the API started in the background."""
    import threading

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as prefect:
        while not (run := prefect.read_flow_run(run_id)).state.is_final():
            assert time.monotonic() < deadline, "the flow run did not finish"
            time.sleep(0.2)
    for thread in threading.enumerate():
        if thread.name == f"flow-run-{run_id}":
            thread.join(30)
    return run.state
