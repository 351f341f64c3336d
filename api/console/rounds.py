"""The rounds: a dashboard of every round (status, dates, applications by status), a
round's page (its stages started as Prefect runs, and those runs' outcome), loading a
round file, opening and closing."""

from __future__ import annotations

import functools
import importlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, uploaded
from api.pages import page_route
from api.stages import orchestrator, start_stage
from domain.lifecycle import Role, Status
from engine.services import audit
from engine.services import rounds as round_service
from engine.services import stages as stage_service
from engine.services.committee import bundles
from engine.services.errors import ServiceError
from engine.services.letters import check_letters
from engine.services.review import assignment, invitations
from engine.services.screening import check_screening
from engine.tables import Application, AuditEvent, Round

log = logging.getLogger("sip.api")
router = APIRouter()
#: The largest round file the page takes (a round's TOML is a few kilobytes).
ROUND_FILE_BYTES = 200_000


@dataclass(frozen=True)
class Stage:
    """A stage the console starts: its flow, and what the flow would refuse, checked first."""

    flow: str
    check: Callable[[Session, str, datetime, dict[str, Any]], None]
    #: The round statuses in which the round's page offers it.
    offered: tuple[str, ...]


STAGES: dict[str, Stage] = {
    "open": Stage(
        "flows.opening:open_round_flow",
        lambda s, r, at, p: round_service.check_open(s, r, at=at),
        ("draft",),
    ),
    "close": Stage(
        "flows.opening:close_round_flow",
        lambda s, r, at, p: round_service.check_close(s, r, at=at, early_reason=p.get("early_reason")),
        ("open",),
    ),
    "screening": Stage(
        "flows.screening:screen_applications_flow",
        lambda s, r, at, p: check_screening(s, r, at),
        ("closed", "screening"),
    ),
    "assignment": Stage(
        "flows.review:assign_gmp_reviewers_flow", lambda s, r, at, p: assignment.check_assignment(s, r), ("screening",)
    ),
    "invitations": Stage(
        "flows.review:invite_gmp_reviewers_flow",
        lambda s, r, at, p: invitations.check_invite(s, r, at=at, due=None),
        ("screening",),
    ),
    "committee": Stage(
        "flows.review:send_to_committee_flow",
        lambda s, r, at, p: (stage_service.check_committee(s, r), None)[1],
        ("screening", "review"),
    ),
    "bundles": Stage(
        "flows.committee:prepare_committee_bundles_flow",
        lambda s, r, at, p: bundles.check_bundles(s, r),
        ("committee",),
    ),
    "letters": Stage(
        "flows.committee:send_decision_letters_flow", lambda s, r, at, p: check_letters(s, r), ("decided",)
    ),
}


@dataclass(frozen=True)
class RoundLine:
    view: round_service.RoundView
    counts: dict[str, int]
    total: int


def _counts(session: Session, round_id: str | None = None) -> dict[str, Counter[str]]:
    """Applications by round and status (of one round, or of all)."""
    found: dict[str, Counter[str]] = {}
    statement = select(Application.round_id, Application.status, func.count())
    if round_id is not None:
        statement = statement.where(Application.round_id == round_id)
    rows = session.exec(statement.group_by(col(Application.round_id), col(Application.status))).all()
    for round_id, status, count in rows:
        found.setdefault(round_id, Counter())[Status(status).value] = count
    return found


@page_route(router.get, "/", CONSOLE)
def dashboard(desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """Every round, with its status, its dates and its applications by status."""
    return _dashboard(desk, done=done)


def _dashboard(desk: Desk, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    def lines(session: Session) -> list[RoundLine]:
        counts = _counts(session)
        return [
            RoundLine(view, dict(counts.get(view.id, Counter())), sum(counts.get(view.id, Counter()).values()))
            for view in (desk.round(row) for row in session.exec(select(Round).order_by(col(Round.opens_at))).all())
        ]

    return desk.page(
        "dashboard.html", status_code=status_code, rounds=desk.read(lines), statuses=list(Status), **context
    )


@page_route(router.post, "/rounds", CONSOLE)
async def load_round(request: Request, desk: ActingDep) -> Response:
    """Load a round file (TOML): checked whole, every problem named by its key."""
    raw, source = await uploaded(request, ROUND_FILE_BYTES, "the pasted text")
    pasted = (await form_of(request)).get("text")
    if raw:
        text: str | None = raw.decode("utf-8", errors="replace") if len(raw) <= ROUND_FILE_BYTES else None
    else:
        text = pasted if isinstance(pasted, str) else ""
    return await run_in_threadpool(_load, desk, text, source)


def _load(desk: Desk, text: str | None, source: str) -> Response:
    if text is None:
        return _dashboard(
            desk,
            status_code=413,
            refusal={"message": f"{source} is too large", "fields": [("file", "round_file_too_large")]},
        )
    if not text.strip():
        return _dashboard(
            desk,
            status_code=422,
            refusal={"message": "choose a round file", "fields": [("file", "round_file_missing")]},
        )

    def store(session: Session) -> tuple[str, str]:
        definition = round_service.parse_round(text, source)
        row, outcome = round_service.store_round(session, definition, source=source, actor=desk.actor, at=desk.now)
        return row.id, outcome

    try:
        round_id, outcome = desk.act("round_load", "round", source[:100], store)
    except ServiceError as exc:
        return _dashboard(desk, status_code=exc.http_status, refusal=refusal_of(exc), pasted=text)
    return back_to(desk, "/", done=f"{outcome}:{round_id}")


@page_route(router.get, "/rounds/{round_id}", CONSOLE)
async def round_page(round_id: str, desk: DeskDep, started: str | None = None) -> HTMLResponse:
    """A round: its dates and status, its applications by status, the stages to start, and their runs."""
    return await _round_page(desk, round_id, started=started)


async def _round_page(desk: Desk, round_id: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    def gather(session: Session) -> dict[str, Any]:
        row = round_service.get_round(session, round_id)
        view = desk.round(row)
        counts = _counts(session, round_id).get(round_id, Counter())
        requested = session.exec(
            select(AuditEvent)
            .where(AuditEvent.subject_type == "round", AuditEvent.subject_id == round_id)
            .where(AuditEvent.action == "stage.requested")
            .order_by(col(AuditEvent.id).desc())
            .limit(50)
        ).all()
        return {"view": view, "counts": dict(counts), "total": sum(counts.values()), "requested": list(requested)}

    found = await run_in_threadpool(desk.read, gather)
    runs = await flow_runs([e.details["flow_run_id"] for e in found["requested"] if e.details])
    offered = [name for name, stage in STAGES.items() if found["view"].status.value in stage.offered]
    return desk.page(
        "round.html",
        status_code=status_code,
        r=found["view"],
        counts=found["counts"],
        total=found["total"],
        statuses=list(Status),
        requested=found["requested"],
        runs=runs,
        offered=offered,
        prefect_ui=prefect_ui(),
        early=desk.now < found["view"].closes_at,
        **context,
    )


@page_route(router.post, "/rounds/{round_id}/stages/{stage}", CONSOLE)
async def start(round_id: str, stage: str, request: Request, desk: ActingDep) -> Response:
    """Start a stage of the round: what its flow would refuse is refused here first; then
    the flow's run is created (on the Prefect server where there is one) and the page shows it."""
    form = await form_of(request)
    chosen = STAGES.get(stage)
    if chosen is None:
        return await _round_page(
            desk, round_id, status_code=404, refusal={"message": f"there is no stage {stage!r}", "fields": []}
        )
    reason = str(form.get("early_reason") or "").strip() or None
    parameters: dict[str, Any] = {"round_id": round_id, "at": desk.now.isoformat()}
    if stage == "close":
        parameters["early_reason"] = reason
    if stage == "committee":  # closing the GMP review before every review is in
        parameters["reason"] = str(form.get("reason") or "").strip()[:2000] or None
    try:
        await run_in_threadpool(
            desk.check, f"stage.{stage}", "round", round_id, lambda s: chosen.check(s, round_id, desk.now, parameters)
        )
        module, name = chosen.flow.split(":")
        flow = getattr(importlib.import_module(module), name)
        run_id = await start_stage(desk.rt, flow, parameters, officer=desk.actor, round_id=round_id)
    except ServiceError as exc:
        if not exc.audited:
            await run_in_threadpool(
                functools.partial(
                    audit.record_refusal,
                    desk.rt.engine,
                    exc,
                    actor=desk.actor,
                    role=Role.SECRETARIAT,
                    action=f"console.stage.{stage}",
                    subject_type="round",
                    subject_id=round_id,
                )
            )
        return await _round_page(desk, round_id, status_code=exc.http_status, refusal=refusal_of(exc))
    return back_to(desk, f"/rounds/{round_id}", started=f"{flow.name}:{run_id}")


@dataclass(frozen=True)
class RunState:
    name: str
    state: str
    completed: bool
    failed: bool
    message: str | None


async def flow_runs(ids: list[str]) -> dict[str, RunState]:
    """The state of each flow run, as Prefect has it (none, where Prefect does not answer)."""
    if not ids:
        return {}
    try:
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.client.schemas.sorting import FlowRunSort

        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids])),
                sort=FlowRunSort.ID_DESC,  # the server refuses a filter without one
                limit=len(ids),
            )
    except Exception as exc:  # Prefect does not answer: the page says the state is not known
        log.warning("the states of the round's flow runs could not be read from Prefect: %s", exc)
        return {}
    return {
        str(run.id): RunState(
            run.name,
            (run.state.name or run.state.type.value) if run.state else "Unknown",
            bool(run.state and run.state.is_completed()),
            bool(run.state and (run.state.is_failed() or run.state.is_crashed())),
            (run.state.message or None) if run.state else None,
        )
        for run in runs
    }


def prefect_ui() -> str | None:
    """The Prefect UI's address where there is a Prefect server (its runs are linked)."""
    if not orchestrator():
        return None
    try:
        from prefect.settings import PREFECT_UI_URL

        url = PREFECT_UI_URL.value()
    except Exception:
        return None
    return str(url).rstrip("/") if url else None
