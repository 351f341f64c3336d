"""The secretariat's routes (a secretariat API key): trigger screening and follow it,
and record what people add to it."""

from __future__ import annotations

import logging
import threading
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.common import error_responses
from api.deps import NowDep, RuntimeDep, SecretariatDep
from domain.rounds import RoundStatus
from engine.db import reading, unit_of_work
from engine.services import appraisal, follow_up, report
from engine.services import rounds as round_service
from engine.services.screening import ensure_closed, screening_counts

log = logging.getLogger("sip.api")
router = APIRouter(prefix="/rounds/{round_id}", tags=["secretariat"])


class ScreeningStarted(BaseModel):
    flow_run_id: str
    round: str
    progress: str = Field(description="GET this path to follow the screening")


class ScreeningRow(BaseModel):
    rank: int | None
    reference: str
    party: str
    region: str
    ldc: bool
    sids: bool
    verdict: str
    overridden: str
    failed: list[str]
    needs_judgement: list[str]
    weighted_score: str | None
    scored_weight: str | None = Field(description="share (%) of the criteria's weight scored so far")
    unscored: list[str]


class ScreeningProgress(BaseModel):
    round: str
    status: RoundStatus
    counts: dict[str, int] = Field(description="applications by screening verdict, and those not screened yet")
    applications: list[ScreeningRow]


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(max_length=60)
    criterion: str = Field(max_length=64)
    score: int
    comment: str | None = Field(default=None, max_length=4000)


class ScoresIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: list[ScoreIn] = Field(min_length=1, max_length=10_000)


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["screened", "incomplete", "ineligible"]
    reason: str = Field(max_length=2000)


class InformationRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[str] = Field(min_length=1, max_length=50)
    due: date | None = None


def _run_in_background(flow: Any, flow_run: Any, parameters: dict[str, Any]) -> None:
    from prefect.flow_engine import run_flow

    def target() -> None:
        try:
            run_flow(flow, flow_run=flow_run, parameters=parameters)
        except Exception:  # the flow run's state in Prefect records it too
            log.exception("flow run %s (%s) failed", flow_run.id, flow.name)

    threading.Thread(target=target, name=f"flow-run-{flow_run.id}", daemon=True).start()


@router.post("/screening", status_code=status.HTTP_202_ACCEPTED, response_model=ScreeningStarted,
             responses=error_responses(401, 404, 409))
async def start_screening(round_id: str, rt: RuntimeDep, now: NowDep, officer: SecretariatDep) -> ScreeningStarted:
    """Start the `screen-applications` flow for a closed round; answers at once with the flow run's id."""
    def check() -> None:
        with reading(rt.engine) as session:
            row = round_service.get_round(session, round_id)
            if row.status != RoundStatus.SCREENING.value:
                ensure_closed(row, now)

    await run_in_threadpool(check)
    from prefect.client.orchestration import get_client

    from flows.screening import screen_applications_flow

    parameters = {"round_id": round_id, "actor": officer}
    async with get_client() as client:
        flow_run = await client.create_flow_run(screen_applications_flow, parameters=parameters)
    _run_in_background(screen_applications_flow, flow_run, parameters)
    return ScreeningStarted(flow_run_id=str(flow_run.id), round=round_id, progress=f"/rounds/{round_id}/screening")


@router.get("/screening", response_model=ScreeningProgress, responses=error_responses(401, 404))
def screening_progress(round_id: str, rt: RuntimeDep, officer: SecretariatDep) -> ScreeningProgress:
    """How far screening is, and each application's outcome (ranked by weighted score)."""
    with reading(rt.engine) as session:
        row = round_service.get_round(session, round_id)
        rows = report.report_rows(session, round_id)
        counts = screening_counts(session, round_id)
    return ScreeningProgress(round=round_id, status=RoundStatus(row.status), counts=counts, applications=[
        ScreeningRow(rank=r.rank, reference=r.reference, party=r.party, region=r.region, ldc=r.ldc, sids=r.sids,
                     verdict=r.verdict, overridden=r.overridden, failed=r.failed.split(),
                     needs_judgement=r.needs_judgement.split(),
                     weighted_score=None if r.weighted_score is None else str(r.weighted_score),
                     scored_weight=None if r.scored_weight is None else str(r.scored_weight),
                     unscored=r.unscored.split())
        for r in rows])


@router.post("/screening/scores", responses=error_responses(401, 404, 422))
def record_scores(round_id: str, body: ScoresIn, rt: RuntimeDep, now: NowDep,
                  officer: SecretariatDep) -> dict[str, int]:
    """Record appraisal scores (all, or none if one is wrong: every problem is listed)."""
    rows = [appraisal.ScoreRow(s.reference, s.criterion, str(s.score), s.comment, f"$.scores[{i}]")
            for i, s in enumerate(body.scores)]
    with unit_of_work(rt.engine) as session:
        changed = appraisal.record_scores(session, round_id, rows, actor=officer, at=now)
    return {"scores": len(rows), "recorded": changed}


@router.post("/applications/{reference}/override", responses=error_responses(401, 404, 409, 422))
def override(round_id: str, reference: str, body: OverrideIn, rt: RuntimeDep, now: NowDep,
             officer: SecretariatDep) -> dict[str, Any]:
    """Replace an automatic screening verdict with a person's decision, for a reason."""
    with unit_of_work(rt.engine) as session:
        changed = appraisal.override(session, rt.settings, round_id, reference, body.verdict, reason=body.reason,
                                     actor=officer, at=now)
    return {"reference": reference, "verdict": body.verdict, "changed": changed}


@router.post("/applications/{reference}/information-request", responses=error_responses(401, 404, 409, 422))
def request_information(round_id: str, reference: str, body: InformationRequestIn, rt: RuntimeDep, now: NowDep,
                        officer: SecretariatDep) -> dict[str, Any]:
    """Ask the applicant for missing items by a date (default: the round's response days)."""
    with unit_of_work(rt.engine) as session:
        due = follow_up.request_information(session, rt.settings, round_id, reference, body.items, due=body.due,
                                            actor=officer, at=now)
    return {"reference": reference, "status": "information_requested", "due": due.isoformat()}
