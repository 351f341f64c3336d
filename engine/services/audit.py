"""The append-only audit trail: every state change writes one event in the same
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from engine.tables import AuditEvent


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    role: str,
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
            at=at, actor=actor, role=role, action=action, subject_type=subject_type, subject_id=subject_id,
            from_status=from_status, to_status=to_status, reason=reason, details=details,
        )
    )
