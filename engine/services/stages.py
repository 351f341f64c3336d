"""The round's move to the Steering Committee: the close of the GMP review stage or, in
a round without it, of screening, which puts the round's screened applications on
the committee's agenda (with the round's status moved through its table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.hints import Hint, Step
from domain.lifecycle import Role, Status
from domain.review import (
    AssignmentState,
)
from domain.rounds import RoundActionError, RoundStatus, plan_committee
from engine.services.applications import transition_many
from engine.services.errors import NotAllowed
from engine.services.review.state import open_stage
from engine.services.rounds import definition_of, get_round, move_round
from engine.tables import (
    Application,
    ReviewAssignment,
)


@dataclass
class CommitteeSummary:
    round: str
    changed: bool
    sent: int = 0  # applications now ready for the committee
    short: list[str] = field(default_factory=list)  # with fewer GMP reviews than asked


def send_to_committee(
    session: Session,
    round_id: str,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    role: Role = Role.SECRETARIAT,
) -> CommitteeSummary:
    """Close the GMP review stage (or, in a round without it, screening) and put the
    round's screened applications on the committee's agenda. Never blocked by a
    missing review: an application with fewer reviews than asked goes forward marked
    as such. Running it again changes nothing."""
    row = get_round(session, round_id, for_update=True)
    definition = definition_of(row)
    stored = row.status
    target = check_committee(session, round_id)
    if target is stored:
        return CommitteeSummary(round_id, changed=False)
    summary = CommitteeSummary(round_id, changed=True)
    changes: list[tuple[Application, str, str, str | None]] = []
    if definition.has_gmp_review:
        stage = open_stage(session, round_id, for_update=True)
        stage.closed_at, stage.closed_by = at, actor
        session.add(stage)
        counts = _submitted_counts(session, round_id)
        per = definition.reviewers_per_application
        for application in _in_statuses(session, round_id, (Status.GMP_REVIEW, Status.SCREENED)):
            done = counts.get(application.id or 0, 0)
            if done < per:
                summary.short.append(application.reference)
                why = f"fewer GMP reviews than asked: {done} of {per}"
            else:
                why = f"{done} of {per} GMP reviews"
            changes.append((application, "send_to_committee", f"committee:{round_id}", why))
    else:
        changes = [
            (a, "send_to_committee", f"committee:{round_id}", None)
            for a in _in_statuses(session, round_id, (Status.SCREENED,))
        ]
    summary.sent = transition_many(session, changes, actor=actor, role=role, at=at)
    move_round(
        session,
        row,
        "to_committee",
        actor=actor,
        role=role,
        at=at,
        reason=reason,
        details={"applications": summary.sent, "short_of_reviews": summary.short},
    )
    return summary


def check_committee(session: Session, round_id: str) -> RoundStatus:
    """The round's status once with the committee, or why it cannot go there yet."""
    row = get_round(session, round_id)
    stored = row.status
    try:
        target = plan_committee(stored, definition_of(row))
    except RoundActionError as exc:
        raise NotAllowed(str(exc), hints=exc.hints) from None
    if target is stored:
        return target
    pending = session.exec(
        select(Application.reference)
        .where(
            Application.round_id == round_id,
            col(Application.status).in_([Status.SUBMITTED, Status.INFORMATION_REQUESTED]),
        )
        .order_by(Application.reference)
    ).all()
    if pending:  # they would be left behind in screening
        raise NotAllowed(
            f"screening of {round_id} is not finished: {', '.join(pending)} still wait(s) for "
            "screening, a person's judgement or the applicant's answer. Screen them, or decide "
            "their screening by hand with a reason, then close again",
            hints=(
                Hint(Step.SCREEN, round_id=round_id),
                *(Hint(Step.OVERRIDE_SCREENING, round_id=round_id, reference=r) for r in pending),
            ),
        )
    return target


def _in_statuses(session: Session, round_id: str, statuses: tuple[Status, ...]) -> list[Application]:
    return list(
        session.exec(
            select(Application)
            .where(Application.round_id == round_id, col(Application.status).in_(statuses))
            .order_by(col(Application.id))
        ).all()
    )


def _submitted_counts(session: Session, round_id: str) -> dict[int, int]:
    return dict(
        session.exec(
            select(ReviewAssignment.application_id, func.count())
            .where(ReviewAssignment.round_id == round_id, ReviewAssignment.state == AssignmentState.SUBMITTED)
            .group_by(col(ReviewAssignment.application_id))
        ).all()
    )


def to_committee_hint(session: Session, round_id: str) -> Hint:
    """The step that puts the round with the committee: the close of its GMP review, or of
    screening in a round without one."""
    definition = definition_of(get_round(session, round_id))
    return Hint(Step.CLOSE_REVIEW if definition.has_gmp_review else Step.CLOSE_SCREENING, round_id=round_id)
