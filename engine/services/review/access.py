"""How a reviewer gets in: a sign-in link (used once) exchanged for a session, the
session checked on every request, and a new link asked for by e-mail address (the
answer never says whether the address is in the register)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from domain.lifecycle import Role
from domain.review import (
    AssignmentState,
)
from engine.services import audit
from engine.services.errors import Unauthorized
from engine.services.parties import party_names
from engine.services.review.messages import queue_for_reviewers, reviewer_message
from engine.services.review.state import language_of
from engine.services.rounds import definition_of, get_round
from engine.services.tokens import random_token, token_hash
from engine.settings import Settings
from engine.tables import (
    Application,
    ReviewAssignment,
    ReviewerRecord,
    ReviewerToken,
    ReviewStage,
    table_of,
)

NEW_LINK = "ask for a new link: POST /reviewer/links with your e-mail address"
WITHDRAWN = f"{NEW_LINK} (it is sent only to the address the secretariat has for you)"


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
        raise Unauthorized(f"this sign-in link is not valid; {NEW_LINK}", reason="link_unknown")
    holder = session.get(ReviewerRecord, link.reviewer_id)
    language = language_of(holder) if holder is not None else None
    actor = holder.email if holder is not None else None  # a refusal of their link is audited under their name
    if link.used_at is not None:
        raise Unauthorized(
            f"this sign-in link was already used (on {link.used_at:%Y-%m-%d %H:%M} UTC); each link "
            f"opens one session; {NEW_LINK}",
            reason="link_used",
            language=language,
            actor=actor,
        )
    if link.revoked_at is not None:
        raise Unauthorized(
            f"this sign-in link was withdrawn on {link.revoked_at:%Y-%m-%d %H:%M} UTC; {WITHDRAWN}",
            reason="link_withdrawn",
            language=language,
            actor=actor,
        )
    if link.expires_at <= at:
        raise Unauthorized(
            f"this sign-in link expired on {link.expires_at:%Y-%m-%d}; {NEW_LINK}",
            reason="link_expired",
            language=language,
            actor=actor,
        )
    _check_active(session, link.reviewer_id)
    table = table_of(ReviewerToken)
    claimed = session.execute(
        update(table)
        .where(table.c.id == link.id, table.c.used_at.is_(None), table.c.revoked_at.is_(None))
        .values(used_at=at)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized(
            f"this sign-in link was already used; {NEW_LINK}", reason="link_used", language=language, actor=actor
        )
    reviewer = session.get(ReviewerRecord, link.reviewer_id)
    assert reviewer is not None
    token = random_token()
    expires = at + timedelta(hours=settings.reviewer_session_hours)
    session.add(
        ReviewerToken(
            reviewer_id=reviewer.id or 0,
            purpose="session",
            token_hash=token_hash(token),
            issued_at=at,
            expires_at=expires,
        )
    )
    audit.record(
        session,
        at=at,
        actor=reviewer.email,
        role=Role.REVIEWER,
        action="reviewer.signed_in",
        subject_type="reviewer",
        subject_id=reviewer.email,
        details={"link": link.id},
    )
    return SignedIn(token, expires, reviewer.email, reviewer.name)


def reviewer_for(session: Session, session_token: str | None, *, at: datetime) -> ReviewerRecord:
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
    holder = session.get(ReviewerRecord, row.reviewer_id)
    actor = holder.email if holder is not None else None  # an ended session's refusal is audited under their name
    if row.revoked_at is not None:
        raise Unauthorized(
            f"your session was closed at {row.revoked_at:%Y-%m-%d %H:%M} UTC (you signed out, or the "
            f"secretariat ended it); {WITHDRAWN}",
            actor=actor,
        )
    if row.expires_at <= at:
        raise Unauthorized(f"your session ended at {row.expires_at:%Y-%m-%d %H:%M} UTC; {NEW_LINK}", actor=actor)
    return _check_active(session, row.reviewer_id)


def _check_active(session: Session, reviewer_id: int) -> ReviewerRecord:
    """The reviewer, if still active in the register (deactivating one ends their
    credentials; this check holds even for one issued since)."""
    reviewer = session.get(ReviewerRecord, reviewer_id)
    assert reviewer is not None
    if not reviewer.active:
        raise Unauthorized(
            "you are no longer an active reviewer in the register, so your access has ended; write to the "
            "secretariat if you think this is a mistake",
            reason="link_withdrawn",
            language=language_of(reviewer),
            actor=reviewer.email,
        )
    return reviewer


def sign_out(session: Session, session_token: str | None, *, at: datetime) -> ReviewerRecord:
    """End the reviewer's session (the token no longer works); audited."""
    reviewer = reviewer_for(session, session_token, at=at)
    table = table_of(ReviewerToken)
    session.execute(
        update(table)
        .where(
            table.c.token_hash == token_hash(session_token or ""),
            table.c.purpose == "session",
            table.c.revoked_at.is_(None),
        )
        .values(revoked_at=at)
    )
    audit.record(
        session,
        at=at,
        actor=reviewer.email,
        role=Role.REVIEWER,
        action="reviewer.signed_out",
        subject_type="reviewer",
        subject_id=reviewer.email,
    )
    return reviewer


def request_link(session: Session, settings: Settings, email: str, *, at: datetime) -> bool:
    """Send a new sign-in link to a reviewer with reviews to do in an open review
    stage; at most one an hour. The caller answers the same whatever happens, so
    nobody learns who is a reviewer. Returns whether a link was queued."""
    reviewer = session.exec(select(ReviewerRecord).where(ReviewerRecord.email == email.strip().lower())).first()
    if reviewer is None or not reviewer.active:
        return False
    rows = session.exec(
        select(Application, ReviewStage)
        .join(ReviewAssignment, col(ReviewAssignment.application_id) == Application.id)
        .join(ReviewStage, col(ReviewStage.round_id) == ReviewAssignment.round_id)
        .where(
            ReviewAssignment.reviewer_id == reviewer.id,
            ReviewAssignment.state == AssignmentState.INVITED,
            col(ReviewStage.closed_at).is_(None),
        )
        .order_by(col(Application.id))
    ).all()
    if not rows:  # an expert asked to review grants' reports only
        from engine.services.report_reviews import resend_links  # noqa: PLC0415 - it builds on the review's modules

        return bool(resend_links(session, settings, reviewer, at=at))
    by_round: dict[str, tuple[ReviewStage, list[Application]]] = {}
    for application, stage in rows:
        by_round.setdefault(stage.round_id, (stage, []))[1].append(application)
    names = party_names(session, {a.party for a, _ in rows})
    messages = [
        (
            reviewer_message(
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
    queued = queue_for_reviewers(session, settings, messages, at)
    audit.record(
        session,
        at=at,
        actor=reviewer.email,
        role=Role.REVIEWER,
        action="reviewer.link_requested",
        subject_type="reviewer",
        subject_id=reviewer.email,
        details={"links": queued},
    )
    return bool(queued)
