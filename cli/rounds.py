"""`sip rounds`: load round definitions, list, open and close."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ACTOR,
    JsonOpt,
    in_session,
    instant_option,
    local,
    print_json,
    print_table,
    run_flow,
    runtime,
    service_errors,
)
from engine.db import unit_of_work
from engine.services import rounds as round_service
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from flows.opening import RoundMoved

rounds_app = typer.Typer(no_args_is_help=True, help="Rounds: load definitions, list, open and close.")


@rounds_app.command("list")
def rounds_list(as_json: JsonOpt = False) -> None:
    """The rounds, with their dates and whether they accept applications."""
    views = in_session(round_service.list_rounds, Runtime.now())
    if as_json:
        print_json([v.model_dump(mode="json") for v in views])
        return
    print_table(
        ["round", "status", "opens", "closes", "applications", "title"],
        [
            (
                v.id,
                v.status.value,
                local(v.opens_at, v.timezone),
                local(v.closes_at, v.timezone),
                "accepting" if v.accepts_applications else "not accepting",
                v.title,
            )
            for v in views
        ],
    )


@rounds_app.command("load")
def rounds_load(file: Annotated[Path, typer.Argument(help="A round definition (TOML).")]) -> None:
    """Validate a round file, store it and print the round."""
    rt = runtime()
    with service_errors():
        definition = round_service.read_round_file(file)
        with unit_of_work(rt.engine) as session:
            row, outcome = round_service.store_round(
                session, definition, source=str(file), actor=ACTOR, at=Runtime.now()
            )
            view = round_service.RoundView.of(row, Runtime.now())
    typer.echo(f"{outcome}: {definition.id} — {definition.title}")
    typer.echo(f"  applications from {local(view.opens_at, view.timezone)} to {local(view.closes_at, view.timezone)}")
    typer.echo(
        f"  amounts {definition.currency} {definition.amount_min:,.0f} to {definition.amount_max:,.0f}; "
        f"stages: {', '.join(definition.stages)}; {len(definition.criteria)} criteria "
        f"({definition.criteria_set} set); status {view.status.value}"
    )


@rounds_app.command("open")
def rounds_open(
    round_id: str, at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) at which it opened.")] = None
) -> None:
    """Open a round for applications (runs the `open-round` flow)."""
    when = instant_option(at)
    in_session(round_service.check_open, round_id, at=when or Runtime.now())
    result: RoundMoved = run_flow("flows.opening:open_round_flow", round_id=round_id, at=when)
    typer.echo(f"{round_id}: {'opened' if result.changed else 'already ' + str(result.status)}")


@rounds_app.command("close")
def rounds_close(
    round_id: str,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) at which it closed.")] = None,
    early_reason: Annotated[str | None, typer.Option(help="Why it closes before its deadline.")] = None,
) -> None:
    """Close a round (runs the `close-round` flow)."""
    when = instant_option(at)
    in_session(round_service.check_close, round_id, at=when or Runtime.now(), early_reason=early_reason)
    result: RoundMoved = run_flow(
        "flows.opening:close_round_flow", round_id=round_id, at=when, early_reason=early_reason
    )
    typer.echo(f"{round_id}: {'closed' if result.changed else 'already ' + str(result.status)}")
