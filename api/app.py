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
from starlette.concurrency import run_in_threadpool

from api import applicants, committee, health, reviewer, secretariat
from api.common import DEFAULT_ERROR
from api.errors import install_error_handlers
from api.logs import redact_access_log
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

    app = FastAPI(
        title="SIP engine",
        version="0.1.0",
        summary="Specific International Programme of the Minamata Convention on Mercury: applications and status",
        lifespan=lifespan,
        responses=DEFAULT_ERROR,
    )
    redact_access_log()
    app.state.clock = now
    app.state.settings = settings
    app.state.runtime = None  # prepared on start-up (or at the first request, if the database answers only then)
    for router in (
        applicants.router,
        health.router,
        secretariat.router,
        secretariat.reviewers_router,
        secretariat.outbox_router,
        reviewer.router,
        committee.router,
    ):
        app.include_router(router)
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        document = ApplicationDocument.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(document.pop("$defs", {}))
        components["ApplicationDocument"] = document
        for model in (reviewer.ReviewIn, reviewer.ReasonIn, reviewer.LinkIn):  # bodies checked in the handler
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        text_without_nul(document)
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
