"""The Global Mercury Partnership review: the register of reviewers (add, edit,
deactivate, load a CSV), and a round's assignment board (proposals with their reasons,
a reviewer added or taken off, never a conflicted one, a conflict recorded, the due
date moved), the reviews coming in and overdue, and their aggregation per application
with the disagreement flag. Proposing, inviting and closing the stage are the round's
stages (Prefect runs), started from here too."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, text_of, uploaded
from api.pages import page_route
from domain.application import FieldError
from domain.lifecycle import Role
from engine.services import rounds as round_service
from engine.services.errors import InvalidInput, ServiceError
from engine.services.review import assignment, invitations, register, views
from notifications import labels

router = APIRouter()
REGISTER_BYTES = 2_000_000
AREAS = list(labels.AREAS)


# --- the register -----------------------------------------------------------------------


@page_route(router.get, "/reviewers", CONSOLE)
def reviewers(desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """The register of GMP reviewers."""
    return _register(desk, done=done)


def _register(desk: Desk, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    return desk.page(
        "reviewers.html",
        status_code=status_code,
        reviewers=desk.read(register.list_reviewers),
        areas=AREAS,
        **context,
    )


@page_route(router.post, "/reviewers", CONSOLE)
async def set_reviewer(request: Request, desk: ActingDep) -> Response:
    """Add a reviewer, or change one (every field of the form; checked as the register checks them)."""
    form = await form_of(request)
    email = text_of(form, "email", 320)
    entered = {
        "email": email,
        "name": text_of(form, "name", 200),
        "organisation": text_of(form, "organisation", 300),
        "country": text_of(form, "country", 3).upper(),
        "areas": [v for v in form.getlist("areas") if isinstance(v, str)][:20],  # type: ignore[attr-defined]
        "languages": [v.strip() for v in text_of(form, "languages", 20).replace(";", ",").split(",") if v.strip()],
        "max_load": text_of(form, "max_load", 6),
    }

    def go(session: Session) -> Any:
        if not email:
            raise InvalidInput(
                "give the reviewer's e-mail address", [FieldError(path="$.email", message="email_missing")]
            )
        changes: dict[str, Any] = {k: v for k, v in entered.items() if k != "email" and v not in ("", [])}
        if "max_load" in changes:
            load = str(changes["max_load"])
            if not re.fullmatch(r"[0-9]{1,4}", load):
                raise InvalidInput(
                    "the maximum load is a whole number", [FieldError(path="$.max_load", message="not_number")]
                )
            changes["max_load"] = int(load)
        return register.set_reviewer(session, email, changes, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            _row, outcome = desk.act("reviewer.set", "reviewer", email or "?", go)
        except ServiceError as exc:
            return _register(desk, status_code=exc.http_status, refusal=refusal_of(exc), entered=entered)
        return back_to(desk, "/reviewers", done=outcome)

    return await run_in_threadpool(run)


@page_route(router.post, "/reviewers/active", CONSOLE)
async def activate(request: Request, desk: ActingDep) -> Response:
    """Deactivate a reviewer (out of future assignments; their links and sessions end), or take them back."""
    form = await form_of(request)
    email, active = text_of(form, "email", 320), text_of(form, "active", 5) == "yes"

    def run() -> Response:
        try:
            desk.act(
                "reviewer.active",
                "reviewer",
                email,
                lambda s: register.set_reviewer(s, email, {}, active=active, actor=desk.actor, at=desk.now),
            )
        except ServiceError as exc:
            return _register(desk, status_code=exc.http_status, refusal=refusal_of(exc))
        return back_to(desk, "/reviewers", done="activated" if active else "deactivated")

    return await run_in_threadpool(run)


@page_route(router.post, "/reviewers/file", CONSOLE)
async def load(request: Request, desk: ActingDep) -> Response:
    """Load the register from a CSV file (name, email, organisation, country, areas,
    languages, max_load): every row checked first; reviewers not in the file stay."""
    raw, name = await uploaded(request, REGISTER_BYTES, "the register")

    def go(session: Session) -> dict[str, int]:
        if not raw or len(raw) > REGISTER_BYTES:
            raise InvalidInput(
                "choose the register's CSV file", [FieldError(path="$.file", message="register_missing")]
            )
        found = register.parse_reviewers(raw.decode("utf-8-sig", errors="replace"), name)
        return register.load_reviewers(session, found, source=name, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            counts = desk.act("reviewer.load", "register", name, go)
        except ServiceError as exc:
            return _register(desk, status_code=exc.http_status, refusal=refusal_of(exc))
        return back_to(desk, "/reviewers", done=f"loaded:{counts.get('added', 0)}:{counts.get('updated', 0)}")

    return await run_in_threadpool(run)


# --- a round's review -------------------------------------------------------------------


@page_route(router.get, "/rounds/{round_id}/review", CONSOLE)
def review(round_id: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """The assignment board and the reviews of the round."""
    return _board(desk, round_id, done=done)


def _board(desk: Desk, round_id: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    def gather(session: Session) -> dict[str, Any]:
        row = round_service.get_round(session, round_id)
        view = desk.round(row)
        found: dict[str, Any] = {"r": view, "lines": [], "stage": None, "board_problem": None}
        try:
            found["lines"] = assignment.assignment_view(session, round_id)
            found["stage"] = views.review_stage_view(session, round_id)
        except ServiceError as exc:  # a round without GMP review, or not screened yet
            found["board_problem"] = exc.message
        found["register"] = [r for r in register.list_reviewers(session) if r.active]
        found["technical"] = {c.id: c for c in round_service.definition_of(row).review.criteria}
        return found

    found = desk.read(gather)
    stage = found["stage"]
    today = desk.now.astimezone(ZoneInfo(found["r"].timezone)).date()
    overdue = bool(stage and stage.stage and stage.stage.closed_at is None and today > stage.stage.due_on)
    technical = found.pop("technical")
    return desk.page(
        "review.html",
        status_code=status_code,
        overdue=overdue,
        # a technical criterion in the officer's language, where the round file gives it
        criterion=lambda c: technical[c.id].title_in(desk.language) if c.id in technical else c.title,
        **found,
        **context,
    )


def _act(desk: Desk, round_id: str, action: str, subject: str, fn: Any, done: str) -> Response:
    try:
        desk.act(f"review.{action}", "application", subject, fn)
    except ServiceError as exc:
        return _board(desk, round_id, status_code=exc.http_status, refusal=refusal_of(exc))
    return back_to(desk, f"/rounds/{round_id}/review", done=done)


@page_route(router.post, "/rounds/{round_id}/review/reviewers", CONSOLE)
async def add(round_id: str, request: Request, desk: ActingDep) -> Response:
    """Put a reviewer on an application (never one with a conflict of interest: the refusal says why)."""
    form = await form_of(request)
    reference, email = text_of(form, "reference", 60), text_of(form, "email", 320)

    def go(session: Session) -> Any:
        return assignment.add_reviewer(session, round_id, reference, email, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_act, desk, round_id, "add", reference, go, "added")


@page_route(router.post, "/rounds/{round_id}/review/removal", CONSOLE)
async def remove(round_id: str, request: Request, desk: ActingDep) -> Response:
    """Take a reviewer off an application, for a reason (not once their review is submitted)."""
    return await _with_reason(request, desk, round_id, "remove", "removed", assignment.remove_reviewer)


@page_route(router.post, "/rounds/{round_id}/review/conflicts", CONSOLE)
async def conflict(round_id: str, request: Request, desk: ActingDep) -> Response:
    """Record a reviewer's conflict of interest with an application (they come off it)."""

    def record(session: Session, round_id: str, reference: str, email: str, **kw: Any) -> Any:
        return assignment.record_conflict(session, round_id, reference, email, role=Role.SECRETARIAT, **kw)

    return await _with_reason(request, desk, round_id, "conflict", "conflict", record)


async def _with_reason(request: Request, desk: Desk, round_id: str, action: str, done: str, service: Any) -> Response:
    """A reviewer and an application, and what the secretariat does to the pair for a reason."""
    form = await form_of(request)
    reference, email, reason = text_of(form, "reference", 60), text_of(form, "email", 320), text_of(form, "reason")

    def go(session: Session) -> Any:
        if not reason:
            raise InvalidInput("give the reason", [FieldError(path="$.reason", message="reason_missing")])
        return service(session, round_id, reference, email, reason=reason, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_act, desk, round_id, action, reference, go, done)


@page_route(router.post, "/rounds/{round_id}/review/due", CONSOLE)
async def due(round_id: str, request: Request, desk: ActingDep) -> Response:
    """Move the day the reviews are due (the reminders follow it)."""
    form = await form_of(request)
    text = text_of(form, "due", 20)

    def go(session: Session) -> Any:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidInput("the due date is not a date", [FieldError(path="$.due", message="not_date")]) from None
        return invitations.extend(session, round_id, day, actor=desk.actor, at=desk.now)

    return await run_in_threadpool(_act, desk, round_id, "due", round_id, go, "due")
