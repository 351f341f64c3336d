"""`sip decisions` and `sip letters`: the committee's decisions and the letters that follow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import (
    ACTOR,
    JsonOpt,
    amount_argument,
    fail,
    in_session,
    instant_option,
    print_json,
    print_table,
    read_text,
    run_flow,
    runtime,
    service_errors,
)
from engine.db import unit_of_work
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from engine.services.letters import LettersSummary

decisions_app = typer.Typer(no_args_is_help=True, help="The committee's decisions, as the secretariat records them.")
letters_app = typer.Typer(no_args_is_help=True, help="The decision letters.")


def _decisions_summary(summary: Any) -> None:
    from decimal import Decimal

    funds = f" of {Decimal(summary.funds_available):,.2f} available" if summary.funds_available else ""
    typer.echo(
        f"{summary.round}: {summary.recorded} decision(s) recorded, {summary.unchanged} unchanged; approvals "
        f"US$ {Decimal(summary.approved_total):,.2f}{funds}"
    )
    if summary.undecided:
        typer.echo(f"  still to decide: {', '.join(summary.undecided)}")


@decisions_app.command("record")
def decisions_record(
    round_id: str,
    reference: str,
    decision: Annotated[str, typer.Option(help="approved, approved_with_conditions, not_approved or deferred")],
    amount: Annotated[str | None, typer.Option(help="US dollars approved, e.g. 190000")] = None,
    conditions: Annotated[str | None, typer.Option()] = None,
    recommendations: Annotated[str | None, typer.Option(help="For the applicant, to resubmit.")] = None,
    participant: Annotated[
        list[str] | None,
        typer.Option(help="A member who took part (repeat); default: the attendees without the conflicted members."),
    ] = None,
    exception: Annotated[
        str | None, typer.Option(help="Why the committee decides on an application that did not pass screening.")
    ] = None,
) -> None:
    """Record one decision of the committee."""
    from pydantic import ValidationError

    from domain.committee import DecisionIn
    from engine.services.committee.decisions import record_decisions

    try:
        item = DecisionIn(
            reference=reference,
            decision=decision,
            amount=amount_argument(amount, "--amount") if amount else None,
            conditions=conditions,
            recommendations=recommendations,
            participants=participant or None,
            exception=exception,
        )
    except ValidationError as exc:
        fail("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors()))
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        summary = record_decisions(session, round_id, [(item, reference)], actor=ACTOR, at=Runtime.now())
    _decisions_summary(summary)


@decisions_app.command("load")
def decisions_load(
    round_id: str,
    file: Annotated[Path, typer.Argument(help="CSV: reference,decision,amount,conditions,recommendations")],
) -> None:
    """Record the meeting's decisions from a sheet: all of them, or none if one breaks a rule."""
    from engine.services.committee.decisions import parse_decisions, record_decisions

    rt = runtime()
    with service_errors():
        items = parse_decisions(read_text(file, "the decisions sheet"), str(file))
        with unit_of_work(rt.engine) as session:
            summary = record_decisions(session, round_id, items, actor=ACTOR, at=Runtime.now())
    _decisions_summary(summary)


@decisions_app.command("list")
def decisions_list(round_id: str, as_json: JsonOpt = False) -> None:
    """The decisions recorded for a round."""
    from engine.services.opendata import lines

    rows = [r for r in in_session(lines, round_id) if r.decision]
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    print_table(
        ["reference", "Party", "decision", "amount", "decided on"],
        [
            (r.reference, r.party, r.decision, None if r.amount is None else f"{r.amount:,.2f}", r.decided_on)
            for r in rows
        ],
        right={"amount"},
    )
    typer.echo(f"{len(rows)} decision(s)")


@letters_app.command("send")
def letters_send(
    round_id: str, at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) they are dated.")] = None
) -> None:
    """Queue the decision letters (the `send-decision-letters` flow): one per applicant, in their language, once."""
    from engine.services.letters import check_letters

    when = instant_option(at)
    in_session(check_letters, round_id)
    result: LettersSummary = run_flow("flows.committee:send_decision_letters_flow", round_id=round_id, at=when)
    kinds = (
        ", ".join(f"{n} {k.removeprefix('decision_').replace('_', ' ')}" for k, n in sorted(result.by_kind.items()))
        or "none new"
    )
    typer.echo(
        f"{round_id}: {result.queued} letter(s) queued ({kinds}); {result.already_sent} sent before; "
        f"{result.grants} grant(s) made (`sip grants list {round_id}`)"
    )
