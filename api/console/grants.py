"""A round's grants in the console: each grant's state and money, and on its page the
committee's conditions, the agreement's signatures, the instalments and the payments,
the reports, the amendments and the close-out, with what the secretariat records there
(a signature with its PDF, a condition met, a payment, a report received, accepted or
sent back, an amendment, the balance returned or written off, the lessons, the close).
Thin over engine/services/grants.py, grant_reports.py and grant_changes.py, as `sip
grants` is."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.application_form import read_amount
from api.common import Number
from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, text_of, uploaded
from api.grant_report_form import report_from_fields
from api.pages import page_route
from domain.application import BUDGET_CATEGORIES, FieldError
from domain.grants import SIGNED_FILE_BYTES
from domain.lifecycle import Role
from domain.money import to_cents
from engine.services import agreements, grant_changes, grant_reports, report_reviews
from engine.services import grants as grant_service
from engine.services import rounds as round_service
from engine.services.errors import InvalidInput, NotFound, ServiceError
from engine.services.parties import party_names
from engine.tables import Application, GrantInstalment, GrantPayment, GrantSignature, ReviewerRecord
from notifications import labels
from notifications.render import first_of_month

router = APIRouter()


@page_route(router.get, "/rounds/{round_id}/grants", CONSOLE)
def grants(round_id: str, desk: DeskDep) -> HTMLResponse:
    """The round's grants: state, award, released, paid, balance."""

    def gather(session: Session) -> dict[str, Any]:
        row = round_service.get_round(session, round_id)
        lines = grant_service.list_grants(session, round_id)
        return {"r": desk.round(row), "lines": lines, "names": party_names(session, {g.party for g in lines})}

    found = desk.read(gather)
    return desk.page(
        "grants.html",
        r=found["r"],
        lines=found["lines"],
        party=lambda code: found["names"].name(code, desk.language),
        money=lambda value: labels.money(value, found["r"].currency, desk.language),
    )


def _page(desk: Desk, round_id: str, reference: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    def gather(session: Session) -> dict[str, Any]:
        row = round_service.get_round(session, round_id)
        grant = grant_service.grant_of(session, reference)
        if grant.round_id != round_id:
            raise NotFound(f"no grant {reference} in round {round_id}")
        return {
            "r": desk.round(row),
            "g": grant,
            "line": grant_service.line_of(session, grant),
            "instalments": session.exec(
                select(GrantInstalment)
                .where(GrantInstalment.grant_id == grant.id)
                .order_by(col(GrantInstalment.number))
            ).all(),
            "payments": session.exec(
                select(GrantPayment).where(GrantPayment.grant_id == grant.id).order_by(col(GrantPayment.id))
            ).all(),
            "signatures": session.exec(
                select(GrantSignature).where(GrantSignature.grant_id == grant.id).order_by(col(GrantSignature.id))
            ).all(),
            "party": party_names(session, {grant.party}).name(grant.party, desk.language),
            "agreement": agreements.latest_agreement(session, desk.rt.settings, reference),
            "expert_reviews": report_reviews.reviews_of(session, grant),
            "experts": session.exec(
                select(ReviewerRecord.email, ReviewerRecord.name)
                .where(ReviewerRecord.active == True)  # noqa: E712 - SQL
                .order_by(col(ReviewerRecord.name))
            ).all(),
            "reports": grant_service.reports_of(session, grant),
            "amendments": grant_changes.list_amendments(session, reference),
            "close": grant_changes.close_out(session, reference),
            "outputs": (
                (application.form_a if (application := session.get(Application, grant.application_id)) else None) or {}
            ).get("outputs")
            or [],
            "budget": grant_reports.budget_of(grant),
            "categories": BUDGET_CATEGORIES,
            "today_date": desk.now.astimezone(round_service.definition_of(row).zone).date(),
        }

    found = desk.read(gather)
    money = lambda value: labels.money(Decimal(str(value)), found["r"].currency, desk.language)  # noqa: E731
    indicators = {
        (str(o.get("id")), n): text for o in found["outputs"] for n, text in enumerate(o.get("indicators") or [], 1)
    }
    return desk.page(
        "grant.html",
        status_code=status_code,
        money=money,
        indicator=lambda output, number: indicators.get((str(output), number), str(number)),
        change=lambda values: _change_text(values, money, desk.language),
        today=desk.now.date().isoformat(),
        # the largest signed file this page takes: the grant's limit, or the server's request limit if smaller
        max_mb=min(SIGNED_FILE_BYTES, desk.rt.settings.body_limit) // 1_000_000,
        **found,
        **context,
    )


def _change_text(values: dict[str, Any], money: Any, language: str) -> str:
    """What an amendment changes from or to, as a person reads it."""
    if "ends_on" in values:
        day = date.fromisoformat(values["ends_on"])
        return first_of_month(format_date(day, format="long", locale=language), day.day, language)
    if "budget" in values:
        return "; ".join(f"{labels.code(c, language)} {money(a)}" for c, a in values["budget"].items())
    if "contact" in values:
        contact = values["contact"] or {}
        return f"{contact['name']} <{contact['email']}>" if contact else "—"
    return str(values.get("executing_agency") or "—")


@page_route(router.get, "/rounds/{round_id}/grants/{reference}", CONSOLE)
def grant(round_id: str, reference: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """A grant: its conditions, the agreement's signatures, its instalments and payments."""
    return _page(desk, round_id, reference, done=done)


def _day(text: str, field: str) -> date | None:
    """A day typed in a form; None when left blank (the service takes today where the round is)."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} is not a date", [FieldError(path=f"$.{field}", message="not_date")]) from None


def _do(desk: Desk, round_id: str, reference: str, action: str, fn: Any, done: str) -> Response:
    def checked(session: Session) -> Any:
        if grant_service.grant_of(session, reference).round_id != round_id:
            raise NotFound(f"no grant {reference} in round {round_id}")
        return fn(session)

    try:
        desk.act(f"grant.{action}", "grant", reference, checked)
    except ServiceError as exc:  # an unknown grant: its page says so (404)
        return _page(desk, round_id, reference, status_code=exc.http_status, refusal=refusal_of(exc), failed=action)
    return back_to(desk, f"/rounds/{round_id}/grants/{reference}", done=done)


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/signatures", CONSOLE)
async def sign(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """A signature of the agreement (the recipient's, then the secretariat's), with its signed PDF."""
    form = await form_of(request)
    content, name = await uploaded(request, SIGNED_FILE_BYTES, "")
    kind, signer, on = text_of(form, "kind", 20), text_of(form, "signer", 200), text_of(form, "signed_on", 20)

    def go(session: Session) -> Any:
        return grant_service.record_signature(
            session, reference, kind=kind, signer=signer, signed_on=_day(on, "signed_on"),
            file_name=name or "agreement.pdf", content=content, actor=desk.actor, at=desk.now,
        )  # fmt: skip

    return await run_in_threadpool(_do, desk, round_id, reference, "sign", go, "signed")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/conditions", CONSOLE)
async def condition(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """One of the committee's conditions met, with its evidence."""
    form = await form_of(request)
    number, evidence = text_of(form, "number", 3), text_of(form, "evidence", 2000)

    def go(session: Session) -> Any:
        which = int(number) if number.isascii() and number.isdigit() else 0
        return grant_service.meet_condition(session, reference, which, evidence, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_do, desk, round_id, reference, "condition", go, "condition")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/payments", CONSOLE)
async def payment(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """A payment, as the finance office made it."""
    form = await form_of(request)
    amount, ref, on = text_of(form, "amount", 30), text_of(form, "finance_ref", 100), text_of(form, "paid_on", 20)

    def go(session: Session) -> Any:
        return grant_service.pay(
            session, reference, _amount(amount, "amount"), finance_ref=ref, paid_on=_day(on, "paid_on"),
            actor=desk.actor, at=desk.now,
        )  # fmt: skip

    return await run_in_threadpool(_do, desk, round_id, reference, "pay", go, "paid")


def _amount(text: str, field: str) -> Decimal:
    try:
        return to_cents(read_amount(text))
    except ValueError:
        raise InvalidInput(f"{field} is not an amount", [FieldError(path=f"$.{field}", message="not_amount")]) from None


def _report_of(form: Any, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """A report as the console's form sends it (the recipient's report page's fields): an
    indicator left blank is left out, for the engine to name; an amount that is not one is
    refused here."""
    names = ["narrative", *(f"spent-{c}" for c in BUDGET_CATEGORIES)] + [
        f"progress-{place}-{n}"
        for place, output in enumerate(outputs, 1)
        for n, _ in enumerate(output.get("indicators") or [], 1)
    ]
    problems, data = report_from_fields({name: text_of(form, name, 20_000) for name in names}, outputs)
    amounts = [p["field"].removeprefix("spent-") for p in problems if p["kind"] == "amount"]
    if amounts:
        raise InvalidInput(
            "an amount is not one", [FieldError(path=f"$.spending.{c}", message="not_amount") for c in amounts]
        )
    return {**data, "indicators": [i for i in data["indicators"] if i["progress"]]}


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/reports/{number}", CONSOLE)
async def report(round_id: str, reference: str, number: Number, request: Request, desk: ActingDep) -> Response:
    """A report the recipient sent, typed in from their document."""
    form = await form_of(request)

    def go(session: Session) -> Any:
        grant = grant_service.grant_of(session, reference)
        application = session.get(Application, grant.application_id)
        outputs = ((application.form_a if application else None) or {}).get("outputs") or []
        return grant_reports.submit_report(
            session, reference, number, _report_of(form, outputs), actor=desk.actor, role=Role.SECRETARIAT,
            at=desk.now,
        )  # fmt: skip

    return await run_in_threadpool(_do, desk, round_id, reference, "report", go, "reported")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/reports/{number}/decision", CONSOLE)
async def report_decision(round_id: str, reference: str, number: Number, request: Request, desk: ActingDep) -> Response:
    """A submitted report accepted, or sent back with the reasons."""
    form = await form_of(request)
    decision, words = text_of(form, "decision", 10), text_of(form, "reasons", 5000)

    def go(session: Session) -> Any:
        if decision not in ("accept", "revise"):
            raise InvalidInput("choose a decision", [FieldError(path="$.decision", message="decision_missing")])
        if decision == "accept":
            return grant_reports.accept_report(session, reference, number, note=words, actor=desk.actor, at=desk.now)
        if not words:
            raise InvalidInput(
                "say why the report is sent back", [FieldError(path="$.reasons", message="reason_missing")]
            )
        return grant_reports.ask_revision(
            session, desk.rt.settings, reference, number, words, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(
        _do, desk, round_id, reference, "report_decision", go, "accepted" if decision == "accept" else "sent_back"
    )


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/amendments", CONSOLE)
async def amend(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """An amendment the secretariat records and approves: an extension, a reallocation, a
    new contact or executing agency."""
    form = await form_of(request)
    kind, reason = text_of(form, "kind", 20), text_of(form, "reason", 5000)

    def go(session: Session) -> Any:
        change: dict[str, Any]
        if kind == "extension":
            ends_on = _day(text_of(form, "ends_on", 20), "ends_on")
            if ends_on is None:
                raise InvalidInput("give the new end date", [FieldError(path="$.ends_on", message="end_missing")])
            change = {"ends_on": ends_on}
        elif kind == "reallocation":
            budget = grant_reports.budget_of(grant_service.grant_of(session, reference))
            change = {"budget": {c: _amount(v, f"budget.{c}") for c in sorted(set(budget) | set(BUDGET_CATEGORIES))
                                 if (v := text_of(form, f"budget-{c}", 30))}}  # fmt: skip
        elif kind == "contact":
            contact = {"name": text_of(form, "contact_name", 300), "email": text_of(form, "contact_email", 320)}
            change = {"contact": {**contact, "language": text_of(form, "contact_language", 2) or "en"}}
        else:
            change = {"executing_agency": text_of(form, "executing_agency", 300)}
        if not reason:
            raise InvalidInput("give the reason", [FieldError(path="$.reason", message="reason_missing")])
        line = grant_changes.request_amendment(
            session, reference, kind, change, reason, actor=desk.actor, role=Role.SECRETARIAT, at=desk.now
        )
        return grant_changes.decide_amendment(
            session, reference, line.number, True, reason, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "amend", go, "amended")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/amendments/{number}/decision", CONSOLE)
async def amendment_decision(
    round_id: str, reference: str, number: Number, request: Request, desk: ActingDep
) -> Response:
    """An amendment the recipient asked for, approved or refused with the reason."""
    form = await form_of(request)
    decision, reason = text_of(form, "decision", 10), text_of(form, "reason", 5000)

    def go(session: Session) -> Any:
        if decision not in ("approve", "refuse"):
            raise InvalidInput("choose a decision", [FieldError(path="$.decision", message="decision_missing")])
        if not reason:
            raise InvalidInput("give the reason", [FieldError(path="$.reason", message="reason_missing")])
        return grant_changes.decide_amendment(
            session, reference, number, decision == "approve", reason, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "amendment_decision", go, "decided")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/settlements", CONSOLE)
async def settlement(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """Unspent money returned (with the finance reference) or written off (with the reason)."""
    form = await form_of(request)
    kind, amount = text_of(form, "kind", 20), text_of(form, "amount", 30)
    ref, why, on = text_of(form, "finance_ref", 100), text_of(form, "reason", 2000), text_of(form, "settled_on", 20)

    def go(session: Session) -> Any:
        return grant_changes.settle(
            session, reference, kind, _amount(amount, "amount"), settled_on=_day(on, "settled_on"),
            finance_ref=ref or None, reason=why or None, actor=desk.actor, at=desk.now,
        )  # fmt: skip

    return await run_in_threadpool(_do, desk, round_id, reference, "settle", go, "settled")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/lessons", CONSOLE)
async def lessons(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """What the project taught, kept with the grant."""
    form = await form_of(request)
    text = text_of(form, "lessons", 20_000)

    def go(session: Session) -> Any:
        return grant_changes.record_lessons(session, reference, text, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_do, desk, round_id, reference, "lessons", go, "lessons")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/closure", CONSOLE)
async def closure(round_id: str, reference: str, desk: ActingDep) -> Response:
    """The grant closed: its final report accepted, its balance settled, its lessons recorded."""

    def go(session: Session) -> Any:
        return grant_changes.close(session, reference, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_do, desk, round_id, reference, "close", go, "closed")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/agreement", CONSOLE)
async def send_agreement(round_id: str, reference: str, desk: ActingDep) -> Response:
    """The agreement made in the recipient's language and sent with their personal link."""

    def go(session: Session) -> Any:
        return agreements.send_agreement(session, desk.rt.settings, reference, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_do, desk, round_id, reference, "send_agreement", go, "agreement")


@page_route(router.get, "/rounds/{round_id}/grants/{reference}/agreement", CONSOLE)
def read_agreement(round_id: str, reference: str, desk: DeskDep, format: str = "html") -> Response:  # noqa: A002
    """The latest version of the agreement as it was sent (HTML, or PDF)."""
    from api.grants import agreement_file

    def find(session: Session) -> agreements.AgreementLine:
        if grant_service.grant_of(session, reference).round_id != round_id:
            raise NotFound(f"no grant {reference} in round {round_id}")
        line = agreements.latest_agreement(session, desk.rt.settings, reference)
        if line is None:
            raise NotFound(f"no agreement of {reference} was sent yet")
        return line

    return agreement_file(desk.read(find), "pdf" if format == "pdf" else "html")


@page_route(router.post, "/rounds/{round_id}/grants/{reference}/reports/{number}/expert", CONSOLE)
async def ask_expert(round_id: str, reference: str, number: Number, request: Request, desk: ActingDep) -> Response:
    """A GMP expert of the register asked to review a submitted report (no conflict, within their load)."""
    form = await form_of(request)
    email = text_of(form, "email", 320)

    def go(session: Session) -> Any:
        if not email:
            raise InvalidInput("choose the reviewer", [FieldError(path="$.email", message="email_missing")])
        return report_reviews.ask_review(
            session, desk.rt.settings, reference, number, email, actor=desk.actor, at=desk.now
        )

    return await run_in_threadpool(_do, desk, round_id, reference, "ask_expert", go, "expert")
