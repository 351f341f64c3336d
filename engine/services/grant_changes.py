"""A grant's amendments and its close-out (issue 16).

Amendments (a no-cost extension, a budget reallocation, a new contact or executing
agency) are requested by the recipient or recorded by the secretariat, numbered per
grant with what they change from and to, and decided with a reason; an approved
extension lays the reports on the new schedule, moving even due dates already past.

Close-out: once the final report is accepted the grant is closing; the unspent balance
(what was paid less what the accepted reports spent) is returned or written off with a
reason, the lessons are recorded, and only then does the grant close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError
from sqlmodel import Session, col, func, select

from domain.application import FieldError
from domain.grants import (
    AmendmentKind,
    AmendmentState,
    GrantState,
    ReportKind,
    ReportState,
    close_problems,
    extension_problems,
    reallocation_problems,
)
from domain.lifecycle import Role
from engine.services import audit
from engine.services.errors import Conflict, InvalidInput, NotAllowed, NotFound
from engine.services.grant_reports import budget_of, recipient_of, spent_of
from engine.services.grants import (
    day_problems,
    grant_of,
    local_day,
    move_grant,
    paid_of,
    released_of,
    reports_of,
    schedule_problems,
    schedule_reports,
    settings_of,
)
from engine.services.review.messages import tell_secretariat
from engine.settings import Settings
from engine.tables import Application, Grant, GrantAmendment, GrantSettlement

#: The states of a grant that may be amended (its agreement is in force).
AMENDABLE = (GrantState.ACTIVE, GrantState.SUSPENDED)


class _NewContact(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=300)
    email: EmailStr
    language: str = Field(default="en", pattern="^(en|fr|es)$")


@dataclass(frozen=True)
class AmendmentLine:
    number: int
    kind: str
    state: str
    before: dict[str, Any]
    after: dict[str, Any]
    request_reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None


def _line(row: GrantAmendment) -> AmendmentLine:
    return AmendmentLine(
        number=row.number, kind=row.kind, state=row.state, before=row.before, after=row.after,
        request_reason=row.request_reason, requested_by=row.requested_by, requested_at=row.requested_at,
        decided_by=row.decided_by, decided_at=row.decided_at, decision_reason=row.decision_reason,
    )  # fmt: skip


def list_amendments(session: Session, reference: str) -> list[AmendmentLine]:
    grant = grant_of(session, reference)
    rows = session.exec(
        select(GrantAmendment).where(GrantAmendment.grant_id == grant.id).order_by(col(GrantAmendment.number))
    ).all()
    return [_line(r) for r in rows]


def _refused(what: str, problems: list[tuple[str, str]]) -> InvalidInput:
    return InvalidInput(
        f"{what}: " + "; ".join(f"{f}: {m}" for f, m in problems),
        [FieldError(path=f"$.{f}", message=m) for f, m in problems],
    )


def _change(
    session: Session, grant: Grant, kind: AmendmentKind, change: dict[str, Any], at: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the amendment changes, from and to, checked against the grant as it is now."""
    if kind is AmendmentKind.EXTENSION:
        if grant.starts_on is None or grant.ends_on is None:
            raise NotAllowed(f"{grant.reference} has no agreement in force yet: there is no end date to move")
        new_end = change.get("ends_on")
        if not isinstance(new_end, date):
            raise _refused("the extension was not recorded", [("ends_on", "give the new end date, as YYYY-MM-DD")])
        accepted = [r.period_end for r in reports_of(session, grant) if r.state == ReportState.ACCEPTED]
        problems = extension_problems(grant.starts_on, grant.ends_on, new_end, max(accepted, default=None))
        problems = problems or schedule_problems(session, grant, new_end, at)
        if problems:
            raise _refused(f"the new end of {grant.reference} was not recorded", problems)
        return {"ends_on": grant.ends_on.isoformat()}, {"ends_on": new_end.isoformat()}
    if kind is AmendmentKind.REALLOCATION:
        now = budget_of(grant)
        try:
            new = {str(c): Decimal(str(a)).quantize(Decimal("0.01")) for c, a in (change.get("budget") or {}).items()}
        except ArithmeticError:
            raise _refused("the reallocation was not recorded", [("budget", "amounts are numbers")]) from None
        if not new:
            raise _refused("the reallocation was not recorded", [("budget", "give each category's new amount")])
        new = {**{c: a for c, a in now.items()}, **new}
        problems = reallocation_problems(now, new)
        if problems:
            raise _refused(f"the reallocation of {grant.reference} was not recorded", problems)
        return (
            {"budget": {c: f"{a:.2f}" for c, a in sorted(now.items())}},
            {"budget": {c: f"{a:.2f}" for c, a in sorted(new.items()) if a or c in now}},
        )
    if kind is AmendmentKind.CONTACT:
        try:
            contact = _NewContact.model_validate(change.get("contact") or {})
        except ValidationError as exc:
            problems = [(f"contact.{'.'.join(str(p) for p in e['loc'])}", e["msg"]) for e in exc.errors()]
            raise _refused("the new contact was not recorded", problems) from None
        application = session.get(Application, grant.application_id)
        assert application is not None
        current = recipient_of(grant, application)
        before = {"contact": {"name": current.name, "email": current.email, "language": current.language}}
        return before, {"contact": contact.model_dump()}
    name = str(change.get("executing_agency") or "").strip()
    if not name or len(name) > 300:
        raise _refused(
            "the new executing agency was not recorded",
            [("executing_agency", "give its name (300 characters at most)")],
        )
    return {"executing_agency": grant.executing_agency}, {"executing_agency": name}


def request_amendment(
    session: Session,
    reference: str,
    kind: str,
    change: dict[str, Any],
    reason: str,
    *,
    actor: str,
    role: Role,
    at: datetime,
    settings: Settings | None = None,
) -> AmendmentLine:
    """An amendment asked for (by the recipient, or recorded by the secretariat), checked
    against the grant as it is; it changes nothing until it is approved. With `settings`
    (asked for by the recipient), the secretariat is told."""
    grant = grant_of(session, reference, for_update=True)
    try:
        what = AmendmentKind(kind)
    except ValueError:
        raise _refused(
            "the amendment was not recorded", [("kind", "is extension, reallocation, contact or agency")]
        ) from None
    if grant.state not in AMENDABLE:
        raise NotAllowed(
            f"{reference} is {grant.state.replace('_', ' ')}: a grant is amended while its agreement is in force "
            "(active or suspended)"
        )
    if not reason.strip() or len(reason.strip()) > 5000:
        raise _refused("the amendment was not recorded", [("reason", "say why (5000 characters at most)")])
    before, after = _change(session, grant, what, change, at)
    pending = session.exec(
        select(GrantAmendment).where(
            GrantAmendment.grant_id == grant.id, GrantAmendment.state == AmendmentState.REQUESTED
        )
    ).all()
    same = [a.number for a in pending if a.kind == what.value and a.after == after]
    if same:
        raise Conflict(f"{reference}: the same change is asked for already (amendment {same[0]}, awaiting a decision)")
    number = 1 + int(
        session.exec(select(func.count()).select_from(GrantAmendment).where(GrantAmendment.grant_id == grant.id)).one()
    )
    row = GrantAmendment(
        grant_id=grant.id or 0, number=number, kind=what.value, state=AmendmentState.REQUESTED.value,
        before=before, after=after, request_reason=reason.strip(), requested_by=actor, requested_at=at,
    )  # fmt: skip
    session.add(row)
    audit.record(
        session, at=at, actor=actor, role=role, action="grant.amendment_requested", subject_type="grant",
        subject_id=reference, reason=reason.strip(),
        details={"amendment": number, "kind": what.value, "before": before, "after": after},
    )  # fmt: skip
    if settings is not None:
        tell_secretariat(
            session, settings, grant.round_id, f"grant_amendment_requested:{reference}:{number}",
            f"{reference}: amendment {number} ({what.value}) asked for by the recipient, to decide",
            [f"from {before} to {after}", f"because: {reason.strip()}", "Approve or refuse it from the grant's page."],
            at,
        )  # fmt: skip
    session.flush()
    return _line(row)


def decide_amendment(
    session: Session, reference: str, number: int, approve: bool, reason: str, *, actor: str, at: datetime
) -> AmendmentLine:
    """The secretariat approves or refuses an amendment, with its reason. Approved, it is
    checked again against the grant as it is now, then applied: an extension lays the
    reports on the new schedule (due dates already past move too)."""
    grant = grant_of(session, reference, for_update=True)
    row = session.exec(
        select(GrantAmendment)
        .where(GrantAmendment.grant_id == grant.id, GrantAmendment.number == number)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"{reference} has no amendment {number}")
    if row.state != AmendmentState.REQUESTED:
        raise Conflict(f"amendment {number} of {reference} was {row.state} on {row.decided_at:%Y-%m-%d} already")
    if not reason.strip() or len(reason.strip()) > 5000:
        raise _refused("the amendment was not decided", [("reason", "say why (5000 characters at most)")])
    if approve:
        if grant.state not in AMENDABLE:
            raise NotAllowed(f"{reference} is {grant.state.replace('_', ' ')}: it can no longer be amended")
        kind = AmendmentKind(row.kind)
        change: dict[str, Any] = dict(row.after)
        if kind is AmendmentKind.EXTENSION:
            change = {"ends_on": date.fromisoformat(row.after["ends_on"])}
        before, after = _change(session, grant, kind, change, at)  # the grant may have changed since the request
        _apply(session, grant, kind, after, number=number, actor=actor, at=at)
        row.before = before
    row.state = (AmendmentState.APPROVED if approve else AmendmentState.REFUSED).value
    row.decided_by, row.decided_at, row.decision_reason = actor, at, reason.strip()
    session.add(row)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action=f"grant.amendment_{row.state}",
        subject_type="grant", subject_id=reference, reason=reason.strip(),
        details={"amendment": number, "kind": row.kind, "before": row.before, "after": row.after},
    )  # fmt: skip
    session.flush()
    return _line(row)


def _apply(
    session: Session, grant: Grant, kind: AmendmentKind, after: dict[str, Any], *, number: int, actor: str, at: datetime
) -> None:
    if kind is AmendmentKind.EXTENSION:
        grant.ends_on = date.fromisoformat(after["ends_on"])
        session.add(grant)
        schedule_reports(session, grant, actor=actor, at=at, why=f"amendment {number}")
    elif kind is AmendmentKind.REALLOCATION:
        grant.budget_now = after["budget"]
    elif kind is AmendmentKind.CONTACT:
        grant.contact = after["contact"]
    else:
        grant.executing_agency = after["executing_agency"]
    session.add(grant)


# --- Close-out -----------------------------------------------------------------------


@dataclass(frozen=True)
class CloseOut:
    reference: str
    state: str
    paid: Decimal
    spent: Decimal
    unspent: Decimal  # paid less spent: what the recipient owes back
    returned: Decimal
    written_off: Decimal
    due_by: date | None  # the day the balance must be settled by
    lessons: str | None
    problems: list[tuple[str, str]]


def _settled(session: Session, grant: Grant) -> dict[str, Decimal]:
    rows = session.exec(select(GrantSettlement).where(GrantSettlement.grant_id == grant.id)).all()
    totals = {"returned": Decimal(0), "written_off": Decimal(0)}
    for row in rows:
        totals[row.kind] += row.amount
    return totals


def close_out(session: Session, reference: str) -> CloseOut:
    """Where the grant's close-out stands, and what is still missing before it can close."""
    return close_out_of(session, grant_of(session, reference))


def close_out_of(session: Session, grant: Grant) -> CloseOut:
    rows = reports_of(session, grant)
    paid = paid_of(session, grant.id or 0)
    spent = sum(spent_of(rows).values(), Decimal(0))
    unspent = max(paid - spent, Decimal(0))
    settled = _settled(session, grant)
    final_accepted = any(r.kind == ReportKind.FINAL and r.state == ReportState.ACCEPTED for r in rows)
    owed = max(min(released_of(session, grant), spent) - paid, Decimal(0))
    problems = close_problems(
        final_accepted=final_accepted,
        owed=owed,
        unspent=unspent,
        settled=sum(settled.values(), Decimal(0)),
        lessons=grant.lessons,
    )
    days = settings_of(session, grant).balance_return_days
    due_by = grant.closing_since + timedelta(days=days) if grant.closing_since else None
    return CloseOut(
        reference=grant.reference, state=grant.state, paid=paid, spent=spent, unspent=unspent,
        returned=settled["returned"], written_off=settled["written_off"], due_by=due_by, lessons=grant.lessons,
        problems=problems,
    )  # fmt: skip


def settle(
    session: Session,
    reference: str,
    kind: str,
    amount: Decimal,
    *,
    settled_on: date | None,
    finance_ref: str | None,
    reason: str | None,
    actor: str,
    at: datetime,
) -> CloseOut:
    """Part or all of the unspent balance returned by the recipient (with the finance
    office's reference) or written off (with the reason), never more than is unspent."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state != GrantState.CLOSING:
        raise NotAllowed(
            f"{reference} is {grant.state.replace('_', ' ')}: the balance is settled once the final report is "
            "accepted (the grant is then closing)"
        )
    if kind not in ("returned", "written_off"):
        raise _refused("the balance was not settled", [("kind", "is returned or written_off")])
    state = close_out_of(session, grant)
    left = state.unspent - state.returned - state.written_off
    problems = []
    if amount <= 0:
        problems.append(("amount", "must be more than zero"))
    elif amount > left:
        problems.append(("amount", f"{amount:,.2f} is more than the {left:,.2f} left of the unspent balance"))
    ref = (finance_ref or "").strip()
    why = (reason or "").strip()
    if kind == "returned" and not 0 < len(ref) <= 100:
        problems.append(
            ("finance_ref", "give the finance office's reference of the money received (100 characters at most)")
        )
    if kind == "written_off" and not 0 < len(why) <= 2000:
        problems.append(("reason", "say why the balance is written off (2000 characters at most)"))
    settled_on = settled_on or local_day(session, grant, at)
    problems += day_problems(session, grant, settled_on, "settled_on", at)
    if problems:
        raise _refused(f"the balance of {reference} was not settled", problems)
    if ref and session.exec(select(GrantSettlement.id).where(GrantSettlement.finance_ref == ref)).first():
        raise Conflict(f"a return with the finance reference {ref} is recorded already")
    session.add(
        GrantSettlement(
            grant_id=grant.id or 0, kind=kind, amount=amount, settled_on=settled_on, finance_ref=ref or None,
            reason=why or None, recorded_by=actor, recorded_at=at,
        )
    )  # fmt: skip
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action=f"grant.balance_{kind}", subject_type="grant",
        subject_id=reference, reason=why or None,
        details={"amount": f"{amount:.2f}", "on": settled_on.isoformat(), "finance_ref": ref or None},
    )  # fmt: skip
    session.flush()
    return close_out_of(session, grant)


def record_lessons(session: Session, reference: str, lessons: str, *, actor: str, at: datetime) -> CloseOut:
    """The lessons learnt (the evaluation's record), kept with the grant."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state not in (GrantState.ACTIVE, GrantState.SUSPENDED, GrantState.CLOSING):
        raise NotAllowed(f"{reference} is {grant.state.replace('_', ' ')}: its lessons are recorded before it closes")
    if not lessons.strip() or len(lessons.strip()) > 20_000:
        raise _refused("the lessons were not recorded", [("lessons", "are required (20000 characters at most)")])
    previous, grant.lessons = grant.lessons, lessons.strip()
    session.add(grant)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.lessons_recorded", subject_type="grant",
        subject_id=reference, details={"lessons": grant.lessons, "replacing": previous},
    )  # fmt: skip
    session.flush()
    return close_out_of(session, grant)


def close(session: Session, reference: str, *, actor: str, at: datetime) -> CloseOut:
    """Close a grant: only once its final report is accepted, its unspent balance settled,
    and its lessons recorded."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state != GrantState.CLOSING:
        raise NotAllowed(
            f"{reference} is {grant.state.replace('_', ' ')}: a grant closes after its final report is accepted"
        )
    problems = close_out_of(session, grant).problems
    if problems:
        raise NotAllowed(
            f"{reference} cannot close yet: " + "; ".join(f"{f.replace('_', ' ')} {m}" for f, m in problems)
        )
    move_grant(session, grant, "close", actor=actor, at=at)
    session.flush()
    return close_out_of(session, grant)
