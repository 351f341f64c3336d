"""The engine's deployments: every stage on demand (from the Prefect UI, `prefect
deployment run`, the API, or a round's dates), and the runs on a schedule: the
rounds' dates, the delivery of the outbox, the review stages' day, the grants' day.

Each loads by module path (`flows.screening.screen_applications_flow`), so a run
imports the installed engine whatever its working folder, and nothing in `flows/`
can hide a top-level package. `sip flows serve` serves them from one process;
`sip flows deploy --pool NAME` registers them in a process work pool for workers."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron, Interval
from prefect.types.entrypoint import EntrypointType

from flows.committee import prepare_committee_bundles_flow, send_decision_letters_flow
from flows.common import ON_DEMAND
from flows.delivery import deliver_notifications_flow
from flows.grants import grants_day_flow
from flows.intake import import_applications_flow
from flows.opening import close_round_flow, open_round_flow, round_dates_flow
from flows.review import (
    assign_gmp_reviewers_flow,
    invite_gmp_reviewers_flow,
    review_day_flow,
    send_to_committee_flow,
)
from flows.screening import screen_applications_flow

#: When the daily run of the review stage starts (cron, in `REVIEW_DAY_ZONE`).
REVIEW_DAY_CRON = "0 7 * * *"
REVIEW_DAY_ZONE = "Europe/Zurich"
#: When the grants' daily run starts (cron, in `REVIEW_DAY_ZONE`), after the review stages'.
GRANTS_DAY_CRON = "30 7 * * *"
#: How often the outbox is delivered.
DELIVERY_EVERY_SECONDS = 300
#: How often the rounds' dates are looked at (the openings and closes themselves run at their exact instants).
ROUND_DATES_EVERY_SECONDS = 900

#: The stages the secretariat starts, in the order of a round.
ON_DEMAND_FLOWS = (
    open_round_flow,
    close_round_flow,
    import_applications_flow,
    screen_applications_flow,
    assign_gmp_reviewers_flow,
    invite_gmp_reviewers_flow,
    send_to_committee_flow,
    prepare_committee_bundles_flow,
    send_decision_letters_flow,
)
#: A deployment's tags, so a Prefect server shared with other work shows the engine's apart.
TAGS = ["sip"]


def deployments() -> list[Any]:
    def deployment(flow: Any, name: str, **schedule: Any) -> Any:
        return flow.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH, tags=TAGS, **schedule)

    return [
        *(deployment(flow, ON_DEMAND) for flow in ON_DEMAND_FLOWS),
        deployment(round_dates_flow, "every-15-minutes", schedules=[Interval(ROUND_DATES_EVERY_SECONDS)]),
        deployment(review_day_flow, "daily", schedules=[Cron(REVIEW_DAY_CRON, timezone=REVIEW_DAY_ZONE)]),
        deployment(grants_day_flow, "daily", schedules=[Cron(GRANTS_DAY_CRON, timezone=REVIEW_DAY_ZONE)]),
        deployment(deliver_notifications_flow, "every-5-minutes", schedules=[Interval(DELIVERY_EVERY_SECONDS)]),
    ]


def register(pool: str) -> tuple[list[str], bool]:
    """Register the deployments in a work pool (made as a process pool if it is not
    there); returns their names and whether the pool was made."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    made = False
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="The SIP engine's flows, run by `prefect worker start --pool " + pool + "`",
                )
            )
            made = True
    names = []
    for deployment in deployments():
        deployment.apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names, made
