"""Ending a person's access before its time: a reviewer's sign-in links and sessions,
and a committee member's bundle links. A credential is revoked by stamping it
(`revoked_at`), never deleted, and every revocation is audited in the same
transaction, with who did it and why.

It happens when a reviewer is deactivated, when a committee member's term is ended
early, and when the secretariat withdraws a person's access (a lost laptop, a
forwarded e-mail): then every link and session of theirs ends at once. The person
may still ask for a new link, by e-mail, while they are an active reviewer with
reviews to do; to keep them out, deactivate them too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.hints import Hint, Step
from domain.lifecycle import Role
from engine.services import audit
from engine.services.errors import InvalidInput, NotFound
from engine.tables import CommitteeBundle, CommitteeMember, ReviewerRecord, ReviewerToken, table_of


@dataclass(frozen=True)
class Revoked:
    """What a revocation ended."""

    email: str
    sessions: int = 0  # reviewer sessions still open
    links: int = 0  # reviewer sign-in links not yet used nor expired
    bundle_links: int = 0  # committee bundle links

    @property
    def total(self) -> int:
        return self.sessions + self.links + self.bundle_links


def revoke_reviewer_tokens(session: Session, reviewer: ReviewerRecord, *, at: datetime) -> tuple[int, int]:
    """End the reviewer's sessions and unused links: every one not yet revoked, whatever
    its expiry (no clock decides whether it still works). Returns how many were still
    valid at `at`: (sessions, links). Not audited here: the caller says why."""
    table = table_of(ReviewerToken)
    unrevoked = and_(
        table.c.reviewer_id == reviewer.id,
        table.c.revoked_at.is_(None),
        or_(table.c.purpose == "session", table.c.used_at.is_(None)),
    )
    live = dict(
        session.execute(
            select(table.c.purpose, func.count()).where(unrevoked, table.c.expires_at > at).group_by(table.c.purpose)
        ).all()
    )
    session.execute(update(table).where(unrevoked).values(revoked_at=at))
    return int(live.get("session", 0)), int(live.get("link", 0))


def revoke_bundle_links(session: Session, email: str, *, at: datetime) -> int:
    """End every bundle link of the committee member `email`. Not audited here."""
    table = table_of(CommitteeBundle)
    result = session.execute(
        update(table).where(table.c.email == email.strip().lower(), table.c.revoked_at.is_(None)).values(revoked_at=at)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def record(
    session: Session, revoked: Revoked, *, cause: str, reason: str | None, actor: str, role: Role, at: datetime
) -> None:
    """The audit event of a revocation (also when nothing was left to end)."""
    audit.record(
        session,
        at=at,
        actor=actor,
        role=role,
        action="access.revoked",
        subject_type="person",
        subject_id=revoked.email,
        reason=reason,
        details={
            "cause": cause,
            "sessions": revoked.sessions,
            "links": revoked.links,
            "bundle_links": revoked.bundle_links,
        },
    )


def end_reviewer_access(session: Session, reviewer: ReviewerRecord, *, cause: str, actor: str, at: datetime) -> Revoked:
    """End a reviewer's links and sessions (deactivated), audited."""
    sessions, links = revoke_reviewer_tokens(session, reviewer, at=at)
    revoked = Revoked(reviewer.email, sessions=sessions, links=links)
    record(session, revoked, cause=cause, reason=None, actor=actor, role=Role.SECRETARIAT, at=at)
    return revoked


def end_member_access(session: Session, email: str, *, cause: str, actor: str, at: datetime) -> Revoked:
    """End a committee member's bundle links (they left the committee), audited."""
    revoked = Revoked(email.strip().lower(), bundle_links=revoke_bundle_links(session, email, at=at))
    record(session, revoked, cause=cause, reason=None, actor=actor, role=Role.SECRETARIAT, at=at)
    return revoked


def revoke_person(session: Session, email: str, *, reason: str, actor: str, at: datetime) -> Revoked:
    """The secretariat withdraws every link and session of a person (a reviewer, a
    committee member, or both), for a reason; audited under the officer's name."""
    email = email.strip().lower()
    if not reason.strip():
        raise InvalidInput(
            "say why the access is withdrawn (reason)", [FieldError(path="reason", message="is required")]
        )
    reviewer = session.exec(select(ReviewerRecord).where(ReviewerRecord.email == email)).first()
    member = session.exec(select(CommitteeMember.id).where(col(CommitteeMember.email) == email)).first()
    if reviewer is None and member is None:
        raise NotFound(
            f"{email} is neither a reviewer nor a committee member",
            hints=(Hint(Step.LIST_REVIEWERS), Hint(Step.LIST_COMMITTEE)),
        )
    sessions = links = 0
    if reviewer is not None:
        sessions, links = revoke_reviewer_tokens(session, reviewer, at=at)
    revoked = Revoked(email, sessions=sessions, links=links, bundle_links=revoke_bundle_links(session, email, at=at))
    record(session, revoked, cause="withdrawn", reason=reason.strip(), actor=actor, role=Role.SECRETARIAT, at=at)
    return revoked
