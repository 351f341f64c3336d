"""Opening and closing a round."""

from __future__ import annotations

from prefect import flow, get_run_logger

from engine.db import unit_of_work
from engine.services.rounds import close_round, open_round
from flows.common import instant, runtime


@flow(name="open-round", log_prints=False)
def open_round_flow(round_id: str, at: str | None = None, actor: str = "secretariat") -> dict[str, object]:
    """Open a round for applications (at its `opens_at`, or later)."""
    when = instant(at)
    with unit_of_work(runtime().engine) as session:
        row, changed = open_round(session, round_id, actor=actor, at=when)
    get_run_logger().info("round %s: %s", round_id, "opened" if changed else f"already {row.status}")
    return {"round": round_id, "status": row.status, "changed": changed}


@flow(name="close-round", log_prints=False)
def close_round_flow(round_id: str, at: str | None = None, actor: str = "secretariat",
                     early_reason: str | None = None) -> dict[str, object]:
    """Close a round after its deadline (before it only with a reason)."""
    when = instant(at)
    with unit_of_work(runtime().engine) as session:
        row, changed = close_round(session, round_id, actor=actor, at=when, early_reason=early_reason)
    get_run_logger().info("round %s: %s", round_id, "closed" if changed else f"already {row.status}")
    return {"round": round_id, "status": row.status, "changed": changed}
