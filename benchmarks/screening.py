"""Screening benchmark: screen a generated round of N applications (a) with the
`screen-applications` Prefect flow and (b) with the same service called as plain
functions over the same rows in the same process; (c), for reference, the pure checks
alone with no database writes. SQLite and PostgreSQL.

    .venv/bin/python benchmarks/screening.py [--count 10000] [--small 2000]

Each phase runs in its own process on its own copy of the same round, so that its
peak memory (resident set size) is its own. Measuring at two sizes shows whether
memory grows with the number of applications (it should not: batches are streamed)."""

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
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake import PG_ADMIN, documents, drop_database, postgres_available  # noqa: E402

ROUND = "sip-2018-r1"
AT = "2018-09-03T09:00:00+02:00"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_round(backend: str, count: int, folder: Path) -> str:
    """A round of `count` imported applications (a mix of outcomes), closed; returns its URL."""
    from sqlalchemy import create_engine, text

    from engine.db import dispose_all, unit_of_work
    from engine.services.intake import import_batch
    from engine.services.rounds import close_round, open_round
    from engine.services.setup import prepare
    from engine.settings import Settings

    if backend == "sqlite":
        url = f"sqlite:///{folder / 'template.db'}"
    else:
        name = f"sip_bench_tpl_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    settings = Settings(SIP_DATA_DIR=folder, DATABASE_URL=url, SIP_SECRET_KEY="b" * 40)
    rt = prepare(settings)
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND, actor="bench", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    docs = documents(count)
    now = datetime(2018, 9, 2, tzinfo=UTC)
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
    dispose_all()
    return url


def copy_of(url: str, folder: Path) -> str:
    from sqlalchemy import create_engine, text

    if url.startswith("sqlite"):
        target = folder / f"copy-{uuid.uuid4().hex[:6]}.db"
        shutil.copy(url.removeprefix("sqlite:///"), target)
        return f"sqlite:///{target}"
    name = f"sip_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def phase(name: str, url: str, folder: Path) -> dict[str, Any]:
    os.environ.update(DATABASE_URL=url, SIP_DATA_DIR=str(folder), SIP_SECRET_KEY="b" * 40)
    from engine.db import reading, unit_of_work
    from engine.services.screening import document_of, screen_batch, start_screening, to_screen
    from engine.services.setup import prepare
    from engine.settings import get_settings

    rt = prepare(get_settings())
    if name == "flow":
        from prefect import flow
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        from flows.screening import screen_applications_flow

        @flow(name="warm-up")
        def warm_up() -> None:  # start the ephemeral server outside the measurement
            return None

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            warm_up()
            base, started = rss_mb(), time.perf_counter()
            result = screen_applications_flow(round_id=ROUND, at=AT)
            seconds = time.perf_counter() - started
        count = result.screened
    elif name == "plain":
        base, started = rss_mb(), time.perf_counter()
        with unit_of_work(rt.engine) as session:
            start_screening(session, ROUND, actor="bench", at=datetime.fromisoformat(AT))
        with reading(rt.engine) as session:
            ids = to_screen(session, ROUND)
        count = 0
        for start in range(0, len(ids), 500):
            count += screen_batch(
                rt.engine, rt.settings, ROUND, ids[start : start + 500], actor="bench", at=datetime.fromisoformat(AT)
            ).screened
        seconds = time.perf_counter() - started
    else:  # the checks alone, over the same rows, streamed in batches, no writes
        from sqlmodel import select

        from domain.parties import Party
        from domain.screening import screen
        from engine.services.rounds import definition_of, get_round
        from engine.tables import Application, PartyRecord

        base, started = rss_mb(), time.perf_counter()
        count = 0
        with reading(rt.engine) as session:
            definition = definition_of(get_round(session, ROUND))
            parties = {
                p.iso3: Party.model_validate(p, from_attributes=True) for p in session.exec(select(PartyRecord)).all()
            }
            for application in session.exec(
                select(Application).where(Application.round_id == ROUND).execution_options(yield_per=500)
            ):
                screen(document_of(application), definition, parties)
                count += 1
        seconds = time.perf_counter() - started
    return {
        "phase": name,
        "count": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "rss_growth_mb": rss_mb() - base,
        "peak_rss_mb": rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=2_000, help="a smaller round, to show memory is flat")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.url, Path(args.folder))))
        return
    backends = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    if "postgresql" not in backends:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: measuring SQLite only")
    print(f"screening benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL": "WARNING",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    for backend in backends:
        results: dict[tuple[int, str], dict[str, Any]] = {}
        for count in (args.small, args.count):
            folder = Path(tempfile.mkdtemp(prefix="sip-bench-"))
            print(f"  {backend}: building a round of {count:,} applications...", flush=True)
            template = build_round(backend, count, folder)
            for name in ("checks", "plain", "flow"):
                url = copy_of(template, folder)
                try:
                    out = subprocess.run(
                        [sys.executable, __file__, "--phase", name, "--url", url, "--folder", str(folder)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                finally:
                    drop_database(url)
                if out.returncode != 0:
                    print(f"    {name} failed:\n{out.stderr[-3000:]}")
                    sys.exit(1)
                r = results[(count, name)] = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"    {count:>6,} {name:<7} {r['seconds']:7.2f} s  {r['per_second']:8,.0f} applications/s  "
                    f"RSS +{r['rss_growth_mb']:.0f} MB during the phase (peak {r['peak_rss_mb']:.0f} MB)",
                    flush=True,
                )
            drop_database(template)
        big = args.count
        ratio = results[(big, "flow")]["seconds"] / results[(big, "plain")]["seconds"]
        print(
            f"  {backend}: flow / plain = {ratio:.2f}x (target: within 1.5x) {'met' if ratio <= 1.5 else 'NOT met'}; "
            f"{big:,} applications by the flow in {results[(big, 'flow')]['seconds']:.1f} s (target: under 60 s) "
            f"{'met' if results[(big, 'flow')]['seconds'] < 60 else 'NOT met'}"
        )
        growth = {n: results[(n, "flow")]["rss_growth_mb"] for n in (args.small, big)}
        print(
            f"  {backend}: flow memory growth {growth[args.small]:.0f} MB at {args.small:,} and "
            f"{growth[big]:.0f} MB at {big:,} applications"
        )


if __name__ == "__main__":
    main()
