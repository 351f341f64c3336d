"""Secretariat screening of a closed round."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import reading, unit_of_work
from engine.services.screening import (
    BatchSummary,
    check_screening,
    screen_batch,
    screening_counts,
    start_screening,
    to_screen,
)
from flows.common import at_param, instant, param, refusals_end_the_run, round_param, runtime, started_by, summarise

BATCH = 500


@dataclass(frozen=True)
class ScreeningSummary:
    """What `screen-applications` did: the applications it looked at, those screened now
    (by verdict) and unchanged, the notices queued, and the round's totals by verdict."""

    round: str
    looked_at: int
    screened: int
    unchanged: int
    notices: int
    verdicts: dict[str, int]
    round_counts: dict[str, int]


@task(name="start-screening", cache_policy=NO_CACHE)
def start_screening_task(round_id: str, actor: str, at_iso: str) -> str:
    with unit_of_work(runtime().engine) as session:
        return start_screening(session, round_id, actor=actor, at=instant(at_iso)).status


@task(name="screen-batch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def screen_batch_task(round_id: str, application_ids: list[int], actor: str, at_iso: str) -> BatchSummary:
    """One transaction per batch; safe to retry (unchanged applications are skipped)."""
    rt = runtime()
    return screen_batch(rt.engine, rt.settings, round_id, application_ids, actor=actor, at=instant(at_iso))


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
) -> ScreeningSummary:
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
    batches = BatchSummary()
    for number, start in enumerate(range(0, len(ids), batch_size), start=1):
        done = screen_batch_task(round_id, ids[start : start + batch_size], actor, at_iso)
        batches.screened += done.screened
        batches.unchanged += done.unchanged
        batches.notices += done.notices
        for verdict, count in done.verdicts.items():
            batches.verdicts[verdict] = batches.verdicts.get(verdict, 0) + count
        logger.info("batch %d: %d of %d applications looked at", number, min(start + batch_size, len(ids)), len(ids))
    with reading(runtime().engine) as session:
        round_counts = screening_counts(session, round_id)
    total = ScreeningSummary(
        round=round_id,
        looked_at=len(ids),
        screened=batches.screened,
        unchanged=batches.unchanged,
        notices=batches.notices,
        verdicts=batches.verdicts,
        round_counts=round_counts,
    )
    logger.info(
        "round %s: %d screened, %d unchanged, %d notices queued",
        round_id,
        total.screened,
        total.unchanged,
        total.notices,
    )
    summarise(
        "screen-applications",
        round_id,
        f"Screening of {round_id}",
        [
            ("looked at", total.looked_at),
            ("screened now", total.screened),
            ("unchanged", total.unchanged),
            ("notices queued", total.notices),
            *(
                (f"round total: {verdict.replace('_', ' ')}", count)
                for verdict, count in sorted(total.round_counts.items())
            ),
        ],
    )
    return total
