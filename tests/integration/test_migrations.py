"""The Alembic migrations and the SQLModel tables describe the same schema."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from engine import migrate
from engine.services.setup import Runtime
from tests.integration.test_opendata import decided  # noqa: F401  (the fixture)


def test_migrations_produce_exactly_the_tables_the_code_declares(rt: Runtime) -> None:
    with rt.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []
    head = ScriptDirectory.from_config(migrate.alembic_config(rt.engine)).get_current_head()
    assert migrate.current(rt.engine) == head


def test_migrations_go_down_to_nothing_and_up_again(rt: Runtime) -> None:
    config = migrate.alembic_config(rt.engine)
    with rt.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        conn.commit()
    assert set(inspect(rt.engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(rt.engine)
    assert {"application", "audit_event", "outbox", "round", "party"} <= set(inspect(rt.engine).get_table_names())


def test_upgrading_from_0001_gives_stored_check_criteria_their_rule(backend: str, request, tmp_path) -> None:
    """A database made by the first release keeps working: its stored round
    definitions are brought up to date by the migration."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from engine.db import get_engine, unit_of_work
    from engine.services.rounds import definition_of, get_round, read_round_file
    from rounds import ROUNDS_DIR
    from tests.conftest import POSTGRES_ADMIN_URL

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        request.getfixturevalue("postgres_url")
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/sip_old_{tmp_path.name[-8:].lower()}"
        from sqlalchemy import create_engine

        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"'))
            conn.execute(text(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"'))
    engine = get_engine(url)
    migrate.upgrade(engine, "0001")
    old = read_round_file(ROUNDS_DIR / "sip-2018-r1.toml").model_dump(mode="json")
    for criterion in old["criteria"]:
        criterion.pop("rule")
    for key in ("eligible_economies", "completeness_checks"):
        old.pop(key)
    from engine.tables import Round

    with unit_of_work(engine) as session:
        session.add(
            Round(
                id=old["id"],
                title=old["title"],
                opens_at=datetime(2018, 6, 4, 22, tzinfo=UTC),
                closes_at=datetime(2018, 8, 31, 22, tzinfo=UTC),
                status="closed",
                definition=old,
                source="0001",
                updated_at=datetime.now(UTC),
            )
        )
    migrate.upgrade(engine)
    with unit_of_work(engine) as session:
        definition = definition_of(get_round(session, "sip-2018-r1"))
    assert {c.id: c.rule for c in definition.criteria if c.rule} == {"national_consultation": "consultation_confirmed"}
    assert definition.eligible_economies == ["developing", "transition"]
    engine.dispose()
    if backend == "postgresql":
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def _scratch_database(backend: str, request, tmp_path, prefix: str) -> tuple[str, object]:
    """A new, empty database of its own (a name unique to this test run on PostgreSQL)."""
    from sqlalchemy import create_engine, text

    from tests.conftest import POSTGRES_ADMIN_URL

    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{prefix}.db'}", None
    request.getfixturevalue("postgres_url")
    import uuid

    name = f"sip_{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    request.addfinalizer(drop)
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", admin


def test_upgrading_to_0009_chains_the_events_already_stored_and_keeps_the_guards(
    backend: str, request, tmp_path
) -> None:
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from engine.db import separate_engine
    from engine.services.audit_trail import verify

    url, _ = _scratch_database(backend, request, tmp_path, "chain")
    engine = separate_engine(url)
    request.addfinalizer(engine.dispose)
    migrate.upgrade(engine, "0008")
    insert = text(
        "INSERT INTO audit_event (id, at, actor, role, action, subject_type, subject_id, from_status, to_status, "
        "reason, details) VALUES (:id, :at, 'secretariat', 'secretariat', 'round.opened', 'round', 'r1', "
        ":from_status, 'open', :reason, :details)"
    )
    from datetime import UTC, datetime

    with engine.begin() as conn:
        for i, event_id in enumerate((1, 2, 5, 6, 9)):  # ids skipped by transactions rolled back
            conn.execute(
                insert,
                dict(
                    id=event_id,
                    at=datetime(2018, 6, 5, 9, i, 7, 123456 * (i % 2), tzinfo=UTC),
                    from_status=None if i % 2 else "draft",
                    reason="Réouverture ≠ « fermeture »" if i == 2 else None,
                    details=None if i == 0 else f'{{"n": {i}, "ratio": 1.0, "big": 1e16, "list": [1.5, "x"]}}',
                ),
            )
    migrate.upgrade(engine)
    result = verify(engine)
    assert result.ok and result.checked == 5 and result.head_id == 9
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET reason = 'x' WHERE id = 2"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = 2"))
    if backend == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_event"))
    config = migrate.alembic_config(engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
        conn.commit()
    assert {c["name"] for c in inspect(engine).get_columns("audit_event")} >= {"id", "details"}
    assert "hash" not in {c["name"] for c in inspect(engine).get_columns("audit_event")}
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id = 2"))


def test_a_grant_activated_before_the_reports_existed_gets_its_dates_and_then_its_reports(
    decided: Runtime,  # noqa: F811
) -> None:
    """A grant made active under 0016 (no agreement dates, no released instalment, no
    reports): upgrading gives it its dates and its first instalment; the next daily run
    lays out its reports."""
    from datetime import date, timedelta

    from sqlmodel import select

    from domain.grants import GrantState
    from engine.db import reading, unit_of_work
    from engine.services.grants import grant_of, line_of
    from engine.services.grants_day import grants_day
    from engine.tables import GrantReport
    from tests.integration.test_grant_reports import SIGNED, activate

    activate(decided)
    config = migrate.alembic_config(decided.engine)
    with decided.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0016")
        conn.commit()
    migrate.upgrade(decided.engine)
    with reading(decided.engine) as session:
        grant = grant_of(session, "SIP-2018-R1-0001")
        assert grant.state == GrantState.ACTIVE and (grant.starts_on, grant.ends_on) == (
            SIGNED.date(),
            date(2020, 11, 2),
        )
        assert line_of(session, grant).released == 60000
        assert session.exec(select(GrantReport)).all() == []
    with unit_of_work(decided.engine) as session:
        day = grants_day(session, decided.settings, at=SIGNED + timedelta(days=1))
        assert day.schedules_made == 1 and len(session.exec(select(GrantReport)).all()) == 4
