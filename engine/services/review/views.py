"""What the secretariat and the committee read of the review: each application's
reviews aggregated per criterion, and the stage's progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from domain.review import (
    AssignmentState,
    ReviewState,
    ReviewSummary,
    summarise,
)
from engine.services.review.state import REVIEWED, round_review, stage_of
from engine.services.rounds import get_round
from engine.tables import (
    Review,
    ReviewAssignment,
)


@dataclass
class ApplicationReviews:
    reference: str
    party: str
    title: str | None
    status: str
    summary: ReviewSummary
    outstanding: int  # invited, not yet submitted
    reviews: list[dict[str, Any]]  # submitted, with the reviewer's name and e-mail (for the secretariat)


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
                    dict(
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


def summary_json(items: list[ApplicationReviews]) -> list[dict[str, Any]]:
    return [
        dict(
            reference=i.reference,
            party=i.party,
            title=i.title,
            status=i.status,
            reviews_asked=i.summary.asked,
            reviews_submitted=i.summary.submitted,
            outstanding=i.outstanding,
            short=i.summary.short,
            disagreement=i.summary.disagreement,
            disagreement_on=list(i.summary.why),
            recommendations=i.summary.recommendations,
            criteria=[
                dict(
                    id=c.id,
                    title=c.title,
                    scores=list(c.scores),
                    mean=None if c.mean is None else str(c.mean),
                    spread=c.spread,
                    disagreement=c.disagreement,
                )
                for c in i.summary.criteria
            ],
            reviews=[
                {**r, "submitted_at": r["submitted_at"].isoformat() if r["submitted_at"] else None} for r in i.reviews
            ],
        )
        for i in items
    ]


def review_stage_view(session: Session, round_id: str) -> dict[str, Any]:
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
    closed = stage.closed_at.isoformat() if stage and stage.closed_at else None
    return dict(
        round=round_id,
        status=row.status,
        stage=None
        if stage is None
        else dict(
            due_on=stage.due_on.isoformat(),
            invited_at=stage.invited_at.isoformat(),
            closed_at=closed,
            closed_by=stage.closed_by,
        ),
        assignments=states,
        short_of_reviews=[i.reference for i in items if i.summary.short],
        disagreements=[i.reference for i in items if i.summary.disagreement],
        applications=summary_json(items),
    )
