"""Opening and closing a round: by hand (`open-round`, `close-round`), and on the
round's own dates when the engine is served (`round-dates`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from prefect import flow, get_run_logger
from sqlmodel import select

from domain.rounds import RoundStatus, dates_ahead, due_by_dates
from engine.db import reading, unit_of_work
from engine.services.rounds import close_round, definition_of, open_round
from engine.tables import Round
from flows.common import (
    ON_DEMAND,
    at_param,
    check_round,
    instant,
    param,
    refusals_end_the_run,
    round_param,
    runtime,
    started_by,
    summarise,
)

#: How far ahead `round-dates` schedules a round's opening and close at their exact instants.
HORIZON = timedelta(days=1)
#: A scheduled run may start this many seconds before its instant (the runner and the
#: workers take runs early); it waits for its instant.
EARLY_START_SECONDS = 60


@dataclass(frozen=True)
class RoundMoved:
    """What `open-round` and `close-round` did: the round's status now, and whether this run changed it."""

    round: str
    status: RoundStatus
    changed: bool


@dataclass(frozen=True)
class RoundChanged:
    """A round `round-dates` opened or closed at once (`status`: open or closed)."""

    round: str
    status: str


@dataclass(frozen=True)
class RoundChangeScheduled:
    """A run of open-round or close-round `round-dates` scheduled (`status`: open or close)."""

    round: str
    status: str
    at: datetime


@dataclass(frozen=True)
class DatesKept:
    """What `round-dates` did: the changes due now, and the runs scheduled for the next day."""

    done: tuple[RoundChanged, ...]
    scheduled: tuple[RoundChangeScheduled, ...]


@flow(name="open-round", log_prints=False, description="Open a round for applications, at its opening time or later.")
@refusals_end_the_run
def open_round_flow(round_id: str = round_param(), at: datetime | None = at_param("the opening")) -> RoundMoved:
    """Open a round for applications (at its `opens_at`, or later)."""
    check_round(round_id)
    when = instant(at, wait=EARLY_START_SECONDS)
    with unit_of_work(runtime().engine) as session:
        row, changed = open_round(session, round_id, actor=started_by(), at=when)
    outcome = "opened" if changed else f"already {row.status}"
    get_run_logger().info("round %s: %s", round_id, outcome)
    summarise("open-round", round_id, f"Round {round_id}: {outcome}", [], [f"The round is {row.status}."])
    return RoundMoved(round_id, row.status, changed)


@flow(
    name="close-round", log_prints=False, description="Close a round after its deadline (before it only with a reason)."
)
@refusals_end_the_run
def close_round_flow(
    round_id: str = round_param(),
    at: datetime | None = at_param("the close"),
    early_reason: str | None = param(
        "Reason for closing early", "Needed only to close the round before its deadline.", None, max_length=2000
    ),
) -> RoundMoved:
    """Close a round after its deadline (before it only with a reason)."""
    check_round(round_id)
    when = instant(at, wait=EARLY_START_SECONDS)
    with unit_of_work(runtime().engine) as session:
        row, changed = close_round(session, round_id, actor=started_by(), at=when, early_reason=early_reason)
    outcome = "closed" if changed else f"already {row.status}"
    get_run_logger().info("round %s: %s", round_id, outcome)
    summarise("close-round", round_id, f"Round {round_id}: {outcome}", [], [f"The round is {row.status}."])
    return RoundMoved(round_id, row.status, changed)


@flow(
    name="round-dates",
    log_prints=False,
    description="Open each loaded round at its opening time and close it at its deadline: what is due now "
    "is done at once, and the openings and closes of the next day are scheduled for their "
    "exact instants (as runs of open-round and close-round).",
)
def round_dates_flow() -> DatesKept:
    """Keep the rounds' statuses on their dates; running it again does nothing twice."""
    logger = get_run_logger()
    now = instant(None)
    actor = started_by()
    with reading(runtime().engine) as session:
        rounds = [(row.id, RoundStatus(row.status), definition_of(row)) for row in session.exec(select(Round))]
    done: list[tuple[str, str]] = []
    for round_id, stored, definition in rounds:
        due = due_by_dates(stored, definition, now)
        if due is None:
            continue
        with unit_of_work(runtime().engine) as session:
            act = open_round if due is RoundStatus.OPEN else close_round
            _, changed = act(session, round_id, actor=actor, at=now)
        if changed:
            done.append((round_id, due.value))
            logger.info("round %s: %s on its dates", round_id, "opened" if due is RoundStatus.OPEN else "closed")
    ahead = {round_id: dates_ahead(stored, definition, now, now + HORIZON) for round_id, stored, definition in rounds}
    scheduled = _schedule(ahead)
    for round_id, status, when in scheduled:
        logger.info(
            "round %s: %s scheduled for %s", round_id, "opening" if status == "open" else "close", when.isoformat()
        )
    summarise(
        "round-dates",
        None,
        "Rounds kept on their dates",
        [("opened or closed now", len(done)), ("scheduled for the next day", len(scheduled))],
        [f"{round_id}: {status} now" for round_id, status in done]
        + [f"{round_id}: {status} at {when.isoformat()}" for round_id, status, when in scheduled],
    )
    return DatesKept(
        done=tuple(RoundChanged(r, s) for r, s in done),
        scheduled=tuple(RoundChangeScheduled(r, s, w) for r, s, w in scheduled),
    )


def _schedule(ahead: dict[str, list[tuple[RoundStatus, datetime]]]) -> list[tuple[str, str, datetime]]:
    """Runs of open-round and close-round at the exact instants (one per round and
    instant, however often this runs); a run scheduled for a date since changed is
    deleted. Where those deployments are not registered, nothing is scheduled: the
    next look does what has come due."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    def action(status: RoundStatus) -> str:
        return "open" if status is RoundStatus.OPEN else "close"

    wanted = {
        f"{action(status)}-{round_id}-{when.isoformat()}": (round_id, status, when)
        for round_id, dates in ahead.items()
        for status, when in dates
    }
    with get_client(sync_client=True) as client:
        pending = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=["round-dates"]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            ),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[ON_DEMAND])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )  # (Prefect 3.8's server wants both said)
        for run in pending:
            if run.idempotency_key not in wanted:
                client.delete_flow_run(run.id)
    scheduled = []
    for key, (round_id, status, when) in wanted.items():
        try:
            run_deployment(
                f"{action(status)}-round/{ON_DEMAND}",
                parameters={"round_id": round_id, "at": when.isoformat()},
                scheduled_time=when,
                timeout=0,
                idempotency_key=key,
                tags=["round-dates", f"round:{round_id}"],
                as_subflow=False,
            )
        except ObjectNotFound:
            get_run_logger().warning(
                "%s-round/%s is not registered on this Prefect server: round %s's %s at %s is "
                "left for a later look (serve or deploy the engine's flows)",
                action(status),
                ON_DEMAND,
                round_id,
                "opening" if status is RoundStatus.OPEN else "close",
                when.isoformat(),
            )
            continue
        scheduled.append((round_id, status.value, when))
    return scheduled
