"""The engine deployed, measured as its users meet it.

    .venv/bin/python benchmarks/deployed.py served [--runs 3] [--database sqlite|postgresql]
    .venv/bin/python benchmarks/deployed.py api [--seconds 15] [--clients 50]

`served`: screening round 1 (the demo's 19 applications, on copies of the round so
that each run has the same work) from `prefect deployment run` to the run's end, on an
engine served by `sip flows serve` from a real Prefect server; beside it, in the same
run, the same flow called in-process against the same server. Prints each time, the
run's own duration as Prefect recorded it, and the ratio.

`api`: the applicant's status API (`GET /applications/{reference}` with its access
token) under CLIENTS concurrent connections for SECONDS, on PostgreSQL, with `sip
serve --workers 2` and, in the same run, `--workers 1`. The load comes from wrk on
loopback (`apt-get install wrk`). Prints requests per second, latency and the ratio."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import Stats, report_stats  # noqa: E402

from tests.processes import (  # noqa: E402
    VENV_BIN,
    deployments_on,
    free_port,
    prefect_server,
    quiet_env,
    running,
    wait_for,
)

SECRET = "benchmark-secret-key-0123456789abcdef012345"
ROUND = "sip-2018-r1"
SCREEN_AT = "2018-09-03T09:00:00+02:00"

DRIVER = """
import json, sys, time
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
with get_client(sync_client=True) as client:
    for round_id in sys.argv[1:]:
        started = time.perf_counter()
        run = run_deployment("screen-applications/on-demand", parameters={"round_id": round_id, "at": SCREEN_AT},
                             timeout=0, as_subflow=False)
        while not (state := client.read_flow_run(run.id).state).is_final():
            time.sleep(0.05)
        wall = time.perf_counter() - started
        done = client.read_flow_run(run.id)
        print(json.dumps({"round": round_id, "state": state.type.value, "wall": wall,
                          "run": (done.end_time - done.start_time).total_seconds(),
                          "waited": (done.start_time - done.created).total_seconds()}), flush=True)
""".replace("SCREEN_AT", repr(SCREEN_AT))

IN_PROCESS = """
import json, sys, time
from flows.screening import screen_applications_flow
for round_id in sys.argv[1:]:
    started = time.perf_counter()
    result = screen_applications_flow(round_id=round_id, at=SCREEN_AT)
    print(json.dumps({"round": round_id, "screened": result.screened, "wall": time.perf_counter() - started}),
          flush=True)
""".replace("SCREEN_AT", repr(SCREEN_AT))


def build_rounds(url: str, folder: Path, count: int) -> list[str]:
    """`count` copies of round 1, each with the demo's 19 applications, closed."""
    from datetime import UTC, datetime

    from demo.applications import APPLICATIONS, document
    from engine.db import dispose_all, unit_of_work
    from engine.services.intake import import_batch
    from engine.services.rounds import close_round, open_round, parse_round, store_round
    from engine.services.setup import prepare
    from engine.settings import Settings

    rt = prepare(Settings(DATABASE_URL=url, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=folder))
    source = (ROOT / "rounds" / f"{ROUND}.toml").read_text()
    ids = [f"bench-r1-{n}" for n in range(count)]
    for round_id in ids:
        with unit_of_work(rt.engine) as session:
            store_round(
                session,
                parse_round(source.replace(ROUND, round_id), "bench"),
                source="bench",
                actor="bench",
                at=datetime.now(UTC),
            )
            open_round(session, round_id, actor="bench", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
        files = [(f"{a.slug}.json", json.dumps(dict(document(a), round=round_id)).encode()) for a in APPLICATIONS]
        import_batch(rt.engine, rt.settings, round_id, files, actor="bench", now=datetime(2018, 9, 1, 9, tzinfo=UTC))
        with unit_of_work(rt.engine) as session:
            close_round(session, round_id, actor="bench", at=datetime(2018, 9, 1, 9, tzinfo=UTC))
    dispose_all()
    return ids


def database(kind: str, folder: Path) -> tuple[str, object]:
    """A fresh database; returns its URL and what drops it."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}", lambda: None
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from intake import PG_ADMIN, drop_database  # noqa: PLC0415
    from sqlalchemy import create_engine, text

    name = f"sip_bench_deployed_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", lambda: drop_database(name)


def served(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sip-bench-served-"))
    url, drop = database(args.database, folder)
    try:
        ids = build_rounds(url, folder, 2 * args.runs)
        with prefect_server(folder / "prefect") as api:
            env = quiet_env(
                DATABASE_URL=url,
                SIP_SECRET_KEY=SECRET,
                SIP_DATA_DIR=str(folder / "data"),
                PREFECT_API_URL=api,
                PREFECT_HOME=str(folder / "prefect"),
                PYTHONPATH=str(ROOT),
            )
            here = subprocess.run(
                [sys.executable, "-c", IN_PROCESS, *ids[: args.runs]],
                env=env,
                cwd=folder,
                capture_output=True,
                text=True,
                check=True,
            )
            local = [json.loads(line) for line in here.stdout.splitlines() if line.startswith("{")]
            with running(
                [str(VENV_BIN / "sip"), "flows", "serve", "--poll", str(args.poll)],
                env=env,
                cwd=folder,
                log=folder / "serve.log",
            ) as process:
                deadline = time.monotonic() + 120
                while "screen-applications/on-demand" not in deployments_on(api):
                    assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
                    time.sleep(0.5)
                there = subprocess.run(
                    [sys.executable, "-c", DRIVER, *ids[args.runs :]],
                    env=env,
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    check=True,
                )
            remote = [json.loads(line) for line in there.stdout.splitlines() if line.startswith("{")]
    finally:
        drop()
        shutil.rmtree(folder, ignore_errors=True)
    assert all(r["screened"] == 19 for r in local) and all(r["state"] == "COMPLETED" for r in remote)
    print(
        f"screen-applications, round 1 (19 applications), {args.database}, {args.runs} runs each; "
        f"the runner looks for runs every {args.poll:g} s"
    )
    print("  in-process call (same server): " + ", ".join(f"{r['wall']:.2f} s" for r in local))
    print("  served, deployment run to its end: " + ", ".join(f"{r['wall']:.2f} s" for r in remote))
    print("    of which waiting for the runner to pick it up: " + ", ".join(f"{r['waited']:.2f} s" for r in remote))
    print("    of which the run itself (its own process): " + ", ".join(f"{r['run']:.2f} s" for r in remote))
    ratio = statistics.median(r["wall"] for r in remote) / statistics.median(r["wall"] for r in local)
    print(f"  ratio served / in-process (medians): {ratio:.1f}x")
    for name, values in (
        ("in-process call", [r["wall"] for r in local]),
        ("served, deployment run to its end", [r["wall"] for r in remote]),
        ("served, waiting for the runner", [r["waited"] for r in remote]),
        ("served, the run itself", [r["run"] for r in remote]),
    ):
        report_stats("deployed", f"screening round 1 ({args.database}), {name}", Stats(tuple(values)), "s")


WRK_SUMMARY = re.compile(r"Requests/sec:\s+([\d.]+)")


def api(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the load (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="sip-bench-api-"))
    url, drop = database("postgresql", folder)
    try:
        env = quiet_env(DATABASE_URL=url, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=str(folder / "data"))
        subprocess.run([str(VENV_BIN / "sip"), "db", "upgrade"], env=env, cwd=folder, check=True, capture_output=True)
        reference, token = _one_application(url, folder)
        results = {}
        for workers in (1, 2) * args.rounds:
            port = free_port()
            log = folder / f"api-{workers}.log"
            with running(
                [str(VENV_BIN / "sip"), "serve", "--port", str(port), "--workers", str(workers)],
                env=env,
                cwd=folder,
                log=log,
            ) as process:
                wait_for(f"http://127.0.0.1:{port}/health/ready", process, log)
                target = f"http://127.0.0.1:{port}/applications/{reference}"
                subprocess.run(
                    ["wrk", "-t1", "-c", str(args.clients), "-d", "3s", "-H", f"Authorization: Bearer {token}", target],
                    capture_output=True,
                    check=True,
                )
                done = subprocess.run(
                    [
                        "wrk",
                        "-t1",
                        "-c",
                        str(args.clients),
                        "-d",
                        f"{args.seconds}s",
                        "--latency",
                        "-H",
                        f"Authorization: Bearer {token}",
                        target,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=args.seconds + 60,
                )
            match = WRK_SUMMARY.search(done.stdout)
            assert match and "Non-2xx" not in done.stdout, done.stdout
            latency = dict(re.findall(r"(?m)^\s+(50|99)%\s+([\d.]+\w+)", done.stdout))
            results.setdefault(workers, []).append((float(match.group(1)), latency.get("50"), latency.get("99")))
    finally:
        drop()
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"GET /applications/{{reference}}, PostgreSQL, {args.clients} connections, {args.seconds} s each, "
        f"wrk (one thread) on loopback, {args.rounds} rounds each, alternating"
    )
    for workers, rows in sorted(results.items()):
        print(
            f"  --workers {workers}: "
            + "; ".join(f"{rps:,.0f} requests/s (p50 {p50}, p99 {p99})" for rps, p50, p99 in rows)
        )
    ratio = statistics.median(r[0] for r in results[2]) / statistics.median(r[0] for r in results[1])
    print(f"  ratio --workers 2 / --workers 1 (medians): {ratio:.2f}x")


def _one_application(url: str, folder: Path) -> tuple[str, str]:
    """An application submitted through the API's intake service; its reference and access token."""
    from datetime import UTC, datetime

    from engine.db import dispose_all, unit_of_work
    from engine.services.intake import submit_application
    from engine.services.rounds import open_round
    from engine.services.setup import prepare
    from engine.settings import Settings
    from tests.conftest import example

    rt = prepare(Settings(DATABASE_URL=url, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=folder))
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND, actor="bench", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    receipt = submit_application(
        rt.engine,
        rt.settings,
        ROUND,
        example("ben-asgm-complete.json"),
        channel="api",
        idempotency_key=None,
        now=datetime(2018, 7, 2, 9, tzinfo=UTC) + timedelta(0),
    )
    dispose_all()
    return receipt.reference, receipt.access_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = parser.add_subparsers(dest="part", required=True)
    one = parts.add_parser("served")
    one.add_argument("--runs", type=int, default=3)
    one.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    one.add_argument("--poll", type=float, default=2, help="sip flows serve --poll (seconds; Prefect's default: 10)")
    one.add_argument("--quick", action="store_true", help="accepted for run_all; the runs are already small")
    two = parts.add_parser("api")
    two.add_argument("--seconds", type=int, default=15)
    two.add_argument("--clients", type=int, default=50)
    two.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    {"served": served, "api": api}[args.part](args)


if __name__ == "__main__":
    main()
