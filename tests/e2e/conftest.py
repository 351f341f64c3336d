"""Fixtures of the end-to-end tests of the deployed engine: a real Prefect server per
module, and a database every process of a test shares."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine.db import dispose_all
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    _postgres_reachable,
)
from tests.processes import (
    prefect_server,
)


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
