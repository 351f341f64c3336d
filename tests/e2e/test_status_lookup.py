"""The applicant's status (JSON and page) from at most two queries, on SQLite and
PostgreSQL; a read survives the database closing its pooled connections; `sip serve
--workers 2` answers."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from api.app import create_app
from engine.db import read
from engine.services.applications import applicant_on
from engine.services.setup import Runtime
from tests.conftest import IN_ROUND1, POSTGRES_ADMIN_URL, ROUND1, SECRET, Clock, example
from tests.processes import VENV_BIN, free_port, quiet_env, running, wait_for
from tests.queries import statements

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BEN = example("ben-asgm-complete.json")


@pytest.fixture
def client(open_round1: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(open_round1.settings, now=Clock(IN_ROUND1))) as client:
        yield client


def test_the_status_api_answers_from_at_most_two_queries(client: TestClient, open_round1: Runtime) -> None:
    receipt = client.post(f"/rounds/{ROUND1}/applications", content=BEN).json()
    with statements(open_round1.engine) as seen:
        response = client.get(
            f"/applications/{receipt['reference']}", headers={"Authorization": f"Bearer {receipt['access_token']}"}
        )
    assert response.status_code == 200 and response.json()["status"] == "received"
    assert response.headers["content-type"] == "application/json"
    assert len(seen) <= 2, seen


def test_the_status_page_answers_from_at_most_two_queries(client: TestClient, open_round1: Runtime) -> None:
    receipt = client.post(f"/rounds/{ROUND1}/applications", content=BEN).json()
    form = {"reference": receipt["reference"], "access_code": receipt["access_token"], "lang": "fr"}
    client.post("/status", data=form)  # the round's definition is checked once per process
    with statements(open_round1.engine) as seen:
        page = client.post("/status", data=form)
    assert page.status_code == 200 and "reçue" in page.text and "Réduction de l&#39;utilisation" in page.text
    assert len(seen) <= 2, seen


def test_a_wrong_token_is_refused_from_one_query_and_counted(client: TestClient, open_round1: Runtime) -> None:
    receipt = client.post(f"/rounds/{ROUND1}/applications", content=BEN).json()
    with statements(open_round1.engine) as seen:
        wrong = client.get(f"/applications/{receipt['reference']}", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 404 and wrong.json()["error"] == "not_found"
    assert len([s for s in seen if "FROM application" in s]) == 1  # then only the refusal's sampling writes


def test_a_read_is_asked_again_on_a_new_connection_after_postgresql_closed_the_pooled_ones(
    open_round1: Runtime,
) -> None:
    """What a PostgreSQL restart does to the pool (no pre-ping): the connections it held
    are closed by the server; the next read fails on one, and is asked again on a new one."""
    rt = open_round1
    if not rt.settings.url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to restart")
    assert read(rt.engine, lambda c: applicant_on(c, "SIP-2018-R1-0999", "x")) is None  # pooled now
    database = rt.engine.url.database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        closed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        ).scalar_one()
    admin.dispose()
    assert closed >= 1
    assert read(rt.engine, lambda c: applicant_on(c, "SIP-2018-R1-0999", "x")) is None


def test_a_postgresql_read_is_in_autocommit_and_cannot_write(open_round1: Runtime) -> None:
    """The status lookups' pool on PostgreSQL: no BEGIN and COMMIT around its two
    statements (each is its own transaction), and nothing read through it can write."""
    from sqlalchemy.exc import InternalError

    rt = open_round1
    if not rt.settings.url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite reads in a deferred transaction of its own")
    assert read(rt.engine, lambda c: c.connection.dbapi_connection.autocommit) is True  # type: ignore[union-attr]
    with pytest.raises(InternalError, match="read-only transaction"):
        read(rt.engine, lambda c: c.execute(text("CREATE TEMP TABLE sneaked (a int)")))


def test_sip_serve_with_two_workers_answers_the_status_api(tmp_path: Path) -> None:
    env = quiet_env(SIP_DATA_DIR=str(tmp_path / "data"), SIP_SECRET_KEY=SECRET)
    port = free_port()
    log = tmp_path / "serve.log"
    with running(
        [str(VENV_BIN / "sip"), "serve", "--port", str(port), "--workers", "2"], env=env, cwd=tmp_path, log=log
    ) as process:
        wait_for(f"http://127.0.0.1:{port}/health/ready", process, log, seconds=180)
        base = f"http://127.0.0.1:{port}"
        missing = httpx.get(f"{base}/applications/SIP-2018-R1-0001", headers={"Authorization": "Bearer x"}, timeout=30)
        rounds = httpx.get(f"{base}/rounds", timeout=30)
        assert missing.status_code == 404 and rounds.status_code == 200
        deadline = time.monotonic() + 120  # the first worker may answer before the second has started
        while log.read_text().count("Application startup complete") < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert log.read_text().count("Application startup complete") == 2, log.read_text()[-2000:]
        assert "died" not in log.read_text()
