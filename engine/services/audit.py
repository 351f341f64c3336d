"""The append-only audit trail and the status history: every state change writes one
audit event (who, what, when it was recorded, why) in the same transaction; an
application's transitions also write a status-change row.

Every event is written through `append`, which chains it to the one before it (its
`prev_hash`, and its own `hash`: see `domain.audit_chain`), so that `sip audit verify`
finds an event changed or removed by any path. Two transactions must not both chain to
the same last event: on PostgreSQL `append` takes a transaction-scoped advisory lock
before it reads the last hash (held until commit, so the next writer reads this one's
events); on SQLite every writing transaction holds the database's write lock from its
BEGIN IMMEDIATE (`engine.db`), and a deferred one that another writer overtook cannot
write at all (SQLITE_BUSY_SNAPSHOT), so it cannot fork the chain either."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlmodel import Session

from domain.audit_chain import GENESIS, chain
from domain.lifecycle import PUBLIC_STATUS, Role, TransitionRecord
from engine.db import unit_of_work
from engine.services.errors import ServiceError
from engine.tables import AuditEvent, table_of

#: The key of the PostgreSQL advisory lock that orders writers of the audit trail ("SIPAUDIT").
CHAIN_LOCK = int.from_bytes(b"SIPAUDIT", "big") >> 1


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
    append(
        session,
        [
            dict(
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
        ],
    )


def append(session: Session, events: list[dict[str, Any]]) -> None:
    """Write audit events (values as `audit_values` gives them), in this order, at the
    end of the hash chain, in the caller's transaction: one lock, one read of the last
    hash and one insert, whatever the number of events (each gets its `prev_hash` and
    `hash` in place)."""
    if not events:
        return
    session.flush()  # what the session holds goes first (as it would have without the chain)
    table = table_of(AuditEvent)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    head = session.execute(select(table.c.hash).order_by(table.c.id.desc()).limit(1)).scalar_one_or_none()
    chain(head or GENESIS, events)
    session.execute(insert(table), events)


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
