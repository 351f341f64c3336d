"""The Alembic migrations and the SQLModel tables describe the same schema."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from engine import migrate
from engine.services.setup import Runtime


def test_migrations_produce_exactly_the_tables_the_code_declares(rt: Runtime) -> None:
    with rt.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []
    assert migrate.current(rt.engine) == "0001"


def test_migrations_go_down_to_nothing_and_up_again(rt: Runtime) -> None:
    config = migrate.alembic_config(rt.engine)
    with rt.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        conn.commit()
    assert set(inspect(rt.engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(rt.engine)
    assert {"application", "audit_event", "outbox", "round", "party"} <= set(inspect(rt.engine).get_table_names())
