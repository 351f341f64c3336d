"""The review's messages, queued in the outbox in the same transaction as the change:
reviewers' personal sign-in links (in their language, valid for a set time), their
invitations and reminders, and what the secretariat is told."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from domain.rounds import RoundDefinition
from engine.services import outbox
from engine.services.parties import PartyNames
from engine.services.review.state import language_of
from engine.services.rounds import definition_of, get_round
from engine.services.tokens import derive_link_token, token_hash
from engine.settings import Settings
from engine.tables import (
    Application,
    ReviewerRecord,
    ReviewerToken,
    ReviewStage,
)
from notifications import REVIEW_LINK_PLACEHOLDER, render


def sign_in_url(settings: Settings, language: str) -> str:
    """The link in a reviewer's message; the token goes in at delivery."""
    return f"{settings.public_base_url.rstrip('/')}/reviewer/sign-in?lang={language}&token={REVIEW_LINK_PLACEHOLDER}"


def link_expiry(settings: Settings, at: datetime) -> datetime:
    return at + timedelta(days=settings.reviewer_link_days)


def issue_link(session: Session, settings: Settings, reviewer: ReviewerRecord, message_key: str, at: datetime) -> None:
    """The one-time sign-in link of the message `message_key` (one link per message)."""
    nonce = secrets.token_hex(16)
    session.add(
        ReviewerToken(
            reviewer_id=reviewer.id or 0,
            purpose="link",
            nonce=nonce,
            message_key=message_key,
            token_hash=token_hash(derive_link_token(settings.key(), nonce)),
            issued_at=at,
            expires_at=link_expiry(settings, at),
        )
    )


def queue_for_reviewers(
    session: Session, settings: Settings, items: list[tuple[dict[str, Any], ReviewerRecord]], at: datetime
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


def reviewer_message(
    settings: Settings,
    kind: str,
    key: str,
    reviewer: ReviewerRecord,
    definition: RoundDefinition,
    stage: ReviewStage,
    applications: list[Application],
    names: PartyNames,
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
                dict(reference=a.reference, title=a.title or "—", party=names.name(a.party, language))
                for a in applications
            ],
            criteria=[c.title_in(language) for c in definition.review.criteria],
            sign_in_url=sign_in_url(settings, language),
            link_expires=expires.astimezone(definition.zone).date(),
            programme_email=settings.programme_email,
            api_url=settings.public_base_url.rstrip("/"),
        ),
    )
    return outbox.message_row(
        key=key, kind=kind, recipient=reviewer.email, message=message, at=at, round_id=definition.id
    )


def tell_secretariat(
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
