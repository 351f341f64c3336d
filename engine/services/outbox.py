"""The notification outbox: rendered messages written in the same transaction as the
change that causes them. One row per business key, whatever happens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from engine.tables import OutboxMessage
from notifications import RenderedMessage, render


def enqueue(session: Session, *, key: str, kind: str, recipient: str, message: RenderedMessage, at: datetime,
            round_id: str | None = None, application_id: int | None = None) -> bool:
    """Queue a rendered message under `key`; a second call with the same key queues
    nothing and returns False."""
    values: dict[str, Any] = dict(
        key=key, kind=kind, round_id=round_id, application_id=application_id, recipient=recipient,
        language=message.language, subject=message.subject, body_text=message.text, body_html=message.html,
        state="queued", attempts=0, created_at=at,
    )
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def render_and_enqueue(session: Session, *, key: str, kind: str, recipient: str, language: str,
                       context: dict[str, Any], at: datetime, round_id: str | None = None,
                       application_id: int | None = None) -> bool:
    message = render(kind, language, {**context, "language": language})
    return enqueue(session, key=key, kind=kind, recipient=recipient, message=message, at=at,
                   round_id=round_id, application_id=application_id)


@dataclass(frozen=True)
class OutboxLine:
    id: int
    created_at: datetime
    recipient: str
    kind: str
    language: str
    state: str
    subject: str


def list_messages(session: Session, *, state: str | None = None, round_id: str | None = None) -> list[OutboxLine]:
    statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
    if state:
        statement = statement.where(OutboxMessage.state == state)
    if round_id:
        statement = statement.where(OutboxMessage.round_id == round_id)
    return [
        OutboxLine(m.id or 0, m.created_at, m.recipient, m.kind, m.language, m.state, m.subject)
        for m in session.exec(statement).all()
    ]
