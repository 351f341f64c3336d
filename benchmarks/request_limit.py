"""Request-size limit benchmark: the served API's memory while it refuses a 150 MB body
from a caller without a key or token.

    .venv/bin/python benchmarks/request_limit.py [--megabytes 150] [--without-limit]

For each of the four routes that used to read a whole body before answering 401 (or
413), and for a body with Content-Length and one without (chunked), a fresh
`uvicorn api.main:app` on 127.0.0.1 (one process: its PID is the server) gets first a
small request (1 KB, the baseline), then the large body, streamed from a generator
over a raw socket that stops sending when the server answers. The server's resident
memory is read from /proc/PID/status: VmRSS before and after each request (what the
request left behind) and VmHWM, reset before each request, for the peak during it.
Prints, per route, the peak rise in MB against the target (under 5 MB) and against
the small request's, measured in the same run. `--without-limit` adds, in the same
run, the same requests to a server whose SIP_MAX_BODY_BYTES is 1 GB (as if there were
no limit): the figure before the limit."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import Figure, report  # noqa: E402

from tests.streaming import stream_body  # noqa: E402

ROUTES = [
    ("POST", "/rounds/sip-2018-r1/decisions"),
    ("PUT", "/reviewers/someone@example.org"),
    ("POST", "/reviewer/sessions"),
    ("PUT", "/applications/SIP-2018-0001/forms"),
]
TARGET_MB = 5.0


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of the process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, limit: int | None) -> None:
        self.port = free_port()
        env = {**os.environ, "SIP_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        if limit is not None:
            env["SIP_MAX_BODY_BYTES"] = str(limit)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health/live", timeout=2)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.3)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(10)


def reset_peak(pid: int) -> None:
    """VmHWM back to the current VmRSS (Linux: 5 to /proc/PID/clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def measure(data_dir: Path, limit: int | None, method: str, path: str, size: int, declared: bool) -> dict[str, float]:
    with Server(data_dir, limit) as server:
        pid = server.process.pid
        for _ in range(3):  # warm up: the route, its parsing and its refusal are loaded
            stream_body(server.port, method, path, size=1024, declare_length=declared)
        reset_peak(pid)
        rss0, _ = memory(pid)
        small = stream_body(server.port, method, path, size=1024, declare_length=declared)
        assert small.status is not None, "the small request got no answer"
        rss1, small_peak = memory(pid)
        reset_peak(pid)
        large = stream_body(server.port, method, path, size=size, declare_length=declared)
        time.sleep(0.2)
        rss2, peak = memory(pid)
    return {
        "small_peak": small_peak - rss0,
        "status": large.status or 0,
        "after": rss2 - rss1,  # what the request left behind
        "peak": peak - rss1,  # the most it held at once
        "sent_mb": large.bytes_sent / 1e6,
        "seconds": large.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=150)
    parser.add_argument("--without-limit", action="store_true", help="also measure with SIP_MAX_BODY_BYTES=1 GB")
    parser.add_argument("--quick", action="store_true", help="a 20 MB body")
    args = parser.parse_args()
    if args.quick:
        args.megabytes = 20
    size = args.megabytes * 1_000_000
    configurations: list[tuple[str, int | None]] = [("limit (default 4 MB)", None)]
    if args.without_limit:
        configurations.append(("no limit (1 GB)", 1_000_000_000))
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(  # the database, migrated once: each server starts on it
            [sys.executable, "-m", "cli", "db", "upgrade"],
            cwd=ROOT,
            env={**os.environ, "SIP_DATA_DIR": folder},
            check=True,
            capture_output=True,
        )
        print(f"{args.megabytes} MB unauthenticated body; server memory from /proc/PID/status; target: under 5 MB")
        print("peak: VmHWM during the request above VmRSS before it; after: VmRSS after it, above VmRSS before")
        print(
            f"{'configuration':22} {'route':38} {'body':8} {'answer':>6} {'sent MB':>8} {'s':>5} "
            f"{'small MB':>8} {'peak MB':>8} {'after MB':>8} {'vs small':>9} {'target':>7}"
        )
        worst: dict[str, float] = {}
        for name, limit in configurations:
            for method, path in ROUTES:
                for declared in (True, False):
                    m = measure(Path(folder), limit, method, path, size, declared)
                    ratio = m["peak"] / max(m["small_peak"], 0.1)  # a small request's peak under 0.1 MB counts as 0.1
                    print(
                        f"{name:22} {method + ' ' + path:38} {'length' if declared else 'chunked':8} "
                        f"{int(m['status']):>6} {m['sent_mb']:>8.1f} {m['seconds']:>5.2f} "
                        f"{m['small_peak']:>8.2f} {m['peak']:>8.2f} {m['after']:>8.2f} {ratio:>8.1f}x "
                        f"{'ok' if m['peak'] < TARGET_MB else 'OVER':>7}"
                    )
                    worst[name] = max(worst.get(name, 0.0), m["peak"])
        for name, peak in worst.items():
            report(
                Figure(
                    benchmark="request_limit",
                    name=f"server memory rise refusing a {args.megabytes} MB body, the most of "
                    f"{2 * len(ROUTES)} requests ({name})",
                    value=peak,
                    unit="MB",
                    target=f"< {TARGET_MB:g} MB" if name.startswith("limit") else None,
                    met=peak < TARGET_MB if name.startswith("limit") else None,
                )
            )


if __name__ == "__main__":
    main()
