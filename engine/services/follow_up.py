"""After screening: the secretariat asks an applicant for missing items by a date,
and the applicant (or the secretariat, for forms that came by e-mail) sends the
forms again; the application is then screened again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from sqlmodel import Session

from domain.application import DocumentError, FieldError, FormA, FormB, FormC, json_path, load_json
from domain.lifecycle import Role, Status
from domain.rounds import RoundStatus
from engine.services import outbox
from engine.services.applications import get_application, transition
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.intake import status_page_url
from engine.services.rounds import definition_of, get_round
from engine.services.screening import screen_in_session
from engine.settings import Settings
from notifications import render

ITEM_LENGTH, MAX_ITEMS = 300, 20


def request_information(
    session: Session,
    settings: Settings,
    round_id: str,
    reference: str,
    items: list[str],
    *,
    due: date | None,
    actor: str,
    at: datetime,
) -> date:
    """Ask the applicant for `items` by `due` (default: the round's `response_days`
    from now); they are told in their language. Returns the date given."""
    items = [item.strip() for item in items if item and item.strip()]
    if not items:
        raise InvalidInput(
            'say what is missing, e.g. --item "Form C signed by the national focal point"',
            [FieldError(path="items", message="at least one item is required")],
        )
    too_long = [
        FieldError(path=f"items[{i}]", message=f"is {len(item)} characters; at most {ITEM_LENGTH}")
        for i, item in enumerate(items)
        if len(item) > ITEM_LENGTH
    ]
    if too_long or len(items) > MAX_ITEMS:
        raise InvalidInput(
            f"at most {MAX_ITEMS} items of at most {ITEM_LENGTH} characters each",
            too_long or [FieldError(path="items", message=f"{len(items)} items; at most {MAX_ITEMS}")],
        )
    application = get_application(session, reference)
    if application.round_id != round_id:
        raise NotAllowed(f"{reference} is an application of round {application.round_id}, not {round_id}")
    definition = definition_of(get_round(session, round_id))
    today = at.astimezone(definition.zone).date()
    due = due or today + timedelta(days=definition.response_days)
    if due <= today:
        raise InvalidInput(
            f"the date for the answer ({due}) must be after today ({today})",
            [FieldError(path="due", message=f"must be after {today}")],
        )
    transition(
        session,
        reference,
        "request_information",
        key=f"information:{at.isoformat()}",
        actor=actor,
        role=Role.SECRETARIAT,
        at=at,
        reason="; ".join(items),
        details={"items": items, "due": due.isoformat()},
    )
    language = application.language
    message = render(
        "information_requested",
        language,
        dict(
            language=language,
            contact_name=application.applicant["contact"]["name"],
            reference=reference,
            title=application.title,
            round_title=definition.title_in(language),
            points=items,
            due=due,
            status_url=status_page_url(settings, reference, language),
            programme_email=settings.programme_email,
        ),
    )
    outbox.enqueue_rows(
        session,
        [
            outbox.message_row(
                key=f"information_requested:{reference}:{at.isoformat()}",
                kind="information_requested",
                recipient=application.applicant["contact"]["email"],
                message=message,
                at=at,
                round_id=round_id,
                application_id=application.id,
            )
        ],
    )
    return due


class FormsUpdate(BaseModel):
    """Forms sent again: any of A, B and C, each replacing the one on file."""

    model_config = ConfigDict(extra="forbid")

    form_a: FormA | None = None
    form_b: FormB | None = None
    form_c: FormC | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> FormsUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one of form_a, form_b and form_c")
        return self


def _forms(body: bytes | str) -> FormsUpdate:
    data = load_json(body)  # DocumentError on bad JSON
    if not isinstance(data, dict):
        raise DocumentError([FieldError(path="$", message="must be a JSON object with form_a, form_b or form_c")])
    try:
        return FormsUpdate.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(
            [
                FieldError(
                    path=json_path(e["loc"]),
                    message=e["msg"].removeprefix("Value error, "),
                    kind=e["type"],
                    bounds=dict(e.get("ctx") or {}),
                )
                for e in exc.errors()
            ]
        ) from None


@dataclass(frozen=True)
class FormsResubmitted:
    reference: str
    status: Status  # after screening again, where the round is in screening
    changed: bool  # false: the same forms were on file already


def resubmit_forms(
    session: Session, settings: Settings, reference: str, body: bytes | str, *, actor: str, role: Role, at: datetime
) -> FormsResubmitted:
    """Replace the forms sent and screen the application again (at once while its round
    is in screening; otherwise when screening starts). The same forms again change nothing."""
    try:
        update = _forms(body)
    except DocumentError as exc:
        raise InvalidInput(f"the forms are not valid: {exc}", exc.errors) from None
    application = get_application(session, reference)
    key = "resubmit:" + hashlib.sha256(body if isinstance(body, bytes) else body.encode()).hexdigest()[:32]
    sent = update.model_dump(mode="json", exclude_unset=True)
    result = transition(
        session, reference, "resubmit", key=key, actor=actor, role=role, at=at, details={"forms": sorted(sent)}
    )
    if result.changed:
        for form, value in sent.items():
            setattr(application, form, value)
        if update.form_a is not None:
            application.title = update.form_a.title
        if update.form_b is not None:
            application.amount_requested = update.form_b.total_requested
        session.add(application)
        session.flush()
        if get_round(session, application.round_id).status == RoundStatus.SCREENING:
            screen_in_session(session, settings, application.round_id, [application.id or 0], actor=actor, at=at)
            session.refresh(application)
    return FormsResubmitted(reference, application.status, result.changed)
