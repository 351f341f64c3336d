"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.services.setup import Runtime


def get_runtime(request: Request) -> Runtime:
    """The runtime the application's start-up prepared (migrations applied once)."""
    return request.app.state.runtime


def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


bearer = HTTPBearer(auto_error=False, description="The access token given when the application was received")

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
NowDep = Annotated[datetime, Depends(get_now)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
