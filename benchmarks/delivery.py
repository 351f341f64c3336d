"""Delivery benchmark: N queued messages delivered to a local SMTP server (aiosmtpd,
in a process of its own) by the relay, next to a loop that sends the same messages,
built beforehand, with smtplib directly over one connection, in the same run. Prints
messages per second and the ratio (target: the relay within 2x of the bare loop).

    .venv/bin/python benchmarks/delivery.py [--count 10000] [--repeats 3] [--quick]

Each phase runs three times, in turn; the ratio printed is the median of the runs' ratios
with their range.

The relay's time includes what the bare loop does not do: claiming each batch,
reading the rows, putting in any secret (access codes, links), building each
multipart message, and recording each outcome."""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from intake import PG_ADMIN, drop_database, fresh_database, postgres_available  # noqa: E402
from measure import Stats, ratio_stats, report_stats  # noqa: E402

AT = datetime(2026, 11, 25, 9, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the SMTP server did not start")


def queue(url: str, folder: Path, count: int):  # noqa: ANN201 - settings and engine
    """`count` receipts in three languages, rendered and queued as intake queues them."""
    from engine.db import unit_of_work
    from engine.services import outbox
    from engine.services.setup import prepare
    from engine.settings import Settings
    from notifications import render

    settings = Settings(SIP_DATA_DIR=folder, DATABASE_URL=url, SIP_SECRET_KEY="b" * 40)
    rt = prepare(settings, defaults=False)
    rows = []
    for i in range(count):
        language = ("en", "fr", "es")[i % 3]
        message = render(
            "receipt",
            language,
            dict(
                language=language,
                contact_name=f"Person {i}",
                reference=f"SIP-2026-R9-{i:05d}",
                round_title="Specific International Programme – ninth round",
                title=f"Project {i}",
                party_name="Benin",
                submitted_at=AT,
                timezone="Europe/Zurich",
                status="received",
                access_token=None,
                status_url="http://127.0.0.1:8000/status",
                programme_email="sip@example.org",
            ),
        )
        rows.append(
            outbox.message_row(
                key=f"bench:{i}", kind="receipt", recipient=f"person{i}@example.org", message=message, at=AT
            )
        )
    with unit_of_work(rt.engine) as session:
        for start in range(0, count, 1000):
            outbox.enqueue_rows(session, rows[start : start + 1000])
    return rt


def relay(url: str, folder: Path, port: int, count: int) -> float:
    from engine.services.delivery import deliver

    rt = queue(url, folder, count)
    settings = rt.settings.model_copy(
        update={"notifications_backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}
    )
    started = time.perf_counter()
    done = deliver(rt.engine, settings, now=AT, batch=200)
    seconds = time.perf_counter() - started
    if done.sent != count:
        raise SystemExit(f"the relay sent {done.sent} of {count}: {done.errors[:3]}")
    return seconds


def bare_loop(url: str, folder: Path, port: int, count: int) -> float:
    from sqlmodel import select

    from engine.db import reading
    from engine.services.outbox import materialize
    from engine.tables import OutboxMessage
    from notifications.mail import build, message_id, wire_bytes

    rt = queue(url, folder, count)
    with reading(rt.engine) as session:  # the same messages, built before the clock starts
        prebuilt = [
            (
                m.recipient,
                wire_bytes(
                    build(
                        materialize(session, rt.settings, m),
                        sender="sip@example.org",
                        recipient=m.recipient,
                        mid=message_id(m.key, "sip@example.org"),
                        date=m.created_at,
                        kind=m.kind,
                    )
                ),
            )
            for m in session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        ]  # type: ignore[arg-type]
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for recipient, data in prebuilt:
            client.sendmail("sip@example.org", [recipient], data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    args = parser.parse_args()
    count = 1_000 if args.quick else args.count
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    port = free_port()
    server = start_server(port)
    print(
        f"delivery benchmark: {count:,} messages to a local SMTP server (aiosmtpd), {os.cpu_count()} cores, "
        f"{args.repeats} runs of each phase, taken in turn"
    )
    try:
        backends = ["sqlite"] + (["postgresql"] if postgres_available() else [])
        if "postgresql" not in backends:
            print(f"  PostgreSQL not reachable at {PG_ADMIN}: the relay is measured on SQLite only")
        phases = [("smtplib loop", "sqlite", bare_loop)] + [(f"relay ({b})", b, relay) for b in backends]
        timings: dict[str, list[float]] = {name: [] for name, _, _ in phases}
        for _ in range(args.repeats):  # in turn, so that the machine's load falls on every phase alike
            for name, backend, run in phases:
                folder = Path(tempfile.mkdtemp(prefix="sip-delivery-"))
                url = fresh_database(backend, folder)
                try:
                    timings[name].append(run(url, folder, port, count))
                finally:
                    from engine.db import dispose_all

                    dispose_all()
                    drop_database(url)
        for name, values in timings.items():
            report_stats("delivery", f"{name}, messages/s", Stats(tuple(count / v for v in values)), "/s")
        bare = Stats(tuple(timings["smtplib loop"]))
        for name, values in timings.items():
            if name.startswith("relay"):
                report_stats(
                    "delivery",
                    f"{name} / smtplib loop, time at {count:,}",
                    ratio_stats(Stats(tuple(values)), bare),
                    "x",
                    target="<= 2x",
                    met=lambda r: r <= 2,
                    note="median of the runs' ratios",
                )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
