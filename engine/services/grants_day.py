"""The grants' day (issue 16): what the daily `grants-day` run does for every grant in
force, in one transaction.

- Reports not yet in: the recipient is reminded `reminder_days` before the due date
  and told once it has passed (in their language); `escalation_days` after it the
  secretariat is told too.
- Instalments released and still unpaid `payment_days` later, and unspent balances not
  settled within `balance_return_days` of the final report, are flagged to the
  secretariat.
- A grant active without its reports' schedule (made before reports existed) gets it.

Each message has a business key (the report, its due date), and each flag is kept on
its row, so a second run the same day sends nothing; a due date moved by an amendment
starts its reminders again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select as select_columns
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from domain.grants import GrantSettings, GrantState, ReminderStep, ReportKind, ReportState, reminder_step
from domain.lifecycle import Role
from domain.rounds import RoundDefinition
from engine.services import audit, outbox
from engine.services.grant_reports import contact_of, report_context
from engine.services.grants import schedule_reports
from engine.services.rounds import definition_of
from engine.settings import Settings
from engine.tables import (
    Application,
    Grant,
    GrantInstalment,
    GrantPayment,
    GrantReport,
    Round,
)
from notifications import render

#: The states of a grant that owes reports.
IN_FORCE = (GrantState.ACTIVE, GrantState.SUSPENDED)
#: Who the daily run acts as, in the audit trail.
ACTOR = "grants-day"


@dataclass
class GrantsDaySummary:
    day: str
    reports_outstanding: int = 0  # reports due or sent back, of grants in force
    reminders: int = 0  # reminders queued to recipients
    overdue_notices: int = 0  # "your report is overdue" queued to recipients
    escalated: int = 0  # overdue reports the secretariat was told of
    instalments_flagged: int = 0  # released and unpaid past payment_days
    balances_flagged: int = 0  # unspent balances not settled in time
    schedules_made: int = 0
    secretariat_notice: bool = False


def _chunks(items: list[Any], size: int = 2000) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class _Day:
    """One run of the day: what it reads once, and what it gathers for the secretariat
    (`lines`) and the audit trail (`events`)."""

    session: Session
    settings: Settings
    at: datetime
    definitions: dict[str, RoundDefinition]
    summary: GrantsDaySummary
    lines: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def today(self, round_id: str) -> date:
        """The day it is where the round is (its time zone)."""
        return self.at.astimezone(self.definitions[round_id].zone).date()

    def event(self, action: str, reference: str, details: dict[str, Any]) -> None:
        self.events.append(
            dict(
                at=self.at, actor=ACTOR, role=Role.SYSTEM, action=action, subject_type="grant", subject_id=reference,
                from_status=None, to_status=None, reason=None, details=details,
            )
        )  # fmt: skip


def grants_day(session: Session, settings: Settings, *, at: datetime) -> GrantsDaySummary:
    definitions = {r.id: definition_of(r) for r in session.exec(select(Round)).all()}
    day = _Day(session, settings, at, definitions, GrantsDaySummary(day=at.date().isoformat()))
    day.summary.schedules_made = _schedule_missing(session, at)
    _reports(day)
    _instalments(day)
    _balances(day)
    audit.append(session, day.events)
    if day.lines:
        day.summary.secretariat_notice = _tell_secretariat(session, settings, at, day.lines)
    return day.summary


def _schedule_missing(session: Session, at: datetime) -> int:
    lacking = session.exec(
        select(Grant)
        .outerjoin(GrantReport, col(GrantReport.grant_id) == Grant.id)
        .where(col(Grant.state).in_(IN_FORCE), col(GrantReport.id).is_(None), col(Grant.starts_on).is_not(None))
    ).all()
    for grant in lacking:
        schedule_reports(session, grant, actor=ACTOR, at=at, why="the agreement (scheduled by the daily run)")
    return len(lacking)


def _reports(day: _Day) -> None:
    rows = day.session.execute(
        select_columns(
            col(GrantReport.id).label("report_id"),
            *(col(c) for c in (GrantReport.number, GrantReport.kind, GrantReport.period_end, GrantReport.due_on)),
            col(GrantReport.escalated_for),
            col(GrantReport.state),
            *(col(c) for c in (Grant.reference, Grant.round_id, Grant.contact)),
            col(Application.id).label("application_id"),
            *(col(c) for c in (Application.title, Application.applicant, Application.language)),
        )
        .join(Grant, col(Grant.id) == GrantReport.grant_id)
        .join(Application, col(Application.id) == Grant.application_id)
        .where(col(GrantReport.state).in_((ReportState.DUE, ReportState.REVISION_REQUESTED)))
        .where(col(Grant.state).in_(IN_FORCE))
        .order_by(col(Grant.reference), col(GrantReport.number))
    ).all()  # fmt: skip
    day.summary.reports_outstanding = len(rows)
    wanted: list[tuple[str, str, Any]] = []  # (kind, key, row)
    escalate: list[Any] = []
    for row in rows:
        grants: GrantSettings = day.definitions[row.round_id].grants
        step = reminder_step(day.today(row.round_id), row.due_on, grants)
        where = f"{row.reference}:{row.number}:{row.due_on}"
        if step is ReminderStep.REMIND:
            wanted.append(("grant_report_reminder", f"grant_report_reminder:{where}", row))
        elif step in (ReminderStep.OVERDUE, ReminderStep.ESCALATE):
            wanted.append(("grant_report_overdue", f"grant_report_overdue:{where}", row))
            if step is ReminderStep.ESCALATE and row.escalated_for != row.due_on:
                escalate.append(row)
    done: set[str] = set()
    for chunk in _chunks([key for _, key, _ in wanted]):
        done |= outbox.queued(day.session, chunk)
    messages = [
        _message(day.settings, day.definitions, kind, key, row, day.at) for kind, key, row in wanted if key not in done
    ]
    for chunk in _chunks(messages):
        new = outbox.enqueue_new(day.session, chunk)
        day.summary.reminders += sum(1 for key in new if key.startswith("grant_report_reminder:"))
        day.summary.overdue_notices += sum(1 for key in new if key.startswith("grant_report_overdue:"))
    for row in escalate:
        what = "the final report" if row.kind == ReportKind.FINAL else f"progress report {row.number}"
        day.lines.append(f"{row.reference}: {what} was due on {row.due_on} and is not in")
        day.event("grant.report_escalated", row.reference, {"report": row.number, "due_on": str(row.due_on)})
    for row in escalate:
        day.session.execute(
            update(GrantReport).where(col(GrantReport.id) == row.report_id).values(escalated_for=row.due_on)
        )
    day.summary.escalated = len(escalate)


def _message(
    settings: Settings, definitions: dict[str, RoundDefinition], kind: str, key: str, row: Any, at: datetime
) -> dict[str, Any]:
    recipient = contact_of(row.contact, row.applicant, row.language)
    context = report_context(
        settings, recipient, reference=row.reference, title=row.title,
        round_title=definitions[row.round_id].title_in(recipient.language), number=row.number, kind=row.kind,
        period_end=row.period_end, due_on=row.due_on, revised=row.state == ReportState.REVISION_REQUESTED,
    )  # fmt: skip
    message = render(kind, recipient.language, context)
    return outbox.message_row(
        key=key, kind=kind, recipient=recipient.email, message=message, at=at, round_id=row.round_id,
        application_id=row.application_id,
    )  # fmt: skip


def _instalments(day: _Day) -> None:
    """Instalments released and unpaid `payment_days` later: the payments made cover the
    instalments in their order, so instalment n is unpaid while they add up to less than
    instalments 1 to n."""
    candidates = day.session.exec(
        select(GrantInstalment, Grant.reference, Grant.round_id)
        .join(Grant, col(Grant.id) == GrantInstalment.grant_id)
        .where(col(Grant.state).in_((GrantState.ACTIVE, GrantState.CLOSING)))
        .where(col(GrantInstalment.released_on).is_not(None), col(GrantInstalment.flagged_on).is_(None))
    ).all()
    late = [
        (i, ref, rid)
        for i, ref, rid in candidates
        if i.released_on and i.released_on + timedelta(days=day.definitions[rid].grants.payment_days) < day.today(rid)
    ]
    if not late:
        return
    grant_ids = sorted({i.grant_id for i, _, _ in late})
    paid: dict[int, Decimal] = {}
    amounts: dict[int, list[tuple[int, Decimal]]] = {}
    for chunk in _chunks(grant_ids):
        for grant_id, total in day.session.exec(
            select(GrantPayment.grant_id, func.sum(GrantPayment.amount))
            .where(col(GrantPayment.grant_id).in_(chunk))
            .group_by(col(GrantPayment.grant_id))
        ).all():
            paid[grant_id] = Decimal(total or 0)
        for grant_id, number, amount in day.session.execute(
            select_columns(
                col(GrantInstalment.grant_id), col(GrantInstalment.number), col(GrantInstalment.amount)
            ).where(col(GrantInstalment.grant_id).in_(chunk))
        ).all():
            amounts.setdefault(grant_id, []).append((number, amount))
    for instalment, reference, round_id in late:
        upto = sum((a for n, a in amounts[instalment.grant_id] if n <= instalment.number), Decimal(0))
        if paid.get(instalment.grant_id, Decimal(0)) >= upto:
            continue
        instalment.flagged_on = day.today(round_id)
        day.session.add(instalment)
        day.summary.instalments_flagged += 1
        day.lines.append(
            f"{reference}: instalment {instalment.number} ({instalment.amount:,.2f}) was released on "
            f"{instalment.released_on} and is not paid"
        )
        day.event("grant.instalment_overdue", reference, {"instalment": instalment.number})


def _balances(day: _Day) -> None:
    """Closing grants whose unspent balance is not settled within the round's days."""
    from engine.services.grant_changes import close_out_of  # noqa: PLC0415 - they build on the reports

    closing = day.session.exec(
        select(Grant).where(
            Grant.state == GrantState.CLOSING,
            col(Grant.closing_since).is_not(None),
            col(Grant.return_flagged_on).is_(None),
        )
    ).all()
    for grant in closing:
        assert grant.closing_since is not None
        days = day.definitions[grant.round_id].grants.balance_return_days
        if grant.closing_since + timedelta(days=days) >= day.today(grant.round_id):
            continue
        state = close_out_of(day.session, grant)
        left = state.unspent - state.returned - state.written_off
        if left <= 0:
            continue
        grant.return_flagged_on = day.today(grant.round_id)
        day.session.add(grant)
        day.summary.balances_flagged += 1
        day.lines.append(
            f"{grant.reference}: {left:,.2f} of its unspent balance was to be returned or written off by "
            f"{state.due_by} and is not"
        )
        day.event("grant.balance_overdue", grant.reference, {"left": f"{left:.2f}"})


def _tell_secretariat(session: Session, settings: Settings, at: datetime, lines: list[str]) -> bool:
    """One message to the secretariat (in English, the programme's working language) with
    what is new today; its key names today and what it lists, so a second run sends nothing."""
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    message = render(
        "secretariat_notice",
        "en",
        dict(
            language="en",
            round_title="Grants",
            headline=f"{len(lines)} grant matter(s) need the secretariat",
            lines=lines,
        ),
    )
    return bool(
        outbox.enqueue_rows(
            session,
            [
                outbox.message_row(
                    key=f"grants_day:{at.date()}:{digest}",
                    kind="secretariat_notice",
                    recipient=settings.programme_email,
                    message=message,
                    at=at,
                )  # fmt: skip
            ],
        )
    )
