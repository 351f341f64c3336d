"""Review-bundle benchmark: the committee's bundles for a round of N applications, in
HTML and in PDF (where WeasyPrint is installed), for one member and for the committee
(10 members), as `prepare_bundles` (the `prepare-committee-bundles` flow) makes them.
Prints the time per member and the process's peak memory, at two sizes, so that a
reader sees whether memory grows with the number of applications.

    .venv/bin/python benchmarks/bundles.py [--counts 100,500] [--members 1,all] [--repeats 3] [--no-pdf] [--quick]
                                           [--engine DIR]

Target: the PDF bundles of 500 applications for 10 members under 500 MB of peak memory.
Each run is a process of its own on its own copy of the same round (SQLite), with its
memory sampled from /proc (`measure.Memory`: resident set size every 20 ms and the
kernel's high-water mark, reset at the start), not `ru_maxrss`. Each phase runs
`--repeats` times (the median and range printed), except that a PDF phase whose first
run takes over 3 minutes runs once, which is said beside its figures. `--quick`: 50
applications, one member and 3 members. `--engine DIR`: measure the engine of another
checkout (e.g. main, before a change) on the same rounds."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROUND = "sip-2018-r1"
AT = datetime(2018, 9, 20, 9, tzinfo=UTC)
ONE = "kwame.boateng@committee.example.org"
#: A PDF phase whose first run takes longer than this runs once.
LONG_RUN_S = 180.0


def _paths(engine: str | None) -> None:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    if engine:
        sys.path.insert(0, str(Path(engine).resolve()))
    sys.path.insert(0, str(here))


def build_round(count: int, folder: Path) -> Path:
    """Round 1 with `count` applications, screened (every one a person must judge judged
    eligible) and with the committee; the demo's committee and funds."""
    from intake import documents
    from sqlmodel import select

    from demo.committee import MEMBERS
    from engine.db import dispose_all, unit_of_work
    from engine.services.appraisal import override
    from engine.services.committee.meeting import set_funds
    from engine.services.committee.membership import known_parties, load_members, parse_members
    from engine.services.intake import import_batch
    from engine.services.rounds import close_round, open_round
    from engine.services.screening import screen_batch, start_screening, to_screen
    from engine.services.setup import prepare
    from engine.services.stages import send_to_committee
    from engine.settings import Settings
    from engine.tables import Application

    settings = Settings(SIP_DATA_DIR=folder, SIP_SECRET_KEY="b" * 40)
    rt = prepare(settings)
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND, actor="bench", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    docs, now = documents(count), datetime(2018, 9, 2, tzinfo=UTC)
    for start in range(0, count, 500):
        import_batch(
            rt.engine,
            settings,
            ROUND,
            [(f"{start + i}", d) for i, d in enumerate(docs[start : start + 500])],
            actor="bench",
            now=now,
        )
    with unit_of_work(rt.engine) as session:
        close_round(session, ROUND, actor="bench", at=now)
        start_screening(session, ROUND, actor="bench", at=now)
        ids = to_screen(session, ROUND)
    for start in range(0, len(ids), 500):
        screen_batch(rt.engine, settings, ROUND, ids[start : start + 500], actor="bench", at=now)
    with unit_of_work(rt.engine) as session:
        for reference in session.exec(select(Application.reference).where(Application.status == "submitted")).all():
            override(session, settings, ROUND, reference, "screened", reason="judged eligible", actor="bench", at=now)
        send_to_committee(session, ROUND, actor="bench", at=now)
        load_members(
            session, parse_members(MEMBERS, "bench", known_parties(session)), source="bench", actor="bench", at=now
        )
        set_funds(session, ROUND, Decimal("50000000"), actor="bench", at=now)
    dispose_all()
    return folder / "sip.db"


def members_of(count: int | None) -> set[str] | None:
    """The e-mails of the first `count` members of the demo's committee (one: ONE; None: all)."""
    if count is None:
        return None
    if count == 1:
        return {ONE}
    from demo.committee import MEMBERS

    emails = [line.split(",")[1].lower() for line in MEMBERS.strip().splitlines()[1:]]
    return set(([ONE] + [e for e in emails if e != ONE])[:count])


def phase(members: int | None, pdf: bool, folder: Path) -> dict[str, Any]:
    """Prepare the bundles once (`members`: that many, None: the whole committee), timed,
    with the process's memory sampled throughout."""
    from measure import Memory

    os.environ.update(SIP_DATA_DIR=str(folder), SIP_SECRET_KEY="b" * 40)
    os.environ.pop("DATABASE_URL", None)
    from engine.db import unit_of_work
    from engine.services.committee.bundles import pdf_renderer, prepare_bundles
    from engine.services.setup import prepare
    from engine.settings import get_settings

    rt = prepare(get_settings())
    pdf_renderer()  # imported before the measurement
    with Memory() as memory:
        started = time.perf_counter()
        with unit_of_work(rt.engine) as session:
            summary = prepare_bundles(
                session, rt.settings, ROUND, actor="bench", at=AT, pdf=pdf, only=members_of(members)
            )
        seconds = time.perf_counter() - started
    files = [Path(m.pdf if pdf else m.path) for m in summary.members]
    return {
        "members": len(summary.members),
        "seconds": seconds,
        "peak_mb": memory.peak_mb["process"],
        "growth_mb": memory.growth_mb["process"],
        "file_mb": sum(f.stat().st_size for f in files) / len(files) / 1e6,
        "pages": [m.pdf_pages for m in summary.members] if pdf else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="100,500", help="round sizes, comma-separated (default 100,500)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pdf", action="store_true", help="HTML only, even where WeasyPrint is installed")
    parser.add_argument("--quick", action="store_true", help="50 applications; one member and 3 members")
    parser.add_argument("--members", default="1,all", help="the phases: one member (1), the committee (all)")
    parser.add_argument("--engine", help="the checkout whose engine is measured (default: this one)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _paths(args.engine)
    if args.phase:
        members, kind = args.phase.split(":")
        result = phase(None if members == "all" else int(members), kind == "pdf", Path(args.folder))
        print(json.dumps(result))
        return
    from measure import Figure, Stats, ratio_stats, report, report_stats

    from engine.services.committee.bundles import pdf_renderer

    counts = [50] if args.quick else [int(c) for c in args.counts.split(",")]
    committee = 3 if args.quick else None  # None: the whole committee (10 members)
    kinds = ["html"] + (["pdf"] if pdf_renderer() is not None and not args.no_pdf else [])
    print(
        f"bundle benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{' and '.join(f'{c:,}' for c in counts)} applications, {args.repeats} run(s) of each phase"
        + (f", the engine of {args.engine}" if args.engine else "")
        + ("" if "pdf" in kinds else " (HTML only: WeasyPrint is not installed, or --no-pdf)"),
        flush=True,
    )
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def run(template: Path, members: int | None, kind: str) -> dict[str, Any]:
        folder = Path(tempfile.mkdtemp(prefix="sip-bundles-"))
        shutil.copy(template, folder / "sip.db")
        command = [sys.executable, __file__, "--phase", f"{members or 'all'}:{kind}", "--folder", str(folder)]
        if args.engine:
            command += ["--engine", args.engine]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
        if out.returncode != 0:
            print(f"  {kind}, {members or 'all'} member(s) failed:\n{out.stderr[-3000:]}")
            sys.exit(1)
        return json.loads(out.stdout.strip().splitlines()[-1])

    peaks: dict[tuple[str, int, int], float] = {}
    for count in counts:
        folder = Path(tempfile.mkdtemp(prefix="sip-bundles-round-"))
        print(f"  building a round of {count:,} applications...", flush=True)
        template = build_round(count, folder)
        for kind in kinds:
            seconds: dict[int, Stats] = {}
            for members in [1 if m == "1" else committee for m in args.members.split(",")]:
                runs = [run(template, members, kind)]
                once = kind == "pdf" and runs[0]["seconds"] > LONG_RUN_S
                while not once and len(runs) < args.repeats:
                    runs.append(run(template, members, kind))
                n = runs[0]["members"]
                label = f"{kind.upper()}, {count:,} applications, {n} member{'s' if n > 1 else ''}"
                note = f"one run: the first took over {LONG_RUN_S:.0f} s" if once else ""
                seconds[n] = Stats(tuple(r["seconds"] for r in runs))
                report_stats(
                    "bundles",
                    f"{label}: seconds per member",
                    Stats(tuple(r["seconds"] / n for r in runs)),
                    "s",
                    note=note,
                )
                peak = Stats(tuple(r["peak_mb"] for r in runs))
                peaks[(kind, count, n)] = peak.median
                big = kind == "pdf" and count >= 500 and n >= 10
                report_stats(
                    "bundles",
                    f"{label}: peak memory",
                    peak,
                    "MB",
                    target="< 500 MB" if big else None,
                    met=(lambda mb: mb < 500) if big else None,
                    note="; ".join(
                        x
                        for x in (
                            note,
                            f"+{statistics.median([r['growth_mb'] for r in runs]):.0f} MB over its start",
                            f"{runs[0]['file_mb']:.1f} MB a file"
                            + (f", {max(runs[0]['pages'])} pages" if runs[0]["pages"] else ""),
                        )
                        if x
                    ),
                )
            if len(seconds) < 2:
                continue
            one, many = sorted(seconds)
            report(
                Figure(
                    benchmark="bundles",
                    name=f"{kind.upper()}, {count:,} applications: {many} members / 1 member, time",
                    value=ratio_stats(seconds[many], seconds[one]).median
                    if len(seconds[many].values) == len(seconds[one].values)
                    else seconds[many].median / seconds[one].median,
                    unit="x",
                    note=f"{many}x if nothing were shared between the members",
                )
            )
        shutil.rmtree(folder, ignore_errors=True)
    if len(counts) > 1:
        small, large = min(counts), max(counts)
        for kind in kinds:
            for (k, count, n), mb in sorted(peaks.items()):
                if k == kind and count == large and (kind, small, n) in peaks:
                    report(
                        Figure(
                            benchmark="bundles",
                            name=f"{kind.upper()}, {n} member(s): peak memory at {large:,} / at {small:,} applications",
                            value=mb / peaks[(kind, small, n)],
                            unit="x",
                            note=f"{large / small:.0f}x the applications; 1.00x is memory flat",
                        )
                    )


if __name__ == "__main__":
    main()
