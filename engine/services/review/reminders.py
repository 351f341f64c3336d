"""The review stage's day: reminders before the due date, the overdue notice to the
secretariat after it, and the stage closed automatically at the deadline once every
review is in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from domain.lifecycle import Role
from domain.review import (
    AssignmentState,
    StageStep,
    stage_step,
)
from domain.rounds import RoundDefinition, RoundStatus
from engine.services.parties import party_names
from engine.services.review.messages import queue_for_reviewers, reviewer_message, tell_secretariat
from engine.services.review.state import deadline, local_day, open_stage
from engine.services.rounds import definition_of, get_round
from engine.services.stages import send_to_committee
from engine.settings import Settings
from engine.tables import (
    Application,
    ReviewAssignment,
    ReviewerRecord,
    ReviewStage,
    Round,
)


@dataclass
class DaySummary:
    round: str
    step: str
    outstanding: int = 0  # reviews invited and not submitted
    reminders: int = 0
    overdue_notice: bool = False
    closed: bool = False


def _outstanding(session: Session, round_id: str) -> list[tuple[ReviewerRecord, Application]]:
    return list(
        session.exec(
            select(ReviewerRecord, Application)
            .join(ReviewAssignment, col(ReviewAssignment.reviewer_id) == ReviewerRecord.id)
            .join(Application, col(Application.id) == ReviewAssignment.application_id)
            .where(ReviewAssignment.round_id == round_id, ReviewAssignment.state == AssignmentState.INVITED)
            .order_by(ReviewerRecord.email, Application.reference)
        ).all()
    )


def review_day(session: Session, settings: Settings, round_id: str, *, at: datetime) -> DaySummary:
    """What the daily schedule does for a round in review: remind reviewers with
    reviews outstanding `reminder_days` before the due date (once per due date), tell
    the secretariat of overdue reviews once the date has passed, and close the stage
    at the deadline when every review is in. Running it again the same day does nothing more."""
    definition = definition_of(get_round(session, round_id, for_update=True))  # locks: round, then stage
    stage = open_stage(session, round_id, for_update=True)
    step = stage_step(local_day(at, definition), stage.due_on, definition.review.reminder_days)
    pending = _outstanding(session, round_id)
    summary = DaySummary(round_id, step.value, outstanding=len(pending))
    by_reviewer: dict[str, tuple[ReviewerRecord, list[Application]]] = {}
    for reviewer, application in pending:
        by_reviewer.setdefault(reviewer.email, (reviewer, []))[1].append(application)
    if step is StageStep.REMIND and by_reviewer:
        names = party_names(session, {a.party for _, a in pending})
        messages = [
            (
                reviewer_message(
                    settings,
                    "review_reminder",
                    f"review_reminder:{round_id}:{email}:{stage.due_on}",
                    reviewer,
                    definition,
                    stage,
                    applications,
                    names,
                    at,
                ),
                reviewer,
            )
            for email, (reviewer, applications) in by_reviewer.items()
            if reviewer.active  # a deactivated reviewer gets no new link
        ]
        summary.reminders = queue_for_reviewers(session, settings, messages, at)
    if step is StageStep.OVERDUE and pending:
        lines = [
            f"{reviewer.email} ({reviewer.name}): {', '.join(a.reference for a in applications)}"
            for reviewer, applications in by_reviewer.values()
        ]
        lines.append(
            "Close the review when you are ready; applications with fewer reviews than asked go "
            "to the committee marked as such."
        )
        summary.overdue_notice = bool(
            tell_secretariat(
                session,
                settings,
                round_id,
                f"review_overdue:{round_id}:{stage.due_on}",
                f"{len(pending)} review(s) of {round_id} were due on {stage.due_on} and are not in",
                lines,
                at,
            )
        )
    summary.closed = close_when_complete(session, stage, definition, at=at)
    return summary


def close_when_complete(session: Session, stage: ReviewStage, definition: RoundDefinition, *, at: datetime) -> bool:
    """Close the stage automatically at the deadline once every review is in."""
    if at < deadline(stage, definition) or _outstanding(session, stage.round_id):
        return False
    send_to_committee(
        session,
        stage.round_id,
        actor="review-deadline",
        role=Role.SYSTEM,
        at=at,
        reason="every review is in at the deadline",
    )
    return True


def rounds_in_review(session: Session) -> list[str]:
    return list(
        session.exec(
            select(ReviewStage.round_id)
            .join(Round)
            .where(col(ReviewStage.closed_at).is_(None), Round.status == RoundStatus.REVIEW)
            .order_by(ReviewStage.round_id)
        ).all()
    )
