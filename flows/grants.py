"""The grants that follow the committee's approvals: `grants-day` (scheduled daily when
the engine's flows are served) reminds recipients of reports coming due, tells them once
a report is late and the secretariat once it is long overdue, and flags instalments
released but unpaid and balances not settled in time. Everything else about a grant
(signatures, payments, reports, amendments, close-out) is a person's act, through the
CLI, the API or the pages."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import unit_of_work
from engine.services.grants_day import GrantsDaySummary, grants_day
from flows.common import at_param, instant, refusals_end_the_run, runtime, summarise


@task(name="run-grants-day", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def run_grants_day(at_iso: str) -> GrantsDaySummary:
    """Every grant in one transaction; safe to retry (messages are keyed by report and due
    date, and each flag is kept on its row)."""
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return grants_day(session, rt.settings, at=instant(at_iso))


@flow(
    name="grants-day",
    log_prints=False,
    description="The daily run of the grants in force: reminders of reports coming due and notices of late "
    "ones to the recipients, in their language; the secretariat told of reports long overdue, "
    "instalments released and unpaid, and balances not settled in time. Running it twice the same "
    "day sends nothing twice.",
)
@refusals_end_the_run
def grants_day_flow(at: datetime | None = at_param("the day's run")) -> GrantsDaySummary:
    """The daily run of the grants in force. Running it twice the same day sends nothing twice."""
    result = run_grants_day(instant(at).isoformat())
    get_run_logger().info(
        "%d reports outstanding; %d reminders, %d overdue notices, %d escalated; %d instalments and %d balances "
        "flagged",
        result.reports_outstanding,
        result.reminders,
        result.overdue_notices,
        result.escalated,
        result.instalments_flagged,
        result.balances_flagged,
    )
    summarise(
        "grants-day",
        None,
        "The grants' day",
        [
            ("reports outstanding", result.reports_outstanding),
            ("reminders queued", result.reminders),
            ("overdue notices queued", result.overdue_notices),
            ("reports escalated to the secretariat", result.escalated),
            ("instalments flagged unpaid", result.instalments_flagged),
            ("balances flagged unsettled", result.balances_flagged),
            ("schedules made", result.schedules_made),
        ],
        [],
    )
    return result
