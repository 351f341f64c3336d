"""`sip staff`: the secretariat officers' own accounts (for the console): added with a
password (asked for, or read from standard input), listed, disabled."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.common import ByOpt, JsonOpt, officer_name, print_json, print_table, runtime, service_errors
from domain.staff import StaffRole
from engine.db import reading, unit_of_work
from engine.services.setup import Runtime

staff_app = typer.Typer(no_args_is_help=True, help="The secretariat officers' accounts: add, list, disable.")


def _instant(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@staff_app.command("add")
def staff_add(
    email: Annotated[str, typer.Argument(help="The officer's e-mail address, which they sign in with.")],
    name: Annotated[str, typer.Option(help="The officer's name, as the audit trail shows it.")],
    role: Annotated[
        StaffRole, typer.Option(help="officer: runs rounds; read-only: looks; admin: also manages accounts and keys.")
    ] = StaffRole.OFFICER,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")
    ] = False,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an account. The password is asked for twice (not shown), or read from standard
    input with --password-stdin; the database keeps only its Argon2 hash."""
    from engine.services.staff import add_staff

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        view = add_staff(session, email, name, role, password, actor=officer_name(by), at=Runtime.now())
    if as_json:
        print_json(view)
        return
    typer.echo(f"account {view.email} added for {view.name} (role {view.role.value}); they sign in at /console/")


@staff_app.command("list")
def staff_list(as_json: JsonOpt = False) -> None:
    """Every account: address, name, role, state, last sign-in."""
    from engine.services.staff import list_staff

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        views = list_staff(session)
    if as_json:
        print_json(views)
        return
    if not views:
        typer.echo("no staff accounts; `sip staff add EMAIL --name NAME` adds one")
        return
    now = Runtime.now()
    print_table(
        ["e-mail", "name", "role", "state", "last sign-in", "added", "added by"],
        [
            (
                v.email,
                v.name,
                v.role.value,
                "disabled" if not v.active else "locked" if v.locked_until and v.locked_until > now else "active",
                _instant(v.last_sign_in_at),
                _instant(v.created_at),
                v.created_by,
            )
            for v in views
        ],
        row_styles=[None if v.active else "red" for v in views],
    )


@staff_app.command("disable")
def staff_disable(
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
    by: ByOpt = None,
) -> None:
    """Disable an account: it can no longer sign in (its history stays)."""
    from engine.services.staff import disable_staff

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        view = disable_staff(session, email, actor=officer_name(by), at=Runtime.now())
    typer.echo(f"account {view.email} ({view.name}) is disabled: it can no longer sign in")
