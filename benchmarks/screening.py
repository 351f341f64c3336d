"""Screening benchmark: screening a generated, closed round of N applications as the
secretariat runs it, `sip screen ROUND --at ...` in a process of its own (the ephemeral
Prefect server's start included, as on a machine with no Prefect server configured),
against the same service called as plain functions (`start_screening`, then
`screen_batch` over the same rows in batches of 500) in a process of its own.

    .venv/bin/python benchmarks/screening.py [--quick] [--sizes 2000,10000,50000]
                                             [--repeats 3] [--backends sqlite,postgresql]

Separately labelled, the steady state: the same `sip screen` command with PREFECT_API_URL
naming a long-lived `prefect server start` that the benchmark starts once (no server
start in the measured time).

Each run works on its own copy of the same round (built once per size). Every phase is
repeated (3 times by default), alternating, and the ratios are taken run by run. Memory
is sampled from /proc: the measured process, and the Prefect server it starts (found as
its child process) or the long-lived one. The `sip screen` runs use their own
PREFECT_HOME under the benchmark's temporary folder (created by an untimed first run, as
on an installed machine), so that they do not share a Prefect database with anything else
on the machine; otherwise their environment is the user's (no Prefect setting added).

Targets (issue 13): `sip screen` / plain within 1.5x at 10,000 and within 1.2x at 50,000;
memory flat from the smallest to the largest size, for the process and the server."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake import PG_ADMIN, documents, drop_database, postgres_available  # noqa: E402
from measure import Figure, Memory, Stats, children, prefect_server_pids, ratio_stats, report, report_stats  # noqa: E402

BENCH = "screening"
ROUND = "sip-2018-r1"
AT = "2018-09-03T09:00:00+02:00"
SECRET = "b" * 40
SIP = Path(sys.executable).parent / "sip"
#: Targets: `sip screen` over plain functions at these sizes.
RATIO_TARGETS = {10_000: 1.5, 50_000: 1.2}
#: "Flat": the peak at the largest size at most this much above the peak at the smallest.
FLAT_MB = 25.0


def build_round(backend: str, count: int, folder: Path) -> str:
    """A round of `count` imported applications (a mix of outcomes), closed; returns its URL."""
    from sqlalchemy import create_engine, text

    from engine.db import dispose_all, unit_of_work
    from engine.services.intake import import_batch
    from engine.services.rounds import close_round, open_round
    from engine.services.setup import prepare
    from engine.settings import Settings

    if backend == "sqlite":
        url = f"sqlite:///{folder / f'template-{count}.db'}"
    else:
        name = f"sip_bench_tpl_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    settings = Settings(SIP_DATA_DIR=folder, DATABASE_URL=url, SIP_SECRET_KEY=SECRET)
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


def discard(url: str) -> None:
    """Drop a copy (a PostgreSQL database, or a SQLite file and its journals)."""
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    else:
        drop_database(url)


def plain_phase(url: str, folder: Path) -> dict[str, Any]:
    """In a process of its own: the screening service as plain functions, timed and sampled."""
    os.environ.update(DATABASE_URL=url, SIP_DATA_DIR=str(folder), SIP_SECRET_KEY=SECRET)
    from engine.db import reading, unit_of_work
    from engine.services.screening import screen_batch, start_screening, to_screen
    from engine.services.setup import prepare
    from engine.settings import get_settings

    rt = prepare(get_settings())
    at = datetime.fromisoformat(AT)
    with Memory() as mem:
        started = time.perf_counter()
        with unit_of_work(rt.engine) as session:
            start_screening(session, ROUND, actor="bench", at=at)
        with reading(rt.engine) as session:
            ids = to_screen(session, ROUND)
        count = 0
        for start in range(0, len(ids), 500):
            count += screen_batch(
                rt.engine, rt.settings, ROUND, ids[start : start + 500], actor="bench", at=at
            ).screened
        seconds = time.perf_counter() - started
    return {
        "count": count,
        "seconds": seconds,
        "peak_mb": mem.peak_mb["process"],
        "growth_mb": mem.growth_mb["process"],
    }


def run_plain(url: str, folder: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", "plain", "--url", url, "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"plain phase failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def user_env(url: str, folder: Path, prefect_home: Path, api: str | None) -> dict[str, str]:
    """The user's environment, with the engine's database and, for the steady state, a
    long-lived Prefect server; no other Prefect setting."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(DATABASE_URL=url, SIP_DATA_DIR=str(folder), SIP_SECRET_KEY=SECRET, PREFECT_HOME=str(prefect_home))
    if api:
        env["PREFECT_API_URL"] = api
    return env


def run_sip_screen(url: str, folder: Path, prefect_home: Path, server: subprocess.Popen[bytes] | None, api: str | None):
    """`sip screen ROUND --at AT` as a user runs it: its wall time, and the memory of the
    command's process and of the Prefect server (its ephemeral child, or the long-lived one)."""
    env = user_env(url, folder, prefect_home, api)
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(SIP), "screen", ROUND, "--at", AT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if server is None:
        find = {"prefect server": lambda: prefect_server_pids(process.pid)}
    else:
        find = {"prefect server": lambda: [server.pid, *children(server.pid)]}
    with Memory(pids={"sip screen": process.pid}, find=find) as mem:
        stdout, stderr = process.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    if process.returncode != 0 or "screened now" not in stdout:
        sys.exit(f"sip screen failed (exit {process.returncode}):\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return {
        "seconds": seconds,
        "peak_mb": mem.peak_mb.get("sip screen", 0.0),
        "server_peak_mb": mem.peak_mb.get("prefect server", 0.0),
    }


@contextmanager
def long_lived_server(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`prefect server start` on a free loopback port, for the steady-state phase."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(SIP.parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the long-lived Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.5)
        yield server, api
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def stats(values: list[float]) -> Stats:
    return Stats(tuple(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (500 and 2,000), still 3 repeats")
    parser.add_argument("--sizes", help="comma-separated round sizes (default 2000,10000,50000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", help="comma-separated: sqlite,postgresql (default: both where reachable)")
    parser.add_argument("--no-steady", action="store_true", help="leave out the long-lived server's phase")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(plain_phase(args.url, Path(args.folder))))
        return
    if args.repeats < 3:
        parser.error("--repeats: at least 3")
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [500, 2_000]
        if args.quick
        else [2_000, 10_000, 50_000]
    )
    wanted = args.backends.split(",") if args.backends else ["sqlite", "postgresql"]
    backends = [b for b in wanted if b == "sqlite" or (b == "postgresql" and postgres_available())]
    if "postgresql" in wanted and "postgresql" not in backends:
        print(f"PostgreSQL not reachable at {PG_ADMIN}: measuring SQLite only")
    print(
        f"screening benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}; sizes {sizes}, "
        f"{args.repeats} repeats; `sip screen` as a user runs it (ephemeral Prefect server) vs plain functions",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="sip-bench-screening-"))
    ephemeral_home, steady_home = folder / "prefect-home", folder / "prefect-server-home"
    try:
        with contextmanager_or_none(not args.no_steady, steady_home) as steady:
            for backend in backends:
                measure_backend(backend, sizes, args.repeats, folder, ephemeral_home, steady)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def contextmanager_or_none(wanted: bool, home: Path) -> Iterator[tuple[subprocess.Popen[bytes], str] | None]:
    if not wanted:
        yield None
        return
    with long_lived_server(home) as server:
        yield server


def measure_backend(
    backend: str,
    sizes: list[int],
    repeats: int,
    folder: Path,
    ephemeral_home: Path,
    steady: tuple[subprocess.Popen[bytes], str] | None,
) -> None:
    peaks: dict[int, dict[str, float]] = {}
    for count in sizes:
        print(f"  {backend}: building a round of {count:,} applications...", flush=True)
        template = build_round(backend, count, folder)
        try:
            if not ephemeral_home.exists():  # an installed machine has Prefect's database already
                url = copy_of(template, folder)
                try:
                    run_sip_screen(url, folder, ephemeral_home, None, None)
                finally:
                    discard(url)
            runs: dict[str, list[dict[str, Any]]] = {"plain": [], "sip": [], "steady": []}
            for _ in range(repeats):
                for phase in ("plain", "sip", "steady"):
                    if phase == "steady" and steady is None:
                        continue
                    url = copy_of(template, folder)
                    try:
                        if phase == "plain":
                            runs[phase].append(run_plain(url, folder))
                        elif phase == "sip":
                            runs[phase].append(run_sip_screen(url, folder, ephemeral_home, None, None))
                        else:
                            assert steady is not None
                            runs[phase].append(run_sip_screen(url, folder, ephemeral_home, steady[0], steady[1]))
                    finally:
                        discard(url)
        finally:
            discard(template)
        peaks[count] = report_size(backend, count, runs)
    if len(sizes) > 1:
        report_flat(backend, sizes[0], sizes[-1], peaks)


def report_size(backend: str, count: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    at = f"{backend}, {count:,} applications"
    plain = stats([r["seconds"] for r in runs["plain"]])
    sip = stats([r["seconds"] for r in runs["sip"]])
    target = RATIO_TARGETS.get(count)
    within = f"<= {target}x" if target else None
    judge = (lambda v: v <= target) if target else None
    report_stats(BENCH, f"plain functions, {at}", plain, "s")
    report_stats(BENCH, f"sip screen (ephemeral Prefect server, started by the command), {at}", sip, "s")
    report_stats(
        BENCH,
        f"sip screen / plain functions, {at}",
        ratio_stats(sip, plain),
        "x",
        target=within,
        met=judge,
        note="server start included",
    )
    if runs["steady"]:
        steady = stats([r["seconds"] for r in runs["steady"]])
        report_stats(BENCH, f"sip screen on a long-lived Prefect server (steady state), {at}", steady, "s")
        report_stats(
            BENCH,
            f"steady state (long-lived server) / plain functions, {at}",
            ratio_stats(steady, plain),
            "x",
            target=within,
            met=judge,
            note="no server start",
        )
    peaks = {
        "plain process": max(r["peak_mb"] for r in runs["plain"]),
        "sip screen process": max(r["peak_mb"] for r in runs["sip"]),
        "ephemeral Prefect server": max(r["server_peak_mb"] for r in runs["sip"]),
    }
    if runs["steady"]:
        peaks["long-lived Prefect server"] = max(r["server_peak_mb"] for r in runs["steady"])
    for label, value in peaks.items():
        report(Figure(BENCH, f"peak memory, {label}, {at}", value, "MB"))
    return peaks


def report_flat(backend: str, small: int, big: int, peaks: dict[int, dict[str, float]]) -> None:
    for label in ("sip screen process", "ephemeral Prefect server", "plain process"):
        growth = peaks[big][label] - peaks[small][label]
        report(
            Figure(
                BENCH,
                f"peak memory from {small:,} to {big:,} applications, {label}, {backend}",
                growth,
                "MB",
                target=f"flat (<= +{FLAT_MB:.0f} MB)",
                met=growth <= FLAT_MB,
            )
        )


if __name__ == "__main__":
    main()
