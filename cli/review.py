"""`sip review`: the GMP technical review of a round."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ACTOR,
    JsonOpt,
    date_option,
    in_session,
    instant_option,
    print_json,
    print_table,
    run_flow,
    runtime,
    service_errors,
    to_committee,
)
from domain.lifecycle import Role
from engine.db import unit_of_work
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from domain.review import Placement
    from engine.services.review.invitations import InviteSummary
    from engine.services.review.reminders import DaySummary

review_app = typer.Typer(no_args_is_help=True, help="Global Mercury Partnership technical review.")


@review_app.command("assign")
def review_assign(round_id: str, as_json: JsonOpt = False) -> None:
    """Propose reviewers for the round's screened applications (the `assign-gmp-reviewers` flow)."""
    from engine.services.review.assignment import check_assignment

    in_session(check_assignment, round_id)
    placements: list[Placement] = run_flow("flows.review:assign_gmp_reviewers_flow", round_id=round_id)
    if as_json:
        from dataclasses import asdict

        print_json([asdict(p) for p in placements])
        return
    print_table(
        ["application", "reviewers proposed", "places unfilled", "why"],
        [(p.reference, ", ".join(p.reviewers) or "(none)", p.unfilled, "\n".join(p.reasons)) for p in placements],
        right={"places unfilled"},
    )
    unfilled = sum(p.unfilled for p in placements)
    typer.echo(f"{len(placements)} applications; {unfilled} place(s) unfilled")


@review_app.command("show")
def review_show(round_id: str, as_json: JsonOpt = False) -> None:
    """The round's assignment: each application's reviewers and their state, open places, and why."""
    from engine.services.review.assignment import assignment_view
    from engine.services.review.state import REVIEWABLE

    lines = in_session(assignment_view, round_id)
    if as_json:
        from dataclasses import asdict

        print_json([asdict(line) for line in lines])
        return
    rows: list[tuple[str, ...]] = []
    for line in lines:
        # The application's cells on its first row; its reviewers, and its open places, under it.
        first = (line.reference, line.party, line.status, ", ".join(line.areas) or "(none)")
        under: list[tuple[str, str, str]] = [
            (r.email, r.state + (", draft saved" if r.review == "draft" else ""), r.note or "") for r in line.reviewers
        ]
        if line.open_places and line.status in REVIEWABLE:
            under.append(
                (
                    f"{line.open_places} place(s) open",
                    "",
                    "\n".join(
                        [f"the assignment would propose: {', '.join(line.proposals) or 'nobody'}", *line.reasons]
                    ),
                )
            )
        for i, cells in enumerate(under or [("(none)", "", "")]):
            rows.append((*(first if i == 0 else ("", "", "", "")), *cells))
    print_table(["application", "Party", "status", "areas", "reviewer", "state", "note"], rows)


@review_app.command("add")
def review_add(round_id: str, reference: str, email: str) -> None:
    """Put a reviewer on an application by hand (never one with a conflict of interest)."""
    from engine.services.review.assignment import add_reviewer

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        outcome = add_reviewer(session, round_id, reference, email, actor=ACTOR, at=Runtime.now())
    typer.echo(
        f"{reference}: {email.lower()} {outcome}"
        + (f"; invite them with `sip review invite {round_id}`" if outcome != "unchanged" else "")
    )


@review_app.command("remove")
def review_remove(
    round_id: str,
    reference: str,
    email: str,
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit trail).")] = "",
) -> None:
    """Take a reviewer off an application, for a reason."""
    from engine.services.review.assignment import remove_reviewer

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        remove_reviewer(session, round_id, reference, email, reason=reason, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{reference}: {email.lower()} taken off; `sip review assign {round_id}` proposes someone else")


@review_app.command("conflict")
def review_conflict(
    round_id: str,
    reference: str,
    email: str,
    reason: Annotated[str, typer.Option(help="What the conflict of interest is.")] = "",
) -> None:
    """Record a reviewer's conflict of interest with an application (they come off it)."""
    from engine.services.review.assignment import record_conflict

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        recorded = record_conflict(
            session, round_id, reference, email, reason=reason, actor=ACTOR, role=Role.SECRETARIAT, at=Runtime.now()
        )
    typer.echo(f"{reference}: conflict of interest of {email.lower()} {'recorded' if recorded else 'already recorded'}")


@review_app.command("invite")
def review_invite(
    round_id: str,
    due: Annotated[str | None, typer.Option(help="Day reviews are due (YYYY-MM-DD); default: the round's.")] = None,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the invitations are dated.")] = None,
) -> None:
    """Invite the proposed reviewers (the `invite-gmp-reviewers` flow): one message each, in
    their language, with a personal sign-in link. Running it again invites only new proposals."""
    from engine.services.review.invitations import check_invite

    day = date_option(due, "--due")
    when = instant_option(at)
    in_session(check_invite, round_id, at=when or Runtime.now(), due=day)
    result: InviteSummary = run_flow("flows.review:invite_gmp_reviewers_flow", round_id=round_id, due=day, at=when)
    typer.echo(
        f"{round_id}: {result.invited} assignment(s) invited, {result.reviewers} invitation(s) queued, "
        f"{result.moved_to_review} application(s) into review; reviews due {result.due_on}"
    )
    if result.unfilled:
        typer.echo(f"  places still open on {', '.join(result.unfilled)}: `sip review show {round_id}` says why")


@review_app.command("extend")
def review_extend(round_id: str, due: Annotated[str, typer.Option(help="New due day (YYYY-MM-DD).")]) -> None:
    """Move the day reviews are due (reminders follow it)."""
    from engine.services.review.invitations import extend

    day = date_option(due, "--due")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        before = extend(session, round_id, day, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{round_id}: reviews now due {day} (were due {before})")


@review_app.command("daily")
def review_daily(
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) to run it as of.")] = None,
) -> None:
    """The review stage's daily run (the `review-day` flow, scheduled when the flows are
    served): reminders, the overdue notice, and the close at the deadline when every review is in."""
    when = instant_option(at)
    runtime()
    results: list[DaySummary] = run_flow("flows.review:review_day_flow", at=when)
    if not results:
        typer.echo("no round is in GMP review")
    steps = {"nothing": "reviews not due soon", "remind": "reviews due soon", "overdue": "past the due date"}
    for r in results:
        typer.echo(
            f"{r.round}: {steps[r.step]}; {r.outstanding} review(s) outstanding, {r.reminders} "
            f"reminder(s) queued"
            + (", overdue notice to the secretariat" if r.overdue_notice else "")
            + (", review closed: the round goes to the committee" if r.closed else "")
        )


@review_app.command("close")
def review_close(
    round_id: str,
    reason: Annotated[str | None, typer.Option(help="Why now (kept in the audit trail).")] = None,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the close is dated.")] = None,
) -> None:
    """Close the GMP review (the `send-to-committee` flow): applications short of reviews go
    forward marked as such; reviews are no longer taken."""
    to_committee(round_id, reason, at)


@review_app.command("summary")
def review_summary(round_id: str, as_json: JsonOpt = False) -> None:
    """The reviews in and their aggregation: mean and spread per criterion, recommendations, disagreement."""
    from engine.services.review.views import review_stage_view

    view = in_session(review_stage_view, round_id)
    if as_json:
        print_json(view)
        return
    stage = view.stage
    typer.echo(
        f"{round_id}: {view.status}; "
        + (
            f"reviews due {stage.due_on}" + (f", closed {stage.closed_at:%Y-%m-%d}" if stage.closed_at else "")
            if stage
            else "no invitations yet"
        )
    )
    applications = view.applications
    print_table(
        ["application", "reviews", "outstanding", "recommendations", "flags"],
        [
            (
                app.reference,
                f"{app.reviews_submitted}/{app.reviews_asked}",
                app.outstanding,
                ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in app.recommendations.items() if n) or "none",
                " ".join(f for f, on in (("SHORT OF REVIEWS", app.short), ("DISAGREEMENT", app.disagreement)) if on),
            )
            for app in applications
        ],
        right={"reviews", "outstanding"},
        row_styles=["yellow" if app.short or app.disagreement else None for app in applications],
    )
    criteria = [(app.reference, c) for app in applications for c in app.criteria if c.scores]
    if criteria:
        typer.echo("")
    print_table(
        ["application", "criterion", "mean", "spread", "scores", "disagreement"],
        [
            (
                reference if i == 0 or criteria[i - 1][0] != reference else "",
                c.id,
                c.mean,
                c.spread,
                ", ".join(map(str, c.scores)),
                "yes" if c.disagreement else "",
            )
            for i, (reference, c) in enumerate(criteria)
        ],
        title="scores by criterion",
        right={"mean", "spread"},
        row_styles=["yellow" if c.disagreement else None for _, c in criteria],
    )
