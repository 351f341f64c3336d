"""What a signed-in reviewer sees and does: their assignments, an application's
dossier (never one they are conflicted on), their review saved and submitted,
declining, and declaring a conflict (the secretariat is told, and the place is
filled again where possible)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.lifecycle import Role
from domain.review import (
    VISIBLE_STATES,
    AssignmentState,
    Recommendation,
    ReviewDraft,
    ReviewState,
    conflicts,
    review_problems,
)
from domain.rounds import RoundDefinition, TechnicalCriterion
from engine.services import audit
from engine.services.errors import InvalidInput, NotAllowed, NotFound
from engine.services.parties import party_names
from engine.services.review.assignment import record_conflict
from engine.services.review.messages import tell_secretariat
from engine.services.review.reminders import close_when_complete
from engine.services.review.state import (
    as_reviewer,
    declared_conflicts,
    language_of,
    move_assignment,
    open_stage,
    stage_of,
    subject_of,
)
from engine.services.rounds import definition_of, get_round
from engine.settings import Settings
from engine.tables import (
    Application,
    DeclaredConflict,
    Review,
    ReviewAssignment,
    ReviewerRecord,
    ReviewStage,
)

#: The same answer for an application that does not exist and one not assigned to the reviewer.
NOT_YOURS = "no application {reference} is assigned to you"


@dataclass(frozen=True)
class ReviewerAssignment:
    """An application assigned to a reviewer, as the reviewer sees it in their list."""

    reference: str
    round: str
    title: str | None
    party: str  # the Party's name
    state: AssignmentState  # invited or submitted
    review: ReviewState | None  # their review, if they saved one
    due_on: date | None
    stage_open: bool


@dataclass(frozen=True)
class OwnReview:
    """The reviewer's own review, draft or submitted."""

    state: ReviewState
    scores: dict[str, int]
    recommendation: Recommendation | None
    comments_for_committee: str | None
    comments_for_applicant: str | None
    updated_at: datetime
    submitted_at: datetime | None

    @classmethod
    def of(cls, review: Review) -> OwnReview:
        return cls(
            state=review.state,
            scores=review.scores,
            recommendation=review.recommendation,
            comments_for_committee=review.comments_for_committee,
            comments_for_applicant=review.comments_for_applicant,
            updated_at=review.updated_at,
            submitted_at=review.submitted_at,
        )


@dataclass(frozen=True)
class OtherReview:
    """Another reviewer's submitted review, unnamed ("Reviewer 1", "Reviewer 2"...)."""

    reviewer: str
    scores: dict[str, int]
    recommendation: Recommendation | None
    comments_for_committee: str | None


@dataclass(frozen=True)
class Applicant:
    executing_agency: str | None
    co_applicants: list[Any]


@dataclass(frozen=True)
class Dossier:
    """An assigned application as its reviewer reads it."""

    reference: str
    round: str
    round_title: str
    party: str
    title: str | None
    amount_requested: str | None  # a decimal number, as text
    currency: str
    applicant: Applicant
    form_a: dict[str, Any] | None
    form_b: dict[str, Any] | None
    criteria: list[TechnicalCriterion]
    recommendations: list[Recommendation]
    due_on: date | None
    stage_open: bool
    assignment: AssignmentState
    review: OwnReview | None
    other_reviews: list[OtherReview] = field(default_factory=list)


def my_assignments(session: Session, reviewer: ReviewerRecord) -> list[ReviewerAssignment]:
    """The applications assigned to the reviewer (invited or reviewed), never one they
    have a conflict of interest with."""
    rows = session.exec(
        select(ReviewAssignment, Application, ReviewStage)
        .join(Application, col(Application.id) == ReviewAssignment.application_id)
        .join(ReviewStage, col(ReviewStage.round_id) == ReviewAssignment.round_id, isouter=True)
        .where(ReviewAssignment.reviewer_id == reviewer.id, col(ReviewAssignment.state).in_(VISIBLE_STATES))
        .order_by(ReviewAssignment.round_id, Application.reference)
    ).all()
    declared = _declared(session, reviewer)
    names = party_names(session, {a.party for _, a, _ in rows})
    reviews = {
        assignment_id: ReviewState(state)
        for assignment_id, state in session.exec(
            select(Review.assignment_id, Review.state).where(col(Review.assignment_id).in_([r.id for r, _, _ in rows]))
        ).all()
    }
    out = []
    for assignment, application, stage in rows:
        if conflicts(as_reviewer(reviewer), subject_of(application), declared):
            continue
        out.append(
            ReviewerAssignment(
                reference=application.reference,
                round=application.round_id,
                title=application.title,
                party=names.name(application.party, language_of(reviewer)),
                state=assignment.state,
                review=reviews.get(assignment.id or 0),
                due_on=stage.due_on if stage else None,
                stage_open=bool(stage and stage.closed_at is None),
            )
        )
    return out


def _declared(session: Session, reviewer: ReviewerRecord) -> dict[tuple[str, str], str]:
    return declared_conflicts(session, col(DeclaredConflict.reviewer_id) == reviewer.id)


def _visible(
    session: Session, reviewer: ReviewerRecord, reference: str
) -> tuple[ReviewAssignment, Application, RoundDefinition]:
    """The reviewer's assignment to `reference`, or the same `NotFound` as for an
    application that does not exist (nor one they are conflicted on)."""
    found = session.exec(
        select(ReviewAssignment, Application)
        .join(Application, col(Application.id) == ReviewAssignment.application_id)
        .where(
            Application.reference == reference,
            ReviewAssignment.reviewer_id == reviewer.id,
            col(ReviewAssignment.state).in_(VISIBLE_STATES),
        )
    ).first()
    if found is None or conflicts(as_reviewer(reviewer), subject_of(found[1]), _declared(session, reviewer)):
        raise NotFound(NOT_YOURS.format(reference=reference))
    assignment, application = found
    return assignment, application, definition_of(get_round(session, application.round_id))


def _locked(
    session: Session, reviewer: ReviewerRecord, reference: str
) -> tuple[ReviewAssignment, Application, RoundDefinition, ReviewStage]:
    """The reviewer's assignment, locked for a change, with its open review stage. Locks
    are taken in the engine's one order (round, stage, assignment), and the assignment
    is read again under its lock, so that two changes to it run one after the other."""
    assignment, application, definition = _visible(session, reviewer, reference)
    get_round(session, application.round_id, for_update=True)
    stage = open_stage(session, application.round_id, for_update=True)
    assignment = session.exec(
        select(ReviewAssignment)
        .where(ReviewAssignment.id == assignment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if assignment.state not in VISIBLE_STATES:  # taken off, declined or conflicted meanwhile
        raise NotFound(NOT_YOURS.format(reference=reference))
    return assignment, application, definition, stage


def dossier(session: Session, reviewer: ReviewerRecord, reference: str) -> Dossier:
    """An assigned application as its reviewer reads it: forms A and B, the round's
    technical criteria, the reviewer's own review, and the other reviewers' submitted
    reviews (unnamed) once their own is submitted."""
    assignment, application, definition = _visible(session, reviewer, reference)
    stage = stage_of(session, application.round_id)
    own = session.exec(select(Review).where(Review.assignment_id == assignment.id)).first()
    others: list[OtherReview] = []
    if assignment.state == AssignmentState.SUBMITTED:
        rows = session.exec(
            select(Review)
            .join(ReviewAssignment)
            .where(
                ReviewAssignment.application_id == application.id,
                ReviewAssignment.id != assignment.id,
                Review.state == ReviewState.SUBMITTED,
            )
            .order_by(col(ReviewAssignment.id))
        ).all()
        others = [
            OtherReview(
                reviewer=f"Reviewer {n}",
                scores=r.scores,
                recommendation=r.recommendation,
                comments_for_committee=r.comments_for_committee,
            )
            for n, r in enumerate(rows, start=1)
        ]
    return Dossier(
        reference=application.reference,
        round=application.round_id,
        # in the reviewer's own language, as their messages are
        round_title=definition.title_in(language_of(reviewer)),
        party=party_names(session, {application.party}).name(application.party, language_of(reviewer)),
        title=application.title,
        amount_requested=None if application.amount_requested is None else f"{application.amount_requested:.2f}",
        currency=definition.currency,
        applicant=Applicant(
            executing_agency=application.applicant.get("executing_agency", {}).get("name"),
            co_applicants=application.applicant.get("co_applicants", []),
        ),
        form_a=application.form_a,
        form_b=application.form_b,
        criteria=list(definition.review.criteria),
        recommendations=list(Recommendation),
        due_on=stage.due_on if stage else None,
        stage_open=bool(stage and stage.closed_at is None),
        assignment=assignment.state,
        review=None if own is None else OwnReview.of(own),
        other_reviews=others,
    )


def save_review(
    session: Session, reviewer: ReviewerRecord, reference: str, draft: ReviewDraft, *, submit: bool, at: datetime
) -> OwnReview:
    """Save the reviewer's draft (it replaces the earlier draft), or submit the review
    (then it no longer changes). Refused after the stage closed and after submission."""
    assignment, application, definition, stage = _locked(session, reviewer, reference)
    review = session.exec(select(Review).where(Review.assignment_id == assignment.id)).first()
    if assignment.state == AssignmentState.SUBMITTED:
        when = f" on {review.submitted_at:%Y-%m-%d}" if review and review.submitted_at else ""
        raise NotAllowed(f"you submitted your review of {reference}{when}; it can no longer change")
    problems = review_problems(draft, definition.review.criteria, final=submit)
    if problems:
        raise InvalidInput(
            f"the review of {reference} was not saved: " + "; ".join(f"{p.field}: {p.message}" for p in problems),
            [FieldError(path=f"$.{p.field}", message=p.message) for p in problems],
        )
    values: dict[str, Any] = dict(
        scores=draft.scores,
        recommendation=draft.recommendation,
        comments_for_committee=draft.comments_for_committee,
        comments_for_applicant=draft.comments_for_applicant,
        updated_at=at,
        state=ReviewState.SUBMITTED if submit else ReviewState.DRAFT,
        submitted_at=at if submit else None,
    )
    if review is None:
        review = Review(assignment_id=assignment.id or 0, **values)
    else:
        for name, value in values.items():
            setattr(review, name, value)
    session.add(review)
    if submit:
        move_assignment(
            session,
            assignment,
            "submit",
            role=Role.REVIEWER,
            actor=reviewer.email,
            at=at,
            reference=reference,
            reviewer=reviewer.email,
            details={"recommendation": values["recommendation"], "scores": draft.scores},
        )
        session.flush()
        close_when_complete(session, stage, definition, at=at)
    else:
        audit.record(
            session,
            at=at,
            actor=reviewer.email,
            role=Role.REVIEWER,
            action="review.draft_saved",
            subject_type="application",
            subject_id=reference,
            details={"scores": draft.scores},
        )
    return OwnReview.of(review)


def decline(
    session: Session, settings: Settings, reviewer: ReviewerRecord, reference: str, reason: str, *, at: datetime
) -> None:
    """The reviewer declines; the secretariat is told, so that it can reassign."""
    if not reason.strip():
        raise InvalidInput("say why you decline", [FieldError(path="$.reason", message="is required")])
    assignment, application, _, _ = _locked(session, reviewer, reference)
    move_assignment(
        session,
        assignment,
        "decline",
        role=Role.REVIEWER,
        actor=reviewer.email,
        at=at,
        reference=reference,
        reviewer=reviewer.email,
        note=reason.strip(),
    )
    _place_to_fill(
        session,
        settings,
        application,
        reviewer,
        "declined",
        f"declined to review {reference}",
        f"Reason given: {reason.strip()}",
        at,
    )


def declare_conflict(
    session: Session, settings: Settings, reviewer: ReviewerRecord, reference: str, reason: str, *, at: datetime
) -> None:
    """The reviewer declares a conflict of interest: recorded with its source, the
    application leaves their list, and the secretariat is told."""
    _, application, _, _ = _locked(session, reviewer, reference)
    record_conflict(
        session,
        application.round_id,
        reference,
        reviewer.email,
        reason=reason,
        actor=reviewer.email,
        role=Role.REVIEWER,
        at=at,
    )
    _place_to_fill(
        session,
        settings,
        application,
        reviewer,
        "conflict",
        f"declared a conflict of interest with {reference}",
        f"Conflict declared: {reason.strip()}",
        at,
    )


def _place_to_fill(
    session: Session,
    settings: Settings,
    application: Application,
    reviewer: ReviewerRecord,
    kind: str,
    what: str,
    why: str,
    at: datetime,
) -> None:
    """Tell the secretariat that a reviewer left an application, and how to fill the place."""
    round_id = application.round_id
    tell_secretariat(
        session,
        settings,
        round_id,
        f"review_{kind}:{application.reference}:{reviewer.email}:{at.isoformat()}",
        f"{reviewer.email} {what}",
        [why, "Propose another reviewer for its open place, then invite them."],
        at,
    )
