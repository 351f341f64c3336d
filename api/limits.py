"""One limit on the size of every request body, checked before anything else reads it.

A pure ASGI middleware, the outermost of the application's: a body whose declared
length (Content-Length) is over the limit is answered 413 at once, unread; a body
without a declared length (chunked) is counted as it streams in and answered 413 as
soon as the count passes the limit. Nothing is buffered here, so no route, no parser
and no authentication ever holds more than the limit of a request body. Routes keep
their own, smaller limits (intake's SIP_MAX_REQUEST_BYTES)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("sip.api")

#: How a refused request is answered: the request (headers only: its body is never
#: read) and the limit in bytes -> the answer (api/errors.py's `request_too_large`).
Refusal = Callable[[Request, int], Response]


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int, refusal: Refusal) -> None:
        self.app = app
        self.limit = limit
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self.refusal(Request(scope), self.limit)(scope, receive, send)
            return

        received = 0
        started = False  # the application began its answer (then a refusal can no longer be sent)
        refused = False  # the refusal was sent: the body is cut off and the application's answer dropped

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not started:
                        refused = True
                        await self.refusal(Request(scope), self.limit)(scope, receive, send)
                    return {"type": "http.disconnect"}  # the application reads no more of it
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
            # the application failed on the body cut off after the refusal was sent: nothing more to answer
            log.debug("a request over %d bytes was refused while the application read it", self.limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
