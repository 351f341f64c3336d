"""The GMP review stage of a round: invitations with personal sign-in links, what a
reviewer sees and does, the daily reminders and overdue notice, the aggregation the
committee reads, and the close of the stage (or, in a round without it, of screening)
that sends the applications to the Steering Committee.

People act between flows: each step here is one transaction, triggered by a command,
an API call or the daily schedule; nothing waits inside a running process."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from domain.application import FieldError
from domain.lifecycle import Role, Status
from domain.review import (
    VISIBLE_STATES,
    AssignmentState,
    ReviewDraft,
    ReviewSummary,
    StageStep,
    conflicts,
    due_date,
    review_problems,
    stage_step,
    summarise,
)
from domain.rounds import RoundActionError, RoundDefinition, RoundStatus, plan_committee, plan_review
from engine.services import audit, outbox
from engine.services.applications import transition_many
from engine.services.errors import InvalidInput, NotAllowed, NotFound, Unauthorized
from engine.services.parties import party_names
from engine.services.review import (
    REVIEWED,
    RoundReview,
    as_reviewer,
    declared_conflicts,
    move_assignment,
    record_conflict,
    round_review,
    subject_of,
)
from engine.services.rounds import definition_of, get_round, move_round
from engine.services.tokens import derive_link_token, random_token, token_hash
from engine.settings import Settings
from engine.tables import (
    Application,
    DeclaredConflict,
    Review,
    ReviewAssignment,
    ReviewerToken,
    ReviewStage,
    Round,
    table_of,
)
from engine.tables import Reviewer as ReviewerRow
from notifications import LANGUAGES, REVIEW_LINK_PLACEHOLDER, render

VISIBLE = frozenset(s.value for s in VISIBLE_STATES)
#: The same answer for an application that does not exist and one not assigned to the reviewer.
NOT_YOURS = "no application {reference} is assigned to you"
NEW_LINK = "ask for a new link: POST /reviewer/links with your e-mail address"


def language_of(reviewer: ReviewerRow) -> str:
    """The reviewer's first language that the engine writes in (English otherwise)."""
    return next((lang for lang in reviewer.languages if lang in LANGUAGES), "en")


def sign_in_url(settings: Settings, language: str) -> str:
    """The link in a reviewer's message; the token goes in at delivery."""
    return f"{settings.public_base_url.rstrip('/')}/reviewer/sign-in?lang={language}&token={REVIEW_LINK_PLACEHOLDER}"


def link_expiry(settings: Settings, at: datetime) -> datetime:
    return at + timedelta(days=settings.reviewer_link_days)


def issue_link(session: Session, settings: Settings, reviewer: ReviewerRow, message_key: str, at: datetime) -> None:
    """The one-time sign-in link of the message `message_key` (one link per message)."""
    nonce = secrets.token_hex(16)
    session.add(
        ReviewerToken(
            reviewer_id=reviewer.id,
            purpose="link",
            nonce=nonce,
            message_key=message_key,
            token_hash=token_hash(derive_link_token(settings.key(), nonce)),
            issued_at=at,
            expires_at=link_expiry(settings, at),
        )
    )


def _queue_for_reviewers(
    session: Session, settings: Settings, items: list[tuple[dict[str, Any], ReviewerRow]], at: datetime
) -> int:
    """Queue messages to reviewers, each with its own sign-in link; a message already
    queued (a re-run) gets neither a second copy nor a second link."""
    reviewers = {row["key"]: reviewer for row, reviewer in items}
    new = outbox.enqueue_new(session, [row for row, _ in items])
    for key in new:
        try:
            with session.begin_nested():
                issue_link(session, settings, reviewers[key], key, at)
        except IntegrityError:
            pass  # a writer racing this one queued the same message, with its own link
    return len(new)


def _day(at: datetime, definition: RoundDefinition) -> date:
    return at.astimezone(definition.zone).date()


def deadline(stage: ReviewStage, definition: RoundDefinition) -> datetime:
    """The end of the due day in the round's time zone."""
    return datetime.combine(stage.due_on + timedelta(days=1), time(), tzinfo=definition.zone)


def stage_of(session: Session, round_id: str, *, for_update: bool = False) -> ReviewStage | None:
    statement = select(ReviewStage).where(ReviewStage.round_id == round_id)
    if for_update:
        statement = statement.with_for_update()
    return session.exec(statement).first()


def _open_stage(session: Session, round_id: str, *, for_update: bool = False) -> ReviewStage:
    stage = stage_of(session, round_id, for_update=for_update)
    if stage is None:
        raise NotAllowed(
            f"the GMP review of round {round_id} has not started; invite the reviewers with "
            f"`sip review invite {round_id}`"
        )
    if stage.closed_at is not None:
        raise NotAllowed(
            f"the GMP review of round {round_id} closed on {stage.closed_at:%Y-%m-%d}; reviews are no longer taken"
        )
    return stage


# --- invitations ---------------------------------------------------------------------


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
            if assignment.state != AssignmentState.PROPOSED.value:
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
                    role="secretariat",
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
                role="secretariat",
                actor=actor,
                at=at,
                reference=application.reference,
                reviewer=reviewer.email,
            )
            by_reviewer.setdefault(reviewer.id or 0, []).append(application)
            summary.invited += 1
        if len(state.active(application.id or 0)) < definition.reviewers_per_application:
            summary.unfilled.append(application.reference)
    screened = [
        (a, "start_gmp_review", f"gmp_review:{round_id}", None)
        for a in state.applications
        if a.status == Status.SCREENED.value
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
                _reviewer_message(
                    settings, "review_invitation", key, reviewer, definition, stage, applications, names, at
                ),
                reviewer,
            )
        )
    summary.reviewers = _queue_for_reviewers(session, settings, messages, at)
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
        plan_review(RoundStatus(get_round(session, round_id).status), definition)
    except RoundActionError as exc:
        raise NotAllowed(str(exc)) from None
    stage = stage_of(session, round_id, for_update=True)
    if stage is not None:
        if stage.closed_at is not None:
            raise NotAllowed(f"the GMP review of round {round_id} closed on {stage.closed_at:%Y-%m-%d}")
        if due is not None and due != stage.due_on:
            raise InvalidInput(
                f"the reviews are already due on {stage.due_on}; change the date with "
                f"`sip review extend {round_id} --due {due}`",
                [FieldError(path="due", message="differs")],
            )
        return stage, stage.due_on
    if not any(a.state == AssignmentState.PROPOSED.value for rows in state.assignments.values() for a in rows):
        raise NotAllowed(
            f"no reviewers are proposed in round {round_id}; run `sip review assign {round_id}` "
            "(or add them by hand) first"
        )
    today = _day(at, definition)
    due_on = due or due_date(definition.review, today)
    if due_on <= today:
        raise InvalidInput(
            f"the due date of the reviews ({due_on}) must be after today ({today})",
            [FieldError(path="due", message=f"must be after {today}")],
        )
    return None, due_on


def _reviewer_message(
    settings: Settings,
    kind: str,
    key: str,
    reviewer: ReviewerRow,
    definition: RoundDefinition,
    stage: ReviewStage,
    applications: list[Application],
    names: dict[str, str],
    at: datetime,
) -> dict[str, Any]:
    """A message to a reviewer with a new sign-in link (invitation, reminder, new link)."""
    language = language_of(reviewer)
    expires = link_expiry(settings, at)
    message = render(
        kind,
        language,
        dict(
            language=language,
            name=reviewer.name,
            round_title=definition.title_in(language),
            due=stage.due_on,
            applications=[
                dict(reference=a.reference, title=a.title or "—", party=names.get(a.party, a.party))
                for a in applications
            ],
            criteria=[c.title for c in definition.review.criteria],
            sign_in_url=sign_in_url(settings, language),
            link_expires=expires.astimezone(definition.zone).date(),
            programme_email=settings.programme_email,
            api_url=settings.public_base_url.rstrip("/"),
        ),
    )
    return outbox.message_row(
        key=key, kind=kind, recipient=reviewer.email, message=message, at=at, round_id=definition.id
    )


def extend(session: Session, round_id: str, due: date, *, actor: str, at: datetime) -> date:
    """Move the due date of the reviews (reminders follow the new date)."""
    definition = definition_of(get_round(session, round_id))
    stage = _open_stage(session, round_id, for_update=True)
    today = _day(at, definition)
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
        role="secretariat",
        action="round.review_due_changed",
        subject_type="round",
        subject_id=round_id,
        details={"from": before.isoformat(), "to": due.isoformat()},
    )
    return before


# --- signing in ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    session_token: str  # shown once
    expires_at: datetime
    email: str
    name: str


def sign_in(session: Session, settings: Settings, link_token: str, *, at: datetime) -> SignedIn:
    """Exchange a sign-in link (used once) for a session token."""
    link = session.exec(
        select(ReviewerToken).where(
            ReviewerToken.token_hash == token_hash(link_token or ""), ReviewerToken.purpose == "link"
        )
    ).first()
    if link is None:
        raise Unauthorized(f"this sign-in link is not valid; {NEW_LINK}")
    if link.used_at is not None:
        raise Unauthorized(
            f"this sign-in link was already used (on {link.used_at:%Y-%m-%d %H:%M} UTC); each link "
            f"opens one session; {NEW_LINK}"
        )
    if link.expires_at <= at:
        raise Unauthorized(f"this sign-in link expired on {link.expires_at:%Y-%m-%d}; {NEW_LINK}")
    table = table_of(ReviewerToken)
    claimed = session.execute(update(table).where(table.c.id == link.id, table.c.used_at.is_(None)).values(used_at=at))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized(f"this sign-in link was already used; {NEW_LINK}")
    reviewer = session.get(ReviewerRow, link.reviewer_id)
    assert reviewer is not None
    token = random_token()
    expires = at + timedelta(hours=settings.reviewer_session_hours)
    session.add(
        ReviewerToken(
            reviewer_id=reviewer.id, purpose="session", token_hash=token_hash(token), issued_at=at, expires_at=expires
        )
    )
    audit.record(
        session,
        at=at,
        actor=reviewer.email,
        role="reviewer",
        action="reviewer.signed_in",
        subject_type="reviewer",
        subject_id=reviewer.email,
        details={"link": link.id},
    )
    return SignedIn(token, expires, reviewer.email, reviewer.name)


def reviewer_for(session: Session, session_token: str | None, *, at: datetime) -> ReviewerRow:
    """The reviewer whose session this is, or `Unauthorized`."""
    row = (
        session.exec(
            select(ReviewerToken).where(
                ReviewerToken.token_hash == token_hash(session_token or ""), ReviewerToken.purpose == "session"
            )
        ).first()
        if session_token
        else None
    )
    if row is None:
        raise Unauthorized(
            "sign in with the link in your invitation (POST /reviewer/sessions) and send the session "
            "token as Authorization: Bearer <token>"
        )
    if row.expires_at <= at:
        raise Unauthorized(f"your session ended at {row.expires_at:%Y-%m-%d %H:%M} UTC; {NEW_LINK}")
    reviewer = session.get(ReviewerRow, row.reviewer_id)
    assert reviewer is not None
    return reviewer


def request_link(session: Session, settings: Settings, email: str, *, at: datetime) -> bool:
    """Send a new sign-in link to a reviewer with reviews to do in an open review
    stage; at most one an hour. The caller answers the same whatever happens, so
    nobody learns who is a reviewer. Returns whether a link was queued."""
    reviewer = session.exec(select(ReviewerRow).where(ReviewerRow.email == email.strip().lower())).first()
    if reviewer is None:
        return False
    rows = session.exec(
        select(Application, ReviewStage)
        .join(ReviewAssignment, ReviewAssignment.application_id == Application.id)
        .join(ReviewStage, ReviewStage.round_id == ReviewAssignment.round_id)  # type: ignore[arg-type]
        .where(
            ReviewAssignment.reviewer_id == reviewer.id,
            ReviewAssignment.state == AssignmentState.INVITED.value,
            ReviewStage.closed_at.is_(None),
        )
        .order_by(Application.id)
    ).all()
    if not rows:
        return False
    by_round: dict[str, tuple[ReviewStage, list[Application]]] = {}
    for application, stage in rows:
        by_round.setdefault(stage.round_id, (stage, []))[1].append(application)
    names = party_names(session, {a.party for a, _ in rows})
    messages = [
        (
            _reviewer_message(
                settings,
                "review_link",
                f"review_link:{round_id}:{reviewer.email}:{at:%Y-%m-%dT%H}",
                reviewer,
                definition_of(get_round(session, round_id)),
                stage,
                applications,
                names,
                at,
            ),
            reviewer,
        )
        for round_id, (stage, applications) in sorted(by_round.items())
    ]
    queued = _queue_for_reviewers(session, settings, messages, at)
    audit.record(
        session,
        at=at,
        actor=reviewer.email,
        role="reviewer",
        action="reviewer.link_requested",
        subject_type="reviewer",
        subject_id=reviewer.email,
        details={"links": queued},
    )
    return bool(queued)


# --- what a reviewer sees and does ------------------------------------------------------


def my_assignments(session: Session, reviewer: ReviewerRow) -> list[dict[str, Any]]:
    """The applications assigned to the reviewer (invited or reviewed), never one they
    have a conflict of interest with."""
    rows = session.exec(
        select(ReviewAssignment, Application, ReviewStage)
        .join(Application, Application.id == ReviewAssignment.application_id)  # type: ignore[arg-type]
        .join(ReviewStage, ReviewStage.round_id == ReviewAssignment.round_id, isouter=True)  # type: ignore[arg-type]
        .where(ReviewAssignment.reviewer_id == reviewer.id, ReviewAssignment.state.in_(VISIBLE))  # type: ignore[attr-defined]
        .order_by(ReviewAssignment.round_id, Application.reference)
    ).all()
    declared = _declared(session, reviewer)
    names = party_names(session, {a.party for _, a, _ in rows})
    reviews = dict(
        session.exec(
            select(Review.assignment_id, Review.state).where(Review.assignment_id.in_([r.id for r, _, _ in rows]))
        ).all()
    )
    out = []
    for assignment, application, stage in rows:
        if conflicts(as_reviewer(reviewer), subject_of(application), declared):
            continue
        out.append(
            dict(
                reference=application.reference,
                round=application.round_id,
                title=application.title,
                party=names.get(application.party, application.party),
                state=assignment.state,
                review=reviews.get(assignment.id),
                due_on=stage.due_on if stage else None,
                stage_open=bool(stage and stage.closed_at is None),
            )
        )
    return out


def _declared(session: Session, reviewer: ReviewerRow) -> dict[tuple[str, str], str]:
    return declared_conflicts(session, DeclaredConflict.reviewer_id == reviewer.id)


def _visible(
    session: Session, reviewer: ReviewerRow, reference: str
) -> tuple[ReviewAssignment, Application, RoundDefinition]:
    """The reviewer's assignment to `reference`, or the same `NotFound` as for an
    application that does not exist (nor one they are conflicted on)."""
    found = session.exec(
        select(ReviewAssignment, Application)
        .join(Application, Application.id == ReviewAssignment.application_id)  # type: ignore[arg-type]
        .where(
            Application.reference == reference,
            ReviewAssignment.reviewer_id == reviewer.id,
            ReviewAssignment.state.in_(VISIBLE),
        )
    ).first()
    if found is None or conflicts(as_reviewer(reviewer), subject_of(found[1]), _declared(session, reviewer)):
        raise NotFound(NOT_YOURS.format(reference=reference))
    assignment, application = found
    return assignment, application, definition_of(get_round(session, application.round_id))


def _locked(
    session: Session, reviewer: ReviewerRow, reference: str
) -> tuple[ReviewAssignment, Application, RoundDefinition, ReviewStage]:
    """The reviewer's assignment, locked for a change, with its open review stage. Locks
    are taken in the engine's one order (round, stage, assignment), and the assignment
    is read again under its lock, so that two changes to it run one after the other."""
    assignment, application, definition = _visible(session, reviewer, reference)
    get_round(session, application.round_id, for_update=True)
    stage = _open_stage(session, application.round_id, for_update=True)
    assignment = session.exec(
        select(ReviewAssignment)
        .where(ReviewAssignment.id == assignment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if assignment.state not in VISIBLE:  # taken off, declined or conflicted meanwhile
        raise NotFound(NOT_YOURS.format(reference=reference))
    return assignment, application, definition, stage


def _review_json(review: Review | None) -> dict[str, Any] | None:
    if review is None:
        return None
    return dict(
        state=review.state,
        scores=review.scores,
        recommendation=review.recommendation,
        comments_for_committee=review.comments_for_committee,
        comments_for_applicant=review.comments_for_applicant,
        updated_at=review.updated_at,
        submitted_at=review.submitted_at,
    )


def dossier(session: Session, reviewer: ReviewerRow, reference: str) -> dict[str, Any]:
    """An assigned application as its reviewer reads it: forms A and B, the round's
    technical criteria, the reviewer's own review, and the other reviewers' submitted
    reviews (unnamed) once their own is submitted."""
    assignment, application, definition = _visible(session, reviewer, reference)
    stage = stage_of(session, application.round_id)
    own = session.exec(select(Review).where(Review.assignment_id == assignment.id)).first()
    others: list[dict[str, Any]] = []
    if assignment.state == AssignmentState.SUBMITTED.value:
        rows = session.exec(
            select(Review)
            .join(ReviewAssignment)
            .where(
                ReviewAssignment.application_id == application.id,
                ReviewAssignment.id != assignment.id,
                Review.state == "submitted",
            )
            .order_by(ReviewAssignment.id)
        ).all()
        others = [
            dict(
                reviewer=f"Reviewer {n}",
                scores=r.scores,
                recommendation=r.recommendation,
                comments_for_committee=r.comments_for_committee,
            )
            for n, r in enumerate(rows, start=1)
        ]
    return dict(
        reference=application.reference,
        round=application.round_id,
        round_title=definition.title,
        party=party_names(session, {application.party}).get(application.party, application.party),
        title=application.title,
        amount_requested=None if application.amount_requested is None else f"{application.amount_requested:.2f}",
        currency=definition.currency,
        applicant=dict(
            executing_agency=application.applicant.get("executing_agency", {}).get("name"),
            co_applicants=application.applicant.get("co_applicants", []),
        ),
        form_a=application.form_a,
        form_b=application.form_b,
        criteria=[c.model_dump() for c in definition.review.criteria],
        recommendations=["support", "support_with_changes", "do_not_support"],
        due_on=stage.due_on if stage else None,
        stage_open=bool(stage and stage.closed_at is None),
        assignment=assignment.state,
        review=_review_json(own),
        other_reviews=others,
    )


def save_review(
    session: Session, reviewer: ReviewerRow, reference: str, draft: ReviewDraft, *, submit: bool, at: datetime
) -> dict[str, Any]:
    """Save the reviewer's draft (it replaces the earlier draft), or submit the review
    (then it no longer changes). Refused after the stage closed and after submission."""
    assignment, application, definition, stage = _locked(session, reviewer, reference)
    review = session.exec(select(Review).where(Review.assignment_id == assignment.id)).first()
    if assignment.state == AssignmentState.SUBMITTED.value:
        when = f" on {review.submitted_at:%Y-%m-%d}" if review and review.submitted_at else ""
        raise NotAllowed(f"you submitted your review of {reference}{when}; it can no longer change")
    problems = review_problems(draft, definition.review.criteria, final=submit)
    if problems:
        raise InvalidInput(
            f"the review of {reference} was not saved: " + "; ".join(f"{p.field}: {p.message}" for p in problems),
            [FieldError(path=f"$.{p.field}", message=p.message) for p in problems],
        )
    values = dict(
        scores=draft.scores,
        recommendation=draft.recommendation.value if draft.recommendation else None,
        comments_for_committee=draft.comments_for_committee,
        comments_for_applicant=draft.comments_for_applicant,
        updated_at=at,
        state="submitted" if submit else "draft",
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
            role="reviewer",
            actor=reviewer.email,
            at=at,
            reference=reference,
            reviewer=reviewer.email,
            details={"recommendation": values["recommendation"], "scores": draft.scores},
        )
        session.flush()
        _close_when_complete(session, stage, definition, at=at)
    else:
        audit.record(
            session,
            at=at,
            actor=reviewer.email,
            role="reviewer",
            action="review.draft_saved",
            subject_type="application",
            subject_id=reference,
            details={"scores": draft.scores},
        )
    return _review_json(review) or {}


def decline(
    session: Session, settings: Settings, reviewer: ReviewerRow, reference: str, reason: str, *, at: datetime
) -> None:
    """The reviewer declines; the secretariat is told, so that it can reassign."""
    if not reason.strip():
        raise InvalidInput("say why you decline", [FieldError(path="$.reason", message="is required")])
    assignment, application, _, _ = _locked(session, reviewer, reference)
    move_assignment(
        session,
        assignment,
        "decline",
        role="reviewer",
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
    session: Session, settings: Settings, reviewer: ReviewerRow, reference: str, reason: str, *, at: datetime
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
        role="reviewer",
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
    reviewer: ReviewerRow,
    kind: str,
    what: str,
    why: str,
    at: datetime,
) -> None:
    """Tell the secretariat that a reviewer left an application, and how to fill the place."""
    round_id = application.round_id
    _tell_secretariat(
        session,
        settings,
        round_id,
        f"review_{kind}:{application.reference}:{reviewer.email}:{at.isoformat()}",
        f"{reviewer.email} {what}",
        [why, f"Propose another reviewer: sip review assign {round_id}, then sip review invite {round_id}"],
        at,
    )


def _tell_secretariat(
    session: Session, settings: Settings, round_id: str, key: str, headline: str, lines: list[str], at: datetime
) -> int:
    """A message to the secretariat (in English, the programme's working language)."""
    definition = definition_of(get_round(session, round_id))
    message = render(
        "secretariat_notice", "en", dict(language="en", round_title=definition.title, headline=headline, lines=lines)
    )
    return outbox.enqueue_rows(
        session,
        [
            outbox.message_row(
                key=key,
                kind="secretariat_notice",
                recipient=settings.programme_email,
                message=message,
                at=at,
                round_id=round_id,
            )
        ],
    )


# --- the daily run, and the close ----------------------------------------------------------


@dataclass
class DaySummary:
    round: str
    step: str
    outstanding: int = 0  # reviews invited and not submitted
    reminders: int = 0
    overdue_notice: bool = False
    closed: bool = False


def _outstanding(session: Session, round_id: str) -> list[tuple[ReviewerRow, Application]]:
    return list(
        session.exec(
            select(ReviewerRow, Application)
            .join(ReviewAssignment, ReviewAssignment.reviewer_id == ReviewerRow.id)  # type: ignore[arg-type]
            .join(Application, Application.id == ReviewAssignment.application_id)  # type: ignore[arg-type]
            .where(ReviewAssignment.round_id == round_id, ReviewAssignment.state == AssignmentState.INVITED.value)
            .order_by(ReviewerRow.email, Application.reference)
        ).all()
    )


def review_day(session: Session, settings: Settings, round_id: str, *, at: datetime) -> DaySummary:
    """What the daily schedule does for a round in review: remind reviewers with
    reviews outstanding `reminder_days` before the due date (once per due date), tell
    the secretariat of overdue reviews once the date has passed, and close the stage
    at the deadline when every review is in. Running it again the same day does nothing more."""
    definition = definition_of(get_round(session, round_id, for_update=True))  # locks: round, then stage
    stage = _open_stage(session, round_id, for_update=True)
    step = stage_step(_day(at, definition), stage.due_on, definition.review.reminder_days)
    pending = _outstanding(session, round_id)
    summary = DaySummary(round_id, step.value, outstanding=len(pending))
    by_reviewer: dict[str, tuple[ReviewerRow, list[Application]]] = {}
    for reviewer, application in pending:
        by_reviewer.setdefault(reviewer.email, (reviewer, []))[1].append(application)
    if step is StageStep.REMIND and by_reviewer:
        names = party_names(session, {a.party for _, a in pending})
        messages = [
            (
                _reviewer_message(
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
        ]
        summary.reminders = _queue_for_reviewers(session, settings, messages, at)
    if step is StageStep.OVERDUE and pending:
        lines = [
            f"{reviewer.email} ({reviewer.name}): {', '.join(a.reference for a in applications)}"
            for reviewer, applications in by_reviewer.values()
        ]
        lines.append(
            f"Close the review when you are ready (sip review close {round_id}); applications with "
            "fewer reviews than asked go to the committee marked as such."
        )
        summary.overdue_notice = bool(
            _tell_secretariat(
                session,
                settings,
                round_id,
                f"review_overdue:{round_id}:{stage.due_on}",
                f"{len(pending)} review(s) of {round_id} were due on {stage.due_on} and are not in",
                lines,
                at,
            )
        )
    summary.closed = _close_when_complete(session, stage, definition, at=at)
    return summary


def _close_when_complete(session: Session, stage: ReviewStage, definition: RoundDefinition, *, at: datetime) -> bool:
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
    stored = RoundStatus(row.status)
    target = check_committee(session, round_id)
    if target is stored:
        return CommitteeSummary(round_id, changed=False)
    summary = CommitteeSummary(round_id, changed=True)
    changes = []
    if definition.has_gmp_review:
        stage = _open_stage(session, round_id, for_update=True)
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
        role=role.value,
        at=at,
        reason=reason,
        details={"applications": summary.sent, "short_of_reviews": summary.short},
    )
    return summary


def check_committee(session: Session, round_id: str) -> RoundStatus:
    """The round's status once with the committee, or why it cannot go there yet."""
    row = get_round(session, round_id)
    stored = RoundStatus(row.status)
    try:
        target = plan_committee(stored, definition_of(row))
    except RoundActionError as exc:
        raise NotAllowed(str(exc)) from None
    if target is stored:
        return target
    pending = session.exec(
        select(Application.reference)
        .where(
            Application.round_id == round_id,
            Application.status.in_([Status.SUBMITTED.value, Status.INFORMATION_REQUESTED.value]),
        )
        .order_by(Application.reference)
    ).all()
    if pending:  # they would be left behind in screening
        raise NotAllowed(
            f"screening of {round_id} is not finished: {', '.join(pending)} still wait(s) for "
            f"screening, a person's judgement or the applicant's answer. Screen them (`sip screen "
            f"{round_id}`) or decide with `sip screen override {round_id} REFERENCE --verdict "
            "screened|incomplete|ineligible --reason TEXT`, then close again"
        )
    return target


def _in_statuses(session: Session, round_id: str, statuses: tuple[Status, ...]) -> list[Application]:
    return list(
        session.exec(
            select(Application)
            .where(Application.round_id == round_id, Application.status.in_([s.value for s in statuses]))  # type: ignore[attr-defined]
            .order_by(Application.id)
        ).all()
    )


def _submitted_counts(session: Session, round_id: str) -> dict[int, int]:
    return dict(
        session.exec(
            select(ReviewAssignment.application_id, func.count())
            .where(ReviewAssignment.round_id == round_id, ReviewAssignment.state == AssignmentState.SUBMITTED.value)
            .group_by(ReviewAssignment.application_id)
        ).all()
    )


def rounds_in_review(session: Session) -> list[str]:
    return list(
        session.exec(
            select(ReviewStage.round_id)
            .join(Round)
            .where(ReviewStage.closed_at.is_(None), Round.status == RoundStatus.REVIEW.value)  # type: ignore[union-attr]
            .order_by(ReviewStage.round_id)
        ).all()
    )


# --- what the committee reads ----------------------------------------------------------------


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
            .where(ReviewAssignment.round_id == round_id, Review.state == "submitted")
        ).all()
    }
    review = state.definition.review
    out = []
    for application in state.applications:
        rows = state.assignments.get(application.id or 0, [])
        submitted = [(a, reviews[a.id]) for a in rows if a.state == AssignmentState.SUBMITTED.value and a.id in reviews]
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
                outstanding=sum(a.state == AssignmentState.INVITED.value for a in rows),
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
