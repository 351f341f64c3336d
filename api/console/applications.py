"""A round's applications: the list (filters and search), an application's page (forms
A, B and C, its screening record with every check's reason, its timeline and audit
events), and what the secretariat does to it: ask for information, override the
screening verdict, withdraw it, send its forms again on the applicant's behalf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, or_, select
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, text_of, uploaded
from api.pages import page_route
from domain.application import FieldError
from domain.lifecycle import Role, allowed_transitions
from engine.services import appraisal, follow_up, report
from engine.services import rounds as round_service
from engine.services.applications import get_application, transition
from engine.services.errors import InvalidInput, NotFound, ServiceError
from engine.services.parties import party_names
from engine.tables import Application, AuditEvent, ScreeningRecord, StatusChange
from notifications import labels
from notifications.reasons import PLURAL_REASONS, REASONS, reason_text

router = APIRouter()
#: The largest forms file the page takes (as the API's body limit).
FORMS_BYTES = 2_000_000
LDC_SIDS = ("ldc", "sids", "either")


@dataclass(frozen=True)
class Filters:
    status: str = ""
    region: str = ""
    party: str = ""
    group: str = ""  # ldc, sids, either
    verdict: str = ""
    q: str = ""

    def keep(self, row: report.ReportRow) -> bool:
        if self.status and row.status.value != self.status:
            return False
        if self.region and row.region != self.region:
            return False
        if self.party and row.party != self.party:
            return False
        if self.group == "ldc" and not row.ldc or self.group == "sids" and not row.sids:
            return False
        if self.group == "either" and not (row.ldc or row.sids):
            return False
        if self.verdict and row.verdict != self.verdict:
            return False
        if self.q:
            words = self.q.casefold()
            haystack = " ".join((row.reference, row.title or "", row.party, row.party_name)).casefold()
            return all(word in haystack for word in words.split())
        return True


@page_route(router.get, "/rounds/{round_id}/applications", CONSOLE)
def applications(
    round_id: str,
    desk: DeskDep,
    status: str = "",
    region: str = "",
    party: str = "",
    group: str = "",
    verdict: str = "",
    q: str = "",
) -> HTMLResponse:
    """The round's applications, filtered by status, region, Party, LDC/SIDS and screening
    outcome, and searched by reference, title or Party."""
    filters = Filters(
        status[:40], region[:60], party[:3].upper(), group if group in LDC_SIDS else "", verdict[:20], q[:100]
    )

    def gather(session: Session) -> dict[str, Any]:
        row = round_service.get_round(session, round_id)
        rows = report.report_rows(session, round_id)
        names = party_names(session, {r.party for r in rows})
        return {"r": desk.round(row), "rows": rows, "names": names}

    found = desk.read(gather)
    rows = found["rows"]
    shown = [row for row in rows if filters.keep(row)]
    return desk.page(
        "applications.html",
        r=found["r"],
        rows=shown,
        total=len(rows),
        filters=filters,
        statuses=sorted({row.status.value for row in rows}),
        regions=sorted({row.region for row in rows}),
        parties=sorted(
            {(row.party, found["names"].name(row.party, desk.language)) for row in rows}, key=lambda p: p[1]
        ),
        party=lambda code: found["names"].name(code, desk.language),
        verdicts=sorted({row.verdict for row in rows}),
        money=lambda value: labels.money(value, found["r"].currency, desk.language),
    )


@dataclass(frozen=True)
class Dossier:
    application: Application
    record: ScreeningRecord | None
    timeline: list[StatusChange]
    events: list[AuditEvent]
    party_name: str
    currency: str
    round_title: str
    can: list[str]  # the secretariat's transitions from the current status


def _dossier(session: Session, round_id: str, reference: str, language: str = "en") -> Dossier:
    round_row = round_service.get_round(session, round_id)
    application = session.exec(select(Application).where(Application.reference == reference)).first()
    if application is None or application.round_id != round_id:
        raise NotFound(f"no application {reference} in round {round_id}")
    record = session.exec(select(ScreeningRecord).where(ScreeningRecord.application_id == application.id)).first()
    timeline = list(
        session.exec(
            select(StatusChange).where(StatusChange.application_id == application.id).order_by(col(StatusChange.id))
        ).all()
    )
    events = list(
        session.exec(
            select(AuditEvent)
            # the application's events, and those of its parts ("<reference>:…"), by the index's range
            .where(
                or_(
                    AuditEvent.subject_id == reference,
                    (col(AuditEvent.subject_id) >= f"{reference}:") & (col(AuditEvent.subject_id) < f"{reference};"),
                )
            )
            .order_by(col(AuditEvent.id))
            .limit(500)
        ).all()
    )
    names = party_names(session, {application.party})
    return Dossier(
        application,
        record,
        timeline,
        events,
        names.name(application.party, "en"),
        round_service.definition_of(round_row).currency,
        round_service.definition_of(round_row).title_in(language),
        allowed_transitions(application.status, Role.SECRETARIAT),
    )


def _reason(check: dict[str, Any], language: str, currency: str) -> tuple[str, str]:
    """A check's reason, and its language: as the applicant is told it, where it is one they
    are told; the secretariat's own words (English) otherwise."""
    code = check.get("code", "")
    if code in REASONS or code in PLURAL_REASONS:
        return reason_text(code, check.get("params") or {}, language, currency), language
    return str(check.get("reason", "")), "en"


def _page(desk: Desk, round_id: str, reference: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    dossier = desk.read(lambda s: _dossier(s, round_id, reference, desk.language))
    names = desk.read(lambda s: party_names(s, {dossier.application.party}))
    language = desk.language
    return desk.page(
        "application.html",
        status_code=status_code,
        r={"id": round_id, "title": dossier.round_title},
        d=dossier,
        a=dossier.application.form_a or {},
        b=dossier.application.form_b or {},
        c=dossier.application.form_c or {},
        party=names.name(dossier.application.party, language),
        money=lambda value: labels.money(value, dossier.currency, language),
        check_title=lambda value: labels.check_title(str(value), language, names),
        reason=lambda check: _reason(check, language, dossier.currency),
        status_word=lambda value: labels.label(labels.APPLICATION_STATUS, str(value), language),
        **context,
    )


@page_route(router.get, "/rounds/{round_id}/applications/{reference}", CONSOLE)
def application(round_id: str, reference: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """An application as the secretariat sees it, with what can be done to it now."""
    return _page(desk, round_id, reference, done=done)


@page_route(router.post, "/rounds/{round_id}/applications/{reference}/information", CONSOLE)
async def ask(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """Ask the applicant for information: one item per line, by a date (the round's
    response time by default). They are told in their language."""
    form = await form_of(request)
    items = [line.strip() for line in text_of(form, "items", 20_000).splitlines() if line.strip()]
    due_text = text_of(form, "due", 20)

    def go(session: Session) -> date:
        if not items:
            raise InvalidInput(
                "say what is missing, one item per line", [FieldError(path="$.items", message="items_missing")]
            )
        due = None
        if due_text:
            try:
                due = date.fromisoformat(due_text)
            except ValueError:
                raise InvalidInput(
                    "the due date is not a date (YYYY-MM-DD)", [FieldError(path="$.due", message="due_not_date")]
                ) from None
        return follow_up.request_information(
            session, desk.rt.settings, round_id, reference, items, due=due, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "information", go, "asked")


@page_route(router.post, "/rounds/{round_id}/applications/{reference}/override", CONSOLE)
async def override(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """Replace the automatic screening verdict with the secretariat's, for a reason (required)."""
    form = await form_of(request)
    verdict = text_of(form, "verdict", 20)
    reason = text_of(form, "reason", 2000)

    def go(session: Session) -> bool:
        if verdict not in ("screened", "incomplete", "ineligible"):
            raise InvalidInput(
                "choose the verdict: screened, incomplete or ineligible",
                [FieldError(path="$.verdict", message="verdict_missing")],
            )
        if not reason:
            raise InvalidInput("an override needs a reason", [FieldError(path="$.reason", message="reason_missing")])
        return appraisal.override(
            session,
            desk.rt.settings,
            round_id,
            reference,
            verdict,  # type: ignore[arg-type]  # one of the three, checked above
            reason=reason,
            actor=desk.actor,
            at=desk.now,
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "override", go, "overridden")


@page_route(router.post, "/rounds/{round_id}/applications/{reference}/withdraw", CONSOLE)
async def withdraw(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """Withdraw the application (the applicant asked to), for a reason (required)."""
    form = await form_of(request)
    reason = text_of(form, "reason", 2000)

    def go(session: Session) -> Any:
        get_application(session, reference)
        if not reason:
            raise InvalidInput("a withdrawal needs a reason", [FieldError(path="$.reason", message="reason_missing")])
        return transition(
            session,
            reference,
            "withdraw",
            key=f"withdraw:{reference}",
            actor=desk.actor,
            role=Role.SECRETARIAT,
            at=desk.now,
            reason=reason,
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "withdraw", go, "withdrawn")


@page_route(router.post, "/rounds/{round_id}/applications/{reference}/forms", CONSOLE)
async def forms(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """Send the application's forms again on the applicant's behalf (forms A, B or C as
    JSON, as the applicant's API takes them): checked as intake checks them, then screened again."""
    raw, _name = await uploaded(request, FORMS_BYTES, "")
    body: bytes | str = raw or text_of(await form_of(request), "text", FORMS_BYTES)

    def go(session: Session) -> Any:
        if not body or len(body) > FORMS_BYTES:
            raise InvalidInput(
                "choose the forms' file (JSON with form_a, form_b or form_c) or paste it, at most 2 MB",
                [FieldError(path="$.file", message="forms_missing")],
            )
        return follow_up.resubmit_forms(
            session, desk.rt.settings, reference, body, actor=desk.actor, role=Role.SECRETARIAT, at=desk.now
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "forms", go, "forms")


def _do(desk: Desk, round_id: str, reference: str, action: str, fn: Any, done: str) -> Response:
    def checked(session: Session) -> Any:
        _dossier(session, round_id, reference)  # the application is the round's
        return fn(session)

    try:
        desk.act(f"application.{action}", "application", reference, checked)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        return _page(desk, round_id, reference, status_code=exc.http_status, refusal=refusal_of(exc), failed=action)
    return back_to(desk, f"/rounds/{round_id}/applications/{reference}", done=done)
