"""The Steering Committee's membership, by term: every term with its dates, the
committee as it serves on a chosen day checked against its rule (members, regions,
co-chairs), a term added or changed (brought to an end early, a member's bundle links
end at once), and the membership loaded from a CSV file."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, text_of, uploaded
from api.pages import page_route
from domain.application import FieldError
from domain.committee import composition_gaps
from engine.services import report
from engine.services.committee import membership
from engine.services.errors import InvalidInput, ServiceError
from engine.tables import CommitteeMember
from notifications import labels

router = APIRouter()
MEMBERS_BYTES = 1_000_000


def _page(desk: Desk, day: date | None = None, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    on = day or desk.now.date()

    def gather(session: Session) -> dict[str, Any]:
        terms = session.exec(
            select(CommitteeMember).order_by(col(CommitteeMember.term_start).desc(), col(CommitteeMember.name))
        ).all()
        serving = membership.members_on(session, on)
        gaps = composition_gaps(serving, membership.regions(session))
        return {"terms": list(terms), "serving": serving, "gaps": gaps}

    found = desk.read(gather)
    return desk.page(
        "members.html",
        status_code=status_code,
        on=on,
        gap=lambda g: labels.gap_words(
            g.kind, g.count, g.expected, report.REGIONS.get(g.region, "") if g.region else "", desk.language
        ),
        **found,
        **context,
    )


@page_route(router.get, "/committee", CONSOLE)
def members(desk: DeskDep, on: str = "", done: str | None = None) -> HTMLResponse:
    """Every term of the committee, and the committee serving on a day (today by default)."""
    try:
        day = date.fromisoformat(on) if on else None
    except ValueError:
        day = None
    return _page(desk, day, done=done)


@page_route(router.post, "/committee", CONSOLE)
async def set_member(request: Request, desk: ActingDep) -> Response:
    """Add a term, or change one (by the member's address and the term's first day)."""
    form = await form_of(request)
    email, start = text_of(form, "email", 320), text_of(form, "term_start", 20)
    entered = {k: text_of(form, k) for k in ("name", "country", "role", "term_end", "language")}
    entered["country"] = entered["country"].upper()

    def go(session: Session) -> Any:
        problems = []
        try:
            first = date.fromisoformat(start)
        except ValueError:
            problems.append(FieldError(path="$.term_start", message="not_date"))
        changes: dict[str, Any] = {k: v for k, v in entered.items() if v}
        if "term_end" in changes:
            try:
                changes["term_end"] = date.fromisoformat(changes["term_end"])
            except ValueError:
                problems.append(FieldError(path="$.term_end", message="not_date"))
        if not email:
            problems.append(FieldError(path="$.email", message="member_email_missing"))
        if problems:
            raise InvalidInput("the term's form is not complete", problems)
        return membership.set_member(session, email, first, changes, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            _row, outcome = desk.act("member.set", "member", email or "?", go)
        except ServiceError as exc:
            return _page(
                desk,
                status_code=exc.http_status,
                refusal=refusal_of(exc),
                entered={**entered, "email": email, "term_start": start},
            )
        return back_to(desk, "/committee", done=outcome)

    return await run_in_threadpool(run)


@page_route(router.post, "/committee/file", CONSOLE)
async def load(request: Request, desk: ActingDep) -> Response:
    """Load the membership from a CSV file: every row checked first; terms not in the file stay."""
    raw, name = await uploaded(request, MEMBERS_BYTES, "the membership")

    def go(session: Session) -> dict[str, int]:
        if not raw or len(raw) > MEMBERS_BYTES:
            raise InvalidInput(
                "choose the membership's CSV file", [FieldError(path="$.file", message="members_missing")]
            )
        found = membership.parse_members(
            raw.decode("utf-8-sig", errors="replace"), name, membership.known_parties(session)
        )
        return membership.load_members(session, found, source=name, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            counts = desk.act("member.load", "committee", name, go)
        except ServiceError as exc:
            return _page(desk, status_code=exc.http_status, refusal=refusal_of(exc))
        return back_to(desk, "/committee", done=f"loaded:{counts.get('added', 0)}:{counts.get('updated', 0)}")

    return await run_in_threadpool(run)
