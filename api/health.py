"""Liveness and readiness, for a process manager and a load balancer."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import literal
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from api.common import error_json, error_responses
from api.deps import runtime_of
from api.schemas import AliveOut, ReadyOut
from engine.db import reading
from engine.services.errors import ServiceError
from engine.services.setup import unreachable

log = logging.getLogger("sip.api")
router = APIRouter(tags=["service"])


@router.get("/health/live", response_model=AliveOut)
def alive() -> AliveOut:
    """Liveness: the process answers (a process manager restarts it when it does not)."""
    return AliveOut()


@router.get("/health/ready", response_model=ReadyOut, responses=error_responses(503))
@router.get("/health", response_model=ReadyOut, responses=error_responses(503))
def ready(request: Request) -> ReadyOut | JSONResponse:
    """Readiness: the database answers and its schema is the one this engine needs
    (a load balancer sends requests here only then)."""
    try:
        rt = runtime_of(request)
        with reading(rt.engine) as session:
            session.exec(select(literal(1))).one()
    except OperationalError as exc:
        refusal: ServiceError = unreachable(request.app.state.settings.url, exc)
    except ServiceError as exc:
        refusal = exc
    else:
        return ReadyOut()
    log.warning("not ready: %s", refusal.message)
    return error_json(503, refusal.code, refusal.message)
