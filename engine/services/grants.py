"""The grants that follow the committee's approvals (issue 16, first part): a grant is
made, with its instalments, in the same transaction as the letter of its approval; its
agreement's signatures are recorded in order with the signed file's SHA-256; the
committee's conditions are met one by one with evidence; it becomes active once signed
and its conditions met; payments are recorded against the instalments their milestones
released, never above the award. Every change is audited."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, func, select

from domain.application import FieldError
from domain.committee import APPROVALS
from domain.grants import (
    GrantSettings,
    GrantState,
    GrantTransitionError,
    ReportKind,
    ReportState,
    ScheduledReport,
    add_months,
    amended_schedule,
    conditions_of,
    instalment_amounts,
    payment_problems,
    plan_grant_transition,
    signature_problems,
)
from domain.lifecycle import Role
from engine.services import audit
from engine.services.errors import Conflict, InvalidInput, NotAllowed, NotFound
from engine.services.rounds import definition_of, get_round
from engine.tables import (
    Application,
    DecisionRecord,
    Grant,
    GrantInstalment,
    GrantPayment,
    GrantReport,
    GrantSignature,
)

#: The states in which a grant is paid.
PAYABLE = (GrantState.ACTIVE, GrantState.CLOSING)


@dataclass(frozen=True)
class GrantLine:
    reference: str
    state: GrantState
    party: str
    award: Decimal
    paid: Decimal
    balance: Decimal  # the award less what was paid
    released: Decimal  # what the instalments' milestones released so far
    planned_start: date
    planned_end: date
    conditions_met: int
    conditions: int
    signatures: int


def make_grants(session: Session, round_id: str, *, actor: str, at: datetime) -> int:
    """A grant for every approval of the round that has none yet (run where its letter is
    queued, in the same transaction). Returns how many were made."""
    definition = definition_of(get_round(session, round_id))
    approvals = session.exec(
        select(Application, DecisionRecord)
        .join(DecisionRecord, col(DecisionRecord.application_id) == Application.id)
        .outerjoin(Grant, col(Grant.application_id) == Application.id)
        .where(DecisionRecord.round_id == round_id, col(DecisionRecord.decision).in_(APPROVALS))
        .where(col(Grant.id).is_(None))
        .order_by(col(Application.reference))
    ).all()
    for application, decision in approvals:
        award = decision.amount or Decimal(0)
        form_a, form_b = application.form_a or {}, application.form_b or {}
        start = decision.decided_on
        grant = Grant(
            reference=application.reference,
            application_id=application.id or 0,
            round_id=round_id,
            state=GrantState.AWARDED,
            award=award,
            currency=definition.currency,
            party=application.party,
            executing_agency=str((application.applicant.get("executing_agency") or {}).get("name", ""))[:300],
            conditions=[
                {"text": c.text, "met_at": None, "evidence": None, "by": None}
                for c in conditions_of(decision.conditions)
            ],
            planned_start=start,
            planned_end=add_months(start, int(form_a.get("duration_months") or 12)),
            budget=_budget(form_b),
            created_at=at,
        )
        session.add(grant)
        session.flush()
        for number, (rule, amount) in enumerate(
            zip(definition.grants.instalments, instalment_amounts(award, definition.grants.instalments), strict=True), 1
        ):
            session.add(
                GrantInstalment(
                    grant_id=grant.id or 0, number=number, share=rule.share, amount=amount, after=rule.after
                )
            )
        audit.record(
            session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.awarded", subject_type="grant",
            subject_id=grant.reference, to_status=GrantState.AWARDED.value,
            details={"award": f"{award:.2f}", "conditions": len(grant.conditions)},
        )  # fmt: skip
    return len(approvals)


def _budget(form_b: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Form B's lines as the grant keeps them: by category, then year."""
    totals: dict[str, dict[str, Decimal]] = {}
    for line in form_b.get("lines") or []:
        by_year = totals.setdefault(str(line.get("category")), {})
        year = str(line.get("year"))
        by_year[year] = by_year.get(year, Decimal(0)) + Decimal(str(line.get("amount") or 0))
    return {category: {year: f"{amount:.2f}" for year, amount in years.items()} for category, years in totals.items()}


def grant_of(session: Session, reference: str, *, for_update: bool = False) -> Grant:
    statement = select(Grant).where(Grant.reference == reference)
    found = session.exec(statement.with_for_update() if for_update else statement).first()
    if found is None:
        raise NotFound(
            f"no grant for {reference}: a grant is made when the letter of its approval is queued "
            "(the round's grants list them)"
        )
    return found


def paid_of(session: Session, grant_id: int) -> Decimal:
    total = session.exec(
        select(func.coalesce(func.sum(GrantPayment.amount), 0)).where(GrantPayment.grant_id == grant_id)
    ).one()
    return Decimal(total or 0).quantize(Decimal("0.01"))


def released_of(session: Session, grant: Grant) -> Decimal:
    """What the instalments released so far add up to (an instalment is released when its
    milestone holds: the grant active, the first progress report accepted, the final
    report accepted)."""
    total = session.exec(
        select(func.coalesce(func.sum(GrantInstalment.amount), 0)).where(
            GrantInstalment.grant_id == grant.id, col(GrantInstalment.released_on).is_not(None)
        )
    ).one()
    return Decimal(total or 0).quantize(Decimal("0.01"))


def release(session: Session, grant: Grant, milestones: set[str], *, actor: str, at: datetime) -> list[int]:
    """Release the instalments waiting for these milestones; returns their numbers."""
    waiting = session.exec(
        select(GrantInstalment)
        .where(GrantInstalment.grant_id == grant.id, col(GrantInstalment.released_on).is_(None))
        .where(col(GrantInstalment.after).in_(milestones))
        .order_by(col(GrantInstalment.number))
    ).all()
    today = local_day(session, grant, at)
    for instalment in waiting:
        instalment.released_on = today
        session.add(instalment)
        audit.record(
            session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.instalment_released",
            subject_type="grant", subject_id=grant.reference,
            details={"instalment": instalment.number, "amount": f"{instalment.amount:.2f}", "after": instalment.after},
        )  # fmt: skip
    return [i.number for i in waiting]


def local_day(session: Session, grant: Grant, at: datetime) -> date:
    """The day `at` is where the grant's round is (its time zone)."""
    return at.astimezone(definition_of(get_round(session, grant.round_id)).zone).date()


def line_of(session: Session, grant: Grant) -> GrantLine:
    paid = paid_of(session, grant.id or 0)
    signatures = session.exec(
        select(func.count()).select_from(GrantSignature).where(GrantSignature.grant_id == grant.id)
    ).one()
    return GrantLine(
        reference=grant.reference,
        state=GrantState(grant.state),
        party=grant.party,
        award=grant.award,
        paid=paid,
        balance=grant.award - paid,
        released=released_of(session, grant),
        planned_start=grant.planned_start,
        planned_end=grant.planned_end,
        conditions_met=sum(1 for c in grant.conditions if c.get("met_at")),
        conditions=len(grant.conditions),
        signatures=int(signatures),
    )


def list_grants(session: Session, round_id: str) -> list[GrantLine]:
    get_round(session, round_id)
    grants = session.exec(select(Grant).where(Grant.round_id == round_id).order_by(col(Grant.reference))).all()
    return [line_of(session, grant) for grant in grants]


def move_grant(
    session: Session, grant: Grant, name: str, *, actor: str, at: datetime, reason: str | None = None
) -> None:
    try:
        target = plan_grant_transition(GrantState(grant.state), name, reason=reason)
    except GrantTransitionError as exc:
        raise NotAllowed(f"{grant.reference}: {exc}") from None
    before = grant.state
    grant.state = target
    session.add(grant)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action=f"grant.{name}", subject_type="grant",
        subject_id=grant.reference, from_status=GrantState(before).value, to_status=target.value, reason=reason,
    )  # fmt: skip


def _activate_when_ready(session: Session, grant: Grant, *, actor: str, at: datetime) -> None:
    """Signed by both, and every condition met: the grant becomes active. The project's
    period starts that day, for its planned number of months; its reports fall due on
    that schedule, and the instalments after the signature are released."""
    if grant.state == GrantState.AGREEMENT_SIGNED and all(c.get("met_at") for c in grant.conditions):
        move_grant(session, grant, "activate", actor=actor, at=at)
        grant.starts_on = _in_force_from(session, grant, at)
        grant.ends_on = add_months(grant.starts_on, months_between(grant.planned_start, grant.planned_end))
        session.add(grant)
        schedule_reports(session, grant, actor=actor, at=at, why="the agreement")
        release(session, grant, {"signature"}, actor=actor, at=at)


def schedule_reports(session: Session, grant: Grant, *, actor: str, at: datetime, why: str) -> list[dict[str, Any]]:
    """Lay the grant's reports on the schedule of its agreement and amendments (the
    round's `[grants]` settings), recomputing the dates of those not yet in, even past
    ones; a report submitted or accepted keeps its period (`schedule_problems` refuses
    an amendment that would move one). Returns the changes, audited with `why`."""
    assert grant.ends_on is not None
    rows = {r.number: r for r in reports_of(session, grant)}
    planned = _schedule(session, grant, grant.ends_on, rows.values(), at)
    first = not rows
    changes: list[dict[str, Any]] = []
    for item in planned:
        row = rows.pop(item.number, None)
        if row is None:
            row = GrantReport(grant_id=grant.id or 0, number=item.number, kind=item.kind, period_end=item.period_end,
                              due_on=item.due_on, state=ReportState.DUE, flags=[])  # fmt: skip
            changes.append({"number": item.number, "kind": item.kind.value, "due_on": item.due_on.isoformat()})
        elif row.state != ReportState.DUE:
            continue  # in, or sent back for revision: it keeps its period and its due date
        elif (row.kind, row.period_end, row.due_on) != (item.kind.value, item.period_end, item.due_on):
            changes.append({
                "number": item.number, "kind": item.kind.value, "due_on": item.due_on.isoformat(),
                "was": {"kind": row.kind, "period_end": row.period_end.isoformat(), "due_on": row.due_on.isoformat()},
            })  # fmt: skip
            row.kind, row.period_end, row.due_on = item.kind.value, item.period_end, item.due_on
        else:
            continue
        session.add(row)
    for row in rows.values():  # beyond a shortened schedule: never one that is in (see schedule_problems)
        changes.append(
            {"number": row.number, "dropped": True, "was": {"kind": row.kind, "due_on": row.due_on.isoformat()}}
        )
        session.delete(row)
    if changes:
        audit.record(
            session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.reports_scheduled", subject_type="grant",
            subject_id=grant.reference, reason=why,
            details={"starts_on": str(grant.starts_on), "ends_on": grant.ends_on.isoformat(),
                     "first": first, "reports": changes},
        )  # fmt: skip
    session.flush()
    return changes


def _schedule(
    session: Session, grant: Grant, end: date, rows: Iterable[GrantReport], at: datetime
) -> list[ScheduledReport]:
    if grant.starts_on is None:
        raise NotAllowed(f"{grant.reference} has no agreement in force yet: it is scheduled when it becomes active")
    periods = {r.period_end for r in rows if r.kind == ReportKind.PROGRESS}
    today = local_day(session, grant, at)
    return amended_schedule(grant.starts_on, end, settings_of(session, grant), progress_periods=periods, today=today)


def schedule_problems(session: Session, grant: Grant, new_end: date, at: datetime) -> list[tuple[str, str]]:
    """Why the grant cannot end on `new_end`: a report already in (submitted or accepted,
    or sent back for revision) would change its period or kind."""
    rows = reports_of(session, grant)
    planned = {p.number: p for p in _schedule(session, grant, new_end, rows, at)}
    problems = []
    for row in rows:
        if row.state == ReportState.DUE:
            continue
        item = planned.get(row.number)
        if item is None or (item.kind.value, item.period_end) != (row.kind, row.period_end):
            state = REPORT_STATE_WORDS[ReportState(row.state)]
            problems.append((
                "ends_on",
                f"report {row.number} ({row.kind}, to {row.period_end}) is {state}; "
                f"ending on {new_end} would change what it covers",
            ))  # fmt: skip
    return problems


#: A report's state, as a sentence says it.
REPORT_STATE_WORDS = {
    ReportState.DUE: "awaited",
    ReportState.SUBMITTED: "submitted",
    ReportState.REVISION_REQUESTED: "sent back for revision",
    ReportState.ACCEPTED: "accepted",
}


def reports_of(session: Session, grant: Grant) -> list[GrantReport]:
    return list(
        session.exec(select(GrantReport).where(GrantReport.grant_id == grant.id).order_by(col(GrantReport.number)))
    )


def settings_of(session: Session, grant: Grant) -> GrantSettings:
    return definition_of(get_round(session, grant.round_id)).grants


def _in_force_from(session: Session, grant: Grant, at: datetime) -> date:
    """The day the agreement is in force: its last signature's, or the day its last
    condition was met if later (recorded later than they happened, they keep their own days)."""
    signed = session.exec(select(func.max(GrantSignature.signed_on)).where(GrantSignature.grant_id == grant.id)).one()
    zone = definition_of(get_round(session, grant.round_id)).zone
    met = [datetime.fromisoformat(c["met_at"]).astimezone(zone).date() for c in grant.conditions if c.get("met_at")]
    days = [d for d in (signed, *met) if d is not None]
    return max(days) if days else local_day(session, grant, at)


def months_between(start: date, end: date) -> int:
    """The whole months from `start` to `end` (a grant's planned duration)."""
    return (end.year - start.year) * 12 + end.month - start.month


def day_problems(session: Session, grant: Grant, day: date, field: str, at: datetime) -> list[tuple[str, str]]:
    """A day the secretariat records (a signature's, a payment's): not before the decision,
    and not after today where the round is (its time zone)."""
    today = local_day(session, grant, at)
    if day > today:
        return [(field, f"{day} is after today ({today})")]
    if day < grant.planned_start:
        return [(field, f"{day} is before the committee's decision ({grant.planned_start})")]
    return []


def record_signature(
    session: Session,
    reference: str,
    *,
    kind: str,
    signer: str,
    signed_on: date | None,
    file_name: str,
    content: bytes,
    actor: str,
    at: datetime,
) -> GrantLine:
    """A signature of the agreement (the recipient's, then the secretariat's), with the
    SHA-256 of the signed file; the second makes the agreement signed."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state not in (GrantState.AWARDED, GrantState.AGREEMENT_SENT):
        raise NotAllowed(f"{reference} is {grant.state}: its agreement is signed already, or it was cancelled")
    signed = [
        (s.kind, s.signer)
        for s in session.exec(
            select(GrantSignature).where(GrantSignature.grant_id == grant.id).order_by(col(GrantSignature.id))
        ).all()
    ]
    signed_on = signed_on or local_day(session, grant, at)
    problems = signature_problems(kind, signed, signer, content) + day_problems(session, grant, signed_on, "on", at)
    if problems:
        raise InvalidInput(
            f"the signature of {reference} was not recorded: " + "; ".join(f"{f}: {m}" for f, m in problems),
            [FieldError(path=f"$.{f}", message=m) for f, m in problems],
        )
    digest = hashlib.sha256(content).hexdigest()
    session.add(
        GrantSignature(
            grant_id=grant.id or 0, kind=kind, signer=signer.strip()[:200], signed_on=signed_on, sha256=digest,
            file_name=file_name[:200], recorded_by=actor, recorded_at=at,
        )
    )  # fmt: skip
    details = {"kind": kind, "signer": signer.strip(), "on": signed_on.isoformat(), "sha256": digest}
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.signature_recorded", subject_type="grant",
        subject_id=reference, details=details,
    )  # fmt: skip
    if len(signed) + 1 == 2:
        move_grant(session, grant, "sign_agreement", actor=actor, at=at)
        _activate_when_ready(session, grant, actor=actor, at=at)
    return line_of(session, grant)


def meet_condition(
    session: Session, reference: str, number: int, evidence: str, *, actor: str, at: datetime
) -> GrantLine:
    """One of the committee's conditions met, with its evidence (a document, a letter)."""
    grant = grant_of(session, reference, for_update=True)
    if not 1 <= number <= len(grant.conditions):
        raise InvalidInput(
            f"{reference} has {len(grant.conditions)} condition(s); there is no condition {number}",
            [FieldError(path="$.number", message=f"is 1 to {len(grant.conditions)}")],
        )
    if not evidence.strip():
        raise InvalidInput(
            "say what shows the condition is met", [FieldError(path="$.evidence", message="is required")]
        )
    if grant.state not in (GrantState.AWARDED, GrantState.AGREEMENT_SENT, GrantState.AGREEMENT_SIGNED):
        raise NotAllowed(f"{reference} is {grant.state}: its conditions were met before it became active")
    condition = grant.conditions[number - 1]
    if condition.get("met_at"):
        raise Conflict(f"condition {number} of {reference} was met on {condition['met_at'][:10]} already")
    grant.conditions = [
        {**c, "met_at": at.isoformat(), "evidence": evidence.strip()[:2000], "by": actor} if i == number - 1 else c
        for i, c in enumerate(grant.conditions)
    ]
    session.add(grant)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.condition_met", subject_type="grant",
        subject_id=reference, details={"number": number, "condition": condition["text"], "evidence": evidence.strip()},
    )  # fmt: skip
    _activate_when_ready(session, grant, actor=actor, at=at)
    return line_of(session, grant)


def pay(
    session: Session,
    reference: str,
    amount: Decimal,
    *,
    finance_ref: str,
    paid_on: date | None,
    actor: str,
    at: datetime,
) -> GrantLine:
    """A payment, as the finance office made it: only to an active grant, within what its
    instalments released, and never above the award; its finance reference once."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state not in PAYABLE:
        raise NotAllowed(
            f"{reference} is {grant.state}: a grant is paid once its agreement is signed by both and the "
            "committee's conditions are met (it is then active)"
        )
    if not finance_ref.strip() or len(finance_ref.strip()) > 100:
        raise InvalidInput(
            "give the finance office's reference of the payment (at most 100 characters)",
            [FieldError(path="$.finance_ref", message="is required, of at most 100 characters")],
        )
    if session.exec(select(GrantPayment.id).where(GrantPayment.finance_ref == finance_ref.strip())).first():
        raise Conflict(f"a payment with the finance reference {finance_ref.strip()} is recorded already")
    paid = paid_of(session, grant.id or 0)
    paid_on = paid_on or local_day(session, grant, at)
    problems = payment_problems(amount, paid=paid, award=grant.award, due=released_of(session, grant) - paid)
    problems += day_problems(session, grant, paid_on, "paid_on", at)
    if problems:
        raise InvalidInput(
            f"the payment to {reference} was not recorded: " + "; ".join(f"{f}: {m}" for f, m in problems),
            [FieldError(path=f"$.{f}", message=m) for f, m in problems],
        )
    session.add(
        GrantPayment(
            grant_id=grant.id or 0, amount=amount, paid_on=paid_on, finance_ref=finance_ref.strip()[:100],
            recorded_by=actor, recorded_at=at,
        )
    )  # fmt: skip
    details = {"amount": f"{amount:.2f}", "finance_ref": finance_ref.strip(), "on": paid_on.isoformat()}
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.paid", subject_type="grant",
        subject_id=reference, details=details,
    )  # fmt: skip
    session.flush()
    return line_of(session, grant)


@dataclass(frozen=True)
class GrantSummary:
    """What the recipient's status page shows of their grant."""

    line: GrantLine
    starts_on: date | None
    ends_on: date | None
    reports: list[GrantReport]
    today: date


def grant_summary(session: Session, reference: str, at: datetime | None = None) -> GrantSummary | None:
    grant = session.exec(select(Grant).where(Grant.reference == reference)).first()
    if grant is None:
        return None
    today = local_day(session, grant, at or datetime.now(UTC))
    return GrantSummary(line_of(session, grant), grant.starts_on, grant.ends_on, reports_of(session, grant), today)
