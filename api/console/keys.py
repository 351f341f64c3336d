"""The secretariat's API keys, for administrators: every key with its state, a new key
(shown once, on the page that made it), and revoking a key or every key of an officer."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, AdminDep, Desk, DeskDep, back_to, form_of, refusal_of
from api.pages import page_route
from domain.application import FieldError
from domain.keys import LONGEST_DAYS, KeyScope
from engine.services import keys
from engine.services.errors import InvalidInput, ServiceError

router = APIRouter()


def _page(desk: Desk, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    try:
        settings_keys = desk.rt.settings.secretariat_key_hashes()
    except ValueError:  # SIP_SECRETARIAT_KEYS is not as it should be: the API says so at start-up
        settings_keys = {}
    views = desk.read(lambda s: keys.list_keys(s, settings_keys, at=desk.now))
    return desk.page(
        "keys.html",
        status_code=status_code,
        keys=views,
        scopes=[s.value for s in KeyScope],
        default_days=desk.rt.settings.secretariat_key_days,
        longest=LONGEST_DAYS,
        **context,
    )


@page_route(router.get, "/keys", CONSOLE)
def key_list(desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """The API keys (administrators act on them; others see them)."""
    return _page(desk, done=done)


@page_route(router.post, "/keys", CONSOLE)
async def new_key(request: Request, desk: AdminDep) -> Response:
    """A new key for an officer or a program: shown once, on the answer to this form."""
    form = await form_of(request)
    name = str(form.get("name") or "").strip()[:200]
    scope = str(form.get("scope") or "")
    days = str(form.get("days") or "").strip()

    def go(session: Session) -> keys.NewKey:
        problems = []
        if not name:
            problems.append(FieldError(path="$.name", message="key_name_missing"))
        if scope not in {s.value for s in KeyScope}:
            problems.append(FieldError(path="$.scope", message="scope_missing"))
        if days and not (re.fullmatch(r"[0-9]{1,4}", days) and 1 <= int(days) <= LONGEST_DAYS):
            problems.append(FieldError(path="$.days", message="days_out_of_range"))
        if problems:
            raise InvalidInput("the key's form is not complete", problems)
        until = desk.now + timedelta(days=int(days) if days else desk.rt.settings.secretariat_key_days)
        return keys.create_key(session, name, scope=KeyScope(scope), expires_at=until, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            made = desk.act("key.new", "api_key", name or "?", go)
        except ServiceError as exc:
            return _page(desk, status_code=exc.http_status, refusal=refusal_of(exc))
        return _page(desk, status_code=201, made=made)  # the key is on this page only

    return await run_in_threadpool(run)


@page_route(router.post, "/keys/revoke", CONSOLE)
async def revoke(request: Request, desk: AdminDep) -> Response:
    """Revoke a key (its id) or every key of an officer (their name), for a reason."""
    form = await form_of(request)
    which = str(form.get("which") or "").strip()[:200]
    reason = str(form.get("reason") or "").strip()[:2000]

    def go(session: Session) -> Any:
        if not reason:
            raise InvalidInput("give the reason", [FieldError(path="$.reason", message="reason_missing")])
        return keys.revoke_keys(
            session,
            which,
            reason=reason,
            actor=desk.actor,
            at=desk.now,
            settings_keys=desk.rt.settings.secretariat_key_hashes(),
        )

    def run() -> Response:
        try:
            revoked = desk.act("key.revoke", "api_key", which or "?", go)
        except ServiceError as exc:
            return _page(desk, status_code=exc.http_status, refusal=refusal_of(exc))
        return back_to(desk, "/keys", done=f"revoked:{len(revoked)}")

    return await run_in_threadpool(run)
