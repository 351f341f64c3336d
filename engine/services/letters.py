"""The decision letters: one per decided application, in the applicant's language,
queued once whatever happens (the outbox key is the application and its decision).
A letter that cannot be rendered stops the run before anything is queued."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from domain.hints import Hint, Step
from domain.lifecycle import Role
from domain.rounds import RoundStatus
from engine.services import audit, outbox
from engine.services.applications import letter_key
from engine.services.committee.meeting import meeting_of
from engine.services.errors import NotAllowed
from engine.services.grants import make_grants
from engine.services.intake import status_page_url
from engine.services.rounds import definition_of, get_round
from engine.settings import Settings
from engine.tables import Application, DecisionRecord
from notifications import render
from notifications.render import RenderError


@dataclass
class LettersSummary:
    round: str
    decided: int = 0
    queued: int = 0
    already_sent: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    #: Grants made for the approvals whose letters were queued (engine/services/grants.py).
    grants: int = 0


def check_letters(session: Session, round_id: str) -> None:
    """What `send_decision_letters` refuses, checked beforehand (the API does)."""
    row = get_round(session, round_id)
    if RoundStatus(row.status) not in (RoundStatus.COMMITTEE, RoundStatus.DECIDED, RoundStatus.ARCHIVED):
        raise NotAllowed(
            f"round {round_id} is {row.status}; letters follow the committee's decisions",
            hints=(Hint(Step.RECORD_DECISIONS, round_id=round_id),),
        )


def send_decision_letters(
    session: Session, settings: Settings, round_id: str, *, actor: str, at: datetime
) -> LettersSummary:
    """Queue the letter of every decision of the round not yet written to; running it
    again queues nothing more. The applicant sees the decision once its letter is queued."""
    row = get_round(session, round_id)
    check_letters(session, round_id)
    definition = definition_of(row)
    meeting = meeting_of(session, round_id)
    decisions = session.exec(
        select(DecisionRecord, Application)
        .join(Application)
        .where(DecisionRecord.round_id == round_id)
        .order_by(Application.reference)
    ).all()
    summary = LettersSummary(round_id, decided=len(decisions))
    keys = [letter_key(a.reference, d.decision, d.recorded_at) for d, a in decisions]
    done = outbox.queued(session, keys)
    rows = []
    for (decision, application), key in zip(decisions, keys, strict=True):
        if key in done:
            summary.already_sent += 1
            continue
        kind = f"decision_{decision.decision}"
        language = application.language
        try:
            message = render(
                kind,
                language,
                dict(
                    language=language,
                    contact_name=application.applicant["contact"]["name"],
                    reference=application.reference,
                    title=application.title,
                    round_title=definition.title_in(language),
                    meeting_on=meeting.starts_on,
                    place=meeting.place,
                    requested=application.amount_requested,
                    amount=decision.amount,
                    conditions=decision.conditions,
                    recommendations=decision.recommendations,
                    status_url=status_page_url(settings, application.reference, language),
                    programme_email=settings.programme_email,
                ),
                overrides=settings.templates_dir,
            )
        except RenderError as exc:
            raise NotAllowed(
                f"{exc} (letter of {application.reference}); correct the template and run it again: "
                "no letter was queued"
            ) from None
        rows.append(
            outbox.message_row(
                key=key,
                kind=kind,
                recipient=application.applicant["contact"]["email"],
                message=message,
                at=at,
                round_id=round_id,
                application_id=application.id,
            )
        )
        summary.by_kind[kind] = summary.by_kind.get(kind, 0) + 1
    summary.queued = outbox.enqueue_rows(session, rows)
    # each approval told has its grant, made in the same transaction as its letter
    summary.grants = make_grants(session, round_id, actor=actor, at=at)
    if summary.queued:
        audit.record(
            session,
            at=at,
            actor=actor,
            role=Role.SECRETARIAT,
            action="round.letters_sent",
            subject_type="round",
            subject_id=round_id,
            details={"queued": summary.queued, "by_kind": summary.by_kind},
        )
    return summary
