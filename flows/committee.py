"""The Steering Committee's stages: the members' review bundles before the meeting,
and the decision letters after it. People act in between (the meeting, recording
the decisions); no flow waits for them."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.db import reading, unit_of_work
from engine.services.committee.bundles import BundlesSummary, PdfLater, check_bundles, prepare_bundles
from engine.services.letters import LettersSummary, check_letters, send_decision_letters
from flows.common import at_param, instant, param, refusals_end_the_run, round_param, runtime, started_by, summarise


@task(name="render-bundles", cache_policy=NO_CACHE)
def render_bundles(round_id: str, actor: str, at_iso: str, pdf: bool) -> BundlesSummary:
    """One transaction for the round: each application's dossier is rendered once and
    shared by the members' bundles; a re-run makes no new version of an unchanged one.
    The PDFs are laid out after it commits, so that other writers do not wait for them."""
    rt = runtime()
    later = PdfLater()
    with unit_of_work(rt.engine) as session:
        summary = prepare_bundles(
            session, rt.settings, round_id, actor=actor, at=instant(at_iso), pdf=pdf, pdf_later=later
        )
    later.run()
    return summary


@flow(
    name="prepare-committee-bundles",
    log_prints=False,
    description="Prepare one review bundle per Steering Committee member (HTML, and PDF where WeasyPrint is "
    "installed), leaving out the dossiers a member is conflicted on; each member with a new version "
    "gets a message with a personal link. An unchanged bundle keeps its version.",
)
@refusals_end_the_run
def prepare_committee_bundles_flow(
    round_id: str = round_param(),
    at: datetime | None = at_param("the bundles"),
    pdf: bool = param("PDF too", "Also lay the bundles out as PDF (where WeasyPrint is installed).", True),
) -> BundlesSummary:
    """One review bundle per committee member (HTML, and PDF where WeasyPrint is
    installed and `pdf`), each member told by a message with their personal link."""
    when = instant(at)
    with reading(runtime().engine) as session:
        check_bundles(session, round_id)
    summary = render_bundles(round_id, started_by(), when.isoformat(), pdf)
    get_run_logger().info(
        "round %s: %d bundles prepared, %d unchanged, %d members notified",
        round_id,
        summary.prepared,
        summary.unchanged,
        summary.notified,
    )
    summarise(
        "prepare-committee-bundles",
        round_id,
        f"Committee bundles for {round_id}",
        [
            ("bundles prepared", summary.prepared),
            ("unchanged", summary.unchanged),
            ("members notified", summary.notified),
            ("with a PDF", sum(1 for m in summary.members if m.pdf)),
        ],
        [
            f"{m.email}: version {m.version}" + (f", {len(m.withheld)} dossier(s) withheld" if m.withheld else "")
            for m in summary.members
        ],
    )
    return summary


@task(name="queue-letters", cache_policy=NO_CACHE)
def queue_letters(round_id: str, actor: str, at_iso: str) -> LettersSummary:
    rt = runtime()
    with unit_of_work(rt.engine) as session:
        return send_decision_letters(session, rt.settings, round_id, actor=actor, at=instant(at_iso))


@flow(
    name="send-decision-letters",
    log_prints=False,
    description="Queue one decision letter per decided application, in the applicant's language; never twice.",
)
@refusals_end_the_run
def send_decision_letters_flow(
    round_id: str = round_param(), at: datetime | None = at_param("the letters")
) -> LettersSummary:
    """One letter per decided application, in the applicant's language; never twice."""
    when = instant(at)
    with reading(runtime().engine) as session:
        check_letters(session, round_id)
    summary = queue_letters(round_id, started_by(), when.isoformat())
    get_run_logger().info("round %s: %d letters queued, %d sent before", round_id, summary.queued, summary.already_sent)
    summarise(
        "send-decision-letters",
        round_id,
        f"Decision letters for {round_id}",
        [
            ("decisions", summary.decided),
            ("letters queued", summary.queued),
            ("queued before", summary.already_sent),
            ("grants made", summary.grants),
            *((f"queued: {kind.replace('_', ' ')}", count) for kind, count in sorted(summary.by_kind.items())),
        ],
    )
    return summary
