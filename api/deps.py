"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.attempts import key_attempts_limited
from api.common import error_responses
from domain.keys import KeyScope
from engine.services import keys
from engine.services.errors import Forbidden, Unauthorized
from engine.services.keys import Officer
from engine.services.setup import Runtime, prepare

_preparing = threading.Lock()


async def get_runtime(request: Request) -> Runtime:
    """The runtime, as a dependency: on the event loop, without a thread of the pool,
    once it is prepared (a `def` dependency would take a thread for every request)."""
    runtime: Runtime | None = request.app.state.runtime
    if runtime is not None:
        return runtime
    return await run_in_threadpool(runtime_of, request)


def runtime_of(request: Request) -> Runtime:
    """The runtime the application's start-up prepared (migrations applied once); if
    the database did not answer then, it is prepared at the first request that finds
    it answering (until then: 503, naming why)."""
    runtime: Runtime | None = request.app.state.runtime
    if runtime is None:
        with _preparing:
            runtime = request.app.state.runtime
            if runtime is None:
                runtime = prepare(request.app.state.settings)
                request.app.state.runtime = runtime
    return runtime


def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def now_dependency(request: Request) -> datetime:
    """`get_now` as a dependency, on the event loop (the clock does not block)."""
    return get_now(request)


bearer = HTTPBearer(auto_error=False, description="The access token given when the application was received")
secretariat_bearer = HTTPBearer(
    auto_error=False, scheme_name="SecretariatKey", description="A secretariat API key (`sip keys new NAME`)"
)


def get_secretariat(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(secretariat_bearer)]
) -> Officer:
    """The secretariat officer whose key this is, and its scope; 401 otherwise (no key,
    an unknown one, or one that expired or was revoked: the answer says which). Keys
    of SIP_SECRETARIAT_KEYS are checked first, without the database."""
    if credentials is None:
        raise _unauthorized(_NEEDED)
    officer = keys.from_settings(credentials.credentials, request.app.state.settings.secretariat_key_hashes())
    if officer is None:
        try:
            officer = keys.authenticate(runtime_of(request).engine, credentials.credentials, at=get_now(request))
        except Unauthorized as exc:
            request.state.key_holder = exc.actor  # an expired or revoked key names its officer (api/attempts.py)
            raise _unauthorized(exc.message + (_ASK_FOR_KEY if exc.hints else "")) from None
    request.state.officer = officer.name  # a refusal of what they ask is audited under their name
    return officer


_NEEDED = "a secretariat API key is needed (Authorization: Bearer <key>)"
_ASK_FOR_KEY = " (`sip keys new NAME` on the engine's machine makes one)"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


#: The key check, limited: 429 after too many refused keys from a source (api/attempts.py).
OfficerDep = Annotated[Officer, Depends(key_attempts_limited(get_secretariat))]


def secretariat_reader(officer: OfficerDep) -> str:
    """For the secretariat's routes that change nothing: any working key (scope read or full)."""
    return officer.name


def secretariat_writer(request: Request, officer: OfficerDep) -> str:
    """For the secretariat's routes that change the engine's state: a key of scope
    full; 403 for a read-only key (the refusal is audited under the officer's name)."""
    try:
        keys.check_scope(officer, KeyScope.FULL, f"{request.method} {request.url.path}")
    except Forbidden as exc:
        raise Forbidden(exc.message + " (`sip keys new NAME --scope full`)", hints=exc.hints) from None
    return officer.name


def needs(route: APIRoute, dependency: Callable[..., Any]) -> bool:
    """Whether the route depends on `dependency`, directly or through another dependency
    (or a wrapper of it, such as the rate-limited key check)."""
    pending = list(route.dependant.dependencies)
    while pending:
        found = pending.pop()
        if found.call is dependency or getattr(found.call, "__wrapped__", None) is dependency:
            return True
        pending.extend(found.dependencies)
    return False


def declare_scopes(router: APIRouter) -> None:
    """Each of the router's routes that needs a key of scope full says so in the
    OpenAPI document (its 403), as its dependencies say: the document cannot drift from
    what the routes do. Call it before the router is included in the application."""
    for route in router.routes:
        if isinstance(route, APIRoute) and needs(route, secretariat_writer):
            route.responses = {**route.responses, **error_responses(403)}


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
NowDep = Annotated[datetime, Depends(now_dependency)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
#: The officer's name, for a route that changes nothing (a key of scope read or full).
SecretariatReader = Annotated[str, Depends(secretariat_reader)]
#: The officer's name, for a route that changes the engine's state (a key of scope full).
SecretariatWriter = Annotated[str, Depends(secretariat_writer)]
