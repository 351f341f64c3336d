"""The Global Mercury Partnership reviewers' routes. A reviewer signs in with the
one-time link of their invitation (or reminder), then uses the session token as a
Bearer token: they see only the applications assigned to them, never one they have
a conflict of interest with, and an application not theirs answers exactly as one
that does not exist. Every refused attempt is audited: under the reviewer's name where
their link or session names them, sampled by source otherwise (api/attempts.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from sqlmodel import Session

from api.attempts import Attempt, AttemptDep, link_request
from api.common import error_json, error_responses
from api.deps import NowDep, RuntimeDep
from api.pages import PAGE_HEADERS, PersonPage, error_page, field_problems, page_error_responses, page_language
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
from domain.review import ReviewDraft
from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.errors import InvalidInput
from engine.services.review import access, work
from engine.services.setup import Runtime
from engine.tables import ReviewerRecord
from notifications.render import PAGES, environment

router = APIRouter(prefix="/reviewer", tags=["reviewers"], responses=error_responses(503))
session_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ReviewerSession",
    description="A reviewer's session token (POST /reviewer/sessions with the link's token)",
)
SessionDep = Annotated[HTTPAuthorizationCredentials | None, Depends(session_bearer)]
T = TypeVar("T")
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


def _sign_out(rt: Runtime, now: datetime, attempt: Attempt, token: str | None) -> str:
    """End the session (audited as the reviewer's); the reviewer's address."""
    return _as_reviewer(
        rt,
        now,
        attempt,
        HTTPAuthorizationCredentials(scheme="Bearer", credentials=token) if token else None,
        "reviewer.sign_out",
        "session",
        lambda s, r: access.sign_out(s, token, at=now).email,
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

    from starlette.concurrency import run_in_threadpool

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
            signed=context.pop("signed", None),
            assignments=context.pop("assignments", []),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


@router.get(
    "/sign-in",
    response_model=None,
    response_class=HTMLResponse,
    status_code=status.HTTP_200_OK,
    include_in_schema=False,
    dependencies=[NEW_LINK_PAGE],
)
def sign_in_page(request: Request, token: str = "", lang: str | None = None) -> HTMLResponse:
    """The page the link opens: a button signs in (a mail scanner that follows the
    link does not use it up), posting the token in the request body.

    The e-mailed link has to carry the token in its address (a link in a message can
    only be a GET); the server's access log redacts it (`api.logs`), the page is sent
    with `Referrer-Policy: no-referrer`, and the token works once."""
    return _page(page_language(request, lang), "confirm", token=token[:200])


@router.post(
    "/sign-in",
    response_model=None,
    response_class=HTMLResponse,
    status_code=status.HTTP_200_OK,
    include_in_schema=False,
    dependencies=[NEW_LINK_PAGE],
)
def sign_in_form(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    token: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> HTMLResponse:
    """Sign in with the link's token. A link that does not work (unknown, used, expired,
    withdrawn) answers the error page, in the reviewer's language, with a link to ask for
    a new one."""
    signed = _sign_in(rt, now, attempt, token)
    with reading(rt.engine) as session:
        reviewer = access.reviewer_for(session, signed.session_token, at=now)
        mine = work.my_assignments(session, reviewer)
    return _page(
        page_language(request, lang),
        "signed_in",
        signed=signed,
        assignments=mine,
        base=rt.settings.public_base_url.rstrip("/"),
    )


@router.post(
    "/sign-out",
    response_model=None,
    response_class=HTMLResponse,
    status_code=status.HTTP_200_OK,
    include_in_schema=False,
    dependencies=[NEW_LINK_PAGE],
)
def sign_out_form(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    session_token: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> HTMLResponse:
    """The page's sign-out button: the session key (posted in the body) stops working. A
    session that no longer works is an error page in the reviewer's language."""
    _sign_out(rt, now, attempt, session_token or None)
    return _page(page_language(request, lang), "signed_out")


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
