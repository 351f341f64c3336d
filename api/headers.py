"""Security headers on every answer: a Content-Security-Policy without inline script
(every page's styles and scripts are files the engine serves, under /assets and
/docs/assets), no MIME sniffing, no Referer (links carry tokens), and HSTS when the
request came over HTTPS (the scheme uvicorn gives, behind --proxy-headers the proxy's).
A route that needs another policy (a committee bundle's inline styles) sets its own
Content-Security-Policy; the others are set only where the answer has none."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: ReDoc writes its styles as <style> elements from its script, and runs its search in a
#: worker made from a blob: its scripts are still only the engine's files. (Swagger UI,
#: on /docs, holds with POLICY.)
REDOC_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: A committee bundle is a self-contained file (it is also downloaded and printed): its
#: styles are inline, it has no script and loads nothing.
BUNDLE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
HSTS = "max-age=31536000"


def secure(headers: MutableHeaders, *, https: bool) -> None:
    """Add the security headers an answer does not set itself."""
    headers.setdefault("Content-Security-Policy", POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if https:
        headers.setdefault("Strict-Transport-Security", HSTS)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                secure(MutableHeaders(scope=message), https=https)
            await send(message)

        await self.app(scope, receive, with_headers)
