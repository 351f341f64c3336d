"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.attempts import key_attempts_limited
from engine.services.setup import Runtime, prepare

_preparing = threading.Lock()


def get_runtime(request: Request) -> Runtime:
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


bearer = HTTPBearer(auto_error=False, description="The access token given when the application was received")
secretariat_bearer = HTTPBearer(
    auto_error=False, scheme_name="SecretariatKey", description="A secretariat API key (`sip keys new NAME`)"
)


def get_secretariat(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(secretariat_bearer)]
) -> str:
    """The name of the secretariat officer whose key this is; 401 otherwise."""
    from engine.services.tokens import token_hash

    known: dict[str, str] = request.app.state.settings.secretariat_key_hashes()
    name = known.get(token_hash(credentials.credentials)) if credentials else None
    if name is None:
        raise HTTPException(
            status_code=401,
            detail="a secretariat API key is needed (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.officer = name  # a refusal of what they ask is audited under their name
    return name


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
NowDep = Annotated[datetime, Depends(get_now)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
#: The key check, limited: 429 after too many refused keys from a source (api/attempts.py).
SecretariatDep = Annotated[str, Depends(key_attempts_limited(get_secretariat))]
