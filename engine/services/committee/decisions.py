"""The committee's decisions, recorded by the secretariat on its behalf (one by one or
from a CSV sheet): every decision checked against the round, its agenda and its
funds before anything is written; the round is decided when the agenda is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from domain.application import FieldError
from domain.committee import (
    APPROVALS,
    NOT_SCREENED_IN,
    TRANSITION,
    Decision,
    DecisionIn,
    Facts,
    decision_problems,
    parse_amount,
)
from domain.hints import Hint, Step
from domain.lifecycle import Role, Status
from domain.rounds import RoundStatus
from engine.services.applications import transition
from engine.services.committee.meeting import Committee, approved_total, committee_of
from engine.services.csvfile import all_or_nothing, csv_rows, row_errors
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.rounds import get_round, move_round
from engine.services.stages import to_committee_hint
from engine.tables import (
    Application,
    DecisionRecord,
)

DECISION_COLUMNS = ["reference", "decision", "amount", "conditions", "recommendations"]


def parse_decisions(text: str, source: str) -> list[tuple[DecisionIn, str]]:
    """A decisions sheet (CSV: reference,decision,amount,conditions,recommendations);
    every row is checked, all problems reported by line."""
    errors: list[FieldError] = []
    items: list[tuple[DecisionIn, str]] = []
    seen: dict[str, int] = {}
    for line, row in csv_rows(text, source, DECISION_COLUMNS, required=["reference", "decision"]):
        where = f"{source}:{line}"
        if row["reference"] in seen:
            errors.append(
                FieldError(
                    path=f"{where}: reference",
                    message=f"{row['reference']} is already on line "
                    f"{seen[row['reference']]}: one decision per application",
                )
            )
            continue
        seen[row["reference"]] = line
        values: dict[str, Any] = {k: v or None for k, v in row.items()}
        if values["amount"] is not None:
            try:
                values["amount"] = parse_amount(values["amount"])
            except ValueError as exc:
                errors.append(FieldError(path=f"{where}: amount", message=str(exc)))
                continue
        try:
            items.append((DecisionIn.model_validate(values), where))
        except ValidationError as exc:
            errors += row_errors(
                exc,
                f"{where}: ",
                lambda column, err: (
                    f"{err['input']!r} is not a decision: {', '.join(d.value for d in Decision)}"
                    if column == "decision"
                    else None
                ),
            )
    return all_or_nothing(items, errors, source, what="decisions", unchanged="no decision was recorded")


@dataclass
class DecisionsSummary:
    round: str
    recorded: int = 0
    unchanged: int = 0
    approved_total: str = "0.00"
    funds_available: str | None = None
    undecided: list[str] = field(default_factory=list)


def _same(record: DecisionRecord, d: DecisionIn) -> bool:
    """The decision recorded again: same content, and the same participants and exception
    where the secretariat names them."""
    return (
        (record.decision, record.amount, record.conditions or None, record.recommendations or None)
        == (d.decision, d.amount, d.conditions or None, d.recommendations or None)
        and (d.participants is None or sorted(str(p).lower() for p in d.participants) == sorted(record.participants))
        and (d.exception is None or d.exception == record.exception)
    )


def record_decisions(
    session: Session, round_id: str, items: list[tuple[DecisionIn, str]], *, actor: str, at: datetime
) -> DecisionsSummary:
    """Record the committee's decisions: all of them, or none if one breaks a rule (every
    problem is listed). The same decision again changes nothing."""
    row = get_round(session, round_id, for_update=True)
    if RoundStatus(row.status) not in (RoundStatus.COMMITTEE, RoundStatus.DECIDED):
        raise NotAllowed(
            f"round {round_id} is {row.status}; decisions are recorded once it is with the committee",
            hints=(to_committee_hint(session, round_id),),
        )
    committee = committee_of(session, round_id)
    definition = committee.definition
    funds = committee.meeting.funds_available
    errors: list[FieldError] = []
    seen: set[str] = set()
    planned: list[tuple[DecisionIn, Application, DecisionRecord | None, list[str]]] = []
    approved = approved_total(session, round_id)
    summary = DecisionsSummary(round_id)
    for d, where in items:
        if d.reference in seen:
            errors.append(FieldError(path=f"{where}: reference", message=f"{d.reference} is decided twice"))
            continue
        seen.add(d.reference)
        application = session.exec(select(Application).where(Application.reference == d.reference)).first()
        if application is None or application.round_id != round_id:
            errors.append(
                FieldError(
                    path=f"{where}: reference",
                    message=f"no application {d.reference} in {round_id}",
                )
            )
            continue
        record = session.exec(select(DecisionRecord).where(DecisionRecord.application_id == application.id)).first()
        if record is not None and _same(record, d):
            summary.unchanged += 1
            continue
        if record is not None and record.decision != Decision.DEFERRED:
            errors.append(
                FieldError(
                    path=f"{where}: decision",
                    message=f"{d.reference} was decided on "
                    f"{record.recorded_at:%Y-%m-%d} ({record.decision}); a decision is final",
                )
            )
            continue
        conflicted = committee.conflicts(application)
        participants = (
            [str(p).lower() for p in d.participants]
            if d.participants is not None
            else [e for e in committee.attendees if e not in conflicted]
        )
        this_amount = d.amount if d.decision in APPROVALS and d.amount is not None else Decimal(0)
        elsewhere = approved - (record.amount or 0 if record and record.decision in APPROVALS else Decimal(0))
        facts = Facts(
            status=application.status,
            requested=application.amount_requested,
            amount_min=definition.amount_min,
            amount_max=definition.amount_max,
            funds_available=funds,
            approved_elsewhere=elsewhere,
            committee=frozenset(str(m.email).lower() for m in committee.members),
            conflicted=conflicted,
            quorum=committee.quorum,
        )
        problems = decision_problems(d, facts, participants)
        errors += [FieldError(path=f"{where}: {name}", message=message) for name, message in problems]
        if not problems:
            approved += this_amount
            planned.append((d, application, record, participants))
    if errors:
        listed = "; ".join(f"{e.path}: {e.message}" for e in errors[:5]) + ("; …" if len(errors) > 5 else "")
        raise InvalidInput(
            f"{len(errors)} problem(s); no decision was recorded: {listed}",
            errors,
            hints=(Hint(Step.SET_FUNDS, round_id=round_id),) if funds is None else (),
        )
    for d, application, record, participants in planned:
        _record(session, committee, d, application, record, participants, actor=actor, at=at)
        summary.recorded += 1
    session.flush()
    summary.approved_total = f"{approved_total(session, round_id):.2f}"
    summary.funds_available = None if funds is None else f"{funds:.2f}"
    summary.undecided = list(
        session.exec(
            select(Application.reference)
            .where(Application.round_id == round_id, Application.status == Status.READY_FOR_COMMITTEE)
            .order_by(Application.reference)
        ).all()
    )
    if not summary.undecided and row.status is RoundStatus.COMMITTEE:
        move_round(session, row, "decide", actor=actor, at=at)
    return summary


def _record(
    session: Session,
    committee: Committee,
    d: DecisionIn,
    application: Application,
    record: DecisionRecord | None,
    participants: list[str],
    *,
    actor: str,
    at: datetime,
) -> None:
    """One decision: the application's transitions (through an exception, if it did not
    pass screening), its record, and the audit."""
    reference, key = d.reference, f"decision:{d.reference}:{at.isoformat()}"
    status = application.status
    if status in NOT_SCREENED_IN:  # a reasoned exception (checked before)
        step = {Status.SUBMITTED: "pass_screening", Status.INCOMPLETE: "reinstate", Status.INELIGIBLE: "reinstate"}
        if status not in step:
            raise NotAllowed(f"{reference} is {status}; record its screening first")
        transition(
            session,
            reference,
            step[status],
            key=f"{key}:exception",
            actor=actor,
            role=Role.SECRETARIAT,
            at=at,
            reason=f"committee's exception: {d.exception}",
        )
        status = Status.SCREENED
    if status in (Status.SCREENED, Status.GMP_REVIEW, Status.DEFERRED):
        transition(
            session,
            reference,
            "send_to_committee",
            key=f"{key}:agenda",
            actor=actor,
            role=Role.SECRETARIAT,
            at=at,
            reason=d.exception,
        )
    reason = d.conditions if d.decision is Decision.APPROVED_WITH_CONDITIONS else (d.recommendations or d.conditions)
    transition(
        session,
        reference,
        TRANSITION[d.decision],
        key=key,
        actor=actor,
        role=Role.SECRETARIAT,
        at=at,
        reason=reason,
        details={"participants": participants, "amount": None if d.amount is None else str(d.amount)},
    )
    values: dict[str, Any] = dict(
        decision=d.decision,
        amount=d.amount if d.decision in APPROVALS else None,
        conditions=d.conditions,
        recommendations=d.recommendations,
        participants=participants,
        rule=committee.definition.committee.decision_rule,
        exception=d.exception,
        decided_on=committee.meeting.ends_on,
        recorded_by=actor,
        recorded_at=at,
    )
    if record is None:
        record = DecisionRecord(application_id=application.id or 0, round_id=committee.round_id, **values)
    else:
        for name, value in values.items():
            setattr(record, name, value)
    session.add(record)
