"""The API's answers to what goes wrong: JSON naming every offending field, a 503
that says what to do, never a traceback; the secretariat's refused attempts audited.
On a route that serves people (marked `PersonPage`, api/pages.py) a browser gets a page
in the person's language instead, with the same status code."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.common import error_json
from api.headers import secure
from api.pages import error_page, field_problems, person_page
from domain.application import FieldError, json_path
from domain.lifecycle import Role
from engine.services import audit
from engine.services.errors import InvalidInput, ServiceError, Unavailable

log = logging.getLogger("sip.api")


def request_too_large(request: Request, limit: int) -> Response:
    """The answer to a request body over SIP_MAX_BODY_BYTES (api/limits.py), sent before
    any route reads it: the one place that decides its form (a page in the person's
    language on the routes that serve people, JSON elsewhere)."""
    for route in request.app.state.person_routes:  # the page it would have reached (matching reads no body)
        match, child = route.matches(request.scope)
        if match == Match.FULL:
            request.scope.update(child)
            break
    page = person_page(request)
    if page is not None:
        return error_page(request, page, 413)
    return error_json(
        413,
        "too_large",
        f"the request body is over {limit / 1e6:.1f} MB, the most the engine reads in one request "
        "(SIP_MAX_BODY_BYTES): send less at once (a batch of scores or decisions in several requests), "
        "or ask the engine's administrator to raise the limit",
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method the path is served with (Starlette's 405 names only the methods of
    the first route that matched the path, while FastAPI makes one route per method)."""
    served = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            served.append(method)
    return served


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        await _audit_officer_refusal(request, exc)
        page = person_page(request)
        if page is not None:
            problems = [{"field": e.path.rsplit(".", 1)[-1], "problem": "invalid", "limit": None} for e in exc.errors]
            return error_page(request, page, exc.http_status, reason=exc.reason, language=exc.language, fields=problems)
        return error_json(exc.http_status, exc.code, exc.message, [e.model_dump() for e in exc.errors], exc.hints)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        page = person_page(request)
        if page is not None:
            return error_page(request, page, 422, fields=field_problems(exc.errors()))
        errors = [{"path": json_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        refused = InvalidInput(
            "the request is not valid: " + "; ".join(f"{e['path']}: {e['message']}" for e in errors),
            [FieldError(path=e["path"], message=e["message"]) for e in errors],
        )
        await _audit_officer_refusal(request, refused)
        return error_json(422, "invalid", refused.message, errors)

    async def _audit_officer_refusal(request: Request, exc: ServiceError) -> None:
        """The secretariat's refused attempts are audited (reviewers' are, by their routes)."""
        officer = getattr(request.state, "officer", None)
        if officer is not None and request.app.state.runtime is not None and not isinstance(exc, Unavailable):
            endpoint = getattr(request.scope.get("endpoint"), "__name__", "request")
            await run_in_threadpool(
                audit.record_refusal,
                request.app.state.runtime.engine,
                exc,
                actor=officer,
                role=Role.SECRETARIAT,
                action=f"{getattr(request.state, 'audit_prefix', 'api')}.{endpoint}",
                subject_type="request",
                subject_id=f"{request.method} {request.url.path}",
            )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        page = person_page(request)
        if page is not None:  # any status: 401, 404, 405, 413, 429...
            return error_page(request, page, exc.status_code, headers=headers)
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 429: "too_many_requests"}
        response = error_json(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        """Answered by Starlette's outermost middleware, outside the security headers'
        (api/headers.py): this answer adds them itself."""
        log.exception("unexpected error")
        response: Response | None = None
        page = person_page(request)
        if page is not None:
            try:
                response = error_page(request, page, 500)
            except Exception:  # the page itself failed: the JSON below, never a traceback
                log.exception("the error page failed")
        if response is None:
            response = error_json(
                500,
                "internal",
                "the engine failed unexpectedly; nothing was half-written. Try again, and "
                "tell the secretariat if it happens again",
            )
        secure(response.headers, https=request.url.scheme == "https")
        return response
