"""`sip db`: the database schema."""

from __future__ import annotations

import typer

from cli.common import (
    safe_url,
    service_errors,
    settings_or_fail,
    state,
)
from engine.services.setup import prepare

db_app = typer.Typer(no_args_is_help=True, help="The database schema.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (and load the default register and rounds). Where
    SIP_MIGRATE_ON_START=false, this is the step that does it (before the API and the
    workers start)."""
    from engine import migrate

    settings = settings_or_fail()
    with service_errors():
        rt = prepare(settings.model_copy(update={"migrate_on_start": True}))
    state().runtime = rt
    typer.echo(f"database at revision {migrate.current(rt.engine)}: {safe_url(rt.settings)}")
