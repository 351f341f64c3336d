"""A grant's technical report reviewed by a Global Mercury Partnership expert (issue 16):
the secretariat asks a reviewer of the register while it weighs a submitted report; the
review stage's rules apply (an active reviewer, no conflict of interest: not the
Party's country, not the executing agency's organisation, none declared; within their
load, counting the applications they review). The reviewer gets a message in their
language with a sign-in link, reads the report in their workspace and gives an opinion
(accept or revise, with their reasons), which the secretariat reads on the grant's page."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_
from sqlmodel import Session, col, func, select

from domain.application import NUL, FieldError
from domain.grants import ReportKind, ReportState
from domain.lifecycle import Role
from domain.review import AssignmentState, conflicts
from engine.services import audit, outbox
from engine.services.errors import Conflict, InvalidInput, NotAllowed, NotFound
from engine.services.grants import grant_of, local_day
from engine.services.parties import party_names
from engine.services.review.messages import link_expiry, queue_for_reviewers, sign_in_url
from engine.services.review.state import as_reviewer, declared_conflicts, language_of, subject_of
from engine.services.rounds import definition_of, get_round
from engine.settings import Settings
from engine.tables import (
    Application,
    DeclaredConflict,
    Grant,
    GrantReport,
    GrantReportReview,
    ReviewAssignment,
    ReviewerRecord,
)
from notifications import render

#: Days a reviewer has to give an opinion on a report.
REVIEW_DAYS = 14
RECOMMENDATIONS = ("accept", "revise")


@dataclass(frozen=True)
class ReportReviewLine:
    id: int
    reference: str
    report: int
    kind: str
    reviewer: str
    reviewer_name: str
    state: str
    due_on: date
    recommendation: str | None
    opinion: str | None


def _line(row: GrantReportReview, grant: Grant, report: GrantReport, reviewer: ReviewerRecord) -> ReportReviewLine:
    return ReportReviewLine(
        id=row.id or 0, reference=grant.reference, report=report.number, kind=report.kind, reviewer=reviewer.email,
        reviewer_name=reviewer.name, state=row.state, due_on=row.due_on, recommendation=row.recommendation,
        opinion=row.opinion,
    )  # fmt: skip


def _refused(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [FieldError(path=f"$.{field}", message=message)])


def open_reviews(session: Session, reviewer_id: int) -> int:
    """What a reviewer has to review now: applications invited, and reports asked."""
    applications = session.exec(
        select(func.count())
        .select_from(ReviewAssignment)
        .where(ReviewAssignment.reviewer_id == reviewer_id, ReviewAssignment.state == AssignmentState.INVITED)
    ).one()
    reports = session.exec(
        select(func.count())
        .select_from(GrantReportReview)
        .where(GrantReportReview.reviewer_id == reviewer_id, GrantReportReview.state == "invited")
    ).one()
    return int(applications) + int(reports)


def ask_review(
    session: Session,
    settings: Settings,
    reference: str,
    number: int,
    email: str,
    *,
    actor: str,
    at: datetime,
) -> ReportReviewLine:
    """Ask a reviewer of the register to review a submitted report, under the review
    stage's rules; they are sent a sign-in link in their language."""
    grant = grant_of(session, reference, for_update=True)
    report = session.exec(
        select(GrantReport).where(GrantReport.grant_id == grant.id, GrantReport.number == number)
    ).first()
    if report is None:
        raise NotFound(f"{reference} has no report {number}")
    if report.state != ReportState.SUBMITTED:
        raise NotAllowed(
            f"{reference}, report {number} is {report.state.replace('_', ' ')}: an expert reviews a report while the "
            "secretariat weighs it (submitted)"
        )
    reviewer = session.exec(
        select(ReviewerRecord).where(ReviewerRecord.email == email.strip().lower()).with_for_update()
    ).first()  # locked: two grants asking the same expert at once count each other
    if reviewer is None:
        raise _refused("email", f"{email} is not in the register of GMP reviewers")
    if not reviewer.active:
        raise _refused("email", f"{reviewer.email} is deactivated in the register")
    application = session.get(Application, grant.application_id)
    assert application is not None
    declared = declared_conflicts(
        session,
        and_(col(DeclaredConflict.application_id) == application.id, col(DeclaredConflict.reviewer_id) == reviewer.id),
    )
    conflicted = session.exec(
        select(ReviewAssignment.id).where(
            ReviewAssignment.application_id == application.id, ReviewAssignment.reviewer_id == reviewer.id,
            ReviewAssignment.state == AssignmentState.CONFLICTED,
        )
    ).first()  # fmt: skip
    if conflicted is not None:
        declared[(reviewer.email.lower(), application.reference)] = "declared when reviewing the application"
    # the executing agency as the grant has it now (an amendment may have changed it)
    subject = replace(subject_of(application), executing_agency=grant.executing_agency)
    found = conflicts(as_reviewer(reviewer), subject, declared)
    if found:
        said = {"country": "the Party is their country", "organisation": "the executing agency is their organisation",
                "declared": "they declared a conflict of interest with the application"}  # fmt: skip
        raise _refused("email", f"{reviewer.email} has a conflict of interest: " + "; ".join(said[c] for c in found))
    if session.exec(
        select(GrantReportReview.id).where(
            GrantReportReview.report_id == report.id, GrantReportReview.reviewer_id == reviewer.id,
            GrantReportReview.revision == report.revisions,
        )
    ).first():  # fmt: skip
        raise Conflict(f"{reviewer.email} was asked to review report {number} of {reference} already")
    load = open_reviews(session, reviewer.id or 0)
    if load >= reviewer.max_load:
        raise _refused("email", f"{reviewer.email} has {load} reviews open, the most the register gives them")
    due = local_day(session, grant, at) + timedelta(days=REVIEW_DAYS)
    row = GrantReportReview(
        report_id=report.id or 0, reviewer_id=reviewer.id or 0, revision=report.revisions, state="invited",
        due_on=due, invited_by=actor, invited_at=at,
    )  # fmt: skip
    session.add(row)
    session.flush()
    key = f"report_review_invitation:{reference}:{number}:{report.revisions}:{reviewer.email}"
    queue_for_reviewers(
        session, settings, [(_invitation(session, settings, grant, report, reviewer, key, at), reviewer)], at
    )
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.report_review_asked", subject_type="grant",
        subject_id=reference, details={"report": number, "reviewer": reviewer.email, "due_on": due.isoformat()},
    )  # fmt: skip
    return _line(row, grant, report, reviewer)


def _invitation(
    session: Session,
    settings: Settings,
    grant: Grant,
    report: GrantReport,
    reviewer: ReviewerRecord,
    key: str,
    at: datetime,
) -> dict[str, Any]:
    """The message asking the expert to review the report, with a new sign-in link, in their language."""
    application = session.get(Application, grant.application_id)
    assert application is not None
    row = session.exec(
        select(GrantReportReview).where(
            GrantReportReview.report_id == report.id, GrantReportReview.reviewer_id == reviewer.id,
            GrantReportReview.revision == report.revisions,
        )
    ).one()  # fmt: skip
    language = language_of(reviewer)
    definition = definition_of(get_round(session, grant.round_id))
    message = render(
        "report_review_invitation",
        language,
        dict(
            language=language, name=reviewer.name, reference=grant.reference, round_title=definition.title_in(language),
            applications=[dict(reference=grant.reference, title=application.title or "—",
                               party=party_names(session, {grant.party}).name(grant.party, language))],
            number=report.number, final=report.kind == ReportKind.FINAL, due=row.due_on,
            sign_in_url=sign_in_url(settings, language),
            link_expires=link_expiry(settings, at).astimezone(definition.zone).date(),
            api_url=settings.public_base_url.rstrip("/"), programme_email=settings.programme_email,
        ),
    )  # fmt: skip
    return outbox.message_row(
        key=key, kind="report_review_invitation", recipient=reviewer.email, message=message, at=at,
        round_id=grant.round_id,
    )  # fmt: skip


def resend_links(session: Session, settings: Settings, reviewer: ReviewerRecord, *, at: datetime) -> int:
    """A new sign-in link for each report the expert still has to review (at most one an
    hour each): asked for at /reviewer/links, as the reviewers of applications do."""
    rows = session.exec(
        select(GrantReport, Grant)
        .join(GrantReportReview, col(GrantReportReview.report_id) == GrantReport.id)
        .join(Grant, col(Grant.id) == GrantReport.grant_id)
        .where(GrantReportReview.reviewer_id == reviewer.id, GrantReportReview.state == "invited")
        .where(GrantReport.state == ReportState.SUBMITTED, GrantReport.revisions == GrantReportReview.revision)
    ).all()
    messages = [
        (_invitation(session, settings, grant, report, reviewer,
                     f"report_review_link:{grant.reference}:{report.number}:{reviewer.email}:{at:%Y-%m-%dT%H}", at),
         reviewer)
        for report, grant in rows
    ]  # fmt: skip
    return queue_for_reviewers(session, settings, messages, at)


def reviews_of(session: Session, grant: Grant) -> list[ReportReviewLine]:
    """Every expert review of the grant's reports, report by report."""
    rows = session.exec(
        select(GrantReportReview, GrantReport, ReviewerRecord)
        .join(GrantReport, col(GrantReport.id) == GrantReportReview.report_id)
        .join(ReviewerRecord, col(ReviewerRecord.id) == GrantReportReview.reviewer_id)
        .where(GrantReport.grant_id == grant.id)
        .order_by(col(GrantReport.number), col(GrantReportReview.id))
    ).all()
    return [_line(row, grant, report, reviewer) for row, report, reviewer in rows]


@dataclass(frozen=True)
class ReportToReview:
    review: ReportReviewLine
    title: str | None
    outputs: list[dict[str, Any]]
    content: dict[str, Any]
    period_end: date


def to_review(session: Session, reviewer: ReviewerRecord) -> list[ReportToReview]:
    """The reports the reviewer was asked to review, with what each says."""
    rows = session.exec(
        select(GrantReportReview, GrantReport, Grant, Application)
        .join(GrantReport, col(GrantReport.id) == GrantReportReview.report_id)
        .join(Grant, col(Grant.id) == GrantReport.grant_id)
        .join(Application, col(Application.id) == Grant.application_id)
        .where(GrantReportReview.reviewer_id == reviewer.id)
        .order_by(col(GrantReportReview.due_on), col(GrantReportReview.id))
    ).all()
    return [
        ReportToReview(
            _line(row, grant, report, reviewer),
            application.title,
            (application.form_a or {}).get("outputs") or [],
            report.content or {},
            report.period_end,
        )  # fmt: skip
        for row, report, grant, application in rows
    ]


def give_opinion(
    session: Session, reviewer: ReviewerRecord, review_id: int, recommendation: str, opinion: str, *, at: datetime
) -> ReportReviewLine:
    """The reviewer's opinion on a report they were asked to review: accept or revise,
    with their reasons; given once."""
    row = session.exec(select(GrantReportReview).where(GrantReportReview.id == review_id).with_for_update()).first()
    if row is None or row.reviewer_id != reviewer.id:
        raise NotFound("no such report to review in your list")
    report = session.get(GrantReport, row.report_id)
    assert report is not None
    grant = session.get(Grant, report.grant_id)
    assert grant is not None
    if row.state != "invited":
        raise Conflict(f"your opinion on report {report.number} of {grant.reference} was given already")
    if report.state != ReportState.SUBMITTED or report.revisions != row.revision:
        raise Conflict(
            f"the secretariat decided on report {report.number} of {grant.reference} before your opinion came: "
            "thank you, nothing more is needed"
        )
    problems = []
    if recommendation not in RECOMMENDATIONS:
        problems.append(("recommendation", "is accept or revise"))
    if not opinion.strip() or len(opinion.strip()) > 5000:
        problems.append(("opinion", "is required, of at most 5000 characters"))
    elif "\x00" in opinion:
        problems.append(("opinion", NUL))
    if problems:
        raise InvalidInput(
            "the opinion was not recorded: " + "; ".join(f"{f}: {m}" for f, m in problems),
            [FieldError(path=f"$.{f}", message=m) for f, m in problems],
        )
    row.state, row.recommendation, row.opinion, row.submitted_at = "submitted", recommendation, opinion.strip(), at
    session.add(row)
    audit.record(
        session, at=at, actor=reviewer.email, role=Role.REVIEWER, action="grant.report_review_given",
        subject_type="grant", subject_id=grant.reference,
        details={"report": report.number, "recommendation": recommendation},
    )  # fmt: skip
    session.flush()
    return _line(row, grant, report, reviewer)
