"""What a secretariat's IT team meets: the deployments as the Prefect UI shows them,
commands that refuse before Prefect starts, the health answers, one secret key for
every machine, migrations as a step of their own, folders every run can find, and
the API handing a stage to an orchestrator that is not there."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from typer.testing import CliRunner

from api.app import create_app
from cli import app
from engine import migrate
from engine.db import get_engine
from engine.services.errors import NotAllowed, Unavailable
from engine.services.setup import Runtime, prepare
from engine.services.tokens import token_hash
from engine.settings import Settings
from tests.conftest import AFTER_CLOSE, ROUND1, SECRET, Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "an-officer-key-0123456789abcdef0123456789"
OFFICER = {"Authorization": f"Bearer {KEY}"}
STAGES = (
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


def sip(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_stage_is_a_deployment_an_officer_can_read_in_the_prefect_ui() -> None:
    from flows.deployments import deployments

    served = {f"{d.flow_name}/{d.name}": d for d in deployments()}
    assert {f"{stage}/on-demand" for stage in STAGES} | {
        "round-dates/every-15-minutes",
        "review-day/daily",
        "grants-day/daily",
        "deliver-notifications/every-5-minutes",
    } == set(served)
    for name, deployment in served.items():
        flow_name = name.split("/")[0]
        assert deployment.entrypoint.startswith("flows.") and ":" not in deployment.entrypoint  # a module path
        assert "notifications" not in deployment.entrypoint.split(".")[1:-1]  # nothing in flows/ hides a package
        assert len(deployment.description) > 40 and "\n" not in deployment.description, flow_name
        schema = deployment._parameter_openapi_schema.model_dump_for_openapi()
        assert "actor" not in schema["properties"]  # who started a run is Prefect's to say, not a parameter's
        for parameter, field in schema["properties"].items():
            assert field["title"] != parameter and field["title"][0].isupper(), (flow_name, parameter)
            assert field.get("description"), (flow_name, parameter)
    screen = served["screen-applications/on-demand"]._parameter_openapi_schema.model_dump_for_openapi()
    assert screen["required"] == ["round_id"] and screen["properties"]["at"]["anyOf"][0]["format"] == "date-time"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("screen", "sip-1999-r0"), "no round 'sip-1999-r0' (known rounds: sip-2018-r1"),
        (
            ("rounds", "open", ROUND1, "--at", "2018-13-01T00:00:00+02:00"),
            "--at '2018-13-01T00:00:00+02:00' is not an instant",
        ),
        (("rounds", "close", ROUND1, "--at", "2018-09-01T00:00:00"), "needs a UTC offset"),
        (("rounds", "open", ROUND1, "--at", "2018-06-04T23:59:59+02:00"), "schedule the open-round flow for that time"),
        (("review", "assign", ROUND1), "round sip-2018-r1 has no GMP review stage"),
        (("bundles", ROUND1), "round sip-2018-r1 is draft: the bundles are prepared once screening"),
        (("letters", "send", "sip-1999-r0"), "no round 'sip-1999-r0'"),
    ],
)
def test_a_command_that_will_be_refused_says_so_before_prefect_starts(
    sqlite_settings: Settings, args: tuple[str, ...], said: str
) -> None:
    code, out, err = sip(*args)
    assert code == 1 and said in err, err
    assert "Prefect" not in err  # no server was started to say it


def test_the_api_answers_alive_and_ready_and_503_naming_the_database_when_it_does_not_answer(
    imported: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(imported.settings)) as client:
        assert client.get("/health/live").json() == {"status": "alive"}
        assert client.get("/health/ready").json() == client.get("/health").json() == {"status": "ready"}
    down = imported.settings.model_copy(update={"database_url": "postgresql+psycopg://sip@127.0.0.1:9/sip"})
    with caplog.at_level(logging.WARNING, logger="sip.api"), TestClient(create_app(down)) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        rounds = client.get("/rounds")
    assert (
        ready.status_code == 503
        and "the database at postgresql+psycopg://sip@127.0.0.1:9/sip does not answer" in ready.json()["message"]
    )
    assert rounds.status_code == 503 and rounds.json()["error"] == "unavailable"
    assert any("the API answers 503 until then" in r.getMessage() for r in caplog.records)


def test_a_second_machine_with_another_secret_key_is_refused(rt: Runtime) -> None:
    other = rt.settings.model_copy(update={"secret_key": "another-key-0123456789abcdef0123456789"})
    from engine.services import setup

    setup._prepared.clear()
    prepare(rt.settings, defaults=False)  # the first machine records its key's check
    setup._prepared.clear()
    with pytest.raises(NotAllowed, match="SIP_SECRET_KEY is not the key this database was set up with"):
        prepare(other, defaults=False)
    setup._prepared.clear()
    prepare(rt.settings, defaults=False)  # the right key still opens it
    code, _, err = sip("rounds", "list")  # the CLI says the same, without a traceback
    assert code == 0
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SIP_SECRET_KEY", "another-key-0123456789abcdef0123456789")
        from engine.settings import get_settings

        get_settings.cache_clear()
        setup._prepared.clear()
        code, _, err = sip("rounds", "list")
        get_settings.cache_clear()
    assert code == 1 and "every machine of the engine must use the same key" in err


def test_where_migrations_are_their_own_step_the_others_refuse_an_old_schema_until_it_is_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SIP_SECRET_KEY", SECRET)
    monkeypatch.setenv("SIP_MIGRATE_ON_START", "false")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    from engine.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    engine = get_engine(settings.url)
    head = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()
    migrate.upgrade(engine, "0007")
    with pytest.raises(
        Unavailable, match=f"is at schema revision 0007 and this engine needs {head}: run the migrations"
    ):
        prepare(settings)
    code, _, err = sip("rounds", "list")
    assert code == 1 and "run the migrations first" in err and "next: sip db upgrade" in err
    code, out, _ = sip("db", "upgrade")
    assert code == 0 and f"database at revision {head}" in out
    code, out, _ = sip("rounds", "list")
    assert code == 0 and ROUND1 in out


def test_the_bundles_kept_by_path_before_are_named_within_the_files_folder(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO round (id, title, opens_at, closes_at, status, definition, source, "
                "last_sequence, updated_at) VALUES ('r', 't', '2018-01-01', '2018-02-01', 'committee', '{}', "
                "'f', 0, '2018-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO committee_bundle (round_id, email, version, path, sha256, digests, changes, "
                "token_hash, created_at) VALUES ('r', 'a@b.org', 1, "
                "'/srv/sip/data/bundles/r/a@b.org.v1.html', 'x', '{}', '[]', 'h', '2018-01-01')"
            )
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT path FROM committee_bundle")).scalar() == "bundles/r/a@b.org.v1.html"
    engine.dispose()


def test_folders_named_relatively_are_found_and_a_worker_deployment_refuses_them(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    relative = Settings(SIP_DATA_DIR="data", SIP_SECRET_KEY=SECRET, DATABASE_URL="postgresql+psycopg://h/sip")
    assert relative.relative_folders() == ["SIP_DATA_DIR"]  # the files and the mail folder are in it
    absolute = Settings(
        SIP_DATA_DIR="/var/lib/sip",
        SIP_SECRET_KEY=SECRET,
        DATABASE_URL="postgresql+psycopg://h/sip",
        SIP_TEMPLATES_DIR="templates",
    )
    assert absolute.relative_folders() == ["SIP_TEMPLATES_DIR"]
    monkeypatch.chdir(sqlite_settings.data_dir)  # its `data` folder is the test's own
    monkeypatch.setenv("SIP_DATA_DIR", "data")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    from engine.settings import get_settings

    get_settings.cache_clear()
    code, _, err = sip("flows", "deploy", "--pool", "sip")
    assert code == 1 and "SIP_DATA_DIR name(s) a folder by a relative path" in err


@pytest.fixture
def officer_client(imported: Runtime) -> Iterator[TestClient]:
    settings = imported.settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(KEY)}"})
    with TestClient(create_app(settings, now=Clock(AFTER_CLOSE))) as client:
        yield client


@pytest.mark.prefect
def test_with_a_prefect_server_the_api_asks_for_a_run_of_the_deployment_and_says_when_it_cannot(
    officer_client: TestClient, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))  # the deployments are not served there
    answer = officer_client.post(f"/rounds/{ROUND1}/screening", headers=OFFICER)
    assert answer.status_code == 503 and answer.json()["error"] == "unavailable"
    assert "the screen-applications/on-demand deployment is not on the Prefect server" in answer.json()["message"]
    assert "`sip flows serve`" in answer.json()["message"]
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens there
    from prefect.settings import temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        answer = officer_client.post(f"/rounds/{ROUND1}/screening", headers=OFFICER)
    assert answer.status_code == 503 and "does not answer" in answer.json()["message"]
    assert officer_client.get(f"/rounds/{ROUND1}/screening", headers=OFFICER).json()["counts"]["not_screened"] == 4


def test_the_instant_a_stage_is_dated_is_checked() -> None:
    from engine.services.errors import InvalidInput
    from flows.common import instant

    assert instant("2018-09-01T00:00:00+02:00") == datetime(2018, 8, 31, 22, tzinfo=UTC)
    for bad, said in (
        ("yesterday", "is not an instant"),
        ("2018-09-01T00:00:00", "needs a UTC offset"),
        ("2999-01-01T00:00:00+00:00", "is in the future"),
    ):
        with pytest.raises(InvalidInput, match=said):
            instant(bad)
    # A scheduled run that starts a moment before its instant waits for it.
    soon = datetime.now(UTC) + timedelta(seconds=1)
    assert instant(soon, wait=60) == soon and datetime.now(UTC) >= soon
    with pytest.raises(InvalidInput, match="is in the future"):
        instant(datetime.now(UTC) + timedelta(seconds=90), wait=60)


@pytest.mark.prefect
def test_round_dates_schedules_each_opening_once_and_moves_it_when_the_date_changes(prefect_harness: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    from domain.rounds import RoundStatus
    from flows.deployments import deployments
    from flows.opening import _schedule

    for deployment in deployments():
        if deployment.flow_name in ("open-round", "close-round"):
            deployment.apply()
    first = datetime(2031, 3, 1, 9, tzinfo=UTC)
    later = datetime(2031, 3, 2, 9, tzinfo=UTC)

    def pending() -> list[tuple[str, datetime]]:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["round:r-dates"])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=50,
            )
        assert all(
            run.parameters == {"round_id": "r-dates", "at": run.expected_start_time.isoformat()} for run in runs
        )  # dated at its instant, even if it starts a moment early
        return [(run.idempotency_key, run.expected_start_time) for run in runs]

    _schedule({"r-dates": [(RoundStatus.OPEN, first)]})
    _schedule({"r-dates": [(RoundStatus.OPEN, first)]})  # the next look: nothing twice
    assert pending() == [(f"open-r-dates-{first.isoformat()}", first)]
    _schedule({"r-dates": [(RoundStatus.OPEN, later), (RoundStatus.CLOSED, later + timedelta(days=30))]})
    assert pending() == [
        (f"open-r-dates-{later.isoformat()}", later),
        (f"close-r-dates-{(later + timedelta(days=30)).isoformat()}", later + timedelta(days=30)),
    ]
    _schedule({})  # the round was taken back to a later year: nothing stays scheduled for it
    assert pending() == []
