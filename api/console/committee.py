"""The Steering Committee's side of a round: the meeting (dates, place, funds, who
attends), the members' declared conflicts, the bundles and who downloaded which
version, the decisions (the funds left shown as they are entered; what the rules refuse
refused with every reason), the letters, and the files to download: the screening
report, the round report, the public list and the 360Giving package."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.application_form import read_amount
from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, text_of
from api.pages import PAGE_HEADERS, page_route
from domain.application import FieldError
from domain.committee import APPROVALS, Decision, DecisionIn
from domain.lifecycle import Status
from domain.money import to_cents
from engine.services import opendata, report
from engine.services import rounds as round_service
from engine.services.committee import decisions as committee_decisions
from engine.services.committee import meeting as committee_meeting
from engine.services.committee.membership import members_on
from engine.services.errors import InvalidInput, NotFound, ServiceError
from engine.tables import Application, AuditEvent, CommitteeBundle, DecisionRecord, MemberConflict
from notifications import labels

router = APIRouter()
#: The applications the decisions page lists: those before the committee, and those it decided.
DECIDABLE = (
    Status.READY_FOR_COMMITTEE,
    Status.APPROVED,
    Status.APPROVED_WITH_CONDITIONS,
    Status.NOT_APPROVED,
    Status.DEFERRED,
)


@dataclass(frozen=True)
class Row:
    application: Application
    decision: DecisionRecord | None
    conflicted: dict[str, str]


def _gather(session: Session, round_id: str, desk: Desk) -> dict[str, Any]:
    row = round_service.get_round(session, round_id)
    view = desk.round(row)
    found: dict[str, Any] = {"r": view, "committee": None, "committee_problem": None}
    try:
        committee = committee_meeting.committee_of(session, round_id)
        found["committee"] = committee
    except ServiceError as exc:  # no meeting scheduled, or nobody on the committee then
        found["committee_problem"] = exc.message
        committee = None
    meeting = None
    with contextlib.suppress(ServiceError):
        meeting = committee_meeting.meeting_of(session, round_id)
    found["meeting"] = meeting
    found["members"] = members_on(session, meeting.starts_on) if meeting else []
    applications = session.exec(
        select(Application)
        .where(Application.round_id == round_id, col(Application.status).in_(DECIDABLE))
        .order_by(col(Application.reference))
    ).all()
    decisions = {
        d.application_id: d
        for d in session.exec(select(DecisionRecord).where(DecisionRecord.round_id == round_id)).all()
    }
    found["rows"] = [
        Row(a, decisions.get(a.id or 0), committee.conflicts(a) if committee else {}) for a in applications
    ]
    found["approved"] = committee_meeting.approved_total(session, round_id)
    found["conflicts"] = session.exec(
        select(MemberConflict, Application.reference)
        .join(Application, col(Application.id) == MemberConflict.application_id)
        .where(Application.round_id == round_id)
        .order_by(col(MemberConflict.declared_at))
    ).all()
    found["bundles"] = session.exec(
        select(CommitteeBundle)
        .where(CommitteeBundle.round_id == round_id)
        .order_by(col(CommitteeBundle.email), col(CommitteeBundle.version))
    ).all()
    members = sorted({b.email for b in found["bundles"]})
    downloads = session.exec(
        select(AuditEvent)
        .where(AuditEvent.action == "bundle.downloaded", col(AuditEvent.actor).in_(members))
        .order_by(col(AuditEvent.id))
    ).all()
    found["downloads"] = {
        (e.actor, (e.details or {}).get("version")): e.at
        for e in downloads
        if (e.details or {}).get("round") == round_id
    }
    found["letters"] = sum(
        int((e.details or {}).get("queued", 0))
        for e in session.exec(
            select(AuditEvent).where(
                AuditEvent.subject_type == "round",
                AuditEvent.subject_id == round_id,
                AuditEvent.action == "round.letters_sent",
            )
        ).all()
    )
    return found


def _page(desk: Desk, round_id: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    found = desk.read(lambda s: _gather(s, round_id, desk))
    meeting = found["meeting"]
    funds = meeting.funds_available if meeting else None
    currency = found["r"].currency
    return desk.page(
        "committee.html",
        status_code=status_code,
        funds=funds,
        left=None if funds is None else funds - found["approved"],
        money=lambda value: labels.money(value, currency, desk.language),
        decisions=[d.value for d in Decision],
        # the applications still to decide (none: the form has nothing to record)
        undecided=sum(1 for row in found["rows"] if row.decision is None or row.decision.decision is Decision.DEFERRED),
        gap=lambda g: labels.gap_words(
            g.kind, g.count, g.expected, report.REGIONS.get(g.region, "") if g.region else "", desk.language
        ),
        approvals=[d.value for d in APPROVALS],
        **found,
        **context,
    )


@page_route(router.get, "/rounds/{round_id}/committee", CONSOLE)
def committee(round_id: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """The committee's meeting, the decisions, the letters and the downloads."""
    return _page(desk, round_id, done=done)


def _day(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field} is not a date (YYYY-MM-DD)", [FieldError(path=f"$.{field}", message="not_date")]
        ) from None


def _money(text: str, field: str) -> Decimal:
    """An amount as the officer typed it, in their language's way (`250 000,00`,
    `250,000.00`), to the cent, as the API takes amounts (at most the largest the
    engine stores); refused, naming the field, otherwise."""
    try:
        return to_cents(read_amount(text))
    except ValueError:
        raise InvalidInput(
            f"{field} is not an amount (for example 250000 or 250000.00)",
            [FieldError(path=f"$.{field}", message="not_amount")],
        ) from None


def _act(desk: Desk, round_id: str, action: str, fn: Any, done: str) -> Response:
    try:
        desk.act(f"committee.{action}", "round", round_id, fn)
    except ServiceError as exc:
        return _page(desk, round_id, status_code=exc.http_status, refusal=refusal_of(exc), failed=action)
    return back_to(desk, f"/rounds/{round_id}/committee", done=done)


@page_route(router.post, "/rounds/{round_id}/committee/meeting", CONSOLE)
async def meeting(round_id: str, request: Request, desk: ActingDep) -> Response:
    """The meeting's dates and place."""
    form = await form_of(request)
    starts, ends, place = text_of(form, "starts_on", 20), text_of(form, "ends_on", 20), text_of(form, "place", 200)

    def go(session: Session) -> Any:
        start = _day(starts, "starts_on")
        if start is None:
            raise InvalidInput(
                "give the first day of the meeting", [FieldError(path="$.starts_on", message="first_day_missing")]
            )
        return committee_meeting.schedule_meeting(
            session, round_id, start, _day(ends, "ends_on"), place, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(_act, desk, round_id, "meeting", go, "meeting")


@page_route(router.post, "/rounds/{round_id}/committee/funds", CONSOLE)
async def funds(round_id: str, request: Request, desk: ActingDep) -> Response:
    """The funds available for the round's approvals."""
    form = await form_of(request)
    amount = text_of(form, "amount", 30)

    def go(session: Session) -> Any:
        return committee_meeting.set_funds(session, round_id, _money(amount, "amount"), actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_act, desk, round_id, "funds", go, "funds")


@page_route(router.post, "/rounds/{round_id}/committee/attendance", CONSOLE)
async def attendance(round_id: str, request: Request, desk: ActingDep) -> Response:
    """Who attends the meeting (the members serving on its date)."""
    form = await form_of(request)
    emails = [v for v in form.getlist("attendee") if isinstance(v, str)][:200]  # type: ignore[attr-defined]

    def go(session: Session) -> Any:
        return committee_meeting.set_attendees(session, round_id, emails, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_act, desk, round_id, "attendance", go, "attendance")


@page_route(router.post, "/rounds/{round_id}/committee/conflicts", CONSOLE)
async def conflict(round_id: str, request: Request, desk: ActingDep) -> Response:
    """A member's declared conflict of interest with an application: they take no part in its decision."""
    form = await form_of(request)
    reference, email, reason = (
        text_of(form, "reference", 60),
        text_of(form, "email", 320),
        text_of(form, "reason", 2000),
    )

    def go(session: Session) -> Any:
        return committee_meeting.declare_member_conflict(
            session, round_id, reference, email, reason, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(_act, desk, round_id, "conflict", go, "conflict")


@page_route(router.post, "/rounds/{round_id}/committee/decisions", CONSOLE)
async def decide(round_id: str, request: Request, desk: ActingDep) -> Response:
    """The committee's decisions: each application with a decision chosen is recorded; all
    of them, or none if one breaks a rule (every problem listed, beside its application)."""
    form = await form_of(request)
    references = [v for v in form.getlist("reference") if isinstance(v, str)][:2000]  # type: ignore[attr-defined]
    entered = {
        ref: {
            "decision": text_of(form, f"decision_{ref}", 40),
            "amount": text_of(form, f"amount_{ref}", 30),
            "conditions": text_of(form, f"conditions_{ref}", 5000),
        }
        for ref in references
    }

    def go(session: Session) -> Any:
        items: list[tuple[DecisionIn, str]] = []
        problems: list[FieldError] = []
        for ref, values in entered.items():
            if not values["decision"]:
                continue
            data: dict[str, Any] = {"reference": ref, "decision": values["decision"]}
            if values["amount"]:
                try:
                    data["amount"] = str(_money(values["amount"], f"{ref}: amount"))
                except InvalidInput as exc:
                    problems += [FieldError(path=f"{ref}: amount", message=e.message) for e in exc.errors]
                    continue
            if values["conditions"]:
                data["conditions"] = values["conditions"]
            try:
                items.append((DecisionIn.model_validate(data), ref))
            except ValidationError as exc:
                problems += [
                    FieldError(path=f"{ref}: {'.'.join(str(p) for p in e['loc'])}", message=e["msg"])
                    for e in exc.errors()
                ]
        if problems:
            raise InvalidInput(f"{len(problems)} problem(s); no decision was recorded", problems)
        if not items:
            raise InvalidInput(
                "choose a decision for at least one application",
                [FieldError(path="$.decisions", message="no_decision")],
            )
        return committee_decisions.record_decisions(session, round_id, items, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            desk.act("committee.decisions", "round", round_id, go)
        except ServiceError as exc:  # an unknown round: the page says so (404)
            return _page(
                desk,
                round_id,
                status_code=exc.http_status,
                refusal=refusal_of(exc),
                failed="decisions",
                entered=entered,
            )
        return back_to(desk, f"/rounds/{round_id}/committee", done="decisions")

    return await run_in_threadpool(run)


# --- downloads --------------------------------------------------------------------------

MEDIA = {".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".json": "application/json"}


@page_route(router.get, "/rounds/{round_id}/downloads/{name}", CONSOLE)
def download(round_id: str, name: str, desk: DeskDep) -> Response:
    """A file of the round, made now from the database, as `sip screen report` and
    `sip report` write it (so that the public lists' links to each other and to the open
    data hold once the files are saved together): the screening report, the round report,
    the public list in each language, and the 360Giving file (validated first)."""

    def make(session: Session) -> str | None:
        with tempfile.TemporaryDirectory() as folder:
            written: tuple[Path, ...]
            if name.startswith("screening-"):
                written = report.write_report(session, round_id, Path(folder))
            else:
                written = opendata.write_round_report(session, round_id, Path(folder), desk.rt.settings)
                if name == f"grants-{round_id}.json" and not (Path(folder) / name).exists():
                    opendata.grants_package(session, desk.rt.settings, round_id)  # refused: it says why
            found = next((path for path in written if path.name == name), None)
            return found.read_text(encoding="utf-8") if found else None

    if Path(name).suffix not in MEDIA or "/" in name:
        raise NotFound(f"there is no file {name!r} to download")
    try:
        content = desk.read(make)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        return _page(desk, round_id, status_code=exc.http_status, refusal=refusal_of(exc))
    if content is None:
        raise NotFound(f"there is no file {name!r} to download")
    return Response(
        content,
        media_type=MEDIA[Path(name).suffix],
        headers={**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )
