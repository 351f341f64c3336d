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
