"""Secretariat screening of a closed round."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import reading, unit_of_work
from engine.services.screening import check_screening, screen_batch, screening_counts, start_screening, to_screen
from flows.common import at_param, instant, param, refusals_end_the_run, round_param, runtime, started_by, summarise

BATCH = 500


@task(name="start-screening", cache_policy=NO_CACHE)
def start_screening_task(round_id: str, actor: str, at_iso: str) -> str:
    with unit_of_work(runtime().engine) as session:
        return start_screening(session, round_id, actor=actor, at=instant(at_iso)).status


@task(name="screen-batch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def screen_batch_task(round_id: str, application_ids: list[int], actor: str, at_iso: str) -> dict[str, Any]:
    """One transaction per batch; safe to retry (unchanged applications are skipped)."""
    rt = runtime()
    summary = screen_batch(rt.engine, rt.settings, round_id, application_ids, actor=actor, at=instant(at_iso))
    return summary.__dict__


@flow(
    name="screen-applications",
    log_prints=False,
    description="Screen a closed round: completeness, eligibility and the automatic appraisal criteria, in "
    "batches; the applicants of incomplete or ineligible applications are told. Running it again "
    "screens nothing twice.",
)
@refusals_end_the_run
def screen_applications_flow(
    round_id: str = round_param(),
    batch_size: int = param("Batch size", "Applications screened per transaction.", BATCH, ge=1, le=5000),
    at: datetime | None = at_param("the screening"),
) -> dict[str, Any]:
    """Screen a closed round: completeness, eligibility and the automatic appraisal
    criteria, in batches. Re-running it screens nothing twice."""
    logger = get_run_logger()
    when = instant(at)
    with reading(runtime().engine) as session:
        check_screening(session, round_id, when)
    actor, at_iso = started_by(), when.isoformat()
    start_screening_task(round_id, actor, at_iso)
    with reading(runtime().engine) as session:
        ids = to_screen(session, round_id)
    total: dict[str, Any] = {
        "round": round_id,
        "looked_at": len(ids),
        "screened": 0,
        "unchanged": 0,
        "notices": 0,
        "verdicts": {},
    }
    for number, start in enumerate(range(0, len(ids), batch_size), start=1):
        done = screen_batch_task(round_id, ids[start : start + batch_size], actor, at_iso)
        for name in ("screened", "unchanged", "notices"):
            total[name] += done[name]
        for verdict, count in done["verdicts"].items():
            total["verdicts"][verdict] = total["verdicts"].get(verdict, 0) + count
        logger.info("batch %d: %d of %d applications looked at", number, min(start + batch_size, len(ids)), len(ids))
    with reading(runtime().engine) as session:
        total["round_counts"] = screening_counts(session, round_id)
    logger.info(
        "round %s: %d screened, %d unchanged, %d notices queued",
        round_id,
        total["screened"],
        total["unchanged"],
        total["notices"],
    )
    summarise(
        "screen-applications",
        round_id,
        f"Screening of {round_id}",
        [
            ("looked at", total["looked_at"]),
            ("screened now", total["screened"]),
            ("unchanged", total["unchanged"]),
            ("notices queued", total["notices"]),
            *(
                (f"round total: {verdict.replace('_', ' ')}", count)
                for verdict, count in sorted(total["round_counts"].items())
            ),
        ],
    )
    return total
