"""The applicant's status API and status page under load, against bare FastAPI endpoints
of the same style served the same way.

    .venv/bin/python benchmarks/status_api.py [--seconds 10] [--clients 50] [--workers 2] [--quick]

On SQLite and on PostgreSQL (skipped, saying so, where it does not answer), the engine
is served by `sip serve --workers N` on loopback, with a round and applications
prepared; beside it, with the same worker count and log level, `uvicorn --workers N`
serves `bare`: a synchronous `def` route returning a constant JSON object
(GET /applications/{reference}, with the same Bearer header) and one returning a
constant page of the same size (POST /status, reading the same form). Each of the four
loads runs for SECONDS after a warm-up, with CLIENTS keep-alive connections, in turn,
three times (the ratios are taken run by run):

    bare JSON, status API JSON (GET /applications/{reference}),
    bare HTML, status page HTML (POST /status with the reference and access code).

It prints requests per second, p50 and p99 latency of each, and the ratio status/bare
with its target (at least 0.5), and the p99 of the engine's routes with its target
(under 50 ms), met or NOT met.

The load comes from `--client-processes` processes of this file (`--generate`), each a
small asyncio HTTP/1.1 client on raw sockets (no HTTP library: it costs a few tens of
microseconds of CPU per request, printed as the client's own ceiling). Every request
uses a valid reference and access code and must answer 200: successful requests do not
count against the rate limits of api/attempts.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fastapi import FastAPI, Form  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdef012345"
ROUND = "sip-2018-r1"
PG_ADMIN = os.environ.get("SIP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: The constant answers of the bare app: a status of the same shape, a page of the same size.
BARE_JSON = {
    "reference": "SIP-2018-R1-0001",
    "status": "received",
    "round": ROUND,
    "round_title": "Specific International Programme - first round (2018)",
    "title": "A project",
    "submitted_at": "2018-07-02T09:00:00Z",
    "timeline": [{"status": "received", "at": "2018-07-02T09:00:00Z"}],
}
BARE_PAGE = "<!doctype html><html><body>" + "<p>status</p>" * 400 + "</body></html>"

#: The baseline: FastAPI routes of the same style (sync `def`), answering constants.
bare = FastAPI()


@bare.get("/applications/{reference}")
def bare_json(reference: str) -> dict[str, Any]:
    return BARE_JSON


@bare.post("/status", response_class=HTMLResponse)
def bare_html(reference: str = Form(), access_code: str = Form()) -> HTMLResponse:
    return HTMLResponse(BARE_PAGE)


# -- the load generator (one process of it) -------------------------------------------


async def _connection(
    port: int, requests: list[bytes], start: float, measure_from: float, until: float, latencies: list[float]
) -> dict[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    codes: dict[str, int] = {}
    i = 0
    try:
        while True:
            sent = time.perf_counter()
            if sent >= until:
                break
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            code = head[9:12].decode()
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise SystemExit(f"an answer without Content-Length: {head!r}")
            await reader.readexactly(length)
            done = time.perf_counter()
            if sent >= measure_from and done <= until:
                latencies.append(done - sent)
                codes[code] = codes.get(code, 0) + 1
    finally:
        writer.close()
    return codes


def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs one load generator: spec's clients connections for its seconds after its warm-up."""
    requests = [bytes.fromhex(r) for r in spec["requests"]]

    async def run() -> dict[str, Any]:
        start = time.perf_counter()
        measure_from = start + spec["warmup"]
        until = measure_from + spec["seconds"]
        latencies: list[float] = []
        results = await asyncio.gather(
            *(
                _connection(spec["port"], requests[k:] + requests[:k], start, measure_from, until, latencies)
                for k in range(spec["clients"])
            )
        )
        codes: dict[str, int] = {}
        for one in results:
            for code, n in one.items():
                codes[code] = codes.get(code, 0) + n
        return {"latencies": latencies, "codes": codes}

    cpu = os.times()
    out = asyncio.run(run())
    after = os.times()
    out["cpu"] = (after.user - cpu.user) + (after.system - cpu.system)
    return out


# -- the parent ------------------------------------------------------------------------


def load(port: int, requests: list[bytes], args: argparse.Namespace) -> dict[str, float]:
    """One load: requests/s, p50, p99 (ms) and the client's CPU per request (µs)."""
    processes = args.client_processes
    spec_of = [
        {
            "port": port,
            "requests": [r.hex() for r in requests],
            "clients": args.clients // processes + (1 if k < args.clients % processes else 0),
            "warmup": args.warmup,
            "seconds": args.seconds,
        }
        for k in range(processes)
    ]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--generate"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in spec_of
    ]
    outputs = []
    for child, spec in zip(children, spec_of, strict=True):
        assert child.stdin is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
    for child in children:
        assert child.stdout is not None
        out = child.stdout.read()  # the generator ends on its own after warm-up and seconds
        if child.wait(timeout=60) != 0:
            raise SystemExit(f"a load generator failed ({child.returncode})")
        outputs.append(json.loads(out))
    latencies = sorted(x for o in outputs for x in o["latencies"])
    codes: dict[str, int] = {}
    for o in outputs:
        for code, n in o["codes"].items():
            codes[code] = codes.get(code, 0) + n
    if set(codes) != {"200"}:
        raise SystemExit(f"answers other than 200: {codes} (the benchmark's requests must all succeed)")
    n = len(latencies)
    return {
        "rps": n / args.seconds,
        "p50": latencies[n // 2] * 1000,
        "p99": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "client_us": sum(o["cpu"] for o in outputs) / max(n, 1) * 1e6,
    }


def prepare_database(url: str, folder: Path, count: int) -> list[tuple[str, str]]:
    """A migrated database with round 1 open and `count` applications; their references
    and access tokens."""
    from engine.db import dispose_all, unit_of_work
    from engine.services.intake import submit_application
    from engine.services.rounds import open_round
    from engine.services.setup import prepare
    from engine.settings import Settings
    from tests.conftest import example

    rt = prepare(Settings(DATABASE_URL=url, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=folder))
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND, actor="bench", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    document = example("ben-asgm-complete.json")
    out = []
    for i in range(count):
        receipt = submit_application(
            rt.engine,
            rt.settings,
            ROUND,
            document,
            channel="api",
            idempotency_key=f"bench-{i}",
            now=datetime(2018, 7, 2, 9, tzinfo=UTC),
        )
        out.append((receipt.reference, receipt.access_token))
    dispose_all()
    return out


def requests_for(credentials: list[tuple[str, str]]) -> dict[str, list[bytes]]:
    """The requests each load sends (the same to the engine and to the bare app)."""
    json_requests = [
        (
            f"GET /applications/{ref} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        for ref, token in credentials
    ]
    html_requests = []
    for ref, token in credentials:
        body = urllib.parse.urlencode({"reference": ref, "access_code": token, "lang": "en"})
        html_requests.append(
            (
                "POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )
    return {"JSON": json_requests, "HTML": html_requests}


def postgres_problem() -> str | None:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure: skip PostgreSQL, saying why
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:120]}"


def fresh_postgres() -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text

    name = f"sip_bench_status_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()

    def drop() -> None:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def bench_database(kind: str, args: argparse.Namespace) -> None:
    from measure import Stats, ratio_stats, repeat, report_stats

    from tests.processes import VENV_BIN, free_port, quiet_env, running, wait_for

    folder = Path(tempfile.mkdtemp(prefix="sip-bench-status-"))
    if kind == "PostgreSQL":
        problem = postgres_problem()
        if problem:
            print(f"PostgreSQL at {PG_ADMIN} does not answer ({problem}): skipped", flush=True)
            return
        url, drop = fresh_postgres()
    else:
        url, drop = f"sqlite:///{folder / 'sip.db'}", lambda: None
    try:
        credentials = prepare_database(url, folder, args.applications)
        requests = requests_for(credentials)
        env = quiet_env(DATABASE_URL=url, SIP_SECRET_KEY=SECRET, SIP_DATA_DIR=str(folder))
        if args.pool_size:
            env["SIP_DB_POOL_SIZE"] = str(args.pool_size)
        engine_port, bare_port = free_port(), free_port()
        with (
            running(
                [str(VENV_BIN / "sip"), "serve", "--port", str(engine_port), "--workers", str(args.workers)],
                env=env,
                cwd=folder,
                log=folder / "engine.log",
            ) as engine_process,
            running(
                [
                    *(str(VENV_BIN / "uvicorn"), "--app-dir", str(ROOT / "benchmarks"), "status_api:bare"),
                    *("--host", "127.0.0.1", "--port", str(bare_port), "--workers", str(args.workers)),
                    *("--log-level", "info"),
                ],
                env=env,
                cwd=folder,
                log=folder / "bare.log",
            ) as bare_process,
        ):
            wait_for(f"http://127.0.0.1:{engine_port}/health/ready", engine_process, folder / "engine.log")
            wait_for(f"http://127.0.0.1:{bare_port}/docs", bare_process, folder / "bare.log")
            results: dict[tuple[str, str], list[dict[str, float]]] = {}

            def one_round() -> float:
                started = time.perf_counter()
                for kind_of in ("JSON", "HTML"):
                    for who, port in (("bare", bare_port), ("status", engine_port)):
                        results.setdefault((who, kind_of), []).append(load(port, requests[kind_of], args))
                return time.perf_counter() - started

            repeat(one_round, times=args.repeats)
        print(
            f"{kind}: {args.clients} clients, --workers {args.workers}, SIP_DB_POOL_SIZE {args.pool_size or 'default'}"
            ", "
            f"{args.seconds:g} s per load "
            f"after {args.warmup:g} s of warm-up, {args.repeats} runs (median, range)",
            flush=True,
        )
        for kind_of, route in (("JSON", "GET /applications/{reference}"), ("HTML", "POST /status (page)")):
            stats = {
                (who, what): Stats(tuple(r[what] for r in results[(who, kind_of)]))
                for who in ("bare", "status")
                for what in ("rps", "p50", "p99", "client_us")
            }
            label = f"{kind} {kind_of}"
            report_stats("status_api", f"{label} bare FastAPI requests/s", stats[("bare", "rps")], "/s")
            report_stats("status_api", f"{label} bare FastAPI p50", stats[("bare", "p50")], "ms")
            report_stats("status_api", f"{label} bare FastAPI p99", stats[("bare", "p99")], "ms")
            report_stats("status_api", f"{label} {route} requests/s", stats[("status", "rps")], "/s")
            report_stats("status_api", f"{label} {route} p50", stats[("status", "p50")], "ms")
            # Little's law: with CLIENTS connections each waiting for its answer before the
            # next request, the mean latency is CLIENTS / throughput; the p99 is above it.
            mean_wait = args.clients / stats[("status", "rps")].median * 1000
            report_stats(
                "status_api",
                f"{label} {route} p99",
                stats[("status", "p99")],
                "ms",
                target="< 50 ms",
                met=lambda v: v < 50,
                note=f"{args.clients} clients at this rate wait {mean_wait:.0f} ms on average (clients / "
                f"requests per second); the bare endpoint's own p99: {stats[('bare', 'p99')].median:.0f} ms",
            )
            report_stats(
                "status_api",
                f"{label} status / bare requests/s",
                ratio_stats(stats[("status", "rps")], stats[("bare", "rps")]),
                "x",
                target=">= 0.5",
                met=lambda v: v >= 0.5,
            )
            client = statistics.median(stats[("bare", "client_us")].values)
            print(
                f"  (load generator: {client:.0f} µs of its CPU per request against the bare app, so its own "
                f"ceiling is about {1e6 / client * args.client_processes:,.0f} requests/s on "
                f"{args.client_processes} processes with a core each; it shares the 2 cores with the servers)",
                flush=True,
            )
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per load")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each load")
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive connections")
    parser.add_argument("--workers", type=int, default=2, help="server processes (sip serve --workers, uvicorn)")
    parser.add_argument("--client-processes", type=int, default=2, help="processes of the load generator")
    parser.add_argument("--applications", type=int, default=20, help="applications asked for, in turn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="SIP_DB_POOL_SIZE of the engine (connections and threads per worker)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="3 s per load, 1 s of warm-up (still 3 runs)")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(generate(json.loads(sys.stdin.read()))))
        return
    if args.quick:
        args.seconds, args.warmup = 3, 1
    if args.repeats < 3:
        parser.error("--repeats: at least 3 (the median and range of three runs)")
    if args.clients < args.client_processes:
        parser.error("--clients: at least as many as --client-processes")
    for kind in ("SQLite", "PostgreSQL"):
        if args.database in (kind.lower(), "both"):
            bench_database(kind, args)


if __name__ == "__main__":
    main()
