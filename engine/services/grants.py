"""The grants that follow the committee's approvals (issue 16, first part): a grant is
made, with its instalments, in the same transaction as the letter of its approval; its
agreement's signatures are recorded in order with the signed file's SHA-256; the
committee's conditions are met one by one with evidence; it becomes active once signed
and its conditions met; payments are recorded against the instalments their milestones
released, never above the award. Every change is audited."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, func, select

from domain.application import FieldError
from domain.committee import APPROVALS
from domain.grants import (
    GrantState,
    GrantTransitionError,
    add_months,
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
from engine.tables import Application, DecisionRecord, Grant, GrantInstalment, GrantPayment, GrantSignature

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


def _paid(session: Session, grant_id: int) -> Decimal:
    total = session.exec(
        select(func.coalesce(func.sum(GrantPayment.amount), 0)).where(GrantPayment.grant_id == grant_id)
    ).one()
    return Decimal(total or 0).quantize(Decimal("0.01"))


def _released(session: Session, grant: Grant) -> Decimal:
    """What the instalments whose milestones hold release: the first, once the grant is
    active (signed, its conditions met). The reports that release the others come with
    the reports' stage."""
    instalments = session.exec(select(GrantInstalment).where(GrantInstalment.grant_id == grant.id)).all()
    holds = {"signature": grant.state in PAYABLE, "first_progress_report": False, "final_report": False}
    return sum((i.amount for i in instalments if holds.get(i.after, False)), Decimal(0))


def line_of(session: Session, grant: Grant) -> GrantLine:
    paid = _paid(session, grant.id or 0)
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
        released=_released(session, grant),
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


def _move(session: Session, grant: Grant, name: str, *, actor: str, at: datetime, reason: str | None = None) -> None:
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
    """Signed by both, and every condition met: the grant becomes active (its first instalment is released)."""
    if grant.state == GrantState.AGREEMENT_SIGNED and all(c.get("met_at") for c in grant.conditions):
        _move(session, grant, "activate", actor=actor, at=at)


def _day_problems(session: Session, grant: Grant, day: date, field: str, at: datetime) -> list[tuple[str, str]]:
    """A day the secretariat records (a signature's, a payment's): not before the decision,
    and not after today where the round is (its time zone)."""
    today = at.astimezone(definition_of(get_round(session, grant.round_id)).zone).date()
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
    signed_on: date,
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
    problems = signature_problems(kind, signed, signer, content) + _day_problems(session, grant, signed_on, "on", at)
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
        _move(session, grant, "sign_agreement", actor=actor, at=at)
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
    paid_on: date,
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
    paid = _paid(session, grant.id or 0)
    problems = payment_problems(amount, paid=paid, award=grant.award, due=_released(session, grant) - paid)
    problems += _day_problems(session, grant, paid_on, "paid_on", at)
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
