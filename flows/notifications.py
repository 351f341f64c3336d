"""Delivery of the outbox (scheduled every few minutes when the flows are served)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.services.delivery import claim, deliver_claimed
from flows.common import instant, runtime

BATCH = 100


@task(name="deliver-batch", cache_policy=NO_CACHE)
def deliver_batch(relay: str, limit: int) -> dict[str, Any]:
    """Claim a batch, send it over one connection, record each outcome."""
    rt = runtime()
    now = instant(None)
    ids = claim(rt.engine, relay, now=now, limit=limit)
    result = asdict(deliver_claimed(rt.engine, rt.settings, ids, relay=relay, now=now))
    return {**result, "claimed": len(ids)}


@flow(name="deliver-notifications", log_prints=False)
def deliver_notifications_flow(batch: int = BATCH, limit: int | None = None) -> dict[str, Any]:
    """Send what the outbox holds and is due, batch by batch, until nothing is left
    (or `limit` messages); failed sends wait and are tried again by a later run."""
    logger = get_run_logger()
    relay = f"flow-{uuid.uuid4().hex[:8]}"
    total: dict[str, Any] = {"sent": 0, "retrying": 0, "failed": 0, "errors": []}
    while limit is None or total["sent"] + total["retrying"] + total["failed"] < limit:
        left = None if limit is None else limit - (total["sent"] + total["retrying"] + total["failed"])
        done = deliver_batch(relay, min(batch, left) if left else batch)
        if not done["claimed"]:
            break
        for name in ("sent", "retrying", "failed"):
            total[name] += done[name]
        total["errors"] = sorted(set(total["errors"]) | set(done["errors"]))[:20]
        logger.info("%d sent, %d to try again, %d failed so far", total["sent"], total["retrying"], total["failed"])
    return total
