"""`sip outbox`: the notifications, their delivery and their retries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ACTOR,
    JsonOpt,
    fail,
    in_session,
    print_json,
    print_table,
    run_flow,
    runtime,
    service_errors,
)
from engine.db import unit_of_work
from engine.services import outbox as outbox_service
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from engine.services.delivery import Delivered

outbox_app = typer.Typer(no_args_is_help=True, help="Queued notifications.")


@outbox_app.command("list")
def outbox_list(
    state: Annotated[str | None, typer.Option(help="Only messages in this state (queued, sent, failed).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only the messages that failed for good.")] = False,
    round_id: Annotated[str | None, typer.Option("--round", help="Only this round's messages.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The notifications, one row each: recipient, kind, language, state (and, for a failed one, why)."""
    lines = in_session(outbox_service.list_messages, state="failed" if failed else state, round_id=round_id)
    if as_json:
        print_json([m.__dict__ for m in lines])
        return
    if not lines:
        typer.echo("no message" + (" has failed" if failed else "s"))
    print_table(
        ["id", "recipient", "kind", "language", "state", "attempts", "last error"],
        [(m.id, m.recipient, m.kind, m.language, m.state, m.attempts, m.last_error or "") for m in lines],
        right={"id", "attempts"},
        row_styles=["red" if m.state == "failed" else None for m in lines],
    )
    if failed and lines:
        typer.echo(f"{len(lines)} failed; once the cause is fixed, `sip outbox retry --all` queues them again")


@outbox_app.command("deliver")
def outbox_deliver(
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many messages.")] = None,
) -> None:
    """Send what is queued and due (the `deliver-notifications` flow), by the backend the settings
    name: files (NOTIFICATIONS_BACKEND=file, the default) or a mail server (smtp)."""
    rt = runtime()
    result: Delivered = run_flow("flows.delivery:deliver_notifications_flow", limit=limit)
    where = (
        f"files in {rt.settings.mail_folder}"
        if rt.settings.notifications_backend == "file"
        else f"{rt.settings.smtp_host}:{rt.settings.smtp_port_or_default}"
    )
    typer.echo(f"{result.sent} sent ({where}), {result.retrying} to try again later, {result.failed} failed")
    for error in result.errors:
        typer.echo(f"  {error}", err=True)
    if result.failed:
        typer.echo("see them with `sip outbox list --failed`", err=True)


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="The failed messages' ids.")] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="Every failed message.")] = False,
) -> None:
    """Queue failed messages again (after the mail server or an address was fixed)."""
    from engine.services.delivery import retry_failed

    if not ids and not all_failed:
        fail("name the failed messages' ids, or --all (`sip outbox list --failed` lists them)")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        count = retry_failed(session, None if all_failed else ids, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{count} message(s) queued again; `sip outbox deliver` sends them")
