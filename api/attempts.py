"""The routes that take a secret (an access code, a reviewer's link or session, a
bundle link, a secretariat key): how many refused attempts a source may make, and
how an unknown caller's refusal reaches the audit trail.

- Every such route first checks the source's refused attempts (`limits`, moving
  window, per client address): past `SIP_RATE_LIMIT_FAILED_ATTEMPTS` it answers 429
  with `Retry-After`, before the secret is even looked at, so that guessing stops for
  the window however right the next guess would be. Only refusals count: an officer's
  or a reviewer's normal use is never limited.
- A refusal whose credential names nobody counts against the limit and goes to the
  audit trail through the sampler (`audit.RefusalSampler`: one row per source and
  minute, with a count). A refusal whose credential names someone (a used link, an
  ended session, an expired bundle link) is audited one by one under their name, and
  does not count: it is not a guess.
- Requests for a new reviewer link send mail: every one counts
  (`SIP_RATE_LIMIT_LINK_REQUESTS`).

The source is the client's address as uvicorn gives it (behind the reverse proxy,
from its `X-Forwarded-For`, trusted from `FORWARDED_ALLOW_IPS`). The counts live in
`SIP_RATE_LIMIT_STORAGE` (memory:// by default: each API process counts on its own;
redis:// to share them). Where that storage does not answer, the limits are not
applied (logged), and the refusals are still audited."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, MovingWindowSupport, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from domain.lifecycle import Role
from engine.services import audit
from engine.services.errors import ServiceError, Unauthorized
from engine.settings import Settings

log = logging.getLogger("sip.api")
P = ParamSpec("P")
T = TypeVar("T")


class Guard:
    """One per application: the limits, their storage, and the sampler of refusals."""

    def __init__(self, settings: Settings):
        try:
            storage = storage_from_string(settings.rate_limit_storage, wrap_exceptions=True)
        except ConfigurationError as exc:  # e.g. memcached:// without its client library
            raise ValueError(f"SIP_RATE_LIMIT_STORAGE={settings.rate_limit_storage}: {exc}") from None
        #: In this process's memory (the default): checked on the event loop, as it never waits.
        self.in_memory = isinstance(storage, MemoryStorage)
        self.limiter: RateLimiter = (
            MovingWindowRateLimiter(storage)
            if isinstance(storage, MovingWindowSupport)
            else FixedWindowRateLimiter(storage)  # memcached: no moving window
        )
        self.failed_attempts = parse_many(settings.rate_limit_failed_attempts)
        self.link_requests = parse_many(settings.rate_limit_link_requests)
        self.sampler = audit.RefusalSampler()

    def wait(self, items: list[RateLimitItem], *key: str) -> int:
        """Seconds until the source may try again (0: now)."""
        try:
            waits = [
                self.limiter.get_window_stats(item, *key).reset_time - time.time()
                for item in items
                if not self.limiter.test(item, *key)
            ]
        except StorageError as exc:
            log.warning("the rate limits' storage does not answer (%s): not limiting", exc)
            return 0
        return max(1, math.ceil(max(waits))) if waits else 0

    def hit(self, items: list[RateLimitItem], *key: str) -> None:
        try:
            for item in items:
                self.limiter.hit(item, *key)
        except StorageError as exc:
            log.warning("the rate limits' storage does not answer (%s): not counting", exc)


def source_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


#: What to do once the wait is over, by what was limited.
THEN = {
    "refused attempts": "then try again with the link, code or key exactly as it was sent to you; if it is "
    "still refused, ask the secretariat for a new one",
    "requests for a new link": "then ask again, once: a reviewer with reviews to do gets a new link at most "
    "once an hour",
}


def too_many(seconds: int, what: str) -> HTTPException:
    """The 429 answer: how long to wait, and what to do then."""
    return HTTPException(
        status_code=429,
        detail=f"too many {what} from your address: wait {seconds} seconds (Retry-After), {THEN[what]}",
        headers={"Retry-After": str(seconds)},
    )


@dataclass
class Attempt:
    """A request to a route that takes a secret, from one source."""

    guard: Guard
    source: str
    at: datetime

    @contextmanager
    def refusals(
        self, engine: Engine, *, role: Role, action: str, subject_type: str, subject_id: str
    ) -> Iterator[None]:
        """Run the check of the secret; a refusal is audited (sampled where it names
        nobody) and counted, then raised again."""
        try:
            yield
        except ServiceError as exc:
            self.refused(engine, exc, role=role, action=action, subject_type=subject_type, subject_id=subject_id)
            raise

    def refused(
        self, engine: Engine | None, exc: ServiceError, *, role: Role, action: str, subject_type: str, subject_id: str
    ) -> None:
        """A refusal of this attempt: under the person's name where the credential
        names one; otherwise counted against the source and sampled."""
        if exc.actor is not None:
            if engine is not None:
                audit.record_refusal(
                    engine,
                    exc,
                    actor=exc.actor,
                    role=role,
                    action=action,
                    subject_type=subject_type,
                    subject_id=subject_id,
                )
            return
        self.guard.hit(self.guard.failed_attempts, "failed", self.source)
        if engine is not None and not exc.audited:
            self.guard.sampler.record(
                engine,
                exc,
                source=self.source,
                at=self.at,
                role=role,
                action=action,
                subject_type=subject_type,
                subject_id=subject_id,
            )


def begin(request: Request) -> Attempt:
    """The attempt of this request: 429 where its source made too many refused ones."""
    guard: Guard = request.app.state.guard
    source = source_of(request)
    wait = guard.wait(guard.failed_attempts, "failed", source)
    if wait:
        raise _limited(request, guard, source, wait, "refused attempts")
    return Attempt(guard=guard, source=source, at=_now(request))


async def begin_attempt(request: Request) -> Attempt:
    """`begin` as a dependency: on the event loop where the counts are in memory (no
    thread of the pool taken per request), in a thread where the storage is a server."""
    guard: Guard = request.app.state.guard
    if guard.in_memory:
        return begin(request)
    return await run_in_threadpool(begin, request)


def link_request(request: Request) -> None:
    """Every request for a new sign-in link counts (each may send a message)."""
    guard: Guard = request.app.state.guard
    source = source_of(request)
    wait = guard.wait(guard.link_requests, "links", source)
    if wait:
        raise _limited(request, guard, source, wait, "requests for a new link")
    guard.hit(guard.link_requests, "links", source)


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def _limited(request: Request, guard: Guard, source: str, wait: int, what: str) -> HTTPException:
    """The 429, counted in the source's minute of refusals (not audited on its own)."""
    endpoint = getattr(request.scope.get("endpoint"), "__name__", "request")
    guard.sampler.count(source=source, at=_now(request), action=f"api.{endpoint}.rate_limited")
    return too_many(wait, what)


AttemptDep = Annotated[Attempt, Depends(begin_attempt)]


def key_attempts_limited(check: Callable[P, T]) -> Callable[P, T]:
    """A secretariat key check (a dependency with a `request` parameter), limited:
    429 where the source made too many refused attempts; its 401 counted and sampled
    (officers' normal use is not limited)."""

    @functools.wraps(check)
    def limited(*args: P.args, **kwargs: P.kwargs) -> T:
        request = kwargs["request"]
        assert isinstance(request, Request)
        attempt = begin(request)
        try:
            return check(*args, **kwargs)
        except HTTPException as exc:
            if exc.status_code == 401:
                runtime = request.app.state.runtime
                attempt.refused(
                    runtime.engine if runtime is not None else None,
                    Unauthorized(str(exc.detail), actor=getattr(request.state, "key_holder", None)),
                    role=Role.SECRETARIAT,
                    action="api.key",
                    subject_type="request",
                    subject_id=f"{request.method} {request.url.path}",
                )
            raise

    return limited
