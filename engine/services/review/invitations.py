"""The invitations of the GMP review stage: the stage opens with a due date, every
proposed reviewer is invited with a personal sign-in link, and the secretariat may
extend the due date.

People act between flows: each step is one transaction, triggered by a command, an
API call or the daily schedule; nothing waits inside a running process."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session

from domain.application import FieldError
from domain.hints import Hint, Step
from domain.lifecycle import Role, Status
from domain.review import (
    AssignmentState,
    conflicts,
    due_date,
)
from domain.rounds import RoundActionError, plan_review
from engine.services import audit
from engine.services.applications import transition_many
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.parties import party_names
from engine.services.review.messages import queue_for_reviewers, reviewer_message
from engine.services.review.state import (
    RoundReview,
    as_reviewer,
    local_day,
    move_assignment,
    open_stage,
    round_review,
    stage_of,
)
from engine.services.rounds import definition_of, get_round, move_round
from engine.settings import Settings
from engine.tables import (
    Application,
    ReviewStage,
)


@dataclass
class InviteSummary:
    round: str
    due_on: str
    invited: int = 0  # assignments
    reviewers: int = 0  # invitations queued (one per reviewer)
    moved_to_review: int = 0  # applications that entered the review
    unfilled: list[str] = field(default_factory=list)  # applications with places still open


def invite(
    session: Session, settings: Settings, round_id: str, *, actor: str, at: datetime, due: date | None = None
) -> InviteSummary:
    """Invite the reviewers of every proposed assignment: one message per reviewer, in
    their language, with a personal sign-in link. The first invitations open the
    stage (due date: `due`, or the round's) and move the screened applications into
    review. Running it again invites only what was proposed since."""
    state = round_review(session, round_id, for_update=True)
    row = get_round(session, round_id)
    definition = state.definition
    stage, due_on = _invite_checks(session, state, round_id, at=at, due=due)
    if stage is None:
        stage = ReviewStage(round_id=round_id, due_on=due_on, invited_at=at)
        session.add(stage)
        move_round(session, row, "open_review", actor=actor, at=at, details={"due_on": due_on.isoformat()})
    summary = InviteSummary(round_id, stage.due_on.isoformat())
    by_reviewer: dict[int, list[Application]] = {}
    for application, subject in zip(state.applications, state.subjects(), strict=True):
        for assignment in state.assignments.get(application.id or 0, []):
            if assignment.state != AssignmentState.PROPOSED:
                continue
            reviewer = state.people[assignment.reviewer_id]
            if not reviewer.active:
                continue  # taken out of the register after the proposal: not invited
            why = conflicts(as_reviewer(reviewer), subject, state.declared)
            if why:  # the register or the application changed since the proposal
                move_assignment(
                    session,
                    assignment,
                    "declare_conflict",
                    role=Role.SECRETARIAT,
                    actor=actor,
                    at=at,
                    reference=application.reference,
                    reviewer=reviewer.email,
                    note=f"conflict of interest ({', '.join(w.value for w in why)}) found at invitation",
                )
                continue
            move_assignment(
                session,
                assignment,
                "invite",
                role=Role.SECRETARIAT,
                actor=actor,
                at=at,
                reference=application.reference,
                reviewer=reviewer.email,
            )
            by_reviewer.setdefault(reviewer.id or 0, []).append(application)
            summary.invited += 1
        if len(state.active(application.id or 0)) < definition.reviewers_per_application:
            summary.unfilled.append(application.reference)
    screened: list[tuple[Application, str, str, str | None]] = [
        (a, "start_gmp_review", f"gmp_review:{round_id}", None)
        for a in state.applications
        if a.status == Status.SCREENED
    ]
    session.flush()
    summary.moved_to_review = transition_many(session, screened, actor=actor, role=Role.SECRETARIAT, at=at)
    names = party_names(session, {a.party for a in state.applications})
    messages = []
    for reviewer_id, applications in by_reviewer.items():
        reviewer = state.people[reviewer_id]
        # The assignments move to invited in this same transaction, so a re-run has none
        # left to invite; the instant keeps a later invitation to the same applications
        # (a reviewer restored after declining) apart from the first.
        ids = ",".join(str(a.id) for a in applications) + at.isoformat()
        key = f"review_invitation:{round_id}:{reviewer.email}:{hashlib.sha256(ids.encode()).hexdigest()[:16]}"
        messages.append(
            (
                reviewer_message(
                    settings, "review_invitation", key, reviewer, definition, stage, applications, names, at
                ),
                reviewer,
            )
        )
    summary.reviewers = queue_for_reviewers(session, settings, messages, at)
    return summary


def check_invite(session: Session, round_id: str, *, at: datetime, due: date | None = None) -> None:
    """What `invite` refuses, checked beforehand (the API does, before it starts the flow)."""
    _invite_checks(session, round_review(session, round_id), round_id, at=at, due=due)


def _invite_checks(
    session: Session, state: RoundReview, round_id: str, *, at: datetime, due: date | None
) -> tuple[ReviewStage | None, date]:
    """The round's open stage (None before the first invitations) and the due date; or
    why the invitations are refused."""
    definition = state.definition
    try:
        plan_review(get_round(session, round_id).status, definition)
    except RoundActionError as exc:
        raise NotAllowed(str(exc), hints=exc.hints) from None
    stage = stage_of(session, round_id, for_update=True)
    if stage is not None:
        if stage.closed_at is not None:
            raise NotAllowed(f"the GMP review of round {round_id} closed on {stage.closed_at:%Y-%m-%d}")
        if due is not None and due != stage.due_on:
            raise InvalidInput(
                f"the reviews are already due on {stage.due_on}; move the due date instead",
                [FieldError(path="due", message="differs")],
                hints=(Hint(Step.EXTEND_REVIEW, round_id=round_id, option=due.isoformat()),),
            )
        return stage, stage.due_on
    if not any(a.state == AssignmentState.PROPOSED for rows in state.assignments.values() for a in rows):
        raise NotAllowed(
            f"no reviewers are proposed in round {round_id}; propose them (or add them by hand) first",
            hints=(Hint(Step.ASSIGN_REVIEWERS, round_id=round_id),),
        )
    today = local_day(at, definition)
    due_on = due or due_date(definition.review, today)
    if due_on <= today:
        raise InvalidInput(
            f"the due date of the reviews ({due_on}) must be after today ({today})",
            [FieldError(path="due", message=f"must be after {today}")],
        )
    return None, due_on


def extend(session: Session, round_id: str, due: date, *, actor: str, at: datetime) -> date:
    """Move the due date of the reviews (reminders follow the new date)."""
    definition = definition_of(get_round(session, round_id))
    stage = open_stage(session, round_id, for_update=True)
    today = local_day(at, definition)
    if due <= today:
        raise InvalidInput(
            f"the new due date ({due}) must be after today ({today})",
            [FieldError(path="due", message=f"must be after {today}")],
        )
    before, stage.due_on = stage.due_on, due
    session.add(stage)
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="round.review_due_changed",
        subject_type="round",
        subject_id=round_id,
        details={"from": before.isoformat(), "to": due.isoformat()},
    )
    return before
