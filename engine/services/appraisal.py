"""What people add to screening: appraisal scores on the round's judgement criteria
(one at a time or from a scoring sheet), and overrides of an automatic verdict with a
reason. Everything is checked before anything is written, and audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.hints import Hint, Step
from domain.lifecycle import APPRAISED_STATUSES, Role, Status
from domain.rounds import CriterionKind, RoundDefinition
from domain.screening import Outcome, Verdict, appraisal, weighted_score
from engine.services import audit, outbox
from engine.services.applications import get_application, transition
from engine.services.csvfile import csv_rows
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.rounds import definition_of, get_round
from engine.services.screening import NOTICE, appraisal_values, document_of, notice
from engine.settings import Settings
from engine.tables import Application, AppraisalScore, ScreeningRecord
from notifications.reasons import reason_text

SHEET_COLUMNS = ["reference", "criterion", "score", "comment"]
COMMENT_LENGTH = 4000


@dataclass(frozen=True)
class ScoreRow:
    reference: str
    criterion: str
    score: str
    comment: str | None
    where: str  # e.g. "scores.csv:4", for error messages


def parse_score_sheet(text: str, source: str) -> list[ScoreRow]:
    rows = [
        ScoreRow(r["reference"], r["criterion"], r["score"], r["comment"] or None, f"{source}:{line}")
        for line, r in csv_rows(text, source, SHEET_COLUMNS, required=SHEET_COLUMNS[:3])
    ]
    if not rows:
        raise InvalidInput(f"{source}: no scores in the file")
    return rows


def record_scores(session: Session, round_id: str, rows: list[ScoreRow], *, actor: str, at: datetime) -> int:
    """Store the scores (all of them, or none if any row is wrong) and update each
    application's weighted score. Returns how many scores changed."""
    definition = definition_of(get_round(session, round_id))
    criteria = {c.id: c for c in definition.criteria}
    references = {r.reference for r in rows}
    applications = {
        a.reference: a
        for a in session.exec(select(Application).where(col(Application.reference).in_(references))).all()
    }
    errors: list[FieldError] = []
    seen: dict[tuple[str, str], str] = {}
    values: list[tuple[Application, str, int, str | None]] = []
    for row in rows:
        problems = []
        application = applications.get(row.reference)
        if application is None:
            problems.append(("reference", f"no application {row.reference!r}"))
        elif application.round_id != round_id:
            problems.append(
                ("reference", f"{row.reference} is an application of round {application.round_id}, not {round_id}")
            )
        elif application.status not in APPRAISED_STATUSES:
            problems.append(
                (
                    "reference",
                    f"{row.reference} is {application.status}; only applications that passed screening are appraised",
                )
            )
        criterion = criteria.get(row.criterion)
        if criterion is None:
            judgements = ", ".join(c.id for c in definition.criteria if c.kind is CriterionKind.JUDGEMENT)
            problems.append(("criterion", f"{row.criterion!r} is not a criterion of {round_id} ({judgements})"))
        elif criterion.kind is not CriterionKind.JUDGEMENT:
            problems.append(("criterion", f"{row.criterion} is a check the engine evaluates, not scored by a person"))
        score = int(row.score) if re.fullmatch(r"-?[0-9]{1,6}", row.score) else None
        if score is None:
            problems.append(("score", f"{row.score!r} is not a whole number"))
        if row.comment is not None and len(row.comment) > COMMENT_LENGTH:
            problems.append(("comment", f"is {len(row.comment):,} characters; at most {COMMENT_LENGTH:,}"))
        elif criterion is not None and criterion.scale and score not in criterion.scale:
            problems.append(
                ("score", f"{score} is not on the scale of {criterion.id} ({', '.join(map(str, criterion.scale))})")
            )
        key = (row.reference, row.criterion)
        if key in seen:
            problems.append(("criterion", f"{row.reference} is scored on {row.criterion} twice (also {seen[key]})"))
        seen[key] = row.where
        errors += [FieldError(path=f"{row.where}: {column}", message=message) for column, message in problems]
        if not problems and application is not None and score is not None:
            values.append((application, row.criterion, score, row.comment))
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the scores; none was recorded", errors)

    existing = {
        (s.application_id, s.criterion): s
        for s in session.exec(
            select(AppraisalScore).where(col(AppraisalScore.application_id).in_([a.id for a, *_ in values]))
        ).all()
    }
    changed = 0
    for application, criterion_id, score, comment in values:
        current = existing.get((application.id or 0, criterion_id))
        if current is not None and (current.score, current.comment) == (score, comment):
            continue
        previous = None if current is None else current.score
        current = current or AppraisalScore(
            application_id=application.id or 0, criterion=criterion_id, score=score, scored_by=actor, scored_at=at
        )
        current.score, current.comment, current.scored_by, current.scored_at = score, comment, actor, at
        session.add(current)
        audit.record(
            session,
            at=at,
            actor=actor,
            role=Role.SECRETARIAT,
            action="application.scored",
            subject_type="application",
            subject_id=application.reference,
            details={"criterion": criterion_id, "score": score, "previous": previous},
        )
        changed += 1
    session.flush()
    for application in {a.reference: a for a, *_ in values}.values():
        refresh_appraisal(session, application, definition)
    return changed


def scores_of(session: Session, application_id: int) -> dict[str, int]:
    return dict(
        session.exec(
            select(AppraisalScore.criterion, AppraisalScore.score).where(
                AppraisalScore.application_id == application_id
            )
        ).all()
    )


def refresh_appraisal(session: Session, application: Application, definition: RoundDefinition) -> None:
    """Recompute the application's appraisal and weighted score from its scores."""
    record = session.exec(select(ScreeningRecord).where(ScreeningRecord.application_id == application.id)).one()
    results = appraisal(document_of(application), definition, scores_of(session, application.id or 0))
    record.appraisal = appraisal_values(results)
    record.weighted_score = weighted_score(results)
    session.add(record)


Overridable = Literal["screened", "incomplete", "ineligible"]
#: The transition that takes an application from its status to the verdict a person chose.
_OVERRIDES: dict[tuple[Status, str], str] = {
    (Status.SUBMITTED, Verdict.SCREENED): "pass_screening",
    (Status.SUBMITTED, Verdict.INCOMPLETE): "mark_incomplete",
    (Status.SUBMITTED, Verdict.INELIGIBLE): "mark_ineligible",
    (Status.INCOMPLETE, Verdict.SCREENED): "reinstate",
    (Status.INELIGIBLE, Verdict.SCREENED): "reinstate",
    (Status.SCREENED, Verdict.INELIGIBLE): "mark_ineligible",
    (Status.INFORMATION_REQUESTED, Verdict.INCOMPLETE): "mark_incomplete",  # the items asked for did not come
}


def override(
    session: Session,
    settings: Settings,
    round_id: str,
    reference: str,
    verdict: Overridable,
    *,
    reason: str | None,
    actor: str,
    at: datetime,
) -> bool:
    """Replace the automatic screening verdict with a person's, for a reason (required).
    The same override again changes nothing (returns False)."""
    if not (reason and reason.strip()):
        raise InvalidInput(
            'an override needs a reason, e.g. --reason "Party since 2019-03-18 (depositary)"',
            [FieldError(path="reason", message="is required")],
        )
    application = get_application(session, reference)
    if application.round_id != round_id:
        raise NotAllowed(f"{reference} is an application of round {application.round_id}, not {round_id}")
    record = session.exec(select(ScreeningRecord).where(ScreeningRecord.application_id == application.id)).first()
    if record is None:
        raise NotAllowed(
            f"{reference} has not been screened yet; screen it first", hints=(Hint(Step.SCREEN, round_id=round_id),)
        )
    if application.status == verdict:
        return False
    name = _OVERRIDES.get((application.status, verdict))
    if name is None:
        raise NotAllowed(f"{reference} is {application.status}; it cannot be overridden to {verdict}")
    transition(
        session,
        reference,
        name,
        key=f"override:{verdict}:{at.isoformat()}",
        actor=actor,
        role=Role.SECRETARIAT,
        at=at,
        reason=reason,
    )
    record.override = {
        "verdict": verdict,
        "reason": reason.strip(),
        "by": actor,
        "at": at.isoformat(),
        "automatic": record.verdict,
    }
    session.add(record)
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="application.screening_overridden",
        subject_type="application",
        subject_id=reference,
        from_status=record.verdict,
        to_status=verdict,
        reason=reason.strip(),
    )
    definition = definition_of(get_round(session, round_id))
    if verdict == "screened":
        session.flush()
        refresh_appraisal(session, application, definition)
    else:
        failed = [c for c in record.checks if c["outcome"] == Outcome.FAIL.value]
        reasons = [reason_text(c["code"], c["params"], application.language, definition.currency) for c in failed]
        outbox.enqueue_rows(
            session,
            [
                notice(
                    settings,
                    application,
                    definition,
                    NOTICE[Verdict(verdict)],
                    [*reasons, reason.strip()],
                    key=f"override:{at.isoformat()}",
                    at=at,
                )
            ],
        )
    return True
