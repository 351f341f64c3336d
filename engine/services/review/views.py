"""What the secretariat and the committee read of the review: each application's
reviews aggregated per criterion, and the stage's progress."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import func
from sqlmodel import Session, select

from domain.review import (
    AssignmentState,
    Recommendation,
    ReviewState,
    ReviewSummary,
    summarise,
)
from domain.rounds import RoundStatus
from engine.services.review.state import REVIEWED, round_review, stage_of
from engine.services.rounds import get_round
from engine.tables import (
    Review,
    ReviewAssignment,
)


@dataclass(frozen=True)
class SubmittedReview:
    """A submitted review with its reviewer's name and e-mail (for the secretariat; the
    committee's bundles number them instead where the round says so)."""

    reviewer: str
    email: str | None
    scores: dict[str, int]
    recommendation: Recommendation | None
    comments_for_committee: str | None
    comments_for_applicant: str | None
    submitted_at: datetime | None

    def numbered(self, number: int) -> SubmittedReview:
        return replace(self, reviewer=f"Reviewer {number}", email=None)


@dataclass
class ApplicationReviews:
    reference: str
    party: str
    title: str | None
    status: str
    summary: ReviewSummary
    outstanding: int  # invited, not yet submitted
    reviews: list[SubmittedReview]


@dataclass(frozen=True)
class CriterionReviews:
    """One technical criterion's scores for an application, and their aggregation."""

    id: str
    title: str
    scores: list[int]
    mean: str | None  # a decimal number, as text
    spread: int | None  # the highest score less the lowest
    disagreement: bool


@dataclass(frozen=True)
class ReviewedApplication:
    """An application's reviews as the secretariat and the committee read them."""

    reference: str
    party: str
    title: str | None
    status: str
    reviews_asked: int
    reviews_submitted: int
    outstanding: int  # invited, not yet submitted
    short: bool  # fewer reviews submitted than asked
    disagreement: bool
    disagreement_on: list[str]
    recommendations: dict[str, int]
    criteria: list[CriterionReviews]
    reviews: list[SubmittedReview]

    @classmethod
    def of(cls, item: ApplicationReviews) -> ReviewedApplication:
        return cls(
            reference=item.reference,
            party=item.party,
            title=item.title,
            status=item.status,
            reviews_asked=item.summary.asked,
            reviews_submitted=item.summary.submitted,
            outstanding=item.outstanding,
            short=item.summary.short,
            disagreement=item.summary.disagreement,
            disagreement_on=list(item.summary.why),
            recommendations=dict(item.summary.recommendations),
            criteria=[
                CriterionReviews(
                    id=c.id,
                    title=c.title,
                    scores=list(c.scores),
                    mean=None if c.mean is None else str(c.mean),
                    spread=c.spread,
                    disagreement=c.disagreement,
                )
                for c in item.summary.criteria
            ],
            reviews=list(item.reviews),
        )


@dataclass(frozen=True)
class StageDates:
    due_on: date
    invited_at: datetime
    closed_at: datetime | None
    closed_by: str | None


@dataclass(frozen=True)
class ReviewStageView:
    """The review stage as the secretariat follows it."""

    round: str
    status: RoundStatus
    stage: StageDates | None  # none until reviewers are invited
    assignments: dict[str, int]  # reviewers' assignments by state
    short_of_reviews: list[str]
    disagreements: list[str]
    applications: list[ReviewedApplication]


def review_summaries(session: Session, round_id: str) -> list[ApplicationReviews]:
    """Per application in (or past) the review: the submitted reviews and their
    aggregation (mean and spread per criterion, recommendations, disagreement)."""
    state = round_review(session, round_id, statuses=REVIEWED)
    reviews = {
        r.assignment_id: r
        for r in session.exec(
            select(Review)
            .join(ReviewAssignment)
            .where(ReviewAssignment.round_id == round_id, Review.state == ReviewState.SUBMITTED)
        ).all()
    }
    review = state.definition.review
    out = []
    for application in state.applications:
        rows = state.assignments.get(application.id or 0, [])
        submitted = [(a, reviews[a.id]) for a in rows if a.state == AssignmentState.SUBMITTED and a.id in reviews]
        summary = summarise(
            application.reference,
            state.definition.reviewers_per_application,
            [(r.scores, r.recommendation or "") for _, r in submitted],
            review.criteria,
            review.disagreement_threshold,
        )
        out.append(
            ApplicationReviews(
                application.reference,
                application.party,
                application.title,
                application.status,
                summary,
                outstanding=sum(a.state == AssignmentState.INVITED for a in rows),
                reviews=[
                    SubmittedReview(
                        reviewer=state.people[a.reviewer_id].name,
                        email=state.people[a.reviewer_id].email,
                        scores=r.scores,
                        recommendation=r.recommendation,
                        comments_for_committee=r.comments_for_committee,
                        comments_for_applicant=r.comments_for_applicant,
                        submitted_at=r.submitted_at,
                    )
                    for a, r in submitted
                ],
            )
        )
    return out


def review_stage_view(session: Session, round_id: str) -> ReviewStageView:
    """The review stage as the secretariat follows it: dates, assignments by state, and
    per application the reviews and their aggregation."""
    row = get_round(session, round_id)
    stage = stage_of(session, round_id)
    states = dict(
        session.exec(
            select(ReviewAssignment.state, func.count())
            .where(ReviewAssignment.round_id == round_id)
            .group_by(ReviewAssignment.state)
        ).all()
    )
    items = review_summaries(session, round_id)
    return ReviewStageView(
        round=round_id,
        status=row.status,
        stage=None
        if stage is None
        else StageDates(
            due_on=stage.due_on, invited_at=stage.invited_at, closed_at=stage.closed_at, closed_by=stage.closed_by
        ),
        assignments={str(state): count for state, count in states.items()},
        short_of_reviews=[i.reference for i in items if i.summary.short],
        disagreements=[i.reference for i in items if i.summary.disagreement],
        applications=[ReviewedApplication.of(i) for i in items],
    )
