"""`sip screen`: screening a round, and what people add to it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from cli.common import (
    ACTOR,
    JsonOpt,
    announce_prefect,
    fail,
    instant_option,
    print_json,
    read_text,
    run_flow,
    runtime,
    service_errors,
    to_committee,
)
from engine.db import reading, unit_of_work
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from flows.screening import ScreeningSummary


class _ScreenCommands(TyperGroup):
    """`sip screen ROUND_ID` runs the screening; `sip screen score|scores|override|report ...`
    record what people add to it."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "run")
        return super().resolve_command(ctx, args)


screen_app = typer.Typer(
    cls=_ScreenCommands,
    no_args_is_help=True,
    help="Screening: `sip screen ROUND_ID` runs it; score, scores, override and report.",
)


@screen_app.command("run", hidden=True)
def screen(
    round_id: str,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the screening is dated.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Screen a closed round (the `screen-applications` flow): completeness, eligibility,
    and the automatic appraisal criteria. Running it again screens nothing twice."""
    import threading

    from engine.services.screening import check_screening, screened_count, to_screen

    when = instant_option(at) or Runtime.now()
    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        check_screening(session, round_id, when)
        total = len(to_screen(session, round_id))
    done = threading.Event()
    announce_prefect()

    def follow(bar: Any) -> None:  # the flow writes records batch by batch; show how far it is
        shown = 0
        while not done.wait(0.5):
            with reading(rt.engine) as session:
                count = screened_count(session, round_id, when)
            bar.update(count - shown)
            shown = count

    with typer.progressbar(
        length=max(total, 1),
        label=f"screening {total} application(s)",
        file=sys.stderr,
        show_pos=True,
        hidden=total == 0,
    ) as bar:
        follower = threading.Thread(target=follow, args=(bar,), daemon=True)
        follower.start()
        try:
            result: ScreeningSummary = run_flow(
                "flows.screening:screen_applications_flow", announce=False, round_id=round_id, at=when
            )
        finally:
            done.set()
            follower.join()
        bar.update(max(total, 1) - bar.pos)
    if as_json:
        from dataclasses import asdict

        print_json(asdict(result))
        return
    verdicts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(result.verdicts.items())) or "none"
    typer.echo(
        f"{round_id}: {result.screened} screened now ({verdicts}); {result.unchanged} unchanged; "
        f"{result.notices} notices queued"
    )
    counts = result.round_counts
    typer.echo("round totals: " + ", ".join(f"{v.replace('_', ' ')} {n}" for v, n in sorted(counts.items())))
    if counts.get("needs_judgement"):
        typer.echo(
            f"{counts['needs_judgement']} application(s) need a person's judgement on eligibility: "
            f"see `sip applications list {round_id}`"
        )


@screen_app.command("score")
def screen_score(
    round_id: str,
    reference: str,
    criterion: str,
    score: str,
    comment: Annotated[str | None, typer.Option(help="Why this score (for the committee).")] = None,
) -> None:
    """Record a person's appraisal score of one application on one judgement criterion."""
    from engine.services.appraisal import ScoreRow, record_scores
    from engine.services.screening import record_of

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        changed = record_scores(
            session,
            round_id,
            [ScoreRow(reference, criterion, score, comment, reference)],
            actor=ACTOR,
            at=Runtime.now(),
        )
        record = record_of(session, reference)
    typer.echo(
        f"{reference}: {criterion} = {score} {'recorded' if changed else '(unchanged)'}; weighted score "
        f"{record.weighted_score if record.weighted_score is not None else '-'}"
    )


@screen_app.command("scores")
def screen_scores(
    round_id: str,
    file: Annotated[Path, typer.Argument(help="A scoring sheet (CSV: reference,criterion,score,comment).")],
) -> None:
    """Import a scoring sheet: every row is checked first; nothing is recorded if one is wrong."""
    from engine.services.appraisal import parse_score_sheet, record_scores

    rt = runtime()
    with service_errors():
        rows = parse_score_sheet(read_text(file, "the scoring sheet"), str(file))
        with unit_of_work(rt.engine) as session:
            changed = record_scores(session, round_id, rows, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{file}: {len(rows)} scores read, {changed} recorded ({len(rows) - changed} unchanged)")


@screen_app.command("override")
def screen_override(
    round_id: str,
    reference: str,
    verdict: Annotated[str, typer.Option(help="screened, incomplete or ineligible")],
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit trail).")] = "",
) -> None:
    """Replace an automatic screening verdict with a person's decision, for a reason."""
    from engine.services.appraisal import override

    if verdict not in ("screened", "incomplete", "ineligible"):
        fail(f"--verdict must be screened, incomplete or ineligible, not {verdict!r}")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        changed = override(
            session,
            rt.settings,
            round_id,
            reference,
            verdict,  # type: ignore[arg-type]
            reason=reason,
            actor=ACTOR,
            at=Runtime.now(),
        )
    typer.echo(f"{reference}: {'now ' + verdict if changed else 'already ' + verdict}")


@screen_app.command("request")
def screen_request(
    round_id: str,
    reference: str,
    item: Annotated[list[str], typer.Option(help="What is missing (repeat for each item).")],
    due: Annotated[
        str | None, typer.Option(help="Date to answer by (YYYY-MM-DD); default: the round's response_days from today.")
    ] = None,
) -> None:
    """Ask an applicant for missing items by a date; they are told in their language."""
    from datetime import date

    from engine.services.follow_up import request_information

    try:
        by = date.fromisoformat(due) if due else None
    except ValueError:
        fail(f"--due {due!r} is not a date; write it as YYYY-MM-DD")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        given = request_information(
            session, rt.settings, round_id, reference, item, due=by, actor=ACTOR, at=Runtime.now()
        )
    typer.echo(f"{reference}: information requested ({len(item)} item(s)) by {given}; the applicant is notified")


@screen_app.command("report")
def screen_report(
    round_id: str, output: Annotated[Path, typer.Option(help="Folder to write the report into.")] = Path("reports")
) -> None:
    """Write the round's screening report (HTML and CSV), grouped by region."""
    from engine.services.report import write_report

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        html, text = write_report(session, round_id, output)
    typer.echo(f"screening report: {html} and {text}")


@screen_app.command("close")
def screen_close(
    round_id: str,
    reason: Annotated[str | None, typer.Option(help="Why now (kept in the audit trail).")] = None,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the close is dated.")] = None,
) -> None:
    """Close screening of a round without GMP review (the `send-to-committee` flow): its
    screened applications go on the committee's agenda."""
    to_committee(round_id, reason, at)
