"""What `sip flows serve` serves on a long-lived Prefect server: the delivery of the
outbox every few minutes, the review stage's daily run, and the secretariat's stages
on demand (from the API, the Prefect UI or an event)."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron

from flows.committee import prepare_committee_bundles_flow, send_decision_letters_flow
from flows.notifications import deliver_notifications_flow
from flows.review import (
    assign_gmp_reviewers_flow,
    invite_gmp_reviewers_flow,
    review_day_flow,
    send_to_committee_flow,
)

#: When the daily run of the review stage starts (cron, in `REVIEW_DAY_ZONE`).
REVIEW_DAY_CRON = "0 7 * * *"
REVIEW_DAY_ZONE = "Europe/Zurich"
#: How often the outbox is delivered.
DELIVERY_EVERY_SECONDS = 300


def deployments() -> list[Any]:
    return [
        deliver_notifications_flow.to_deployment(name="every-5-minutes", interval=DELIVERY_EVERY_SECONDS),
        review_day_flow.to_deployment(name="daily", schedules=[Cron(REVIEW_DAY_CRON, timezone=REVIEW_DAY_ZONE)]),
        assign_gmp_reviewers_flow.to_deployment(name="on-demand"),
        invite_gmp_reviewers_flow.to_deployment(name="on-demand"),
        send_to_committee_flow.to_deployment(name="on-demand"),
        prepare_committee_bundles_flow.to_deployment(name="on-demand"),
        send_decision_letters_flow.to_deployment(name="on-demand"),
    ]
