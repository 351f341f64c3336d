"""`sip demo`: round 1 (2018) of the programme, run as far as the engine goes, on the
embedded database, then round 4 (2024) through its GMP technical review. Each stage
runs as the Prefect flow the secretariat would run.

Re-running it converges to the same state (intake recognises files already imported,
opening an open round changes nothing); `--fresh` starts from an empty database."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from demo.applications import APPLICATIONS, ROUND, document
from demo.review import ROUND4, run_review_demo
from domain.lifecycle import PUBLIC_STATUS, Status
from domain.rounds import RoundDefinition, RoundStatus
from engine.db import dispose_all, reading, unit_of_work
from engine.services import applications as app_service
from engine.services import outbox as outbox_service
from engine.services.report import write_report
from engine.services.rounds import definition_of, get_round
from engine.services.setup import Runtime, prepare
from engine.settings import Settings

#: The demo screens the round three days after its close, and sends it to the committee two weeks later.
SCREENING_AFTER = timedelta(days=3)
TO_COMMITTEE_AFTER = timedelta(days=14)
#: Round statuses in which screening (still) runs.
SCREENABLE = {RoundStatus.DRAFT, RoundStatus.OPEN, RoundStatus.CLOSED, RoundStatus.SCREENING}


def write_demo_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, app in enumerate(APPLICATIONS, start=1):
        path = folder / f"{number:02d}-{app.slug}.json"
        path.write_text(json.dumps(document(app), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def run_committee_demo(rt: Runtime, definition: RoundDefinition, echo: Callable[[str], None]) -> dict[str, Any]:
    """Round 1's committee: its members load, the funds are set, each member gets a
    review bundle, the secretariat records the meeting's decisions (the real outcome
    of round 1) and the letters go out; then the round report and the open data."""
    from demo.committee import DECISIONS, FUNDS, MEMBERS
    from engine.services.committee.decisions import parse_decisions, record_decisions
    from engine.services.committee.meeting import committee_of, set_funds
    from engine.services.committee.membership import known_parties, load_members, parse_members
    from engine.services.opendata import export_360giving, write_round_report
    from flows.committee import prepare_committee_bundles_flow, send_decision_letters_flow

    settings = rt.settings
    folder = settings.data_dir / "demo" / ROUND
    register = folder.parent / "committee-2018-2019.csv"
    register.write_text(MEMBERS, encoding="utf-8")
    assert definition.meeting is not None  # round 1's file has its meeting
    meeting_on = datetime.combine(
        date.fromisoformat(definition.meeting.starts_on),
        clock(9),
        tzinfo=definition.zone,
    )
    with unit_of_work(rt.engine) as session:
        load_members(
            session,
            parse_members(MEMBERS, str(register), known_parties(session)),
            source=str(register),
            actor="secretariat",
            at=meeting_on - timedelta(days=30),
        )
        set_funds(session, ROUND, FUNDS, actor="secretariat", at=meeting_on - timedelta(days=30))
        committee = committee_of(session, ROUND)
    echo(
        f"     the committee of {committee.meeting.starts_on} ({committee.meeting.place}): {len(committee.members)} "
        f"members loaded from {register}; US$ {FUNDS:,.0f} available (an illustrative figure)"
    )
    bundles = prepare_committee_bundles_flow(round_id=ROUND, at=meeting_on - timedelta(days=14), pdf=False)
    withheld = {m.email: m.withheld for m in bundles.members if m.withheld}
    echo(
        f"     prepare-committee-bundles: {bundles.prepared} new, {bundles.unchanged} unchanged; dossiers left "
        "out for a conflict of interest: "
        + (", ".join(f"{e.split('@')[0]} ({', '.join(refs)})" for e, refs in sorted(withheld.items())) or "none")
    )
    with reading(rt.engine) as session:
        by_title = {a.title: a.reference for a in app_service.list_applications(session, ROUND)}
    rows = ["reference,decision,amount,conditions,recommendations"]
    for app in APPLICATIONS:
        if app.slug in DECISIONS:
            decision, amount, conditions, recommendations = DECISIONS[app.slug]
            rows.append(
                ",".join(_csv_cell(v) for v in (by_title[app.title], decision, amount, conditions, recommendations))
            )
    sheet = folder.parent / "decisions-2018-10-03.csv"
    sheet.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with unit_of_work(rt.engine) as session:
        decided = record_decisions(
            session,
            ROUND,
            parse_decisions(sheet.read_text(encoding="utf-8"), str(sheet)),
            actor="secretariat",
            at=meeting_on + timedelta(days=1, hours=8),
        )
    echo(
        f"     decisions (from {sheet.name}): {decided.recorded} recorded, {decided.unchanged} unchanged; approvals "
        f"US$ {float(decided.approved_total):,.0f}"
    )
    letters = send_decision_letters_flow(round_id=ROUND, at=meeting_on + timedelta(days=6))
    echo(
        f"     send-decision-letters: {letters.queued} queued, {letters.already_sent} sent before; "
        f"{letters.grants} grants made"
    )
    with reading(rt.engine) as session:
        report, _, public, _, *_ = write_round_report(session, ROUND, settings.data_dir / "reports", settings)
        export, _ = export_360giving(session, settings, ROUND, settings.data_dir / "open-data" / f"grants-{ROUND}.json")
    kinds = (
        ", ".join(f"{n} {k.removeprefix('decision_').replace('_', ' ')}" for k, n in sorted(letters.by_kind.items()))
        or "all queued before"
    )
    return {
        "bundles": settings.files_folder / "bundles" / ROUND,
        "letters": kinds,
        "report": report,
        "public": public,
        "export": export,
    }


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def _sip_command() -> str:
    """How the user can call `sip` from where they are (the virtual environment may
    not be activated)."""
    import shutil
    import sys

    installed = Path(sys.executable).parent / "sip"
    if shutil.which("sip") == str(installed) or not installed.exists():
        return "sip"
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def run_demo(settings: Settings, *, fresh: bool = False, echo: Callable[[str], None] = print) -> int:
    from flows.common import started_in

    token = started_in.set("sip demo")
    try:
        with ExitStack() as stack:
            return _run_demo(settings, stack, fresh=fresh, echo=echo)
    finally:
        started_in.reset(token)


def _run_demo(settings: Settings, stack: ExitStack, *, fresh: bool, echo: Callable[[str], None]) -> int:
    from engine.prefect_quiet import in_process_runs, prefect_starting, quiet_prefect

    started = time.perf_counter()
    url = make_url(settings.url)
    if fresh:
        if url.get_backend_name() != "sqlite":
            echo("--fresh only empties the embedded SQLite database; unset DATABASE_URL or drop the database yourself")
            return 2
        dispose_all()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{url.database}{suffix}").unlink(missing_ok=True)

    echo(f"SIP engine demo: round 1 (2018) on {url.render_as_string(hide_password=True)}")
    with quiet_prefect(), prefect_starting():  # Prefect's server starts while the database is prepared
        rt = prepare(settings)
        with reading(rt.engine) as session:
            definition = definition_of(get_round(session, ROUND))
        echo(f"  1. database migrated; Parties register and the shipped rounds loaded ({definition.title})")

        folder = settings.data_dir / "demo" / ROUND
        files = write_demo_files(folder)
        parties = {a.party for a in APPLICATIONS}
        echo(f"  2. {len(files)} demo applications from {len(parties)} Parties written to {folder}")
        echo("     (Parties, round and dates are real; the applications' contents are invented)")
        echo("  3. starting Prefect (a local server for the demo: about 5 s, up to 30 s the first time)...")
    # The demo waits for each flow it runs, on the server started above: no heartbeats (see in_process_runs).
    stack.enter_context(in_process_runs())
    with quiet_prefect():
        from flows.intake import import_applications_flow
        from flows.opening import close_round_flow, open_round_flow
        from flows.review import send_to_committee_flow
        from flows.screening import screen_applications_flow

        opened = open_round_flow(round_id=ROUND, at=definition.opens_at)
        echo(
            f"     open-round: {ROUND} {'opened' if opened.changed else 'already ' + str(opened.status)} "
            f"at {definition.opens_at.isoformat()}"
        )
        summary = import_applications_flow(round_id=ROUND, paths=[str(folder)])
        echo(
            f"     import-applications: {summary.imported} imported, {summary.already_imported} already "
            f"imported, {summary.failed} refused"
        )
        for item in summary.results:
            for error in item.errors:
                echo(f"       refused {item.file}: {error.path}: {error.message}")
        closing = definition.closes_at + timedelta(seconds=1)
        closed = close_round_flow(round_id=ROUND, at=closing)
        echo(
            f"     close-round: {ROUND} {'closed' if closed.changed else 'already ' + str(closed.status)} "
            f"at {closing.isoformat()}"
        )
        screening_at = definition.closes_at + SCREENING_AFTER
        with reading(rt.engine) as session:
            screening_done = RoundStatus(get_round(session, ROUND).status) not in SCREENABLE
        if screening_done:
            echo("     screen-applications: done in an earlier run")
        else:
            screened = screen_applications_flow(round_id=ROUND, at=screening_at)
            verdicts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(screened.verdicts.items()))
            echo(
                f"     screen-applications: {screened.screened} screened ({verdicts or 'nothing new'}), "
                f"{screened.unchanged} unchanged, {screened.notices} notices to applicants"
            )
        to_committee = send_to_committee_flow(round_id=ROUND, at=screening_at + TO_COMMITTEE_AFTER)
        echo(
            f"     send-to-committee: {to_committee.sent} screened applications on the Steering Committee's "
            "agenda (round 1 has no GMP review)"
            if to_committee.changed
            else "     send-to-committee: already on the committee's agenda"
        )
        outputs = run_committee_demo(rt, definition, echo)
        from demo.grants import run_grants_demo

        echo("  4. after the decision: round 1's grants (an invented timeline; see demo/grants.py)")
        run_grants_demo(rt, echo)

    with reading(rt.engine) as session:
        lines = app_service.list_applications(session, ROUND)
        queued = outbox_service.list_messages(session, round_id=ROUND)
        report_html, report_csv = write_report(session, ROUND, settings.data_dir / "reports")

    echo("")
    echo(f"Round {ROUND}: {len(lines)} applications from {len({a.party for a in lines})} Parties")
    echo(f"  {'internal status':<25} {'public status':<25} {'count':>5}")
    counts = Counter(line.status for line in lines)
    for status in Status:
        if counts.get(status):
            echo(f"  {status.value:<25} {PUBLIC_STATUS[status].value:<25} {counts[status]:>5}")
    kinds = Counter(m.kind for m in queued)
    languages = Counter(m.language for m in queued)
    echo(
        f"  notifications queued: {len(queued)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; "
        f"{', '.join(f'{n} in {lang}' for lang, n in sorted(languages.items()))})"
    )
    echo("")
    echo(f"  screening report: {report_html} (and {report_csv.name})")
    echo(f"  review bundles:   {outputs['bundles']}/ (one per member, named by e-mail)")
    echo(f"  decision letters: in the outbox (`{_sip_command()} outbox list --round {ROUND}`); {outputs['letters']}")
    echo(f"  round report:     {outputs['report']} and the public list {outputs['public']} (with CSV)")
    echo(f"  open data:        {outputs['export']} (360Giving, validated against its schema)")

    with quiet_prefect():
        refused = run_review_demo(rt, echo)
        from flows.delivery import deliver_notifications_flow

        delivered = deliver_notifications_flow()
    mail = settings.mail_folder
    echo("")
    echo(
        f"deliver-notifications: {delivered.sent} message(s) sent now, as e-mail files anyone can open, to "
        f"{mail}/ ({len(list(mail.glob('*.eml')))} in all; NOTIFICATIONS_BACKEND=smtp sends them to a mail server)"
    )

    echo("")
    sip = _sip_command()
    echo("Look around:")
    echo(f"  {sip} applications list {ROUND}     # one line per application")
    echo(f"  {sip} outbox list                        # the queued notifications")
    echo(f"  {sip} screen score {ROUND} SIP-2018-R1-0003 feasibility 3   # an appraisal score")
    echo(f"  {sip} review show {ROUND4}              # who reviews what in round 4, and why")
    echo(f"  {sip} review summary {ROUND4}           # the reviews: means, spread, disagreement")
    echo(
        f"  printf '%s' 'a passphrase of yours' | {sip} staff add you@example.org --name 'Your Name' "
        "--role admin --password-stdin   # your account for the console"
    )
    echo(
        f"  {sip} serve                              # the API (http://127.0.0.1:8000/docs) and the console (/console/)"
    )
    echo(f"(demo took {time.perf_counter() - started:.1f} s)")
    return 0 if summary.failed == 0 and refused == 0 else 1
