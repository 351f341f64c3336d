"""Two roles on PostgreSQL (README, "Database roles"): migrations run as the tables'
owner (SIP_MIGRATION_DATABASE_URL), the application connects as a role that owns
nothing. The engine works as that role, and that role can neither empty, change nor
drop the audit trail, nor switch its guards off. Each run makes its own database and
roles (unique names) and drops them afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from cli.main import app
from engine.db import dispose_all, unit_of_work
from engine.services.audit_trail import verify
from engine.services.database_roles import check_application_role
from engine.services.intake import import_batch
from engine.services.rounds import open_round
from engine.services.setup import prepare
from engine.settings import get_settings
from tests.conftest import AFTER_CLOSE, POSTGRES_ADMIN_URL, ROUND1, SECRET, received


@dataclass
class Roles:
    owner_url: str
    app_url: str
    app_role: str


@pytest.fixture
def roles(request: pytest.FixtureRequest) -> Iterator[Roles]:
    request.getfixturevalue("postgres_url")  # skips where PostgreSQL is not reachable
    suffix = uuid.uuid4().hex[:10]
    owner, app_role, database = f"sip_owner_{suffix}", f"sip_app_{suffix}", f"sip_roles_{suffix}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN'))
        conn.execute(text(f'CREATE ROLE "{app_role}" LOGIN'))
        conn.execute(text(f'CREATE DATABASE "{database}" OWNER "{owner}"'))
    base = make_url(POSTGRES_ADMIN_URL).set(database=database)
    try:
        yield Roles(
            owner_url=base.set(username=owner).render_as_string(hide_password=False),
            app_url=base.set(username=app_role).render_as_string(hide_password=False),
            app_role=app_role,
        )
    finally:
        dispose_all()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{app_role}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
        admin.dispose()


def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: str, migration: str | None) -> None:
    monkeypatch.setenv("SIP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SIP_SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", database)
    if migration is None:
        monkeypatch.delenv("SIP_MIGRATION_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("SIP_MIGRATION_DATABASE_URL", migration)
    get_settings.cache_clear()


REFUSED = {
    "TRUNCATE audit_event": "permission denied for table audit_event",
    "DELETE FROM audit_event": "permission denied for table audit_event",
    "UPDATE audit_event SET reason = 'nothing happened'": "permission denied for table audit_event",
    "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only": "must be owner of table audit_event",
    "ALTER TABLE audit_event DISABLE TRIGGER USER": "must be owner of table audit_event",
    "DROP TRIGGER audit_event_no_truncate ON audit_event": "must be owner of relation audit_event",
    "SET session_replication_role = replica": 'permission denied to set parameter "session_replication_role"',
    "DROP TABLE audit_event": "must be owner of table audit_event",
    "CREATE TABLE audit_copy (id integer)": "permission denied for schema public",
    "UPDATE alembic_version SET version_num = '0001'": "permission denied for table alembic_version",
}


def test_the_application_role_runs_the_engine_but_cannot_undo_the_audit_trail(
    roles: Roles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment(monkeypatch, tmp_path, roles.app_url, roles.owner_url)
    rt = prepare(get_settings())  # migrated as the owner, the defaults loaded as the application
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND1, actor="secretariat", at=AFTER_CLOSE.replace(month=6, day=5))
    taken = import_batch(
        rt.engine, rt.settings, ROUND1, [("ben.json", received("ben-asgm-complete.json"))], actor="s", now=AFTER_CLOSE
    )
    assert [r.ok for r in taken] == [True]
    check = check_application_role(rt.engine)
    assert (check.role, check.separated, check.owned_tables) == (roles.app_role, True, [])
    before = verify(rt.engine)
    assert before.ok and before.checked > 3

    app_engine = create_engine(roles.app_url)
    try:
        for statement, refusal in REFUSED.items():
            with pytest.raises(DBAPIError) as refused, app_engine.begin() as conn:
                conn.execute(text(statement))
            assert refusal in str(refused.value), statement
    finally:
        app_engine.dispose()
    after = verify(rt.engine)
    assert after.ok and after.checked == before.checked
    answer = CliRunner().invoke(app, ["db", "roles"])
    assert answer.exit_code == 0, answer.output
    assert f"the application's role {roles.app_role} owns nothing" in answer.stdout


def test_the_owner_as_the_application_role_is_refused_by_sip_db_roles(
    roles: Roles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment(monkeypatch, tmp_path, roles.owner_url, None)
    prepare(get_settings(), defaults=False)
    answer = CliRunner().invoke(app, ["db", "roles"])
    assert answer.exit_code == 1
    assert "could drop or alter the tables" in answer.stderr and "the audit trail among them" in answer.stderr
