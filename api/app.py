"""The FastAPI application, put together: the applicants' and the public routes, the
secretariat's, the reviewers' and the committee's, health, and the error answers.
Errors are JSON with every offending field, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api import applicants, committee, console, grants, health, portal, reviewer, secretariat
from api.attempts import Guard
from api.common import DEFAULT_ERROR
from api.deps import declare_scopes
from api.docs import install_docs
from api.errors import install_error_handlers, request_too_large
from api.headers import SecurityHeaders
from api.limits import BodyLimit
from api.logs import redact_access_log
from api.pages import marks
from domain.application import ApplicationDocument, text_without_nul
from engine.services.errors import ServiceError
from engine.services.setup import Runtime, prepare
from engine.settings import Settings

log = logging.getLogger("sip.api")


def create_app(settings: Settings, *, now: Callable[[], datetime] = Runtime.now) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            app.state.runtime = await run_in_threadpool(prepare, settings)
        except ServiceError as exc:  # e.g. the database does not answer yet: say so, and answer 503 until it does
            log.error("%s; the API answers 503 until then (GET /health/ready says when it is ready)", exc.message)
            app.state.runtime = None
        yield
        runtime = app.state.runtime
        if runtime is not None:  # the counts of the unknown callers' refusals not yet written
            try:
                await run_in_threadpool(app.state.guard.sampler.flush, runtime.engine, everything=True)
            except ServiceError as exc:
                log.error("the counts of refused attempts could not be written: %s", exc.message)

    app = FastAPI(
        title="SIP engine",
        version="0.1.0",
        summary="Specific International Programme of the Minamata Convention on Mercury: applications and status",
        lifespan=lifespan,
        responses=DEFAULT_ERROR,
        docs_url=None,  # served by install_docs, with their assets, from the engine itself
        redoc_url=None,
    )
    redact_access_log()
    app.state.clock = now
    app.state.settings = settings
    app.state.guard = Guard(settings)  # the rate limits of the routes that take a secret, and the refusals' sampler
    app.state.runtime = None  # prepared on start-up (or at the first request, if the database answers only then)
    routers = (
        applicants.router,
        health.router,
        secretariat.router,
        secretariat.reviewers_router,
        secretariat.outbox_router,
        grants.router,
        grants.agreement_router,
        reviewer.router,
        portal.router,
        committee.router,
        console.router,
    )
    for router in routers:
        declare_scopes(router)
        app.include_router(router)
    # The pages people open, for answers given before a route is reached (the body limit's 413).
    app.state.person_routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute) and marks(r)]
    install_error_handlers(app)
    console.install(app)
    install_docs(app)
    # Added last, so outermost (each added middleware wraps the ones before): the body
    # limit before any route, parser or authentication reads a byte of a body; the
    # security headers, which only add to what is sent, on every answer (a 413 too).
    app.add_middleware(BodyLimit, limit=settings.body_limit, refusal=request_too_large)
    app.add_middleware(SecurityHeaders)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        document = ApplicationDocument.model_json_schema(ref_template="#/components/schemas/{model}")
        text_without_nul(document)  # its forms' schemas too ($defs), which the forms' own route refers to
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(document.pop("$defs", {}))
        components["ApplicationDocument"] = document
        for model in (reviewer.ReviewIn, reviewer.ReasonIn, reviewer.LinkIn):  # bodies checked in the handler
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        _errors_as_json(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _errors_as_json(schema: dict[str, Any]) -> None:
    """An HTML route's refusals are JSON (api/errors.py) like every other route's, whatever
    FastAPI infers from the route's own HTML answer."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                html = content.get("text/html", {})
                if (code == "default" or code >= "400") and html.get("schema", {}).get("$ref", "").endswith(
                    "/ErrorOut"
                ):
                    content["application/json"] = content.pop("text/html")
