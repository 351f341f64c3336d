"""A grant's reports (issue 16): progress reports on the schedule of the agreement and
its amendments, then the final report; each submitted with progress per indicator of
form A's outputs and spending per category of form B, the spending beyond the round's
tolerance flagged with its figures; the secretariat accepts it or sends it back with
the reasons. The first accepted progress report and the final report release their
instalments; the final report accepted, the grant is closing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from domain.application import FieldError
from domain.grants import (
    GrantState,
    GrantTransitionError,
    ReportKind,
    ReportState,
    SpendingFlag,
    plan_report_transition,
    read_report,
    spending_flags,
)
from domain.lifecycle import Role
from engine.services import audit, outbox
from engine.services.errors import InvalidInput, NotAllowed, NotFound
from engine.services.grants import (
    grant_of,
    local_day,
    move_grant,
    release,
    reports_of,
    settings_of,
)
from engine.services.intake import status_page_url
from engine.services.review.messages import tell_secretariat
from engine.services.rounds import definition_of, get_round
from engine.settings import Settings
from engine.tables import Application, Grant, GrantReport
from notifications import render

#: The states of a report that is in (whatever the secretariat made of it).
IN = (ReportState.SUBMITTED, ReportState.REVISION_REQUESTED, ReportState.ACCEPTED)
#: The states of a grant whose reports are received.
REPORTING = (GrantState.ACTIVE, GrantState.SUSPENDED)


@dataclass(frozen=True)
class ReportLine:
    number: int
    kind: str
    period_end: date
    due_on: date
    state: str
    submitted_at: datetime | None
    decided_at: datetime | None
    reason: str | None
    revisions: int
    flags: list[str]


def line_of_report(row: GrantReport) -> ReportLine:
    return ReportLine(
        number=row.number,
        kind=row.kind,
        period_end=row.period_end,
        due_on=row.due_on,
        state=row.state,
        submitted_at=row.submitted_at,
        decided_at=row.decided_at,
        reason=row.reason,
        revisions=row.revisions,
        flags=[f["evidence"] for f in row.flags],
    )


def list_reports(session: Session, reference: str) -> list[ReportLine]:
    return [line_of_report(r) for r in reports_of(session, grant_of(session, reference))]


def _report(session: Session, grant: Grant, number: int) -> GrantReport:
    row = session.exec(
        select(GrantReport).where(GrantReport.grant_id == grant.id, GrantReport.number == number).with_for_update()
    ).first()
    if row is None:
        count = len(reports_of(session, grant))
        if not count:
            raise NotFound(f"{grant.reference} has no reports yet: they are scheduled when the grant becomes active")
        raise NotFound(f"{grant.reference} has no report {number}; its reports are 1 to {count}")
    return row


def budget_of(grant: Grant) -> dict[str, Decimal]:
    """The grant's budget by category: form B's, or the last reallocation's."""
    if grant.budget_now is not None:
        return {c: Decimal(a) for c, a in grant.budget_now.items()}
    return {c: sum((Decimal(a) for a in years.values()), Decimal(0)) for c, years in grant.budget.items()}


def spent_of(
    rows: list[GrantReport], *, but: int | None = None, states: tuple[ReportState, ...] = (ReportState.ACCEPTED,)
) -> dict[str, Decimal]:
    """The spending reported, by category, in the reports in `states` (the accepted ones),
    `but` one."""
    spent: dict[str, Decimal] = {}
    for row in rows:
        if row.state in states and row.number != but and row.content:
            for category, amount in (row.content.get("spending") or {}).items():
                spent[category] = spent.get(category, Decimal(0)) + Decimal(str(amount))
    return spent


def submit_report(
    session: Session,
    reference: str,
    number: int,
    data: Any,
    *,
    actor: str,
    role: Role,
    at: datetime,
    settings: Settings | None = None,
) -> ReportLine:
    """A report submitted (or submitted again after a revision was asked): checked against
    form A's outputs and indicators and the budget's categories, its spending so far
    compared with the budget (flags, with their figures, for the secretariat to weigh)."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state not in REPORTING:
        raise NotAllowed(
            f"{reference} is {grant.state.replace('_', ' ')}: reports are received while a grant is active "
            "(or suspended)"
        )
    row = _report(session, grant, number)
    try:
        plan_report_transition(ReportState(row.state), "submit")
    except GrantTransitionError as exc:
        raise NotAllowed(f"{reference}, report {number}: {exc}") from None
    rows = reports_of(session, grant)
    waiting = [r.number for r in rows if r.number < number and r.state == ReportState.DUE]
    if waiting:
        raise NotAllowed(f"{reference}: report {waiting[0]} comes first (reports are submitted in their order)")
    today = local_day(session, grant, at)
    if today < row.period_end:
        raise NotAllowed(
            f"{reference}: report {number} covers the period up to {row.period_end}; it is received from that day "
            "(a project that ends early is amended first, with its new end)"
        )
    application = session.get(Application, grant.application_id)
    outputs = list(((application.form_a if application else None) or {}).get("outputs") or [])
    content, problems = read_report(data, outputs)
    if content is None:
        raise InvalidInput(
            f"report {number} of {reference} was not received: " + "; ".join(f"{f}: {m}" for f, m in problems[:20]),
            [FieldError(path=f"$.{f}", message=m) for f, m in problems],
        )
    # what the reports in so far say, whether decided or not: the flag is for the secretariat to weigh
    spent = spent_of(rows, but=number, states=IN)
    for category, amount in content.spending.items():
        spent[category] = spent.get(category, Decimal(0)) + amount
    tolerance = settings_of(session, grant).category_tolerance_percent
    flags = spending_flags(budget_of(grant), spent, tolerance)
    row.content = content.model_dump(mode="json")
    row.flags = [_flag(f) for f in flags]
    row.state = ReportState.SUBMITTED
    row.submitted_at, row.submitted_by = at, actor
    row.decided_at = row.decided_by = None
    session.add(row)
    audit.record(
        session, at=at, actor=actor, role=role, action="grant.report_submitted", subject_type="grant",
        subject_id=reference, to_status=ReportState.SUBMITTED.value,
        details={"report": number, "kind": row.kind, "flags": [f.evidence for f in flags]},
    )  # fmt: skip
    if settings is not None:  # sent by the recipient: the secretariat is told, to review it
        what = "the final report" if row.kind == ReportKind.FINAL else f"progress report {number}"
        tell_secretariat(
            session, settings, grant.round_id, f"grant_report_received:{reference}:{number}:{row.revisions}",
            f"{reference}: {what} received from the recipient, to review",
            [f"flagged: {f.evidence}" for f in flags] + ["Accept it or send it back from the grant's page."], at,
        )  # fmt: skip
    session.flush()
    return line_of_report(row)


def _flag(flag: SpendingFlag) -> dict[str, Any]:
    return {
        "category": flag.category,
        "budget": f"{flag.budget:.2f}",
        "spent": f"{flag.spent:.2f}",
        "evidence": flag.evidence,
    }


def accept_report(
    session: Session, reference: str, number: int, *, note: str | None, actor: str, at: datetime
) -> ReportLine:
    """The secretariat accepts a report. The first accepted progress report releases the
    instalments waiting for it; the final report releases the last ones, and the grant is
    closing: its unspent balance is settled and its lessons recorded before it closes."""
    grant = grant_of(session, reference, for_update=True)
    row = _report(session, grant, number)
    if grant.state not in REPORTING:
        raise NotAllowed(f"{reference} is {grant.state.replace('_', ' ')}: its reports are decided while it is active")
    if row.kind == ReportKind.FINAL and grant.state != GrantState.ACTIVE:
        raise NotAllowed(f"{reference} is suspended: resume it before accepting its final report")
    try:
        plan_report_transition(ReportState(row.state), "accept")
    except GrantTransitionError as exc:
        raise NotAllowed(f"{reference}, report {number}: {exc}") from None
    earlier = [r.number for r in reports_of(session, grant) if r.number < number and r.state != ReportState.ACCEPTED]
    if row.kind == ReportKind.FINAL and earlier:
        raise NotAllowed(f"{reference}: report {earlier[0]} is not accepted yet; the final report is accepted last")
    row.state = ReportState.ACCEPTED
    row.decided_at, row.decided_by, row.reason = at, actor, (note or "").strip()[:5000] or None
    session.add(row)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.report_accepted", subject_type="grant",
        subject_id=reference, from_status=ReportState.SUBMITTED.value, to_status=ReportState.ACCEPTED.value,
        reason=row.reason, details={"report": number, "kind": row.kind},
    )  # fmt: skip
    # a project too short for a progress report has its final report release both
    milestones = {"first_progress_report"} | ({"final_report"} if row.kind == ReportKind.FINAL else set())
    release(session, grant, milestones, actor=actor, at=at)
    if row.kind == ReportKind.FINAL:
        move_grant(session, grant, "begin_closing", actor=actor, at=at)
        grant.closing_since = local_day(session, grant, at)
        session.add(grant)
    session.flush()
    return line_of_report(row)


def ask_revision(
    session: Session,
    settings: Settings,
    reference: str,
    number: int,
    reasons: str,
    *,
    actor: str,
    at: datetime,
) -> ReportLine:
    """The secretariat sends a report back with its reasons: the recipient is told, in
    their language, and has the round's `revision_days` (or until the report's due
    date, if later) to send it again."""
    grant = grant_of(session, reference, for_update=True)
    row = _report(session, grant, number)
    if grant.state not in REPORTING:
        raise NotAllowed(f"{reference} is {grant.state.replace('_', ' ')}: its reports are decided while it is active")
    if len(reasons.strip()) > 5000:
        raise InvalidInput(
            "the reasons are too long", [FieldError(path="$.reasons", message="is over 5000 characters")]
        )
    try:
        plan_report_transition(ReportState(row.state), "ask_revision", reason=reasons)
    except GrantTransitionError as exc:
        if reasons.strip():
            raise NotAllowed(f"{reference}, report {number}: {exc}") from None
        raise InvalidInput(
            "say why the report is sent back", [FieldError(path="$.reasons", message="is required")]
        ) from None
    today = local_day(session, grant, at)
    row.state = ReportState.REVISION_REQUESTED
    row.decided_at, row.decided_by, row.reason = at, actor, reasons.strip()
    row.revisions += 1
    row.due_on = max(row.due_on, today + timedelta(days=settings_of(session, grant).revision_days))
    session.add(row)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.report_revision_asked",
        subject_type="grant", subject_id=reference, from_status=ReportState.SUBMITTED.value,
        to_status=ReportState.REVISION_REQUESTED.value, reason=row.reason,
        details={"report": number, "due_on": row.due_on.isoformat(), "revision": row.revisions},
    )  # fmt: skip
    outbox.enqueue_rows(
        session,
        [
            recipient_message(
                session, settings, grant, row, "grant_report_revision",
                f"grant_report_revision:{reference}:{number}:{row.revisions}", at,
            )
        ],
    )  # fmt: skip
    session.flush()
    return line_of_report(row)


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    language: str


def recipient_of(grant: Grant, application: Application) -> Recipient:
    return contact_of(grant.contact, application.applicant, application.language)


def contact_of(contact: dict[str, Any] | None, applicant: dict[str, Any], language: str) -> Recipient:
    """Who a grant's messages go to: the contact an amendment named, else the application's."""
    chosen = contact or {
        "name": applicant["contact"]["name"],
        "email": applicant["contact"]["email"],
        "language": applicant.get("language") or language,
    }
    return Recipient(chosen["name"], chosen["email"], chosen.get("language") or "en")


def report_context(
    settings: Settings,
    recipient: Recipient,
    *,
    reference: str,
    title: str | None,
    round_title: str,
    number: int,
    kind: str,
    period_end: date,
    due_on: date,
    reasons: str | None = None,
    revised: bool = False,
) -> dict[str, Any]:
    """What a message about a report says (`reasons`: the secretariat's, when it sends
    the report back)."""
    return dict(
        language=recipient.language,
        contact_name=recipient.name,
        reference=reference,
        title=title,
        round_title=round_title,
        number=number,
        final=kind == ReportKind.FINAL,
        revised=revised,  # sent back: the revised report is awaited
        period_end=period_end,
        due=due_on,
        points=[p for line in (reasons or "").splitlines() if (p := line.strip(" -•*\t"))],
        status_url=status_page_url(settings, reference, recipient.language),
        programme_email=settings.programme_email,
    )


def recipient_message(
    session: Session, settings: Settings, grant: Grant, row: GrantReport, kind: str, key: str, at: datetime
) -> dict[str, Any]:
    application = session.get(Application, grant.application_id)
    assert application is not None
    recipient = recipient_of(grant, application)
    definition = definition_of(get_round(session, grant.round_id))
    context = report_context(
        settings, recipient, reference=grant.reference, title=application.title,
        round_title=definition.title_in(recipient.language), number=row.number, kind=row.kind,
        period_end=row.period_end, due_on=row.due_on, reasons=row.reason if kind == "grant_report_revision" else None,
    )  # fmt: skip
    message = render(kind, recipient.language, context)
    return outbox.message_row(
        key=key, kind=kind, recipient=recipient.email, message=message, at=at, round_id=grant.round_id,
        application_id=application.id,
    )  # fmt: skip
