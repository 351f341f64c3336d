"""The notification outbox: rendered messages written in the same transaction as the
change that causes them. One row per business key, whatever happens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, func, select

from engine.services.tokens import (
    derive_agreement_token,
    derive_bundle_token,
    derive_draft_token,
    derive_link_token,
    derive_token,
)
from engine.settings import Settings
from engine.tables import Application, IntakeKey, MessageState, OutboxMessage, ReviewerToken, table_of
from notifications import (
    ACCESS_CODE_PLACEHOLDER,
    AGREEMENT_LINK_PLACEHOLDER,
    BUNDLE_LINK_PLACEHOLDER,
    DRAFT_LINK_PLACEHOLDER,
    REVIEW_LINK_PLACEHOLDER,
    RenderedMessage,
)


def message_row(
    *,
    key: str,
    kind: str,
    recipient: str,
    message: RenderedMessage,
    at: datetime,
    round_id: str | None = None,
    application_id: int | None = None,
) -> dict[str, Any]:
    return dict(
        key=key,
        kind=kind,
        round_id=round_id,
        application_id=application_id,
        recipient=recipient,
        language=message.language,
        subject=message.subject,
        body_text=message.text,
        body_html=message.html,
        state=MessageState.QUEUED,
        attempts=0,
        created_at=at,
    )


def enqueue_rows(session: Session, rows: list[dict[str, Any]]) -> int:
    """Queue rendered messages (`message_row`); a key already queued is left as it
    is. Returns how many were queued."""
    if not rows:
        return 0
    table = table_of(OutboxMessage)
    if session.get_bind().dialect.name != "postgresql":
        result = session.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=["key"]), rows)
        return int(result.rowcount)  # type: ignore[attr-defined]
    return len(enqueue_new(session, rows))  # psycopg reports no row count for a batch


def enqueue_fresh(session: Session, rows: list[dict[str, Any]]) -> None:
    """Queue messages under keys nobody can have used yet (a receipt's, named by a
    reference given in this transaction): one insert, without first looking the keys
    up; the conflict clause still leaves a key already queued as it is."""
    if rows:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(table_of(OutboxMessage)).on_conflict_do_nothing(index_elements=["key"]), rows)


def enqueue_new(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """Queue the messages whose key is not queued yet; returns their keys (the conflict
    clause still covers a writer racing this one)."""
    done = queued(session, [r["key"] for r in rows])
    rows = [r for r in rows if r["key"] not in done]
    if rows:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(table_of(OutboxMessage)).on_conflict_do_nothing(index_elements=["key"]), rows)
    return [r["key"] for r in rows]


def queued(session: Session, keys: list[str]) -> set[str]:
    """Which of these business keys already have a message."""
    if not keys:
        return set()
    return set(session.exec(select(OutboxMessage.key).where(col(OutboxMessage.key).in_(keys))).all())


#: The messages that carry a reviewer's sign-in link.
REVIEWER_KINDS = frozenset({"review_invitation", "review_link", "review_reminder", "report_review_invitation"})


def materialize(session: Session, settings: Settings, message: OutboxMessage) -> RenderedMessage:
    """The message as it is sent, with its secret put in, derived again from the secret
    key (so it is never stored): an imported application's receipt gets its access
    code (from the import's key), a reviewer's message its sign-in link token (from
    the link's nonce), a committee member's its bundle's download token (from the
    message's key), an applicant's the link to their draft (from the draft's nonce, in
    the message's key). The secret key must not change while such messages are queued."""
    text, html = message.body_text, message.body_html
    secret: str | None = None
    # Only a message of a kind that carries a secret gets it, where the template put its
    # placeholder: text an applicant wrote (a title) that looks like one stays as it is.
    if message.kind == "receipt" and ACCESS_CODE_PLACEHOLDER in text + html:
        channel, stored = session.exec(
            select(Application.channel, Application.access_token_hash).where(Application.id == message.application_id)
        ).one()
        if channel != "api":  # an import's or the portal's receipt gives the code, derived from its key
            key = session.exec(select(IntakeKey.key).where(IntakeKey.application_id == message.application_id)).one()
            secret = derive_token(settings.key(), message.round_id or "", key, stored)
        placeholder = ACCESS_CODE_PLACEHOLDER
    elif message.kind == "grant_agreement_sent":
        secret, placeholder = derive_agreement_token(settings.key(), message.key), AGREEMENT_LINK_PLACEHOLDER
    elif message.kind == "bundle_ready":
        secret, placeholder = derive_bundle_token(settings.key(), message.key), BUNDLE_LINK_PLACEHOLDER
    elif message.kind in REVIEWER_KINDS:
        nonce = session.exec(select(ReviewerToken.nonce).where(ReviewerToken.message_key == message.key)).first()
        secret = derive_link_token(settings.key(), nonce) if nonce else None
        placeholder = REVIEW_LINK_PLACEHOLDER
    elif message.kind == "draft_link":  # the key: draft-link:<nonce>:<sent>
        secret, placeholder = derive_draft_token(settings.key(), message.key.split(":")[1]), DRAFT_LINK_PLACEHOLDER
    if secret is not None:
        text, html = text.replace(placeholder, secret), html.replace(placeholder, secret)
    return RenderedMessage(subject=message.subject, text=text, html=html, language=message.language)


@dataclass(frozen=True)
class OutboxLine:
    id: int
    created_at: datetime
    recipient: str
    kind: str
    language: str
    state: MessageState
    subject: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    message_id: str | None


def list_messages(
    session: Session,
    *,
    state: str | None = None,
    round_id: str | None = None,
    newest: int | None = None,
) -> list[OutboxLine]:
    """The messages, oldest first; with `newest`, only that many of the latest, newest first."""
    statement = select(OutboxMessage).order_by(col(OutboxMessage.id))
    if newest is not None:
        statement = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(newest)
    if state:
        if state not in set(MessageState):
            return []  # no message is in a state that does not exist
        statement = statement.where(OutboxMessage.state == state)
    if round_id:
        statement = statement.where(OutboxMessage.round_id == round_id)
    return [
        OutboxLine(
            m.id or 0,
            m.created_at,
            m.recipient,
            m.kind,
            m.language,
            m.state,
            m.subject,
            m.attempts,
            m.sent_at,
            m.last_error,
            m.message_id,
        )
        for m in session.exec(statement).all()
    ]


def message_counts(session: Session, *, round_id: str | None = None) -> dict[str, int]:
    """How many messages are in each state (of a round, or all)."""
    statement = select(OutboxMessage.state, func.count())
    if round_id:
        statement = statement.where(OutboxMessage.round_id == round_id)
    return {MessageState(state).value: count for state, count in session.exec(statement.group_by(OutboxMessage.state))}
