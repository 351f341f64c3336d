"""`sip db`: the database schema."""

from __future__ import annotations

import typer

from cli.common import (
    fail,
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


@db_app.command("roles")
def db_roles() -> None:
    """PostgreSQL with two roles (README, "Database roles"): as the tables' owner
    (SIP_MIGRATION_DATABASE_URL), grant the application's role (DATABASE_URL) what it
    needs, then check that the application's role owns nothing and is no superuser,
    so that it cannot drop, truncate or alter the tables nor disable the audit trail's
    triggers. Exits with 1 when it could."""
    from sqlalchemy.exc import OperationalError

    from engine.db import get_engine, separate_engine
    from engine.services.database_roles import check_application_role, current_role, grant_application_role
    from engine.services.setup import unreachable

    settings = settings_or_fail()
    app_engine = get_engine(settings.url)
    if app_engine.dialect.name != "postgresql":
        fail("database roles are for PostgreSQL (DATABASE_URL=postgresql+psycopg://…); SQLite has one user")
    with service_errors():
        try:
            if settings.migration_database_url:
                owner = separate_engine(settings.migration_url)
                try:
                    grant_application_role(owner, current_role(app_engine))
                finally:
                    owner.dispose()
            check = check_application_role(app_engine)
        except OperationalError as exc:
            raise unreachable(settings.url, exc) from None
    if not check.separated:
        why = [
            *(["it is a superuser"] if check.superuser else []),
            *([_owned(check.owned_tables)] if check.owned_tables else []),
            *(["it may create tables in the schema"] if check.may_create else []),
        ]
        fail(
            f"the application's role {check.role} could drop or alter the tables or disable the audit trail's "
            f"guards ({'; '.join(why)}): connect the application as a role that owns nothing, and run the "
            'migrations as the owner with SIP_MIGRATION_DATABASE_URL (README, "Database roles")'
        )
    granted = " (privileges granted by the owner)" if settings.migration_database_url else ""
    typer.echo(f"the application's role {check.role} owns nothing and is no superuser{granted}")


def _owned(tables: list[str]) -> str:
    among = ", the audit trail among them" if "audit_event" in tables else ""
    return f"it owns {len(tables)} table(s){among}"
