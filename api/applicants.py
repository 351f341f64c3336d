"""The public routes: the rounds, and the applicants' own: submit an application, see
its status (JSON, or a page in English, French or Spanish), send forms again."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import weakref
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Annotated, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import APIRouter, Form, Header, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Connection
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.attempts import Attempt, AttemptDep
from api.common import error_json, error_responses
from api.deps import BearerDep, NowDep, RuntimeDep
from api.pages import PAGE_HEADERS, PersonPage, page_error_responses, page_language
from api.schemas import ApplicationStatusOut, ReceiptOut, TimelineItemOut
from domain.lifecycle import PublicStatus, Role
from domain.rounds import RoundDefinition
from engine.db import read, read_capacity, reading, unit_of_work
from engine.services import applications as app_service
from engine.services import follow_up, intake
from engine.services import rounds as round_service
from engine.services.errors import NotFound
from engine.services.grants import grant_summary
from engine.services.rounds import RoundView
from engine.services.setup import Runtime
from engine.services.tokens import status_proof, status_proof_until
from notifications import labels
from notifications.render import PAGES, environment

log = logging.getLogger("sip.api")
router = APIRouter(responses=error_responses(503))

NOT_FOUND = "no application with that reference and access token"
T = TypeVar("T")
#: Per event loop (a worker has one; tests may start several): the status lookups in threads at once.
_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = weakref.WeakKeyDictionary()


async def _in_lookup_thread(rt: Runtime, work: Callable[[], T]) -> T:
    """`work` (one status lookup: one pooled connection) in a worker thread, never more of
    them at once than the pool keeps connections (SIP_DB_POOL_SIZE, `read_capacity`). Beyond that the
    pool would open a connection for each extra thread and close it after: on
    PostgreSQL, a new server process per request under load. The lookups beyond wait
    their turn here instead; the other routes keep the thread pool's own limit."""
    loop = asyncio.get_running_loop()
    limiter = _lookups.get(loop)
    if limiter is None:
        limiter = _lookups[loop] = CapacityLimiter(read_capacity(rt.engine))
    return await anyio.to_thread.run_sync(work, limiter=limiter)


#: The body of a resubmission: any of the three forms.
FORMS = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        form: {"$ref": f"#/components/schemas/{model}"}
        for form, model in (("form_a", "FormA"), ("form_b", "FormB"), ("form_c", "FormC"))
    },
}
IDEMPOTENCY_HELP = "Send the same key when retrying: the first result is returned, not a second application"


@router.get("/rounds", response_model=list[RoundView], tags=["rounds"])
def list_rounds(rt: RuntimeDep, now: NowDep) -> list[RoundView]:
    """Every round, with its dates and whether it accepts applications now."""
    with reading(rt.engine) as session:
        return round_service.list_rounds(session, now)


@router.get("/rounds/{round_id}", response_model=RoundView, responses=error_responses(404), tags=["rounds"])
def get_round(round_id: str, rt: RuntimeDep, now: NowDep) -> RoundView:
    with reading(rt.engine) as session:
        return RoundView.of(round_service.get_round(session, round_id), now)


@router.post(
    "/rounds/{round_id}/applications",
    status_code=status.HTTP_201_CREATED,
    response_model=ReceiptOut,
    responses=error_responses(404, 409, 413, 422),
    tags=["applications"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApplicationDocument"}}},
        }
    },
)
async def submit(
    round_id: str,
    request: Request,
    response: Response,
    rt: RuntimeDep,
    now: NowDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200, description=IDEMPOTENCY_HELP)
    ] = None,
) -> ReceiptOut | JSONResponse:
    """Submit an application (format `sip-application/1`) while the round is open.

    The answer holds the application's reference and an access token, shown once."""
    body = await _read_application(request, rt.settings.max_request_bytes)
    if isinstance(body, JSONResponse):
        return body
    receipt = await run_in_threadpool(
        intake.submit_application,
        rt.engine,
        rt.settings,
        round_id,
        body,
        channel="api",
        idempotency_key=idempotency_key,
        now=now,
    )
    response.headers["Location"] = f"/applications/{receipt.reference}"
    if not receipt.created:
        response.headers["Idempotent-Replayed"] = "true"
    return ReceiptOut(
        reference=receipt.reference,
        status=receipt.status,
        round=receipt.round_id,
        submitted_at=receipt.submitted_at,
        access_token=receipt.access_token,
    )


@router.get(
    "/applications/{reference}",
    response_model=ApplicationStatusOut,
    responses=error_responses(404, 429),
    tags=["applications"],
)
async def application_status(
    reference: str, rt: RuntimeDep, attempt: AttemptDep, credentials: BearerDep
) -> ApplicationStatusOut | Response:
    """The application's public status and timeline, for its applicant (Bearer access token).

    A wrong or missing token and an unknown reference get the same 404."""
    token = credentials.credentials if credentials else None
    view = await _in_lookup_thread(rt, functools.partial(_look_up, rt, reference, token))
    if view is None:
        await run_in_threadpool(_not_found, rt, attempt, "application.status", reference)
        return error_json(404, "not_found", NOT_FOUND)
    # Built here from the view, so already valid: sent as it is, not validated a second time.
    return Response(_status_out(view).model_dump_json(), media_type="application/json")


def _look_up(
    rt: Runtime, reference: str, token: str | None, *, with_definition: bool = False
) -> app_service.ApplicantView | None:
    """The applicant's view (two indexed queries, engine.services.applications), in one
    read-only transaction; asked once more where the database had closed the pooled
    connection (a PostgreSQL restart): a read is safe to repeat."""
    return read(
        rt.engine,
        lambda connection: app_service.applicant_on(connection, reference, token, with_definition=with_definition),
    )


@router.put(
    "/applications/{reference}/forms",
    response_model=ApplicationStatusOut,
    tags=["applications"],
    responses=error_responses(404, 409, 413, 422, 429),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": FORMS}}}},
)
async def resubmit(
    reference: str, request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep, credentials: BearerDep
) -> ApplicationStatusOut | JSONResponse:
    """Send forms again (any of form_a, form_b, form_c) after the secretariat found the application
    incomplete or asked for information; the application is then screened again."""
    body = await _read_application(request, rt.settings.max_request_bytes)
    if isinstance(body, JSONResponse):
        return body
    token = credentials.credentials if credentials else None

    def apply() -> app_service.ApplicantView | None:
        with unit_of_work(rt.engine) as session:
            if app_service.applicant_view(session, reference, token) is None:
                return None
            follow_up.resubmit_forms(
                session, rt.settings, reference, body, actor="applicant", role=Role.APPLICANT, at=now
            )
        with reading(rt.engine) as session:
            return app_service.applicant_view(session, reference, token)

    view = await run_in_threadpool(apply)
    if view is None:
        await run_in_threadpool(_not_found, rt, attempt, "application.forms", reference)
        return error_json(404, "not_found", NOT_FOUND)
    return _status_out(view)


#: How long the status page's language buttons keep working without the code again.
PROOF_SECONDS = 1800
#: The status page's errors are pages too, with a link back to its form.
STATUS_PAGE = PersonPage(back="status")


@router.get(
    "/status",
    response_model=None,
    response_class=HTMLResponse,
    status_code=status.HTTP_200_OK,
    responses=page_error_responses(422, 503),
    dependencies=[STATUS_PAGE],
    tags=["status page"],
)
def status_page(
    request: Request,
    rt: RuntimeDep,
    reference: str | None = Query(default=None, max_length=60),
    lang: str | None = Query(default=None, max_length=5, description="en, fr or es (default: the browser's)"),
) -> HTMLResponse:
    """The applicant's status page (HTML): a form for the reference and access code."""
    return _page(rt, page_language(request, lang), reference=reference)


@router.post(
    "/status",
    response_model=None,
    response_class=HTMLResponse,
    status_code=status.HTTP_200_OK,
    tags=["status page"],
    dependencies=[STATUS_PAGE],
    responses={
        **page_error_responses(422, 429, 503),
        404: {"content": {"text/html": {}}, "description": "no application with that reference and access code"},
    },
)
async def status_page_result(
    request: Request,
    rt: RuntimeDep,
    attempt: AttemptDep,
    now: NowDep,
    reference: Annotated[str, Form(min_length=1, max_length=60)],
    access_code: Annotated[str, Form(min_length=1, max_length=200)],
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> HTMLResponse:
    """The status, for the applicant who gives the reference and access code (sent in the
    request body, never in the address). A wrong code and an unknown reference look the
    same: the form again, saying so in the page's language (never the application's,
    which would tell a stranger something about it). The page's language buttons send,
    in place of the code, a proof that it was given, valid for half an hour from the code
    (`time.mac`: a dot, which no access code holds)."""
    reference = reference.strip()
    language = page_language(request, lang)
    code = access_code.strip()
    key, instant = rt.settings.key(), int(now.timestamp())
    # a proof, never a code: it holds until its own time (following it does not renew it)
    until = status_proof_until(key, reference, code, instant) if "." in code else None
    proven, code = (until is not None, "") if "." in code else (False, code)

    def answer() -> HTMLResponse:  # the lookup and the page, in one thread of the pool
        found = read(rt.engine, lambda connection: _page_view(connection, reference, code, language, proven, now))
        if found is None:
            _not_found(rt, attempt, "application.status_page", reference)
            return _page(rt, language, reference=reference, not_found=True)
        view, definition, details = found
        shown = status_proof(key, view.reference, until or instant + PROOF_SECONDS)
        return _page(rt, language, reference=reference, view=view, definition=definition, details=details, proof=shown)

    return await _in_lookup_thread(rt, answer)


def _page_view(
    connection: Connection, reference: str, code: str, language: str, proven: bool, now: datetime
) -> tuple[app_service.ApplicantView, RoundDefinition, app_service.StatusDetails] | None:
    """The applicant's view, its round's definition and the details of its status, in
    one read-only transaction; None for a reference and code that match nothing."""
    view = app_service.applicant_on(connection, reference, code, with_definition=True, proven=proven)
    if view is None:
        return None
    if view.round_definition is not None:
        definition = _definition(view.round_id, view.round_definition)
    else:  # a round written without its definition: read it through the service
        with Session(connection) as session:
            definition = round_service.definition_of(round_service.get_round(session, view.round_id))
    details = app_service.status_details(connection, view, language, definition.currency)
    if view.status in (PublicStatus.APPROVED, PublicStatus.APPROVED_WITH_CONDITIONS):
        with Session(connection) as session:
            details = replace(details, grant=grant_summary(session, view.reference, now))
    return view, definition, details


def _page(
    rt: Runtime,
    language: str,
    *,
    reference: str | None,
    view: app_service.ApplicantView | None = None,
    definition: RoundDefinition | None = None,
    details: app_service.StatusDetails | None = None,
    proof: str | None = None,
    not_found: bool = False,
) -> HTMLResponse:
    round_title, timezone = "", "Europe/Zurich"
    if definition is not None:
        round_title, timezone = definition.title_in(language), definition.timezone
    html = (
        environment(language, PAGES)
        .get_template("status.html")
        .render(
            language=language,
            languages=[("en", "English"), ("fr", "Français"), ("es", "Español")],
            reference=reference,
            view=view,
            details=details,
            proof=proof,
            not_found=not_found,
            round_title=round_title,
            timezone=timezone,
            programme_email=rt.settings.programme_email,
            label=lambda table, key: labels.label(getattr(labels, table), str(key), language),
        )
    )
    return HTMLResponse(
        html,
        status_code=404 if not_found else 200,
        headers=PAGE_HEADERS,
    )


@functools.lru_cache(maxsize=32)
def _definition(round_id: str, stored: str) -> RoundDefinition:
    """A round's definition, checked once per process for each stored text (a round
    loaded again has another text, so it is checked again)."""
    return round_service.stored_definition(round_id, json.loads(stored))


def _not_found(rt: Runtime, attempt: Attempt, action: str, reference: str) -> None:
    """A reference and access code that match no application: counted against the
    source and sampled into the audit trail (api/attempts.py)."""
    attempt.refused(
        rt.engine,
        NotFound(NOT_FOUND),
        role=Role.APPLICANT,
        action=action,
        subject_type="application",
        subject_id=reference,
    )


def _status_out(view: app_service.ApplicantView) -> ApplicationStatusOut:
    return ApplicationStatusOut(
        reference=view.reference,
        status=view.status,
        round=view.round_id,
        round_title=view.round_title,
        title=view.title,
        submitted_at=view.submitted_at,
        timeline=[TimelineItemOut(status=t.status, at=t.at) for t in view.timeline],
    )


async def _read_application(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, read as it streams in up to intake's limit (SIP_MAX_REQUEST_BYTES, below
    the limit every request has: api/limits.py), or the 413 that says so."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _too_large(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _too_large(len(body), limit)
    return bytes(body)


def _too_large(size: int, limit: int) -> JSONResponse:
    return error_json(
        413,
        "too_large",
        f"the request is {size / 1e6:.1f} MB or more; an application is at most "
        f"{limit / 1e6:.1f} MB (attachments are not sent through this call)",
    )
