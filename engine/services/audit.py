"""The append-only audit trail and the status history: every state change writes one
audit event (who, what, when it was recorded, why) in the same transaction; an
application's transitions also write a status-change row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from domain.lifecycle import PUBLIC_STATUS, Role, TransitionRecord
from engine.db import unit_of_work
from engine.services.errors import ServiceError
from engine.tables import AuditEvent


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    role: Role,
    action: str,
    subject_type: str,
    subject_id: str,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            at=at,
            actor=actor,
            role=role,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            from_status=from_status,
            to_status=to_status,
            reason=fit_reason(reason),
            details=details,
        )
    )


REASON_LENGTH = 2000


def fit_reason(reason: str | None) -> str | None:
    """A reason as the audit trail keeps it (at most 2,000 characters; a longer one is
    cut, its whole text being in the record it explains)."""
    if reason is None or len(reason) <= REASON_LENGTH:
        return reason
    return reason[: REASON_LENGTH - 1] + "…"


def history_values(transition: TransitionRecord, *, application_id: int, key: str) -> dict[str, Any]:
    """The status-change row of an application's transition (`at`: when it took effect)."""
    return dict(
        application_id=application_id,
        key=key,
        transition=transition.transition,
        from_status=transition.from_status,
        to_status=transition.to_status,
        public_status=PUBLIC_STATUS[transition.to_status],
        at=transition.at,
    )


def audit_values(
    transition: TransitionRecord,
    *,
    reference: str,
    recorded_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit event of an application's transition. Its time is when it was
    recorded; a transition that took effect earlier (a back-dated import) says so."""
    recorded_at = recorded_at or datetime.now(UTC)
    extra = dict(details or {})
    if transition.at != recorded_at:
        extra["effective_at"] = transition.at.isoformat()
    return dict(
        at=recorded_at,
        actor=transition.actor,
        role=transition.role,
        action=f"application.{transition.transition}",
        subject_type="application",
        subject_id=reference,
        from_status=transition.from_status,
        to_status=transition.to_status,
        reason=fit_reason(transition.reason),
        details=extra or None,
    )


@contextmanager
def refusals_recorded(
    engine: Engine, *, actor: str, role: Role, action: str, subject_type: str, subject_id: str
) -> Iterator[None]:
    """Run an attempt; if a service refuses it (its own transaction is rolled back),
    the refusal is audited in a transaction of its own, then raised again."""
    try:
        yield
    except ServiceError as exc:
        record_refusal(
            engine, exc, actor=actor, role=role, action=action, subject_type=subject_type, subject_id=subject_id
        )
        raise


def record_refusal(
    engine: Engine,
    exc: ServiceError,
    *,
    actor: str,
    role: Role,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit a refused attempt, in a transaction of its own (once per refusal)."""
    if exc.audited:
        return
    with unit_of_work(engine) as session:
        record(
            session,
            at=datetime.now(UTC),
            actor=actor[:200],
            role=role,
            action=f"{action}.refused"[:60],
            subject_type=subject_type,
            subject_id=subject_id[:100],
            reason=exc.message,
            details={"error": exc.code, "errors": [e.model_dump() for e in exc.errors], **(details or {})},
        )
    exc.audited = True
