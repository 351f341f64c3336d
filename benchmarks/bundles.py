"""Review-bundle benchmark: time and peak memory to render the committee's bundles for
10 members over a round of N applications (HTML, and PDF where WeasyPrint is
installed), next to the same templates rendered for a single member in the same run.
The ratio shows whether the work per member is shared: each dossier is rendered once.

    .venv/bin/python benchmarks/bundles.py [--count 500] [--no-pdf]

Each measurement runs in its own process on its own copy of the same round (SQLite),
so that its peak memory (resident set size) is its own."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake import documents  # noqa: E402

ROUND = "sip-2018-r1"
AT = datetime(2018, 9, 20, 9, tzinfo=UTC)
ONE = "kwame.boateng@committee.example.org"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_round(count: int, folder: Path) -> Path:
    """Round 1 with `count` applications, screened (every one a person must judge judged
    eligible) and with the committee; the demo's committee and funds."""
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


def phase(members: int, pdf: bool, folder: Path, trace: bool) -> dict[str, Any]:
    """Render the bundles once, timed (`trace`: with tracemalloc on, for the peak of the
    memory the rendering itself allocates, which the process's lifetime peak hides)."""
    import tracemalloc

    os.environ.update(SIP_DATA_DIR=str(folder), SIP_SECRET_KEY="b" * 40)
    os.environ.pop("DATABASE_URL", None)
    from engine.db import unit_of_work
    from engine.services.committee.bundles import pdf_renderer, prepare_bundles
    from engine.services.setup import prepare
    from engine.settings import get_settings

    rt = prepare(get_settings())
    pdf_renderer()  # imported before the measurement
    if trace:
        tracemalloc.start()
    base_rss = current_rss_mb()
    started = time.perf_counter()
    with unit_of_work(rt.engine) as session:
        summary = prepare_bundles(
            session, rt.settings, ROUND, actor="bench", at=AT, pdf=pdf, only={ONE} if members == 1 else None
        )
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 1e6 if trace else None
    sizes = [Path(m.path).stat().st_size for m in summary.members]
    return {
        "members": len(summary.members),
        "seconds": seconds,
        "peak_mb": peak,
        "peak_rss_mb": rss_mb(),
        "rss_growth_mb": rss_mb() - base_rss,
        "html_mb": sum(sizes) / 1e6,
    }


def current_rss_mb() -> float:
    """The process's resident memory now (Linux), so that a peak during the phase shows."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--no-pdf", action="store_true", help="HTML only, even where WeasyPrint is installed")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        members, kind, trace = args.phase.split(":")
        print(json.dumps(phase(int(members), kind == "pdf", Path(args.folder), trace == "trace")))
        return
    from engine.services.committee.bundles import pdf_renderer

    kinds = ["html"] + (["pdf"] if pdf_renderer() is not None and not args.no_pdf else [])
    print(
        f"bundle benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.count:,} applications"
        + ("" if "pdf" in kinds else " (HTML only: WeasyPrint is not installed, or --no-pdf)")
    )
    template_folder = Path(tempfile.mkdtemp(prefix="sip-bundles-"))
    print("  building the round...", flush=True)
    template = build_round(args.count, template_folder)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def run(members: int, kind: str, trace: bool) -> dict[str, Any]:
        folder = Path(tempfile.mkdtemp(prefix="sip-bundles-"))
        shutil.copy(template, folder / "sip.db")
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--phase",
                f"{members}:{kind}:{'trace' if trace else 'time'}",
                "--folder",
                str(folder),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
        if out.returncode != 0:
            print(f"  {kind}, {members} member(s) failed:\n{out.stderr[-3000:]}")
            sys.exit(1)
        return json.loads(out.stdout.strip().splitlines()[-1])

    for kind in kinds:
        results = {}
        for members in (1, 10):
            r = results[members] = run(members, kind, trace=False)
            if kind == "html":  # the Python heap's peak (tracemalloc would slow WeasyPrint's layout too much)
                r["memory"] = run(members, kind, trace=True)["peak_mb"]
                memory = f"rendering's memory peak {r['memory']:6.1f} MB"
            else:  # the resident memory the layout added
                r["memory"] = r["rss_growth_mb"]
                memory = f"resident memory +{r['memory']:6.1f} MB"
            print(
                f"  {kind:<4} {r['members']:>2} member(s) {r['seconds']:8.2f} s   {memory} (process peak RSS "
                f"{r['peak_rss_mb']:.0f} MB)   HTML {r['html_mb']:.1f} MB",
                flush=True,
            )
        print(
            f"  {kind}: 10 members / 1 member = {results[10]['seconds'] / results[1]['seconds']:.2f}x the time "
            f"(10x if nothing were shared), {results[10]['memory'] / results[1]['memory']:.2f}x the memory"
        )
    shutil.rmtree(template_folder, ignore_errors=True)


if __name__ == "__main__":
    main()
