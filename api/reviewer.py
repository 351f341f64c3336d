"""The Global Mercury Partnership reviewers' routes. A reviewer signs in with the
one-time link of their invitation (or reminder), then uses the session token as a
Bearer token: they see only the applications assigned to them, never one they have
a conflict of interest with, and an application not theirs answers exactly as one
that does not exist. Every refused attempt is audited: under the reviewer's name where
their link or session names them, sampled by source otherwise (api/attempts.py)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.attempts import Attempt, AttemptDep, link_request
from api.common import Number, error_json, error_responses
from api.deps import NowDep, RuntimeDep
from api.pages import (
    LANGUAGE_NAMES,
    PAGE_HEADERS,
    PersonPage,
    error_page,
    field_problems,
    page_error_responses,
    page_language,
    page_route,
    secure_cookies,
    site_root,
)
from api.schemas import (
    AssignmentLeftOut,
    DossierOut,
    LinkSentOut,
    ReviewerAssignmentOut,
    ReviewOut,
    SessionOut,
    SignedOutOut,
)
from domain.application import NOT_BLANK, DocumentError, Email, FieldError, Input, json_path, load_json
from domain.lifecycle import Role
from domain.review import ReviewDraft, review_problems
from engine.db import reading, unit_of_work
from engine.services import audit, report_reviews
from engine.services.errors import Forbidden, InvalidInput, Unauthorized
from engine.services.review import access, work
from engine.services.review.state import language_of
from engine.services.setup import Runtime
from engine.tables import ReviewerRecord
from notifications import LANGUAGES, labels
from notifications.render import PAGES, environment

router = APIRouter(prefix="/reviewer", tags=["reviewers"], responses=error_responses(503))
session_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ReviewerSession",
    description="A reviewer's session token (POST /reviewer/sessions with the link's token)",
)
SessionDep = Annotated[HTTPAuthorizationCredentials | None, Depends(session_bearer)]
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
#: The reviewers' pages: their errors are pages, with a link to ask for a new sign-in
#: link; POST /reviewer/links answers JSON too, so a page only to a client that asks for HTML.
NEW_LINK_PAGE = PersonPage(back="links")
LINK_REQUEST = PersonPage(back="links", prefer="json")
LINK_SENT = (
    "If this address belongs to a reviewer with reviews to do, a new sign-in link is on its way to it "
    "(at most one an hour)."
)


class SessionIn(Input):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="the token of the sign-in link (token=...)")


class LinkIn(Input):
    model_config = ConfigDict(extra="forbid")

    email: Email


class ReviewIn(ReviewDraft):
    """The review: it replaces the draft; `submit: true` submits it (then it no longer changes)."""

    submit: StrictBool = False


class ReasonIn(Input):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


def _as_reviewer(
    rt: Runtime,
    now: datetime,
    attempt: Attempt,
    credentials: HTTPAuthorizationCredentials | None,
    action: str,
    subject: str,
    fn: Callable[[Session, ReviewerRecord], T],
    subject_type: str = "application",
) -> T:
    """Run `fn` as the reviewer whose session this is, in one transaction. A refusal
    (no session, not assigned, invalid review...) is audited, then answered: one with
    no valid session counts against the source and is sampled (api/attempts.py)."""
    token = credentials.credentials if credentials else None
    with (
        attempt.refusals(rt.engine, role=Role.REVIEWER, action=action, subject_type=subject_type, subject_id=subject),
        reading(rt.engine) as session,
    ):
        email = access.reviewer_for(session, token, at=now).email
    with (
        audit.refusals_recorded(
            rt.engine, actor=email, role=Role.REVIEWER, action=action, subject_type=subject_type, subject_id=subject
        ),
        unit_of_work(rt.engine) as session,
    ):
        return fn(session, access.reviewer_for(session, token, at=now))


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionOut,
    responses=error_responses(401, 422, 429),
)
def open_session(body: SessionIn, rt: RuntimeDep, now: NowDep, attempt: AttemptDep) -> SessionOut:
    """Exchange the token of a sign-in link (it works once) for a session token."""
    signed = _sign_in(rt, now, attempt, body.token)
    return SessionOut(
        session_token=signed.session_token, expires_at=signed.expires_at, email=signed.email, name=signed.name
    )


def _sign_in(rt: Runtime, now: datetime, attempt: Attempt, token: str) -> access.SignedIn:
    with (
        attempt.refusals(
            rt.engine, role=Role.REVIEWER, action="reviewer.sign_in", subject_type="reviewer", subject_id="sign-in link"
        ),
        unit_of_work(rt.engine) as session,
    ):
        return access.sign_in(session, rt.settings, token, at=now)


@router.delete("/sessions/current", response_model=SignedOutOut, responses=error_responses(401))
def close_session(rt: RuntimeDep, now: NowDep, attempt: AttemptDep, credentials: SessionDep) -> SignedOutOut:
    """Sign out: the session token (Authorization: Bearer) stops working at once."""
    email = _sign_out(rt, now, attempt, credentials.credentials if credentials else None)
    return SignedOutOut(email=email, signed_out_at=now)


def _sign_out(
    rt: Runtime, now: datetime, attempt: Attempt, token: str | None, check: Callable[[], None] = lambda: None
) -> str:
    """End the session (audited as the reviewer's); the reviewer's address. `check`: what
    must hold first, refused and audited as the reviewer's like the rest (a form's token)."""

    def end(session: Session, reviewer: ReviewerRecord) -> str:
        check()
        return access.sign_out(session, token, at=now).email

    return _as_reviewer(
        rt,
        now,
        attempt,
        HTTPAuthorizationCredentials(scheme="Bearer", credentials=token) if token else None,
        "reviewer.sign_out",
        "session",
        end,
        subject_type="reviewer",
    )


@router.post(
    "/links",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LinkSentOut,
    responses={
        202: {"content": {"text/html": {}}, "description": "JSON; or the page, for a browser's form"},
        **error_responses(429),
        422: {**error_responses(422)[422], "content": {"text/html": {}}},
    },
    dependencies=[LINK_REQUEST, Depends(link_request)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/LinkIn"}},
                "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/LinkIn"}},
            },
        }
    },
)
async def new_link(request: Request, rt: RuntimeDep, now: NowDep) -> LinkSentOut | Response:
    """Ask for a new sign-in link by e-mail. The answer is the same whether or not the
    address is a reviewer's (JSON, or the page for a browser's form)."""
    form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    raw = dict(await request.form()) if form else await _json(request)
    lang = raw.pop("lang", None) if form else None
    try:
        body = LinkIn.model_validate(raw)
    except ValidationError as exc:
        if form:
            return error_page(request, LINK_REQUEST, 422, fields=field_problems(exc.errors()))
        errors = [{"path": "$." + ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return error_json(422, "invalid", "give the e-mail address the secretariat has for you", errors)

    def send() -> None:
        with unit_of_work(rt.engine) as session:
            access.request_link(session, rt.settings, str(body.email), at=now)

    await run_in_threadpool(send)
    if form:
        return _page(page_language(request, str(lang) if lang else None), "link_sent", status_code=202)
    return LinkSentOut(message=LINK_SENT)


async def _json(request: Request) -> dict[str, Any]:
    """The body as JSON: a body that is not JSON is taken as one without an address; one
    that nests too deep or holds too long a number is refused, naming where."""
    try:
        data = load_json(await request.body())
    except DocumentError as exc:
        if any(e.message.startswith("is not valid JSON") for e in exc.errors):
            data = None
        else:
            raise InvalidInput(f"the request is not valid: {exc}", exc.errors) from None
    return data if isinstance(data, dict) else {"email": None}


@router.get("/assignments", response_model=list[ReviewerAssignmentOut], responses=error_responses(401, 429))
def assignments(
    rt: RuntimeDep, now: NowDep, attempt: AttemptDep, credentials: SessionDep
) -> list[ReviewerAssignmentOut]:
    """The applications assigned to you (never one you have a conflict of interest with)."""
    mine = _as_reviewer(rt, now, attempt, credentials, "review.list", "assignments", work.my_assignments)
    return [ReviewerAssignmentOut.model_validate(a, from_attributes=True) for a in mine]


@router.get("/assignments/{reference}", response_model=DossierOut, responses=error_responses(401, 404, 429))
def application(
    reference: str, rt: RuntimeDep, now: NowDep, attempt: AttemptDep, credentials: SessionDep
) -> DossierOut:
    """An application assigned to you: forms A and B, the round's technical criteria,
    your review, and (once yours is submitted) the other reviewers' reviews, unnamed."""
    dossier = _as_reviewer(
        rt, now, attempt, credentials, "review.read", reference, lambda s, r: work.dossier(s, r, reference)
    )
    return DossierOut.model_validate(dossier, from_attributes=True)


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: Any) -> M:
    """A request body checked inside the attempt, so that a malformed one is audited too."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(path=json_path(tuple(e["loc"])), message=e["msg"]) for e in exc.errors()]
        raise InvalidInput(
            "the request is not valid: " + "; ".join(f"{e.path}: {e.message}" for e in errors), errors
        ) from None


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


@router.put(
    "/assignments/{reference}/review",
    response_model=ReviewOut,
    responses=error_responses(401, 404, 409, 422, 429),
    openapi_extra=_body(ReviewIn),
)
def save_review(
    reference: str,
    body: Annotated[Any, Body()],
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    credentials: SessionDep,
) -> ReviewOut:
    """Save your review: it replaces your draft; with `submit: true` it is submitted
    (every criterion scored, a recommendation, comments for the committee) and then no
    longer changes. Refused after the review stage closed."""

    def save(session: Session, reviewer: ReviewerRecord) -> ReviewOut:
        review = _parse(ReviewIn, body)
        draft = ReviewDraft.model_validate(review.model_dump(exclude={"submit"}))
        saved = work.save_review(session, reviewer, reference, draft, submit=review.submit, at=now)
        return ReviewOut.model_validate(saved, from_attributes=True)

    return _as_reviewer(rt, now, attempt, credentials, "review.save", reference, save)


@router.post(
    "/assignments/{reference}/decline",
    response_model=AssignmentLeftOut,
    responses=error_responses(401, 404, 409, 422, 429),
    openapi_extra=_body(ReasonIn),
)
def decline(
    reference: str,
    body: Annotated[Any, Body()],
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    credentials: SessionDep,
) -> AssignmentLeftOut:
    """Decline to review this application (the secretariat is told, and reassigns it)."""
    _as_reviewer(
        rt,
        now,
        attempt,
        credentials,
        "review.decline",
        reference,
        lambda s, r: work.decline(s, rt.settings, r, reference, _parse(ReasonIn, body).reason, at=now),
    )
    return AssignmentLeftOut(reference=reference, state="declined")


@router.post(
    "/assignments/{reference}/conflict",
    response_model=AssignmentLeftOut,
    responses=error_responses(401, 404, 409, 422, 429),
    openapi_extra=_body(ReasonIn),
)
def conflict(
    reference: str,
    body: Annotated[Any, Body()],
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    credentials: SessionDep,
) -> AssignmentLeftOut:
    """Declare a conflict of interest with this application: it leaves your list."""
    _as_reviewer(
        rt,
        now,
        attempt,
        credentials,
        "review.conflict",
        reference,
        lambda s, r: work.declare_conflict(s, rt.settings, r, reference, _parse(ReasonIn, body).reason, at=now),
    )
    return AssignmentLeftOut(reference=reference, state="conflicted")


# --- pages for a browser: the link in the e-mail opens these ---------------------------------


def _page(language: str, mode: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = (
        environment(language, PAGES)
        .get_template("reviewer.html")
        .render(
            language=language,
            mode=mode,
            token=context.pop("token", ""),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


@page_route(router.get, "/sign-in", NEW_LINK_PAGE)
def sign_in_page(request: Request, token: str = "", lang: str | None = None) -> HTMLResponse:
    """The page the link opens: a button signs in (a mail scanner that follows the
    link does not use it up), posting the token in the request body.

    The e-mailed link has to carry the token in its address (a link in a message can
    only be a GET); the server's access log redacts it (`api.logs`), the page is sent
    with `Referrer-Policy: no-referrer`, and the token works once."""
    return _page(page_language(request, lang), "confirm", token=token[:200])


@page_route(router.post, "/sign-in", NEW_LINK_PAGE)
def sign_in_form(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    token: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """Sign in with the link's token: a session cookie, then the reviewer's workspace. A
    link that does not work (unknown, used, expired, withdrawn) answers the error page,
    in the reviewer's language, with a link to ask for a new one."""
    signed = _sign_in(rt, now, attempt, token)
    # The session lives in a cookie the page's scripts cannot read, sent back only to the
    # reviewer's pages (and with a form only from this site's: SameSite, and each form's
    # token); it ends with the session.
    answer = RedirectResponse(
        "workspace" + (f"?lang={lang}" if lang in LANGUAGES else ""),
        status_code=status.HTTP_303_SEE_OTHER,
        headers=PAGE_HEADERS,
    )
    answer.set_cookie(
        COOKIE,
        signed.session_token,
        max_age=max(int((signed.expires_at - now).total_seconds()), 0),
        path=_cookie_path(request, rt),
        secure=secure_cookies(request, rt.settings),
        httponly=True,
        samesite="lax",
    )
    return answer


@page_route(router.post, "/sign-out", NEW_LINK_PAGE)
def sign_out_form(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    session_token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> HTMLResponse:
    """The page's sign-out button: the session (the cookie's, or a key posted in the body)
    stops working and the cookie is removed. A session that no longer works is an error
    page in the reviewer's language."""
    cookie = request.cookies.get(COOKIE)
    try:
        # the workspace's button: its form carries the session's token
        _sign_out(
            rt,
            now,
            attempt,
            cookie or session_token or None,
            lambda: _check_form(request, rt, csrf) if cookie else None,
        )
    except Unauthorized as exc:  # a session that had already ended: its cookie goes too
        if not cookie:
            raise
        answer = error_page(request, NEW_LINK_PAGE, 401, reason=exc.reason)
    else:
        answer = _page(page_language(request, lang), "signed_out")
    answer.delete_cookie(
        COOKIE,
        path=_cookie_path(request, rt),
        secure=secure_cookies(request, rt.settings),
        httponly=True,
        samesite="lax",
    )
    return answer


@router.get(
    "/links",
    response_model=None,
    response_class=HTMLResponse,
    status_code=status.HTTP_200_OK,
    dependencies=[NEW_LINK_PAGE],
    responses=page_error_responses(422, 503),
)
def link_page(
    request: Request, lang: str | None = Query(default=None, max_length=5, description="en, fr or es")
) -> HTMLResponse:
    """The page where a reviewer asks for a new sign-in link (HTML)."""
    return _page(page_language(request, lang), "link_form")


# --- the reviewer's workspace: signed in by a cookie, forms with a CSRF token ---------------------

#: The session cookie of a reviewer's browser (HttpOnly; SameSite=Strict; Secure over HTTPS).
COOKIE = "sip_reviewer_session"
#: The workspace's pages one level down (an application) go back to the link form above;
#: its forms, two levels down.
NESTED_PAGE = PersonPage(back="../links")
FORM_PAGE = PersonPage(back="../../links")


def _cookie_path(request: Request, rt: Runtime) -> str:
    return site_root(request, rt.settings) + "/reviewer"


def csrf_token(rt: Runtime, session_token: str) -> str:
    """The token every form of a session carries: derived from the session's own token
    with the engine's secret key, so a page of another site cannot know it."""
    return hmac.new(rt.settings.key(), b"reviewer-form:" + session_token.encode(), hashlib.sha256).hexdigest()


def _session_of(request: Request) -> HTTPAuthorizationCredentials | None:
    token = request.cookies.get(COOKIE)
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token) if token else None


def _check_form(request: Request, rt: Runtime, csrf: str) -> None:
    """A form of the workspace must carry its session's CSRF token."""
    token = request.cookies.get(COOKIE) or ""
    if not token or not hmac.compare_digest(csrf.encode(), csrf_token(rt, token).encode()):
        raise Forbidden(
            "this form was not sent from your review page (or your session changed): open the page again and resend it",
            reason="form_token",
        )


def _reviewer_language(request: Request, lang: str | None, reviewer: ReviewerRecord) -> str:
    """The page's language: the one chosen on the page, else the reviewer's own."""
    return page_language(request, lang, None) if lang else language_of(reviewer)


def _with_dossier(session: Session, reviewer: ReviewerRecord, reference: str) -> tuple[ReviewerRecord, work.Dossier]:
    return reviewer, work.dossier(session, reviewer, reference)


def _workspace_page(
    request: Request, rt: Runtime, template: str, language: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    root = site_root(request, rt.settings)
    html = (
        environment(language, PAGES)
        .get_template(template)
        .render(
            language=language,
            languages=LANGUAGE_NAMES,
            # the forms' and links' addresses from the site's root (behind a proxy's prefix too),
            # so that a page answered at a form's address (a review to correct) still works
            root=root,
            workspace_url=root + "/reviewer/workspace",
            csrf=csrf_token(rt, request.cookies.get(COOKIE, "")),
            code=lambda value: labels.code(value, language),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


@page_route(router.get, "/workspace", NEW_LINK_PAGE)
def workspace(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    lang: str | None = Query(default=None, max_length=5),
    done: str | None = Query(default=None, max_length=20),
) -> HTMLResponse:
    """The reviewer's applications: their state, due date and the reviewer's progress."""

    def mine(session: Session, reviewer: ReviewerRecord) -> tuple[ReviewerRecord, list[Any], list[Any]]:
        return reviewer, work.my_assignments(session, reviewer), report_reviews.to_review(session, reviewer)

    reviewer, assignments, reports = _as_reviewer(
        rt, now, attempt, _session_of(request), "review.list", "assignments", mine
    )
    language = _reviewer_language(request, lang, reviewer)
    return _workspace_page(
        request,
        rt,
        "reviewer_workspace.html",
        language,
        name=reviewer.name,
        assignments=assignments,
        reports=reports,
        problem=None,
        done=done if done in ("declined", "conflicted", "opinion") else None,
    )


@page_route(router.post, "/workspace/reports/{review_id}", FORM_PAGE, status.HTTP_303_SEE_OTHER)
def workspace_report_opinion(
    review_id: Number,
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    recommendation: Annotated[str, Form(max_length=20)] = "",
    opinion: Annotated[str, Form(max_length=5000)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """The reviewer's opinion on a grant's report they were asked to review."""
    lang = lang if lang in LANGUAGES else None

    def go(session: Session, reviewer: ReviewerRecord) -> None:
        _check_form(request, rt, csrf)  # after the session, as the reviewer's refusal
        report_reviews.give_opinion(session, reviewer, review_id, recommendation, opinion, at=now)

    try:
        _as_reviewer(rt, now, attempt, _session_of(request), "grant.report_review", str(review_id), go, "grant")
    except InvalidInput:  # the workspace again, saying what is missing, with what was typed
        reviewer, assignments, reports = _as_reviewer(
            rt, now, attempt, _session_of(request), "review.list", "assignments",
            lambda session, reviewer: (
                reviewer, work.my_assignments(session, reviewer), report_reviews.to_review(session, reviewer)
            ),
        )  # fmt: skip
        return _workspace_page(
            request, rt, "reviewer_workspace.html", _reviewer_language(request, lang, reviewer), status_code=422,
            name=reviewer.name, assignments=assignments, reports=reports, done=None,
            problem={"id": review_id, "recommendation": recommendation, "opinion": opinion},
        )  # fmt: skip
    where = "../../workspace?done=opinion" + (f"&lang={lang}" if lang else "")
    return RedirectResponse(where, status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)


@page_route(router.get, "/workspace/{reference}", NESTED_PAGE)
def workspace_application(
    reference: str,
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    lang: str | None = Query(default=None, max_length=5),
    saved: str | None = Query(default=None, max_length=20),
) -> HTMLResponse:
    """An application assigned to the reviewer, and their review form."""
    reviewer, dossier = _as_reviewer(
        rt,
        now,
        attempt,
        _session_of(request),
        "review.read",
        reference,
        lambda s, r: _with_dossier(s, r, reference),
    )
    language = _reviewer_language(request, lang, reviewer)
    return _application_page(request, rt, language, dossier, saved=saved if saved in ("draft", "submitted") else None)


def _application_page(
    request: Request,
    rt: Runtime,
    language: str,
    dossier: work.Dossier,
    *,
    saved: str | None = None,
    entered: dict[str, Any] | None = None,
    problems: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    own = dossier.review
    values = entered or {
        "scores": dict(own.scores) if own else {},
        "recommendation": own.recommendation.value if own and own.recommendation else None,
        "comments_for_committee": own.comments_for_committee if own else None,
        "comments_for_applicant": own.comments_for_applicant if own else None,
    }
    return _workspace_page(
        request,
        rt,
        "reviewer_application.html",
        language,
        status_code=status_code,
        d=dossier,
        values=values,
        problems=problems or {},
        saved=saved,
        label=lambda table, key: labels.label(getattr(labels, table), key, language),
        money=lambda value: labels.money(value, dossier.currency, language),
    )


@page_route(router.post, "/workspace/{reference}/review", FORM_PAGE, status.HTTP_303_SEE_OTHER)
async def workspace_review(
    reference: str, request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep
) -> Response:
    """The review form: saved as a draft, or submitted (once confirmed); a review that
    cannot be submitted yet comes back with what is missing beside each field."""
    form = await request.form()
    field: Callable[[str], str] = lambda name: str(form.get(name) or "").strip()  # noqa: E731
    lang = field("lang") if field("lang") in LANGUAGES else None
    submit = field("action") == "submit"
    # Every score sent is kept: a whole number as one, anything else as the text it is, for
    # the review's own check to refuse beside its field (never dropped, never a crash).
    scores: dict[str, Any] = {
        key.removeprefix("score_"): int(value) if re.fullmatch(r"-?[0-9]{1,6}", value.strip()) else value
        for key, value in form.items()
        if key.startswith("score_") and isinstance(value, str)
    }
    entered = {
        "scores": scores,
        "recommendation": field("recommendation") or None,
        "comments_for_committee": field("comments_for_committee") or None,
        "comments_for_applicant": field("comments_for_applicant") or None,
    }
    problems: dict[str, str] = {}
    if submit and field("confirm") != "yes":
        problems["confirm"] = labels.REVIEW_PROBLEMS["confirm"]

    def save(session: Session, reviewer: ReviewerRecord) -> tuple[ReviewerRecord, work.Dossier | None]:
        _check_form(request, rt, field("csrf"))  # after the session, as the reviewer's refusal
        draft = _parse(ReviewDraft, entered)
        if problems:  # not confirmed: nothing is saved, and all that a submission lacks is said at once
            dossier = work.dossier(session, reviewer, reference)
            for problem in review_problems(draft, dossier.criteria, final=True):
                problems[problem.field] = labels.REVIEW_PROBLEMS.get(problem.field.split(".")[0], problem.message)
            return reviewer, dossier
        work.save_review(session, reviewer, reference, draft, submit=submit, at=now)
        return reviewer, None

    def page_for(reviewer: ReviewerRecord, dossier: work.Dossier, found: dict[str, str]) -> Response:
        language = _reviewer_language(request, lang, reviewer)
        return _application_page(
            request,
            rt,
            language,
            dossier,
            entered=entered,
            problems=found,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    try:
        reviewer, dossier = await run_in_threadpool(
            _as_reviewer, rt, now, attempt, _session_of(request), "review.save", reference, save
        )
    except InvalidInput as exc:
        found = dict(problems)  # an unconfirmed submission says so too
        for error in exc.errors:
            name = error.path.removeprefix("$.")
            found[name] = labels.REVIEW_PROBLEMS.get(name.split(".")[0], error.message)
        reviewer, again = await run_in_threadpool(
            _as_reviewer,
            rt,
            now,
            attempt,
            _session_of(request),
            "review.read",
            reference,
            lambda s, r: _with_dossier(s, r, reference),
        )
        return page_for(reviewer, again, found)
    if dossier is not None:
        return page_for(reviewer, dossier, problems)
    where = f"../{reference}?saved={'submitted' if submit else 'draft'}" + (f"&lang={lang}" if lang else "")
    return RedirectResponse(where, status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)


@page_route(router.post, "/workspace/{reference}/leave", FORM_PAGE, status.HTTP_303_SEE_OTHER)
def workspace_leave(
    reference: str,
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    why: Annotated[Literal["decline", "conflict"], Form()] = "decline",
    reason: Annotated[str, Form(max_length=2000)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """Decline the application, or declare a conflict of interest with it, with a reason."""
    leave = work.decline if why == "decline" else work.declare_conflict
    lang = lang if lang in LANGUAGES else None

    def go(session: Session, reviewer: ReviewerRecord) -> None:
        _check_form(request, rt, csrf)  # after the session, as the reviewer's refusal
        leave(session, rt.settings, reviewer, reference, _parse(ReasonIn, {"reason": reason}).reason, at=now)

    _as_reviewer(rt, now, attempt, _session_of(request), f"review.{why}", reference, go)
    done = "declined" if why == "decline" else "conflicted"
    where = f"../../workspace?done={done}" + (f"&lang={lang}" if lang else "")
    return RedirectResponse(where, status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)
