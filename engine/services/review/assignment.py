"""The assignment of reviewers to a round's screened applications: proposed by the
engine (filling only the open places) and adjusted by the secretariat before and
after the invitations go out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from domain.application import FieldError
from domain.hints import Hint, Step
from domain.lifecycle import Role
from domain.review import (
    ACTIVE_STATES,
    AssignmentState,
    Placement,
    conflicts,
)
from domain.rounds import RoundStatus
from engine.services import audit
from engine.services.errors import InvalidInput, NotAllowed, NotFound
from engine.services.review.state import (
    REVIEWABLE,
    REVIEWED,
    RoundReview,
    as_reviewer,
    move_assignment,
    round_review,
    subject_of,
)
from engine.services.rounds import get_round
from engine.tables import (
    Application,
    DeclaredConflict,
    Review,
    ReviewAssignment,
    ReviewerRecord,
)


def _assignment(
    session: Session, round_id: str, reference: str, email: str
) -> tuple[Application, ReviewerRecord, ReviewAssignment | None]:
    application = session.exec(
        select(Application).where(Application.reference == reference, Application.round_id == round_id)
    ).first()
    if application is None:
        raise NotFound(
            f"no application {reference!r} in round {round_id}", hints=(Hint(Step.SHOW_ASSIGNMENT, round_id=round_id),)
        )
    reviewer = session.exec(select(ReviewerRecord).where(ReviewerRecord.email == email.strip().lower())).first()
    if reviewer is None:
        raise NotFound(
            f"no reviewer {email!r} in the register",
            hints=(Hint(Step.LIST_REVIEWERS), Hint(Step.SET_REVIEWER, email=email)),
        )
    row = session.exec(
        select(ReviewAssignment).where(
            ReviewAssignment.application_id == application.id, ReviewAssignment.reviewer_id == reviewer.id
        )
    ).first()
    return application, reviewer, row


def _open_for_assignment(session: Session, round_id: str) -> None:
    status = get_round(session, round_id).status
    if status not in (RoundStatus.SCREENING, RoundStatus.REVIEW):
        raise NotAllowed(
            f"round {round_id} is {status}; reviewers are assigned after screening and before the review stage closes"
        )


def assign_reviewers(session: Session, round_id: str, *, actor: str, at: datetime) -> list[Placement]:
    """Propose reviewers for the round's screened applications, filling only the places
    still open: an application keeps the reviewers it has, and a reviewer who declined
    or was taken off is not proposed for it again. Returns every application's placement."""
    state = round_review(session, round_id, for_update=True)
    _assignment_checks(session, state, round_id)
    id_of = {p.email: p.id or 0 for p in state.people.values()}
    result = []
    for application, placement in zip(state.applications, state.placements(), strict=True):
        held = len(state.active(application.id or 0))
        wanted = placement.reviewers[held:]
        for email in wanted:
            session.add(
                ReviewAssignment(
                    round_id=round_id, application_id=application.id or 0, reviewer_id=id_of[email], created_at=at
                )
            )
        if wanted:
            audit.record(
                session,
                at=at,
                actor=actor,
                role=Role.SECRETARIAT,
                action="application.reviewers_proposed",
                subject_type="application",
                subject_id=application.reference,
                details={"reviewers": wanted, "unfilled": placement.unfilled},
            )
        result.append(placement)
    return result


def check_assignment(session: Session, round_id: str) -> None:
    """What `assign_reviewers` refuses, checked beforehand (the API does, before it starts the flow)."""
    _assignment_checks(session, round_review(session, round_id), round_id)


def _assignment_checks(session: Session, state: RoundReview, round_id: str) -> None:
    _open_for_assignment(session, round_id)
    if not any(p.active for p in state.people.values()):
        raise NotAllowed("the register of reviewers is empty", hints=(Hint(Step.LOAD_REVIEWERS),))


@dataclass
class AssignedReviewer:
    email: str
    name: str
    state: str
    note: str | None
    review: str | None  # draft, submitted, or None


@dataclass
class AssignmentLine:
    """One application's assignment as the secretariat sees it."""

    reference: str
    party: str
    title: str | None
    status: str
    areas: list[str]
    reviewers: list[AssignedReviewer]
    open_places: int
    proposals: list[str]  # who the assignment would propose for the open places now
    reasons: list[str] = field(default_factory=list)


def assignment_view(session: Session, round_id: str) -> list[AssignmentLine]:
    """Every application of the round's review with its reviewers (proposed, invited,
    declined...), its open places, and why reviewers were not chosen."""
    state = round_review(session, round_id, statuses=REVIEWED)
    reviews = dict(
        session.exec(
            select(Review.assignment_id, Review.state)
            .join(ReviewAssignment)
            .where(ReviewAssignment.round_id == round_id)
        ).all()
    )
    lines = []
    for application, subject, placement in zip(state.applications, state.subjects(), state.placements(), strict=True):
        rows = state.assignments.get(application.id or 0, [])
        held = len(state.active(application.id or 0))
        if application.status not in REVIEWABLE:  # past the review: nobody is proposed any more
            placement = Placement(application.reference, placement.reviewers[:held])
        lines.append(
            AssignmentLine(
                reference=application.reference,
                party=application.party,
                title=application.title,
                status=application.status,
                areas=sorted(subject.areas),
                reviewers=[
                    AssignedReviewer(
                        state.people[a.reviewer_id].email,
                        state.people[a.reviewer_id].name,
                        a.state,
                        a.note,
                        reviews.get(a.id or 0),
                    )
                    for a in rows
                ],
                open_places=max(state.definition.reviewers_per_application - held, 0),
                proposals=placement.reviewers[held:],
                reasons=placement.reasons,
            )
        )
    return lines


def add_reviewer(session: Session, round_id: str, reference: str, email: str, *, actor: str, at: datetime) -> str:
    """The secretariat puts a reviewer on an application by hand: never one with a
    conflict of interest, and within their maximum load. Returns `added`, `restored`
    (taken off or declined before) or `unchanged`."""
    state = round_review(session, round_id, for_update=True)  # loads are counted under the round's lock
    _open_for_assignment(session, round_id)
    application, reviewer, row = _assignment(session, round_id, reference, email)
    if application.status not in REVIEWABLE:
        raise NotAllowed(f"{reference} is {application.status}; reviewers review screened applications")
    if row is not None and row.state in ACTIVE_STATES:
        return "unchanged"
    why = conflicts(as_reviewer(reviewer), subject_of(application), state.declared)
    if why:
        raise NotAllowed(
            f"{reviewer.email} has a conflict of interest with {reference} "
            f"({', '.join(w.value for w in why)}); choose another reviewer"
        )
    if not reviewer.active:
        raise NotAllowed(
            f"{reviewer.email} is inactive in the register; make them active first",
            hints=(Hint(Step.SET_REVIEWER, email=reviewer.email, option="active"),),
        )
    load = state.loads().get(reviewer.email, 0)
    if load >= reviewer.max_load:
        raise NotAllowed(
            f"{reviewer.email} already has {load} application(s) in {round_id}, their maximum; "
            "raise it or choose another reviewer",
            hints=(Hint(Step.SET_REVIEWER, email=reviewer.email, option="max_load"),),
        )
    areas = subject_of(application).areas
    outside = sorted(areas - set(reviewer.areas)) if not areas & set(reviewer.areas) else []
    details = {"outside_areas": outside} if outside else {}
    if row is None:
        session.add(
            ReviewAssignment(
                round_id=round_id, application_id=application.id or 0, reviewer_id=reviewer.id or 0, created_at=at
            )
        )
        audit.record(
            session,
            at=at,
            actor=actor,
            role=Role.SECRETARIAT,
            action="assignment.add",
            subject_type="application",
            subject_id=reference,
            to_status=AssignmentState.PROPOSED,
            details={"reviewer": reviewer.email, **details},
        )
        return "added"
    move_assignment(
        session,
        row,
        "restore",
        role=Role.SECRETARIAT,
        actor=actor,
        at=at,
        reference=reference,
        reviewer=reviewer.email,
        details=details,
    )
    return "restored"


def remove_reviewer(
    session: Session, round_id: str, reference: str, email: str, *, reason: str, actor: str, at: datetime
) -> None:
    """The secretariat takes a reviewer off an application (before or after the
    invitation, not after the review is submitted), for a reason."""
    if not reason.strip():
        raise InvalidInput(
            "say why the reviewer is taken off (--reason)", [FieldError(path="reason", message="is required")]
        )
    _open_for_assignment(session, round_id)
    _, reviewer, row = _assignment(session, round_id, reference, email)
    if row is None:
        raise NotFound(f"{reviewer.email} is not assigned to {reference}")
    move_assignment(
        session,
        row,
        "remove",
        role=Role.SECRETARIAT,
        actor=actor,
        at=at,
        reference=reference,
        reviewer=reviewer.email,
        note=reason.strip(),
    )


def record_conflict(
    session: Session, round_id: str, reference: str, email: str, *, reason: str, actor: str, role: Role, at: datetime
) -> bool:
    """A conflict of interest declared by the reviewer or recorded by the secretariat:
    kept with its source, and the reviewer comes off the application if assigned.
    Returns False if it was already recorded."""
    if not reason.strip():
        raise InvalidInput("say what the conflict of interest is", [FieldError(path="reason", message="is required")])
    application, reviewer, row = _assignment(session, round_id, reference, email)
    exists = session.exec(
        select(DeclaredConflict).where(
            DeclaredConflict.reviewer_id == reviewer.id, DeclaredConflict.application_id == application.id
        )
    ).first()
    if exists is not None:
        return False
    if row is not None and row.state == AssignmentState.SUBMITTED:
        raise NotAllowed(
            f"{reviewer.email} already submitted a review of {reference}; write to the secretariat "
            "if the review must be set aside"
        )
    session.add(
        DeclaredConflict(
            reviewer_id=reviewer.id or 0,
            application_id=application.id or 0,
            reason=reason.strip()[:2000],
            declared_by=f"{role}:{actor}",
            declared_at=at,
        )
    )
    audit.record(
        session,
        at=at,
        actor=actor,
        role=role,
        action="conflict.declared",
        subject_type="application",
        subject_id=reference,
        reason=reason.strip(),
        details={"reviewer": reviewer.email, "source": role},
    )
    if row is not None and row.state in ACTIVE_STATES:
        move_assignment(
            session,
            row,
            "declare_conflict",
            role=role,
            actor=actor,
            at=at,
            reference=reference,
            reviewer=reviewer.email,
            note=reason.strip(),
        )
    return True
