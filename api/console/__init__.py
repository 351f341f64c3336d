"""The secretariat's console: the pages a programme officer runs rounds from, under
/console/, over the same services as the CLI and the API. Every action is audited under
the officer's own address (api/console/base.py says how a session, a form and a role are
checked)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from api.console import (
    account,
    applications,
    appraisal,
    committee,
    grants,
    keys,
    members,
    outbox,
    review,
    rounds,
    sso,
)
from api.console.base import SignInFirst, console_path
from api.pages import PAGE_HEADERS

router = APIRouter(prefix="/console")
for part in (
    account.router,
    rounds.router,
    applications.router,
    appraisal.router,
    committee.router,
    outbox.router,
    review.router,
    keys.router,
    members.router,
    sso.router,
    grants.router,
):
    router.include_router(part)


def install(app: FastAPI) -> None:
    """A console page opened without a working session leads to the sign-in form, which
    brings the officer back to it."""

    @app.exception_handler(SignInFirst)
    async def _sign_in_first(request: Request, exc: SignInFirst) -> Response:
        console = console_path(request, request.app.state.runtime) if request.app.state.runtime else "/console"
        ended = "&ended=1" if request.cookies.get("sip_console_session") else ""
        return RedirectResponse(
            f"{console}/sign-in?next={quote(exc.next_path, safe='/')}{ended}", status_code=303, headers=PAGE_HEADERS
        )
