"""Global Mercury Partnership review of a round's screened applications, and the step
to the Steering Committee.

People act between these flows: `invite-gmp-reviewers` ends once the invitations are
queued; reviews come in through the API; `review-day` (scheduled daily when the
engine's flows are served) reminds, reports overdue reviews and closes the stage at
the deadline when every review is in; `send-to-committee` closes it on the
secretariat's word."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import reading, unit_of_work
from engine.services.review import assign_reviewers, placement_json
from engine.services.reviewing import invite, review_day, rounds_in_review, send_to_committee
from flows.common import instant, runtime


@task(name="propose-reviewers", cache_policy=NO_CACHE)
def propose_reviewers(round_id: str, actor: str, at_iso: str) -> list[dict[str, Any]]:
    """One transaction for the whole round: the assignment balances load across it."""
    with unit_of_work(runtime().engine) as session:
        return placement_json(assign_reviewers(session, round_id, actor=actor, at=instant(at_iso)))


@flow(name="assign-gmp-reviewers", log_prints=False)
def assign_gmp_reviewers_flow(round_id: str, actor: str = "secretariat", at: str | None = None
                              ) -> list[dict[str, Any]]:
    """Propose reviewers for every screened application of the round; running it again
    only fills places still open."""
    placements = propose_reviewers(round_id, actor, instant(at).isoformat())
    unfilled = sum(p["unfilled"] for p in placements)
    get_run_logger().info("round %s: %d applications, %d places unfilled", round_id, len(placements), unfilled)
    return placements


@task(name="queue-invitations", cache_policy=NO_CACHE)
def queue_invitations(round_id: str, actor: str, at_iso: str, due: str | None) -> dict[str, Any]:
    """One transaction: the assignments, the applications' status and the invitations
    commit together, so a re-run after a crash invites nobody twice."""
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        summary = invite(session, rt.settings, round_id, actor=actor, at=instant(at_iso),
                         due=date.fromisoformat(due) if due else None)
    return asdict(summary)


@flow(name="invite-gmp-reviewers", log_prints=False)
def invite_gmp_reviewers_flow(round_id: str, actor: str = "secretariat", due: str | None = None,
                              at: str | None = None) -> dict[str, Any]:
    """Invite the proposed reviewers (one message each, in their language, with a
    personal sign-in link) and open the review stage. The flow ends here: reviews
    come in through the API."""
    summary = queue_invitations(round_id, actor, instant(at).isoformat(), due)
    get_run_logger().info("round %s: %d assignments invited, %d invitations queued, reviews due %s", round_id,
                          summary["invited"], summary["reviewers"], summary["due_on"])
    return summary


@task(name="run-review-day", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def run_review_day(round_id: str, at_iso: str) -> dict[str, Any]:
    """One round, one transaction; safe to retry (messages are keyed by round, person and due date)."""
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return asdict(review_day(session, rt.settings, round_id, at=instant(at_iso)))


@flow(name="review-day", log_prints=False)
def review_day_flow(at: str | None = None) -> list[dict[str, Any]]:
    """The daily run of every open review stage: reminders before the due date, a
    notice to the secretariat of overdue reviews, and the close at the deadline when
    every review is in. Running it twice the same day sends nothing twice."""
    logger = get_run_logger()
    at_iso = instant(at).isoformat()
    with reading(runtime().engine) as session:
        round_ids = rounds_in_review(session)
    results, failed = [], []
    for round_id in round_ids:  # one round failing does not keep the others from their day
        state = run_review_day(round_id, at_iso, return_state=True)
        if not state.is_completed():
            logger.error("round %s: the review day failed (%s); the other rounds ran", round_id, state.message)
            failed.append(round_id)
            continue
        result = state.result()
        results.append(result)
        logger.info("round %s: %s; %d outstanding, %d reminders%s%s", result["round"], result["step"],
                    result["outstanding"], result["reminders"], ", overdue notice" if result["overdue_notice"] else "",
                    ", closed" if result["closed"] else "")
    if failed:
        raise RuntimeError(f"the review day failed for {', '.join(failed)} (the others ran); run `sip review daily` "
                           "again once the cause is fixed: nothing is sent twice")
    return results


@task(name="close-stage", cache_policy=NO_CACHE)
def close_stage(round_id: str, actor: str, at_iso: str, reason: str | None) -> dict[str, Any]:
    with unit_of_work(runtime().engine) as session:
        return asdict(send_to_committee(session, round_id, actor=actor, at=instant(at_iso), reason=reason))


@flow(name="send-to-committee", log_prints=False)
def send_to_committee_flow(round_id: str, actor: str = "secretariat", reason: str | None = None,
                           at: str | None = None) -> dict[str, Any]:
    """Close the GMP review stage (or, in a round without it, screening) and put the
    screened applications on the Steering Committee's agenda; those with fewer
    reviews than asked go forward marked as such."""
    summary = close_stage(round_id, actor, instant(at).isoformat(), reason)
    get_run_logger().info("round %s: %d applications to the committee, %d short of reviews", round_id,
                          summary["sent"], len(summary["short"]))
    return summary
