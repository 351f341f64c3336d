"""What every page of the secretariat's console shares: the officer's session (an HttpOnly
cookie under /console), the language of the pages, the token every form carries, the
roles' limits, and the pages' rendering.

- A page opened without a working session leads to the sign-in form, which brings the
  officer back to it; a form sent without one is refused (401), audited.
- Every form carries a token derived from the session's own (HMAC with the engine's
  secret key): a form from another site, or from a session that ended, is refused (403).
- A read-only account sees every page and can do nothing; only an administrator manages
  accounts. Refusals are audited under the officer's address, as their actions are."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.attempts import AttemptDep
from api.deps import NowDep, RuntimeDep
from api.pages import FORM_FIELDS, FORMS, LANGUAGE_NAMES, PAGE_HEADERS, PersonPage, browser_language, site_root
from domain.application import FieldError
from domain.lifecycle import Role
from domain.staff import StaffRole, may_act
from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.console_sessions import signed_in
from engine.services.errors import Forbidden, InvalidInput, ServiceError, Unauthorized
from engine.services.rounds import RoundView, definition_of
from engine.services.setup import Runtime
from engine.services.staff import StaffView
from engine.tables import Round
from notifications import LANGUAGES, labels
from notifications.render import PAGES, environment

#: The officer's session cookie, and the language they chose on the console's pages.
COOKIE = "sip_console_session"
LANGUAGE_COOKIE = "sip_console_lang"
T = TypeVar("T")


async def _note_language(request: Request) -> None:
    """The page's language for its error page: chosen on the page (its address or its
    form), else kept from an earlier choice (a cookie)."""
    lang = request.query_params.get("lang")
    if lang is None and request.headers.get("content-type", "").startswith(FORMS):
        value = (await request.form(max_fields=FORM_FIELDS)).get("lang")
        lang = value if isinstance(value, str) else None
    request.state.page_language = lang or request.cookies.get(LANGUAGE_COOKIE)


#: The console's pages: their errors are pages in the officer's language, leading back to the console.
CONSOLE = PersonPage(dependency=_note_language, back="/console/")


class SignInFirst(Exception):
    """A page opened without a working session: the answer is the sign-in form, which
    comes back to `next` once signed in."""

    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


def console_language(request: Request) -> str:
    """English unless the officer chose another (on this page or its form, or before), or their browser asks for it."""
    noted = getattr(request.state, "page_language", None)  # the page's address or form, else the cookie
    for candidate in (request.query_params.get("lang"), noted, request.cookies.get(LANGUAGE_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    return browser_language(request) or "en"


def root_of(request: Request, rt: Runtime) -> str:
    return site_root(request, rt.settings)


def console_path(request: Request, rt: Runtime) -> str:
    return root_of(request, rt) + "/console"


def form_token(rt: Runtime, session_token: str) -> str:
    """The token every form of a session carries."""
    return hmac.new(rt.settings.key(), b"console-form:" + session_token.encode(), hashlib.sha256).hexdigest()


def safe_next(value: str | None, console: str) -> str:
    """Where to go after signing in: a page of the console only (never another site)."""
    if not value:
        return console + "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(console + "/") or "\\" in value:
        return console + "/"
    return value


@dataclass
class Desk:
    """The officer at the console, for one request."""

    request: Request
    rt: Runtime
    now: datetime
    staff: StaffView
    token: str
    language: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return self.staff.email

    @property
    def csrf(self) -> str:
        return form_token(self.rt, self.token)

    @property
    def can_act(self) -> bool:
        return may_act(self.staff.role)

    @property
    def is_admin(self) -> bool:
        return self.staff.role is StaffRole.ADMIN

    def read(self, fn: Callable[[Session], T]) -> T:
        with reading(self.rt.engine) as session:
            return fn(session)

    def check(self, action: str, subject_type: str, subject_id: str, fn: Callable[[Session], T]) -> T:
        """What an action would refuse, checked in a reading transaction before it starts
        (a stage's flow); a refusal is audited under the officer's address, then raised."""
        return self._audited(action, subject_type, subject_id, fn, reading)

    def act(self, action: str, subject_type: str, subject_id: str, fn: Callable[[Session], T]) -> T:
        """Run an action in one transaction, as this officer; a refusal is audited under
        their address, then raised again."""
        return self._audited(action, subject_type, subject_id, fn, unit_of_work)

    def _audited(
        self,
        action: str,
        subject_type: str,
        subject_id: str,
        fn: Callable[[Session], T],
        transaction: Callable[[Any], AbstractContextManager[Session]],
    ) -> T:
        with (
            audit.refusals_recorded(
                self.rt.engine,
                actor=self.actor,
                role=Role.SECRETARIAT,
                action=f"console.{action}",
                subject_type=subject_type,
                subject_id=subject_id,
            ),
            transaction(self.rt.engine) as session,
        ):
            return fn(session)

    def round(self, row: Round) -> RoundView:
        """A round as its pages show it: its title in the officer's language, where the round file gives it."""
        view = RoundView.of(row, self.now)
        return view.model_copy(update={"title": definition_of(row).title_in(self.language)})

    def page(self, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, self.rt, template, self.language, desk=self, status_code=status_code, **context)


#: What a page may be given, or not (the templates' undefined names are errors).
OPTIONAL: dict[str, Any] = dict.fromkeys(
    (
        "refusal",
        "done",
        "entered",
        "refused",
        "email",
        "pasted",
        "started",
        "request_out",
        "ended",
        "filters",
        "failed",
        "made",
        "sso_problem",
    )
)


def render(
    request: Request,
    rt: Runtime,
    template: str,
    language: str,
    *,
    desk: Desk | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A console page in `language` (the choice kept in a cookie when made on the page)."""
    root = root_of(request, rt)
    context = {**OPTIONAL, **context}
    html = (
        environment(language, PAGES)
        .get_template(f"console/{template}")
        .render(
            language=language,
            languages=LANGUAGE_NAMES,
            root=root,
            console=root + "/console",
            desk=desk,
            # the single sign-on's button, where the organisation has an identity provider
            sso=bool(rt.settings.oidc_issuer),
            sso_name=rt.settings.oidc_name,
            # the language links lead to the page itself (a page answered to a form: the console's first)
            here=request.url.path if request.method == "GET" else root + "/console/",
            code=lambda value: labels.code(value, language),
            label=lambda table, key: labels.label(getattr(labels, table), str(key), language),
            # a refusal's reason: the console's own in the officer's language, the engine's in English
            problem=lambda what: (
                (labels.label(labels.CONSOLE_PROBLEMS, what, language), language)
                if what in labels.CONSOLE_PROBLEMS
                else (what, "en")
            ),
            **context,
        )
    )
    answer = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
    chosen = request.query_params.get("lang")
    if chosen in LANGUAGES:
        answer.set_cookie(
            LANGUAGE_COOKIE,
            chosen,
            max_age=365 * 86400,
            path=root + "/console",
            secure=request.url.scheme == "https" or rt.settings.public_base_url.startswith("https://"),
            httponly=True,
            samesite="lax",
        )
    return answer


def back_to(desk: Desk, where: str, **query: str) -> RedirectResponse:
    """After an action: the page `where` (under /console), with what was done said there."""
    path = console_path(desk.request, desk.rt) + where
    if query:
        path += "?" + "&".join(f"{k}={quote(v, safe=':')}" for k, v in query.items())
    return RedirectResponse(path, status_code=303, headers=PAGE_HEADERS)


async def _desk(request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep) -> Desk:
    token = request.cookies.get(COOKIE)

    def find() -> StaffView:
        with unit_of_work(rt.engine) as session:
            return signed_in(session, token, rt.settings, at=now)

    try:
        if request.method in ("GET", "HEAD"):
            staff = await run_in_threadpool(find)
        else:  # a form sent without a working session: refused, and audited
            with attempt.refusals(
                rt.engine, role=Role.SECRETARIAT, action="console.form", subject_type="request",
                subject_id=f"{request.method} {request.url.path}",
            ):  # fmt: skip
                staff = await run_in_threadpool(find)
    except Unauthorized:
        if request.method in ("GET", "HEAD"):
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInFirst(here) from None
        raise
    request.state.officer = staff.email  # any refusal of what they ask is audited under their address,
    request.state.audit_prefix = "console"  # as the console's (console.<page>.refused)
    assert token is not None
    return Desk(request, rt, now, staff, token, console_language(request))


#: The officer at a page of the console (signed in).
DeskDep = Annotated[Desk, Depends(_desk)]


async def _signed_form(request: Request, desk: DeskDep) -> Desk:
    """A form of the officer's session: it must carry the session's token (403, audited, otherwise)."""
    form = await request.form(max_fields=FORM_FIELDS)
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), desk.csrf.encode()):
        raise Forbidden(
            "this form was not sent from your console page (or your session changed): open the page again "
            "and resend it",
            reason="form_token",
        )
    return desk


def _acting(desk: Desk = Depends(_signed_form)) -> Desk:
    """An officer sending a form to change something: their role must allow it (403, audited)."""
    if not desk.can_act:
        raise Forbidden(
            "a read-only account can look at the console but not change anything: ask an administrator "
            "for an officer's account",
            reason="console_read_only",
        )
    return desk


def _administering(desk: Desk = Depends(_acting)) -> Desk:
    if not desk.is_admin:
        raise Forbidden("only an administrator manages the accounts and the API keys", reason="console_admin")
    return desk


#: An officer sending a form about their own session or account (any role).
OwnFormDep = Annotated[Desk, Depends(_signed_form)]
#: An officer acting (a form with its token, a role that may act).
ActingDep = Annotated[Desk, Depends(_acting)]
#: An administrator acting on accounts or keys.
AdminDep = Annotated[Desk, Depends(_administering)]


async def form_of(request: Request) -> Mapping[str, Any]:
    return await request.form(max_fields=FORM_FIELDS)


def text_of(form: Mapping[str, Any], name: str, limit: int = 2000) -> str:
    """A text field of a form, trimmed and cut to `limit` characters ("" when not sent);
    one holding a NUL character (which no text may hold) is refused, naming the field."""
    value = form.get(name)
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(f"{name} holds a NUL character", [FieldError(path=f"$.{name}", message="nul")])
    return value.strip()[:limit] if isinstance(value, str) else ""


async def uploaded(request: Request, limit: int, unnamed: str) -> tuple[bytes, str]:
    """The file chosen in the form's `file` field (at most `limit` + 1 bytes read, so that
    one too large is seen as such) and its name; no bytes, and `unnamed`, if none was chosen."""
    upload = (await form_of(request)).get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        return await upload.read(limit + 1), upload.filename[:100]
    return b"", unnamed


def refusal_of(exc: ServiceError) -> dict[str, Any]:
    """A refusal as a page shows it: the engine's words, and each field it names."""
    return {"message": exc.message, "fields": [(e.path.removeprefix("$."), e.message) for e in exc.errors]}
