"""The messages: the outbox (queued, sent, failed with the last error), queueing failed
ones again, and a preview of any message as its recipient reads it (the secrets a
message carries, an access code or a personal link, are put in only when it is sent:
the preview shows where)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, ActingDep, DeskDep, back_to, form_of
from api.headers import BUNDLE_POLICY
from api.pages import PAGE_HEADERS, page_route
from engine.services import outbox as outbox_service
from engine.services.delivery import retry_failed
from engine.services.errors import NotFound
from engine.tables import MessageState, OutboxMessage

router = APIRouter()
#: A message's id in an address: a whole number the database's integers hold (anything else is a 422 page).
MessageId = Annotated[int, Path(ge=1, le=2**31 - 1)]
#: The most messages the list shows at once (the newest; filters narrow it).
SHOWN = 500


@page_route(router.get, "/outbox", CONSOLE)
def messages(desk: DeskDep, state: str = "", round: str = "", done: str | None = None) -> HTMLResponse:  # noqa: A002
    """The outbox, newest first, by state and round."""
    state = state if state in {s.value for s in MessageState} else ""
    round_id = round[:40] or None
    lines = desk.read(lambda s: outbox_service.list_messages(s, state=state or None, round_id=round_id, newest=SHOWN))
    counts = desk.read(lambda s: outbox_service.message_counts(s, round_id=round_id))
    total = counts.get(state, 0) if state else sum(counts.values())
    return desk.page(
        "outbox.html",
        lines=lines,
        total=total,
        shown=len(lines),
        counts=counts,
        states=[s.value for s in MessageState],
        state=state,
        round_id=round[:40],
        done=done,
    )


def _message(session: Session, message_id: int) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"no message {message_id} in the outbox")
    return message


@page_route(router.get, "/outbox/{message_id}", CONSOLE)
def message(message_id: MessageId, desk: DeskDep) -> HTMLResponse:
    """One message: its recipient, state and attempts, and its text as the recipient reads it."""
    found = desk.read(lambda s: _message(s, message_id))
    return desk.page("message.html", m=found)


@page_route(router.get, "/outbox/{message_id}/html", CONSOLE)
def message_html(message_id: MessageId, desk: DeskDep) -> Response:
    """The message's HTML version, as a mail reader shows it (no script, nothing loaded)."""
    found = desk.read(lambda s: _message(s, message_id))
    return HTMLResponse(found.body_html, headers={**PAGE_HEADERS, "Content-Security-Policy": BUNDLE_POLICY})


@page_route(router.post, "/outbox/retry", CONSOLE)
async def retry(request: Request, desk: ActingDep) -> Response:
    """Queue failed messages again: one (its id), or every failed one."""
    form = await form_of(request)
    raw = form.get("id")
    ids: list[int] | None = [int(raw)] if isinstance(raw, str) and re.fullmatch(r"[0-9]{1,9}", raw) else None

    def go(session: Session) -> Any:
        return retry_failed(session, ids, actor=desk.actor, at=desk.now)

    count = await run_in_threadpool(desk.act, "outbox.retry", "outbox", "failed", go)
    return back_to(desk, "/outbox", done=f"retried:{count}")
