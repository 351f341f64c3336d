"""The Steering Committee's stages: the members' review bundles before the meeting,
and the decision letters after it. People act in between (the meeting, recording
the decisions); no flow waits for them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import unit_of_work
from engine.services.bundles import prepare_bundles
from engine.services.letters import send_decision_letters
from flows.common import instant, runtime


@task(name="render-bundles", cache_policy=NO_CACHE)
def render_bundles(round_id: str, actor: str, at_iso: str, pdf: bool) -> dict[str, Any]:
    """One transaction for the round: each application's dossier is rendered once and
    shared by the members' bundles; a re-run makes no new version of an unchanged one."""
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return asdict(prepare_bundles(session, rt.settings, round_id, actor=actor, at=instant(at_iso), pdf=pdf))


@flow(name="prepare-committee-bundles", log_prints=False)
def prepare_committee_bundles_flow(round_id: str, actor: str = "secretariat", at: str | None = None,
                                   pdf: bool = True) -> dict[str, Any]:
    """One review bundle per committee member (HTML, and PDF where WeasyPrint is
    installed and `pdf`), each member told by a message with their personal link."""
    summary = render_bundles(round_id, actor, instant(at).isoformat(), pdf)
    get_run_logger().info("round %s: %d bundles prepared, %d unchanged, %d members notified", round_id,
                          summary["prepared"], summary["unchanged"], summary["notified"])
    return summary


@task(name="queue-letters", cache_policy=NO_CACHE)
def queue_letters(round_id: str, actor: str, at_iso: str) -> dict[str, Any]:
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return asdict(send_decision_letters(session, rt.settings, round_id, actor=actor, at=instant(at_iso)))


@flow(name="send-decision-letters", log_prints=False)
def send_decision_letters_flow(round_id: str, actor: str = "secretariat", at: str | None = None) -> dict[str, Any]:
    """One letter per decided application, in the applicant's language; never twice."""
    summary = queue_letters(round_id, actor, instant(at).isoformat())
    get_run_logger().info("round %s: %d letters queued, %d sent before", round_id, summary["queued"],
                          summary["already_sent"])
    return summary
