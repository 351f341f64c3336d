"""`sip keys`: the secretariat's API keys, kept in the database as hashes: made (each
shown once), listed, revoked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import (
    ByOpt,
    JsonOpt,
    date_option,
    fail,
    officer_name,
    print_json,
    print_table,
    runtime,
    service_errors,
    settings_or_fail,
)
from domain.keys import LONGEST_DAYS, KeyScope
from engine.db import reading, unit_of_work
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from engine.services.keys import KeyView

keys_app = typer.Typer(no_args_is_help=True, help="The secretariat's API keys: make, list, revoke.")


def _settings_keys() -> dict[str, str]:
    try:
        return settings_or_fail().secretariat_key_hashes()
    except ValueError as exc:
        fail(str(exc))


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="Whose key (kept in the audit trail), e.g. amina.diallo")],
    scope: Annotated[
        KeyScope, typer.Option(help="read: the secretariat's GET routes only; full: also what changes the engine.")
    ] = KeyScope.FULL,
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            metavar="DAYS",
            help="Days the key works (default: SIP_SECRETARIAT_KEY_DAYS, 365).",
            min=1,
            max=LONGEST_DAYS,
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", metavar="DATE", help="The day the key stops working (00:00 UTC).")
    ] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an API key for a secretariat officer. The key is shown once; the database keeps only its hash."""
    from engine.services.keys import create_key

    if expires_in is not None and expires is not None:
        fail("give --expires-in DAYS or --expires DATE, not both")
    rt = runtime()
    now = Runtime.now()
    day: date | None = date_option(expires, "--expires")
    if day is not None:
        until = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if until > now + timedelta(days=LONGEST_DAYS):
            fail(f"--expires {day}: a key works for {LONGEST_DAYS} days at most")
    else:
        until = now + timedelta(days=expires_in or rt.settings.secretariat_key_days)
    with service_errors(), unit_of_work(rt.engine) as session:
        made = create_key(session, name, scope=scope, expires_at=until, actor=officer_name(by), at=now)
    if as_json:
        print_json(made)
        return
    typer.echo(
        f"API key {made.id} for {made.name} (scope {made.scope.value}, expires {_instant(made.expires_at)}).\n"
        f"Give it to them; it is not shown again:\n  {made.key}"
    )


def _row(view: KeyView) -> tuple[Any, ...]:
    from engine.services.keys import FROM_SETTINGS

    settings = view.state == FROM_SETTINGS
    return (
        view.id if view.id is not None else "-",
        view.name,
        f"{view.prefix}…" if view.prefix else "-",
        view.scope.value,
        _instant(view.created_at),
        "never" if settings else _instant(view.expires_at),
        "not tracked" if settings else (_instant(view.last_used_at) or "never"),
        view.state,
    )


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """Every key: officer, id and first characters, scope, dates, last use (to the
    minute), and state (active, expired, revoked, or "from settings" for a key of
    SIP_SECRETARIAT_KEYS)."""
    from engine.services.keys import list_keys

    settings_keys = _settings_keys()
    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        views = list_keys(session, settings_keys, at=Runtime.now())
    if as_json:
        print_json(views)
        return
    if not views:
        typer.echo("no API keys; `sip keys new NAME` makes one")
        return
    print_table(
        ["id", "name", "key", "scope", "created", "expires", "last used", "state"],
        [_row(v) for v in views],
        right={"id"},
        row_styles=[None if v.state in ("active", "from settings") else "red" for v in views],
    )


@keys_app.command("revoke")
def keys_revoke(
    which: Annotated[str, typer.Argument(metavar="KEY_ID|NAME", help="A key's id, or an officer (all their keys).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
    by: ByOpt = None,
) -> None:
    """Revoke a key, or every key of an officer: refused by the API from the next request on."""
    from engine.services.keys import revoke_keys

    settings_keys = _settings_keys()
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        revoked = revoke_keys(
            session, which, reason=reason, actor=officer_name(by), at=Runtime.now(), settings_keys=settings_keys
        )
    for view in revoked:
        typer.echo(f"revoked key {view.id} of {view.name} ({view.prefix}…, scope {view.scope.value})")
