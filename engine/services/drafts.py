"""Drafts of the applicant's portal: an application written over several visits.

A draft belongs to whoever holds its link: the link is e-mailed to the address given
when it was started (its token is derived from the secret key and the draft's nonce at
delivery, so neither the outbox nor the database holds it), and opening it again is
how the applicant comes back, without a password. A draft holds the form as it was
left, valid or not; submitting it takes it in through intake like any application
(same checks, same receipt), under an idempotency key of its own, so that a submission
sent twice is one application."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from domain.application import FORMAT, FieldError
from domain.lifecycle import Role
from domain.rounds import RoundDefinition
from engine.db import reading, unit_of_work
from engine.services import audit, intake, outbox
from engine.services.errors import Conflict, InvalidInput, NotFound
from engine.services.rounds import definition_of, get_round
from engine.services.tokens import derive_draft_token, derive_token, token_hash
from engine.settings import Settings
from engine.tables import Application, ApplicationDraft, Round, table_of
from notifications import DRAFT_LINK_PLACEHOLDER, render

NO_DRAFT = "no draft application has this link; open the link of your latest e-mail, or start a new application"
#: A new link for a draft is sent at most this often on request.
LINK_EVERY = timedelta(hours=1)
#: How long after its submission a draft's page shows the access code (after that, the
#: receipt e-mailed to the contact holds it): whoever opens the link later, on a shared
#: computer for instance, does not see it.
CODE_SHOWN_FOR = timedelta(hours=1)
#: The idempotency key of a draft's submission (never an API caller's: theirs are prefixed `api:`).
KEY_PREFIX = "draft:"


@dataclass(frozen=True)
class Started:
    draft_id: int
    token: str
    closes_at: datetime  # the round's: the draft can be submitted until then


@dataclass(frozen=True)
class Draft:
    """A draft as its pages show it, with its round (and its application, once submitted)."""

    id: int
    round_id: str
    definition: RoundDefinition
    email: str
    language: str
    content: dict[str, Any]
    updated_at: datetime
    submitted_at: datetime | None
    reference: str | None
    access_code: str | None
    accepting: bool


def _draft_url(settings: Settings, language: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/apply/draft?token={DRAFT_LINK_PLACEHOLDER}&lang={language}"


def _queue_link(session: Session, settings: Settings, draft: ApplicationDraft, row: Round, *, at: datetime) -> None:
    definition = definition_of(row)
    message = render(
        "draft_link",
        draft.language,
        dict(
            language=draft.language,
            round_title=definition.title_in(draft.language),
            timezone=definition.timezone,
            closes_at=definition.closes_at,
            draft_url=_draft_url(settings, draft.language),
            programme_email=settings.programme_email,
        ),
    )
    # Each link message has its own key, so that a new one can be sent on request; the
    # nonce comes first after the kind, for the delivery to derive the link's token from.
    outbox.enqueue_rows(
        session,
        [
            outbox.message_row(
                key=f"draft-link:{draft.nonce}:{at.isoformat()}",
                kind="draft_link",
                recipient=draft.email,
                at=at,
                round_id=row.id,
                message=message,
            )
        ],
    )


def start(session: Session, settings: Settings, round_id: str, email: str, language: str, *, at: datetime) -> Started:
    """A new draft for the round (which must accept applications now), its link sent to
    `email`. Audited as the applicant's."""
    row = get_round(session, round_id)
    intake.check_accepting(row, definition_of(row), at)
    nonce = secrets.token_hex(16)
    token = derive_draft_token(settings.key(), nonce)
    draft = ApplicationDraft(
        round_id=row.id,
        nonce=nonce,
        token_hash=token_hash(token),
        email=email.lower(),  # looked up as the person types it again (`send_links`)
        language=language,
        content={"applicant": {"contact": {"email": email}, "language": language}},
        created_at=at,
        updated_at=at,
        link_sent_at=at,
    )
    session.add(draft)
    session.flush()
    audit.record(
        session,
        at=at,
        actor=email,
        role=Role.APPLICANT,
        action="draft.start",
        subject_type="draft",
        subject_id=str(draft.id),
        details={"round": row.id, "language": language},
    )
    _queue_link(session, settings, draft, row, at=at)
    return Started(draft.id or 0, token, definition_of(row).closes_at)


def _row(session: Session, token: str | None, *, for_update: bool = False) -> ApplicationDraft:
    query = select(ApplicationDraft).where(ApplicationDraft.token_hash == token_hash(token or ""))
    found = session.exec(query.with_for_update() if for_update else query).first() if token else None
    if found is None:
        raise NotFound(NO_DRAFT, reason="draft_unknown")
    return found


def open_draft(session: Session, settings: Settings, token: str | None, *, at: datetime) -> Draft:
    """The draft whose link this is (`NotFound` for any other, the same for all)."""
    draft = _row(session, token)
    row = get_round(session, draft.round_id)
    definition = definition_of(row)
    reference = code = None
    if draft.application_id is not None:
        application = session.get(Application, draft.application_id)
        assert application is not None
        reference = application.reference
        if draft.submitted_at is not None and at - draft.submitted_at <= CODE_SHOWN_FOR:
            code = derive_token(settings.key(), row.id, KEY_PREFIX + draft.nonce, application.access_token_hash)
    return Draft(
        id=draft.id or 0,
        round_id=row.id,
        definition=definition,
        email=draft.email,
        language=draft.language,
        content=draft.content,
        updated_at=draft.updated_at,
        submitted_at=draft.submitted_at,
        reference=reference,
        access_code=code,
        accepting=intake.accepting(row, definition, at),
    )


def save(session: Session, token: str | None, content: dict[str, Any], *, at: datetime) -> None:
    """Keep the form as it is now (valid or not). A submitted draft no longer changes."""
    draft = _row(session, token, for_update=True)
    if draft.submitted_at is not None:
        raise Conflict("this application was already submitted; it can no longer change here", reason="draft_submitted")
    draft.content = content
    draft.updated_at = at
    language = (content.get("applicant") or {}).get("language")
    if language in ("en", "fr", "es"):
        draft.language = language
    session.add(draft)


#: An amount as a draft holds it: text, of whole dollars and at most two decimals.
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")


def document(round_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """The draft as a `sip-application/1` document: its amounts as numbers, as the format
    has them. A draft keeps each amount as the text the form read (`45000.50`); one of at
    most 14 digits goes through a float exactly (a double keeps 15 significant digits,
    and JSON's reader takes it back as a `Decimal`); one the form could not read stays
    the text it was, for intake to refuse beside its field."""

    def number(value: Any) -> Any:
        return float(value) if isinstance(value, str) and _AMOUNT.fullmatch(value) else value

    budget = content.get("form_b")
    if isinstance(budget, dict):
        budget = dict(budget)
        if "total_requested" in budget:
            budget["total_requested"] = number(budget["total_requested"])
        for key in ("lines", "co_financing"):
            if isinstance(budget.get(key), list):
                budget[key] = [
                    {**row, "amount": number(row["amount"])} if isinstance(row, dict) and "amount" in row else row
                    for row in budget[key]
                ]
        content = {**content, "form_b": budget}
    return {"format": FORMAT, "round": round_id, **content}


def submit(
    engine: Engine, settings: Settings, token: str | None, content: dict[str, Any], *, at: datetime
) -> intake.Receipt:
    """Save the draft as it is now and take it in as an application (intake's checks, in
    one transaction with marking the draft submitted). Sent again, the same receipt."""
    with reading(engine) as session:
        draft = _row(session, token)
        draft_id, round_id, nonce, actor = draft.id, draft.round_id, draft.nonce, draft.email
        if draft.submitted_at is not None:
            content = draft.content  # sent again: the first submission's content, answered with its receipt

    def mark(session: Session, receipt: intake.Receipt) -> None:
        application_id = session.exec(select(Application.id).where(Application.reference == receipt.reference)).one()
        table = table_of(ApplicationDraft)
        session.execute(
            update(table)
            .where(table.c.id == draft_id, table.c.submitted_at.is_(None))
            .values(content=content, updated_at=at, submitted_at=at, application_id=application_id)
        )

    body = json.dumps(document(round_id, content), ensure_ascii=False, sort_keys=True)
    if len(body.encode()) > settings.max_request_bytes:  # the API's limit for an application
        raise InvalidInput(
            f"the application is {len(body.encode()) / 1e6:.1f} MB; an application is at most "
            f"{settings.max_request_bytes / 1e6:.1f} MB",
            [FieldError(path="$", message="is too large", kind="too_large", bounds={"le": settings.max_request_bytes})],
        )
    return intake.submit_application(
        engine,
        settings,
        round_id,
        body,
        channel="portal",
        idempotency_key=KEY_PREFIX + nonce,
        actor=actor,
        now=at,
        then=mark,
    )


def send_links(session: Session, settings: Settings, email: str, *, at: datetime) -> int:
    """A new link to each draft of this address not yet submitted, in a round that still
    accepts applications (at most one an hour per draft). The answer to the person is
    the same whether or not there is one; returns how many were sent."""
    drafts = session.exec(
        select(ApplicationDraft)
        .where(col(ApplicationDraft.email) == email.lower(), col(ApplicationDraft.submitted_at).is_(None))
        .with_for_update()
    ).all()
    sent = 0
    for draft in drafts:
        row = get_round(session, draft.round_id)
        if draft.link_sent_at > at - LINK_EVERY or not intake.accepting(row, definition_of(row), at):
            continue
        draft.link_sent_at = at
        session.add(draft)
        _queue_link(session, settings, draft, row, at=at)
        audit.record(
            session,
            at=at,
            actor=email,
            role=Role.APPLICANT,
            action="draft.link_sent",
            subject_type="draft",
            subject_id=str(draft.id),
        )
        sent += 1
    return sent


def open_rounds(engine: Engine, at: datetime) -> list[tuple[str, RoundDefinition]]:
    """The rounds that take applications now, with their definitions."""
    with reading(engine) as session:
        rows = session.exec(select(Round).order_by(col(Round.id))).all()
        found = []
        for row in rows:
            definition = definition_of(row)
            if intake.accepting(row, definition, at):
                found.append((row.id, definition))
        return found


def start_in(engine: Engine, settings: Settings, round_id: str, email: str, language: str, *, at: datetime) -> Started:
    with unit_of_work(engine) as session:
        return start(session, settings, round_id, email, language, at=at)
