"""Global Mercury Partnership review of a round's screened applications, and the step
to the Steering Committee.

People act between these flows: `invite-gmp-reviewers` ends once the invitations are
queued; reviews come in through the API; `review-day` (scheduled daily when the
engine's flows are served) reminds, reports overdue reviews and closes the stage at
the deadline when every review is in; `send-to-committee` closes it on the
secretariat's word."""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from domain.review import Placement
from engine.db import reading, unit_of_work
from engine.services.review.assignment import assign_reviewers, check_assignment
from engine.services.review.invitations import InviteSummary, check_invite, invite
from engine.services.review.reminders import DaySummary, review_day, rounds_in_review
from engine.services.stages import CommitteeSummary, check_committee, send_to_committee
from flows.common import at_param, instant, param, refusals_end_the_run, round_param, runtime, started_by, summarise


@task(name="propose-reviewers", cache_policy=NO_CACHE)
def propose_reviewers(round_id: str, actor: str, at_iso: str) -> list[Placement]:
    """One transaction for the whole round: the assignment balances load across it."""
    with unit_of_work(runtime().engine) as session:
        return assign_reviewers(session, round_id, actor=actor, at=instant(at_iso))


@flow(
    name="assign-gmp-reviewers",
    log_prints=False,
    description="Propose Global Mercury Partnership reviewers for every screened application of a round with "
    "GMP review, by partnership area and load, never with a conflict of interest. Running it again "
    "only fills the places still open; nobody is invited yet.",
)
@refusals_end_the_run
def assign_gmp_reviewers_flow(
    round_id: str = round_param(), at: datetime | None = at_param("the proposal")
) -> list[Placement]:
    """Propose reviewers for every screened application of the round; running it again
    only fills places still open."""
    when = instant(at)
    with reading(runtime().engine) as session:
        check_assignment(session, round_id)
    placements = propose_reviewers(round_id, started_by(), when.isoformat())
    unfilled = sum(p.unfilled for p in placements)
    proposed = sum(len(p.reviewers) for p in placements)
    get_run_logger().info("round %s: %d applications, %d places unfilled", round_id, len(placements), unfilled)
    summarise(
        "assign-gmp-reviewers",
        round_id,
        f"Reviewers proposed for {round_id}",
        [("applications", len(placements)), ("reviewers proposed", proposed), ("places left open", unfilled)],
        [f"{p.reference}: {'; '.join(p.reasons)}" for p in placements if p.unfilled][:50],
    )
    return placements


@task(name="queue-invitations", cache_policy=NO_CACHE)
def queue_invitations(round_id: str, actor: str, at_iso: str, due: str | None) -> InviteSummary:
    """One transaction: the assignments, the applications' status and the invitations
    commit together, so a re-run after a crash invites nobody twice."""
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return invite(
            session,
            rt.settings,
            round_id,
            actor=actor,
            at=instant(at_iso),
            due=date.fromisoformat(due) if due else None,
        )


@flow(
    name="invite-gmp-reviewers",
    log_prints=False,
    description="Invite the proposed reviewers of a round (one message each, in their language, with a personal "
    "sign-in link) and open the review stage. Running it again invites only new proposals.",
)
@refusals_end_the_run
def invite_gmp_reviewers_flow(
    round_id: str = round_param(),
    due: date | None = param(
        "Reviews due on", "The day the reviews are due; empty for the round's own (its [review] settings).", None
    ),
    at: datetime | None = at_param("the invitations"),
) -> InviteSummary:
    """Invite the proposed reviewers (one message each, in their language, with a
    personal sign-in link) and open the review stage. The flow ends here: reviews
    come in through the API."""
    when = instant(at)
    with reading(runtime().engine) as session:
        check_invite(session, round_id, at=when, due=due)
    summary = queue_invitations(round_id, started_by(), when.isoformat(), due.isoformat() if due else None)
    get_run_logger().info(
        "round %s: %d assignments invited, %d invitations queued, reviews due %s",
        round_id,
        summary.invited,
        summary.reviewers,
        summary.due_on,
    )
    summarise(
        "invite-gmp-reviewers",
        round_id,
        f"Reviewers invited for {round_id}",
        [
            ("assignments invited", summary.invited),
            ("invitations queued", summary.reviewers),
            ("applications into review", summary.moved_to_review),
        ],
        [f"Reviews are due on {summary.due_on}."],
    )
    return summary


@task(name="run-review-day", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def run_review_day(round_id: str, at_iso: str) -> DaySummary:
    """One round, one transaction; safe to retry (messages are keyed by round, person and due date)."""
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return review_day(session, rt.settings, round_id, at=instant(at_iso))


@flow(
    name="review-day",
    log_prints=False,
    description="The daily run of every open GMP review stage: reminders before the due date, a notice to the "
    "secretariat of overdue reviews, and the close at the deadline once every review is in. Running "
    "it twice the same day sends nothing twice.",
)
@refusals_end_the_run
def review_day_flow(at: datetime | None = at_param("the day's run")) -> list[DaySummary]:
    """The daily run of every open review stage: reminders before the due date, a
    notice to the secretariat of overdue reviews, and the close at the deadline when
    every review is in. Running it twice the same day sends nothing twice."""
    logger = get_run_logger()
    at_iso = instant(at).isoformat()
    with reading(runtime().engine) as session:
        round_ids = rounds_in_review(session)
    results: list[DaySummary] = []
    failed: list[str] = []
    for round_id in round_ids:  # one round failing does not keep the others from their day
        state = run_review_day(round_id, at_iso, return_state=True)
        if not state.is_completed():
            logger.error("round %s: the review day failed (%s); the other rounds ran", round_id, state.message)
            failed.append(round_id)
            continue
        result = state.result()
        results.append(result)
        logger.info(
            "round %s: %s; %d outstanding, %d reminders%s%s",
            result.round,
            result.step,
            result.outstanding,
            result.reminders,
            ", overdue notice" if result.overdue_notice else "",
            ", closed" if result.closed else "",
        )
    summarise(
        "review-day",
        None,
        "The review stages' day",
        [
            (
                r.round,
                f"{r.step}; {r.outstanding} outstanding, {r.reminders} reminders"
                f"{', overdue notice' if r.overdue_notice else ''}{', closed' if r.closed else ''}",
            )
            for r in results
        ]
        + [(round_id, "failed: see the logs") for round_id in failed]
        or [("no round is in review", "")],
        columns=("Round", "The day's run"),
    )
    if failed:
        raise RuntimeError(
            f"the review day failed for {', '.join(failed)} (the others ran); run `sip review daily` "
            "again once the cause is fixed: nothing is sent twice"
        )
    return results


@task(name="close-stage", cache_policy=NO_CACHE)
def close_stage(round_id: str, actor: str, at_iso: str, reason: str | None) -> CommitteeSummary:
    with unit_of_work(runtime().engine) as session:
        return send_to_committee(session, round_id, actor=actor, at=instant(at_iso), reason=reason)


@flow(
    name="send-to-committee",
    log_prints=False,
    description="Close a round's GMP review (or, in a round without it, its screening) and put the screened "
    "applications on the Steering Committee's agenda; those short of reviews go forward marked "
    "as such.",
)
@refusals_end_the_run
def send_to_committee_flow(
    round_id: str = round_param(),
    reason: str | None = param(
        "Reason",
        "Why the stage closes now (kept in the audit trail), e.g. before every review is in.",
        None,
        max_length=2000,
    ),
    at: datetime | None = at_param("the close"),
) -> CommitteeSummary:
    """Close the GMP review stage (or, in a round without it, screening) and put the
    screened applications on the Steering Committee's agenda; those with fewer
    reviews than asked go forward marked as such."""
    when = instant(at)
    with reading(runtime().engine) as session:
        check_committee(session, round_id)
    summary = close_stage(round_id, started_by(), when.isoformat(), reason)
    get_run_logger().info(
        "round %s: %d applications to the committee, %d short of reviews",
        round_id,
        summary.sent,
        len(summary.short),
    )
    summarise(
        "send-to-committee",
        round_id,
        f"{round_id} to the Steering Committee",
        [("applications on the agenda", summary.sent), ("short of reviews", len(summary.short))],
        [f"short of reviews: {', '.join(summary.short)}"] if summary.short else [],
    )
    return summary
