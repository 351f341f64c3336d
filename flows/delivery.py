"""Delivery of the outbox (scheduled every few minutes when the flows are served)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.services.delivery import Delivered, claim, deliver_claimed
from flows.common import instant, param, runtime, summarise

BATCH = 100


@dataclass(frozen=True)
class BatchDelivered:
    """One batch: how many messages were claimed, and what became of them."""

    claimed: int
    delivered: Delivered


@task(name="deliver-batch", cache_policy=NO_CACHE)
def deliver_batch(relay: str, limit: int, due_iso: str) -> BatchDelivered:
    """Claim a batch of messages due when the run started, send it over one
    connection, record each outcome."""
    rt = runtime()
    now = instant(None)
    ids = claim(rt.engine, relay, now=now, due=instant(due_iso), limit=limit)
    return BatchDelivered(len(ids), deliver_claimed(rt.engine, rt.settings, ids, relay=relay, now=now))


@flow(
    name="deliver-notifications",
    log_prints=False,
    description="Send the messages the outbox holds and are due (by SMTP, or as .eml files), batch by batch; a "
    "failed send waits and is tried again by a later run, and after the last try is marked failed.",
)
def deliver_notifications_flow(
    batch: int = param("Batch size", "Messages sent over one connection.", BATCH, ge=1, le=1000),
    limit: int | None = param("At most", "Stop after this many messages; empty for all that are due.", None, ge=1),
) -> Delivered:
    """Send what the outbox holds and is due, batch by batch, until nothing is left
    (or `limit` messages); failed sends wait and are tried again by a later run."""
    logger = get_run_logger()
    relay = f"flow-{uuid.uuid4().hex[:8]}"
    due = instant(None).isoformat()  # what fails in this run waits for a later one
    total = Delivered()
    claimed = 0
    while limit is None or claimed < limit:
        batch_done = deliver_batch(relay, min(batch, limit - claimed) if limit else batch, due)
        if not batch_done.claimed:
            break
        claimed += batch_done.claimed
        done = batch_done.delivered
        total.add(done)
        total.errors = sorted(set(total.errors))[:20]
        logger.info("%d sent, %d to try again, %d failed so far", total.sent, total.retrying, total.failed)
        if done.released:  # the connection was lost: the next run starts afresh
            break
    if claimed:  # a run with nothing to send leaves nothing behind (it runs every few minutes)
        summarise(
            "deliver-notifications",
            None,
            "Notifications delivered",
            [
                ("sent", total.sent),
                ("to try again later", total.retrying),
                ("failed for good", total.failed),
                ("returned to the queue", total.released),
            ],
            total.errors,
        )
    return total
