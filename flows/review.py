"""Global Mercury Partnership review of a round's screened applications."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import unit_of_work
from engine.services.review import assign_reviewers, placement_json
from flows.common import instant, runtime


@task(name="propose-reviewers", cache_policy=NO_CACHE)
def propose_reviewers(round_id: str, actor: str, at_iso: str) -> list[dict[str, Any]]:
    """One transaction for the whole round: the assignment balances load across it."""
    with unit_of_work(runtime().engine) as session:
        return placement_json(assign_reviewers(session, round_id, actor=actor, at=instant(at_iso)))


@flow(name="assign-gmp-reviewers", log_prints=False)
def assign_gmp_reviewers_flow(round_id: str, actor: str = "secretariat") -> list[dict[str, Any]]:
    """Propose reviewers for every screened application of the round; running it again
    only fills places still open."""
    placements = propose_reviewers(round_id, actor, instant(None).isoformat())
    unfilled = sum(p["unfilled"] for p in placements)
    get_run_logger().info("round %s: %d applications, %d places unfilled", round_id, len(placements), unfilled)
    return placements
