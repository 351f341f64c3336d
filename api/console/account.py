"""Signing in and out of the console, the second factor, and the accounts (administrators)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.attempts import AttemptDep
from api.console.base import (
    CONSOLE,
    COOKIE,
    ActingDep,
    AdminDep,
    DeskDep,
    OwnFormDep,
    back_to,
    console_language,
    console_path,
    refusal_of,
    render,
    safe_next,
)
from api.deps import NowDep, RuntimeDep
from api.pages import PAGE_HEADERS, page_route, secure_cookies
from domain.lifecycle import Role
from domain.staff import StaffRole
from engine.db import unit_of_work
from engine.services import console_sessions, staff
from engine.services.errors import ServiceError, Unauthorized
from engine.services.setup import Runtime

router = APIRouter()


def _set_session(answer: Response, request: Request, rt: Runtime, token: str, seconds: int) -> None:
    answer.set_cookie(
        COOKIE,
        token,
        max_age=max(seconds, 0),
        path=console_path(request, rt),
        secure=secure_cookies(request, rt.settings),
        httponly=True,
        samesite="strict",
    )


def _drop_session(answer: Response, request: Request, rt: Runtime) -> None:
    answer.delete_cookie(
        COOKIE, path=console_path(request, rt), secure=secure_cookies(request, rt.settings), httponly=True,
        samesite="strict",
    )  # fmt: skip


@page_route(router.get, "/sign-in", CONSOLE)
def sign_in_page(
    request: Request, rt: RuntimeDep, next: str | None = None, ended: str | None = None, out: str | None = None
) -> HTMLResponse:
    """The console's sign-in form (where any page leads without a session)."""
    return render(
        request,
        rt,
        "sign_in.html",
        console_language(request),
        next=safe_next(next, console_path(request, rt)),
        ended=ended == "1",
        request_out=out == "1",
    )


@page_route(router.post, "/sign-in", CONSOLE)
def sign_in(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Check the address and password; then the second factor's page, or the console."""
    language = console_language(request)
    console = console_path(request, rt)
    target = safe_next(next, console)
    try:
        found = staff.sign_in(rt.engine, email, password, at=now)  # audited, refused or not
    except Unauthorized as exc:
        if exc.actor is None:  # an address with no account: counted against the source, sampled
            attempt.refused(
                rt.engine, exc, role=Role.SECRETARIAT, action="staff.sign_in", subject_type="staff",
                subject_id="console",
            )  # fmt: skip
        else:  # an account's: audited under it already, and counted against the source alike (the
            # limit then says nothing of which addresses have accounts)
            attempt.guard.hit(attempt.guard.failed_attempts, "failed", attempt.source)
        return render(
            request, rt, "sign_in.html", language, status_code=401, next=target, refused=True, email=email[:320]
        )
    with unit_of_work(rt.engine) as session:
        opened = console_sessions.open_session(session, found, rt.settings, at=now)
    where = target if opened.verified else console + "/second-factor?next=" + quote(target, safe="/")
    answer = RedirectResponse(where, status_code=303, headers=PAGE_HEADERS)
    _set_session(answer, request, rt, opened.token, int((opened.expires_at - now).total_seconds()))
    return answer


@page_route(router.get, "/second-factor", CONSOLE)
def second_factor_page(request: Request, rt: RuntimeDep, now: NowDep, next: str | None = None) -> Response:
    """The code of the officer's authenticator app, after their password."""
    console = console_path(request, rt)
    try:
        with unit_of_work(rt.engine) as session:
            console_sessions.waiting_for_code(session, request.cookies.get(COOKIE), rt.settings, at=now)
    except Unauthorized:
        return RedirectResponse(console + "/sign-in?ended=1", status_code=303, headers=PAGE_HEADERS)
    return render(request, rt, "second_factor.html", console_language(request), next=safe_next(next, console))


@page_route(router.post, "/second-factor", CONSOLE)
def second_factor(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,  # a source past its refused attempts waits (429) before its code is looked at
    code: Annotated[str, Form(max_length=20)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    console = console_path(request, rt)
    token = request.cookies.get(COOKIE)
    try:
        with unit_of_work(rt.engine) as session:
            result = console_sessions.give_code(session, token, code, rt.settings, at=now)
    except Unauthorized:
        return RedirectResponse(console + "/sign-in?ended=1", status_code=303, headers=PAGE_HEADERS)
    if isinstance(result, Unauthorized):
        attempt.guard.hit(attempt.guard.failed_attempts, "failed", attempt.source)  # the source's count too
        language = console_language(request)
        target = safe_next(next, console)
        return render(request, rt, "second_factor.html", language, status_code=401, next=target, refused=True)
    answer = RedirectResponse(safe_next(next, console), status_code=303, headers=PAGE_HEADERS)
    _set_session(answer, request, rt, result.token, int((result.expires_at - now).total_seconds()))
    return answer


@page_route(router.post, "/sign-out", CONSOLE)
def sign_out(desk: OwnFormDep, request: Request, rt: RuntimeDep, now: NowDep) -> Response:
    """Sign out (a read-only account too): the session stops working at once."""
    with unit_of_work(rt.engine) as session:
        console_sessions.end_session(session, desk.token, rt.settings, at=now)
    answer = RedirectResponse(console_path(request, rt) + "/sign-in?out=1", status_code=303, headers=PAGE_HEADERS)
    _drop_session(answer, request, rt)
    return answer


# --- the officer's own account: the second factor -----------------------------------------


@page_route(router.get, "/account", CONSOLE)
def account(desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """The officer's account: their role, and the second factor (set it up, or turn it off)."""
    secret = console_sessions.new_secret()
    return desk.page(
        "account.html",
        secret=secret,
        uri=console_sessions.provisioning_uri(secret, desk.staff.email),
        done=done,
    )


@page_route(router.post, "/account/second-factor", CONSOLE)
def turn_on(
    desk: OwnFormDep,
    secret: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
    off: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Turn the second factor on (with a right code from the app) or off. Any role may:
    it is the officer's own account."""
    try:
        if off == "yes":
            turned = desk.act(
                "second_factor_off",
                "staff",
                desk.actor,
                lambda s: console_sessions.turn_off_own_second_factor(
                    s, desk.actor, code, desk.rt.settings, at=desk.now
                ),
            )
            if isinstance(turned, ServiceError):  # a wrong code, counted and audited: said on the page
                raise turned
            return back_to(desk, "/account", done="off")
        desk.act(
            "second_factor_on",
            "staff",
            desk.actor,
            lambda s: console_sessions.turn_on_second_factor(
                s, desk.actor, secret, code, desk.rt.settings, at=desk.now
            ),
        )
    except ServiceError as exc:
        return desk.page(
            "account.html",
            status_code=exc.http_status,
            secret=secret,
            uri=console_sessions.provisioning_uri(secret, desk.actor),
            refusal=refusal_of(exc),
        )
    return back_to(desk, "/account", done="on")


# --- the accounts (administrators) --------------------------------------------------------


@page_route(router.get, "/staff", CONSOLE)
def accounts(desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """Every account, its role, its state; an administrator adds and disables them."""
    return desk.page("staff.html", accounts=desk.read(staff.list_staff), roles=list(StaffRole), done=done)


@page_route(router.post, "/staff", CONSOLE)
def add_account(
    desk: AdminDep,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=10)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        chosen = StaffRole(role)
        desk.act(
            "staff_add",
            "staff",
            email,
            lambda s: staff.add_staff(s, email, name, chosen, password, actor=desk.actor, at=desk.now),
        )
    except ValueError:
        return _accounts_refused(desk, "choose a role", "role_missing", "role", 422, email, name)
    except ServiceError as exc:
        return desk.page(
            "staff.html",
            status_code=exc.http_status,
            accounts=desk.read(staff.list_staff),
            roles=list(StaffRole),
            refusal=refusal_of(exc),
            entered={"email": email, "name": name, "role": role},
        )
    return back_to(desk, "/staff", done="added")


def _accounts_refused(
    desk: ActingDep, message: str, problem: str, field: str, status: int, email: str, name: str
) -> HTMLResponse:
    return desk.page(
        "staff.html",
        status_code=status,
        accounts=desk.read(staff.list_staff),
        roles=list(StaffRole),
        refusal={"message": message, "fields": [(field, problem)]},
        entered={"email": email, "name": name, "role": ""},
    )


@page_route(router.post, "/staff/disable", CONSOLE)
def disable_account(desk: AdminDep, email: Annotated[str, Form(max_length=320)] = "") -> Response:
    if email.strip().lower() == desk.actor:
        return _accounts_refused(desk, "you cannot disable your own account", "own_account", "email", 409, "", "")
    desk.act("staff_disable", "staff", email, lambda s: staff.disable_staff(s, email, actor=desk.actor, at=desk.now))
    return back_to(desk, "/staff", done="disabled")


@page_route(router.post, "/staff/second-factor-off", CONSOLE)
def reset_second_factor(desk: AdminDep, email: Annotated[str, Form(max_length=320)] = "") -> Response:
    """For an officer who lost their phone: they sign in with their password, and set a new one up."""
    desk.act(
        "second_factor_off",
        "staff",
        email,
        lambda s: console_sessions.turn_off_second_factor(s, email.strip().lower(), actor=desk.actor, at=desk.now),
    )
    return back_to(desk, "/staff", done="reset")
