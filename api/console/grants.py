"""A round's grants in the console: each grant's state and money, and on its page the
committee's conditions, the agreement's signatures, the instalments and the payments,
with what the secretariat records there (a signature with its PDF, a condition met, a
payment). Thin over engine/services/grants.py, as `sip grants` is."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.application_form import read_amount
from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, text_of, uploaded
from api.pages import page_route
from domain.application import FieldError
from domain.grants import SIGNED_FILE_BYTES
from domain.money import to_cents
from engine.services import grants as grant_service
from engine.services import rounds as round_service
from engine.services.errors import InvalidInput, NotFound, ServiceError
from engine.services.parties import party_names
from engine.tables import GrantInstalment, GrantPayment, GrantSignature
from notifications import labels

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
        }

    found = desk.read(gather)
    return desk.page(
        "grant.html",
        status_code=status_code,
        money=lambda value: labels.money(value, found["r"].currency, desk.language),
        today=desk.now.date().isoformat(),
        # the largest signed file this page takes: the grant's limit, or the server's request limit if smaller
        max_mb=min(SIGNED_FILE_BYTES, desk.rt.settings.body_limit) // 1_000_000,
        **found,
        **context,
    )


@page_route(router.get, "/rounds/{round_id}/grants/{reference}", CONSOLE)
def grant(round_id: str, reference: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """A grant: its conditions, the agreement's signatures, its instalments and payments."""
    return _page(desk, round_id, reference, done=done)


def _day(text: str, field: str, default: date) -> date:
    if not text:
        return default
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
            session, reference, kind=kind, signer=signer, signed_on=_day(on, "signed_on", desk.now.date()),
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
        try:
            value: Decimal = to_cents(read_amount(amount))
        except ValueError:
            raise InvalidInput("the amount is not one", [FieldError(path="$.amount", message="not_amount")]) from None
        return grant_service.pay(
            session, reference, value, finance_ref=ref, paid_on=_day(on, "paid_on", desk.now.date()), actor=desk.actor,
            at=desk.now,
        )  # fmt: skip

    return await run_in_threadpool(_do, desk, round_id, reference, "pay", go, "paid")
