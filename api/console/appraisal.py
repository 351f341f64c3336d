"""Appraisal: the applications that passed screening with their weighted score (and the
share of the weight it covers), a scoring page per application with each judgement
criterion's scale as choices, and the scoring sheet (CSV) checked whole before any
score is kept. A ranking is shown only once every judgement criterion is scored."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.console.base import CONSOLE, ActingDep, Desk, DeskDep, back_to, form_of, refusal_of, uploaded
from api.pages import page_route
from domain.application import FieldError
from domain.lifecycle import APPRAISED_STATUSES
from domain.rounds import Criterion, CriterionKind
from engine.services import appraisal, report
from engine.services import rounds as round_service
from engine.services.errors import InvalidInput, NotFound, ServiceError
from engine.services.parties import party_names
from engine.tables import Application, AppraisalScore
from notifications import labels

router = APIRouter()
SHEET_BYTES = 5_000_000


@dataclass(frozen=True)
class Line:
    row: report.ReportRow
    scored: int  # judgement criteria scored
    rank: int | None  # shown only where the ranking is final


def _judgements(session: Session, round_id: str) -> tuple[Any, list[Criterion]]:
    row = round_service.get_round(session, round_id)
    definition = round_service.definition_of(row)
    return row, [c for c in definition.criteria if c.kind is CriterionKind.JUDGEMENT]


@page_route(router.get, "/rounds/{round_id}/appraisal", CONSOLE)
def appraisal_page(round_id: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """The appraised applications, their scores so far, and the scoring sheet's upload."""
    return _appraisal(desk, round_id, done=done)


def _appraisal(desk: Desk, round_id: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    def gather(session: Session) -> dict[str, Any]:
        row, judgements = _judgements(session, round_id)
        rows = [r for r in report.report_rows(session, round_id) if r.status in APPRAISED_STATUSES]
        counts: dict[str, int] = {}
        for reference, criterion in session.exec(
            select(Application.reference, AppraisalScore.criterion)
            .join(AppraisalScore, col(AppraisalScore.application_id) == Application.id)
            .where(Application.round_id == round_id)
        ).all():
            if any(c.id == criterion for c in judgements):
                counts[reference] = counts.get(reference, 0) + 1
        return {
            "r": desk.round(row),
            "rows": rows,
            "counts": counts,
            "judgements": judgements,
            "names": party_names(session, {r.party for r in rows}),
        }

    found = desk.read(gather)
    judgements = found["judgements"]
    complete = all(found["counts"].get(r.reference, 0) == len(judgements) for r in found["rows"])
    lines = sorted(
        (Line(r, found["counts"].get(r.reference, 0), r.rank) for r in found["rows"]),
        key=lambda line: (-(line.row.weighted_score or Decimal(-1)), line.row.reference),
    )
    missing = sum(len(judgements) - line.scored for line in lines)
    return desk.page(
        "appraisal.html",
        status_code=status_code,
        r=found["r"],
        lines=lines,
        judgements=judgements,
        complete=complete and bool(lines),
        missing=missing,
        percent=lambda value: f"{value:.0f}",
        money=lambda value: labels.money(value, found["r"].currency, desk.language),
        party=lambda code: found["names"].name(code, desk.language),
        **context,
    )


@page_route(router.get, "/rounds/{round_id}/appraisal/{reference}", CONSOLE)
def score_page(round_id: str, reference: str, desk: DeskDep, done: str | None = None) -> HTMLResponse:
    """Score one application on each judgement criterion (the scale as choices)."""
    return _score_page(desk, round_id, reference, done=done)


def _score_page(desk: Desk, round_id: str, reference: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    def gather(session: Session) -> dict[str, Any]:
        row, judgements = _judgements(session, round_id)
        application = session.exec(select(Application).where(Application.reference == reference)).first()
        if application is None or application.round_id != round_id:
            raise NotFound(f"no application {reference} in round {round_id}")
        scores = {
            s.criterion: s
            for s in session.exec(select(AppraisalScore).where(AppraisalScore.application_id == application.id)).all()
        }
        line = next((r for r in report.report_rows(session, round_id) if r.reference == reference), None)
        return {
            "r": desk.round(row),
            "a": application,
            "scores": scores,
            "judgements": judgements,
            "line": line,
        }

    found = desk.read(gather)
    return desk.page(
        "score.html",
        status_code=status_code,
        title_of=lambda c: c.title_in(desk.language),
        appraised=found["a"].status in APPRAISED_STATUSES,
        **found,
        **context,
    )


@page_route(router.post, "/rounds/{round_id}/appraisal/{reference}", CONSOLE)
async def score(round_id: str, reference: str, request: Request, desk: ActingDep) -> Response:
    """Keep the scores chosen (a criterion left blank keeps its score, if it has one)."""
    form = await form_of(request)
    sent = {k.removeprefix("score_"): v for k, v in form.items() if k.startswith("score_") and isinstance(v, str)}
    comments = {
        k.removeprefix("comment_"): v.strip()
        for k, v in form.items()
        if k.startswith("comment_") and isinstance(v, str)
    }

    def go(session: Session) -> int:
        rows = [
            appraisal.ScoreRow(
                reference, criterion[:64], value.strip()[:12], comments.get(criterion) or None, criterion
            )
            for criterion, value in sent.items()
            if value.strip()
        ]
        if not rows:
            raise InvalidInput(
                "choose a score for at least one criterion", [FieldError(path="$.scores", message="no_score")]
            )
        return appraisal.record_scores(session, round_id, rows, actor=desk.actor, at=desk.now)

    def run() -> Response:
        try:
            desk.act("appraisal.score", "application", reference, go)
        except ServiceError as exc:
            if isinstance(exc, NotFound):
                raise
            return _score_page(desk, round_id, reference, status_code=exc.http_status, refusal=refusal_of(exc))
        return back_to(desk, f"/rounds/{round_id}/appraisal/{reference}", done="scored")

    return await run_in_threadpool(run)


@page_route(router.post, "/rounds/{round_id}/appraisal", CONSOLE)
async def sheet(round_id: str, request: Request, desk: ActingDep) -> Response:
    """The scoring sheet (CSV: reference, criterion, score, comment): every row is checked
    first, and nothing is kept if any row is wrong (each problem named by its line)."""
    raw, name = await uploaded(request, SHEET_BYTES, "the scoring sheet")

    def go(session: Session) -> int:
        if not raw or len(raw) > SHEET_BYTES:
            raise InvalidInput(
                "choose the scoring sheet (CSV, at most 5 MB)", [FieldError(path="$.file", message="sheet_missing")]
            )
        return appraisal.record_scores(
            session, round_id, appraisal.parse_score_sheet(raw.decode("utf-8-sig", errors="replace"), name),
            actor=desk.actor, at=desk.now,
        )  # fmt: skip

    def run() -> Response:
        try:
            changed = desk.act("appraisal.sheet", "round", round_id, go)
        except ServiceError as exc:
            if isinstance(exc, NotFound):
                raise
            return _appraisal(desk, round_id, status_code=exc.http_status, refusal=refusal_of(exc))
        return back_to(desk, f"/rounds/{round_id}/appraisal", done=f"sheet:{changed}")

    return await run_in_threadpool(run)
