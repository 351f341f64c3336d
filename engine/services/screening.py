"""Screening a round: the secretariat's checks run over the applications in batches,
each batch in one transaction.

Deterministic and repeatable: each application's inputs (its forms, the round's
rules, the Parties concerned) are fingerprinted, and an application whose
fingerprint is unchanged is not screened again, so a re-run after a crash finishes
the rest without repeating anything, and a re-run on an unchanged round changes
nothing and queues nothing."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert
from sqlmodel import Session, col, select

from domain.application import FORMAT, ApplicationDocument
from domain.hints import Hint, Step
from domain.lifecycle import Role, Status
from domain.money import STORED
from domain.parties import Party
from domain.rounds import RoundDefinition, RoundStatus, accepts_applications
from domain.screening import RULES_VERSION, CriterionResult, ScreeningResult, Verdict, screen, weighted_score
from engine.db import unit_of_work
from engine.services import audit, outbox
from engine.services.applications import countries_of, transition_many
from engine.services.errors import NotAllowed
from engine.services.intake import status_page_url
from engine.services.rounds import close_round, definition_of, get_round, move_round
from engine.settings import Settings
from engine.tables import Application, PartyRecord, Round, ScreeningRecord, table_of
from notifications import render
from notifications.reasons import reason_text

#: What each verdict does to the application (None: it stays submitted).
TRANSITION = {
    Verdict.INCOMPLETE: "mark_incomplete",
    Verdict.INELIGIBLE: "mark_ineligible",
    Verdict.SCREENED: "pass_screening",
    Verdict.NEEDS_JUDGEMENT: None,
}
#: The applicant is told when the application is incomplete or ineligible, not when it passes.
NOTICE = {Verdict.INCOMPLETE: "screening_incomplete", Verdict.INELIGIBLE: "screening_ineligible"}


def start_screening(session: Session, round_id: str, *, actor: str, at: datetime) -> Round:
    """Move the round to screening. A round still taking applications is refused; an
    open round past its deadline is closed first (audited); a round already in
    screening is left as it is."""
    row = get_round(session, round_id, for_update=True)
    stored = row.status
    if stored is RoundStatus.SCREENING:
        return row
    ensure_closed(row, at)
    if stored is RoundStatus.OPEN:
        row, _ = close_round(session, round_id, actor=actor, at=at)
    elif stored is not RoundStatus.CLOSED:
        raise NotAllowed(f"round {round_id} is {stored}; screening comes right after the close")
    move_round(session, row, "start_screening", actor=actor, at=at)
    return row


def check_screening(session: Session, round_id: str, at: datetime) -> None:
    """What screening refuses before it starts (the CLI, the API and the flow check it
    first): an unknown round, or one still taking applications."""
    row = get_round(session, round_id)
    if row.status != RoundStatus.SCREENING:
        ensure_closed(row, at)


def ensure_closed(row: Round, at: datetime) -> None:
    """Screening starts after the round's close: refused while it takes applications."""
    definition = definition_of(row)
    stored = row.status
    if stored is RoundStatus.DRAFT or accepts_applications(stored, definition, at):
        raise NotAllowed(
            f"round {row.id} is still open for applications (until "
            f"{definition.closes_at.isoformat()}); screen it after it closes"
        )


def to_screen(session: Session, round_id: str) -> list[int]:
    """The applications screening looks at: those submitted (new, resubmitted, or
    waiting for a person's judgement), in order of receipt."""
    ids = session.exec(
        select(col(Application.id))
        .where(Application.round_id == round_id, Application.status == Status.SUBMITTED)
        .order_by(col(Application.submitted_at), col(Application.id))
    ).all()
    return [i for i in ids if i is not None]  # stored rows always have one


def document_of(application: Application) -> ApplicationDocument:
    """The application as submitted, from what intake stored."""
    data = {
        "format": FORMAT,
        "round": application.round_id,
        "applicant": application.applicant,
        **{
            form: getattr(application, form)
            for form in ("form_a", "form_b", "form_c")
            if getattr(application, form) is not None
        },
    }
    return ApplicationDocument.model_validate(data, context=STORED)


def rules_digest(definition: dict[str, Any]) -> str:
    """What every application of the round is screened against: the engine's rules
    and the round's definition."""
    return hashlib.sha256(json.dumps([RULES_VERSION, definition], sort_keys=True).encode()).hexdigest()


def fingerprint(application: Application, rules: str, parties: dict[str, Party], rank: int) -> str:
    """The inputs of one application's screening (`rules`: `rules_digest`)."""
    codes = countries_of(application)
    payload = {
        "rules": rules,
        "rank": rank,
        "version": application.version,  # forms sent again are screened again
        "application": [application.applicant, application.form_a, application.form_b, application.form_c],
        "parties": {code: parties[code].model_dump(mode="json") if code in parties else None for code in codes},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _party_ranks(session: Session, round_id: str, parties: set[str]) -> dict[int, int]:
    """Each application's place among its Party's applications in the round (withdrawn
    ones do not count), by time of receipt."""
    rows = session.exec(
        select(Application.id, Application.party)
        .where(
            Application.round_id == round_id,
            col(Application.party).in_(parties),
            Application.status != Status.WITHDRAWN,
        )
        .order_by(col(Application.submitted_at), col(Application.id))
    ).all()
    seen: Counter[str] = Counter()
    ranks: dict[int, int] = {}
    for application_id, party in rows:
        seen[party] += 1
        ranks[application_id or 0] = seen[party]
    return ranks


def _check_values(result: ScreeningResult) -> list[dict[str, Any]]:
    return [{**asdict(c), "step": c.step.value, "outcome": c.outcome.value} for c in result.checks]


def appraisal_values(results: list[CriterionResult]) -> list[dict[str, Any]]:
    """How a screening record keeps the appraisal (JSON)."""
    return [
        {
            "id": r.id,
            "title": r.title,
            "kind": r.kind.value,
            "weight": str(r.weight),
            "outcome": r.outcome.value if r.outcome else None,
            "score": None if r.score is None else str(r.score),
        }
        for r in results
    ]


@dataclass
class BatchSummary:
    screened: int = 0
    unchanged: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    notices: int = 0


def screen_batch(
    engine: Engine, settings: Settings, round_id: str, application_ids: list[int], *, actor: str, at: datetime
) -> BatchSummary:
    """Screen these applications in one transaction (a crash leaves the batch
    undone, never half-done), writing the batch with one statement per table."""
    with unit_of_work(engine) as session:
        return screen_in_session(session, settings, round_id, application_ids, actor=actor, at=at)


def screen_in_session(
    session: Session, settings: Settings, round_id: str, application_ids: list[int], *, actor: str, at: datetime
) -> BatchSummary:
    """`screen_batch` in the caller's transaction."""
    summary = BatchSummary()
    row = get_round(session, round_id)
    if RoundStatus(row.status) is not RoundStatus.SCREENING:
        raise NotAllowed(
            f"round {round_id} is {row.status}; start screening first", hints=(Hint(Step.SCREEN, round_id=round_id),)
        )
    definition = definition_of(row)
    rules = rules_digest(row.definition)
    parties = {p.iso3: Party.model_validate(p, from_attributes=True) for p in session.exec(select(PartyRecord)).all()}
    # Locked, in id order: a second run screening the same batch at the same moment
    # (two workers) waits, then finds them screened and does nothing twice.
    applications = session.exec(
        select(Application)
        .where(col(Application.id).in_(application_ids))
        .order_by(col(Application.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    records = {
        r.application_id: r
        for r in session.exec(
            select(ScreeningRecord).where(col(ScreeningRecord.application_id).in_(application_ids))
        ).all()
    }
    # An application's place among its Party's only matters where the round limits them.
    ranks = (
        _party_ranks(session, round_id, {a.party for a in applications})
        if definition.max_applications_per_party is not None
        else {}
    )
    new_records, events, changes, messages = [], [], [], []
    for application in applications:
        if application.status != Status.SUBMITTED:
            continue  # screened meanwhile (an earlier run, or a person)
        assert application.id is not None
        rank = ranks.get(application.id, 1)
        inputs = fingerprint(application, rules, parties, rank)
        record = records.get(application.id)
        if record is not None and record.fingerprint == inputs:
            summary.unchanged += 1
            continue
        result = screen(document_of(application), definition, parties, rank)
        values = dict(
            fingerprint=inputs,
            verdict=result.verdict,
            checks=_check_values(result),
            appraisal=appraisal_values(result.appraisal),
            weighted_score=weighted_score(result.appraisal),
            screened_at=at,
        )
        if record is None:
            new_records.append(dict(application_id=application.id, round_id=round_id, override=None, **values))
        else:  # screened before with other inputs (resubmitted, or the register changed)
            values["override"] = None  # a person's decision was about the earlier inputs
            for name, value in values.items():
                setattr(record, name, value)
            session.add(record)
        events.append(
            dict(
                at=at,
                actor="screening",
                role=Role.SYSTEM,
                action="application.screening_recorded",
                subject_type="application",
                subject_id=application.reference,
                from_status=None,
                to_status=None,
                reason=None,
                details={
                    "verdict": result.verdict.value,
                    "fingerprint": inputs,
                    "failed": [c.id for c in result.failed],
                    "needs_judgement": [c.id for c in result.needing_judgement],
                },
            )
        )
        transition_name = TRANSITION[result.verdict]
        if transition_name is not None:
            reason = "; ".join(c.reason for c in result.failed) or None
            changes.append((application, transition_name, f"screening:{inputs[:16]}", reason))
        if result.verdict in NOTICE:
            reasons = [reason_text(c.code, c.params, application.language, definition.currency) for c in result.failed]
            messages.append(
                notice(settings, application, definition, NOTICE[result.verdict], reasons, key=inputs[:16], at=at)
            )
        summary.screened += 1
        summary.verdicts[result.verdict.value] = summary.verdicts.get(result.verdict.value, 0) + 1
    session.flush()  # updated records first
    if new_records:
        session.execute(insert(table_of(ScreeningRecord)), new_records)
    if events:
        audit.append(session, events)
    transition_many(session, changes, actor=actor, role=Role.SECRETARIAT, at=at)
    summary.notices = outbox.enqueue_rows(session, messages)
    return summary


def notice(
    settings: Settings,
    application: Application,
    definition: RoundDefinition,
    kind: str,
    reasons: list[str],
    *,
    key: str,
    at: datetime,
) -> dict[str, Any]:
    """The outbox row telling the applicant, in their language, that the application is
    incomplete or ineligible, and why. `key` makes it one message per screening."""
    language = application.language
    message = render(
        kind,
        language,
        dict(
            language=language,
            contact_name=application.applicant["contact"]["name"],
            reference=application.reference,
            title=application.title,
            round_title=definition.title_in(language),
            points=reasons,
            status_url=status_page_url(settings, application.reference, language),
            programme_email=settings.programme_email,
        ),
    )
    return outbox.message_row(
        key=f"{kind}:{application.reference}:{key}",
        kind=kind,
        recipient=application.applicant["contact"]["email"],
        message=message,
        at=at,
        round_id=application.round_id,
        application_id=application.id,
    )


def screening_counts(session: Session, round_id: str) -> dict[str, int]:
    """Applications of the round by screening verdict (a person's override counts as its
    verdict), and those not screened yet."""
    counts: Counter[str] = Counter()
    for verdict, override in session.exec(
        select(ScreeningRecord.verdict, ScreeningRecord.override).where(ScreeningRecord.round_id == round_id)
    ):
        counts[(override or {}).get("verdict", verdict)] += 1
    total = session.exec(select(func.count()).select_from(Application).where(Application.round_id == round_id)).one()
    return {**counts, "not_screened": total - sum(counts.values())}


def screened_count(session: Session, round_id: str, at: datetime) -> int:
    """How many applications a screening dated `at` has recorded so far (its progress)."""
    return session.exec(
        select(func.count())
        .select_from(ScreeningRecord)
        .where(ScreeningRecord.round_id == round_id, ScreeningRecord.screened_at == at)
    ).one()


def record_of(session: Session, reference: str) -> ScreeningRecord:
    """An application's screening record."""
    return session.exec(select(ScreeningRecord).join(Application).where(Application.reference == reference)).one()
