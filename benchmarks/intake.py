"""Intake benchmark: import N generated applications through the intake service, next
to a bare SQLAlchemy Core INSERT of the same rows, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/intake.py [--count 10000] [--batch 200] [--repeats 3] [--quick]

Each phase runs in its own process on a fresh database, so that its memory is its own
(sampled from /proc by `measure.Memory`: the peak resident set and its growth during
the phase). The figure that matters is the ratio intake / bare insert, against the
target of 3x: the phases run in turn (bare, intake, bare, intake, ...), each run's
ratio is taken against the bare run just before it, and the median of those ratios is
reported with their range.

The bare insert writes exactly the rows intake writes (the application, its status
change, audit event with its hash chain, idempotency key and receipt in the outbox),
pre-built, with executemany, in the same transactions of `--batch` applications. Each
generated application has its own contact address (the domains repeat, as a round's
applicants write from a few hundred), its own title and a Party of 14, in English,
French and Spanish as the demo's applications are. `--quick`: 1,000 applications,
still three runs of each phase."""

from __future__ import annotations

import argparse
import json
import os
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

from measure import Memory, Stats, ratio_stats, report_stats  # noqa: E402

PG_ADMIN = os.environ.get("SIP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROUND = "sip-2018-r1"
PARTIES = ["BEN", "ARG", "ARM", "IRN", "LSO", "ECU", "PER", "GHA", "MDG", "SEN", "MNG", "LKA", "JAM", "TGO"]


def documents(count: int) -> list[bytes]:
    from demo.applications import APPLICATIONS, document

    out = []
    for i in range(count):
        app = APPLICATIONS[i % len(APPLICATIONS)]
        doc = document(app)
        doc["applicant"]["party"] = PARTIES[i % len(PARTIES)]
        doc["form_a"]["title"] = f"{app.title[:180]} #{i}"
        local, domain = doc["applicant"]["contact"]["email"].split("@")
        doc["applicant"]["contact"]["email"] = f"{local}.{i}@{domain}"  # one address per application
        out.append(json.dumps(doc, ensure_ascii=False).encode())
    return out


def fresh_database(backend: str, folder: Path) -> str:
    from sqlalchemy import create_engine, text

    if backend == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    name = f"sip_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    if url.startswith("postgresql"):
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def setup(url: str, folder: Path) -> Any:
    from engine.db import unit_of_work
    from engine.services.rounds import open_round
    from engine.services.setup import prepare
    from engine.settings import Settings

    settings = Settings(SIP_DATA_DIR=folder, DATABASE_URL=url, SIP_SECRET_KEY="b" * 40)
    rt = prepare(settings)
    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND, actor="bench", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    return rt


def run_intake(rt: Any, docs: list[bytes], batch: int) -> int:
    from engine.services.intake import import_batch

    now = datetime(2018, 9, 2, tzinfo=UTC)
    ok = 0
    for start in range(0, len(docs), batch):
        items = [(f"{start + i}.json", d) for i, d in enumerate(docs[start : start + batch])]
        ok += sum(r.ok for r in import_batch(rt.engine, rt.settings, ROUND, items, actor="bench", now=now))
    return ok


def prebuilt_rows(rt: Any, docs: list[bytes]) -> list[dict[str, list[dict[str, Any]]]]:
    """The rows intake writes for each application, built outside the timed part."""
    from domain.application import parse_document
    from notifications import render

    now = datetime(2018, 9, 2, tzinfo=UTC)
    message = render(
        "receipt",
        "en",
        dict(
            contact_name="x",
            reference="SIP-2018-R1-0001",
            round_title="Round 1",
            title="t",
            party_name="Benin",
            submitted_at=now,
            timezone="Europe/Zurich",
            status="received",
            access_token="t" * 43,
            status_url="http://x/",
            programme_email="sip@example.org",
            language="en",
        ),
    )
    rows = []
    for i, raw in enumerate(docs, start=1):
        doc = parse_document(raw)
        dump = doc.model_dump(mode="json", exclude_unset=True)
        reference = f"SIP-2018-R1-{i:05d}"
        rows.append(
            {
                "application": [
                    dict(
                        id=i,
                        reference=reference,
                        round_id=ROUND,
                        party=doc.applicant.party,
                        language=doc.applicant.language,
                        title=doc.title,
                        amount_requested=doc.amount_requested,
                        status="submitted",
                        version=1,
                        applicant=dump["applicant"],
                        form_a=dump.get("form_a"),
                        form_b=dump.get("form_b"),
                        form_c=dump.get("form_c"),
                        channel="import",
                        submitted_at=doc.received_at,
                        created_at=now,
                        access_token_hash="0" * 64,
                    )
                ],
                "status_change": [
                    dict(
                        application_id=i,
                        key="submit",
                        transition="submit",
                        from_status=None,
                        to_status="submitted",
                        public_status="received",
                        at=doc.received_at,
                    )
                ],
                "audit_event": [
                    dict(
                        at=now,
                        actor="bench",
                        role="secretariat",
                        action="application.submitted",
                        subject_type="application",
                        subject_id=reference,
                        from_status=None,
                        to_status="submitted",
                        reason=None,
                        details={"channel": "import"},
                    )
                ],
                "intake_key": [
                    dict(
                        round_id=ROUND,
                        key=f"import-sha256:{i:064d}",
                        request_hash="0" * 64,
                        application_id=i,
                        created_at=now,
                    )
                ],
                "outbox": [
                    dict(
                        key=f"receipt:{reference}",
                        kind="receipt",
                        round_id=ROUND,
                        application_id=i,
                        recipient="x@example.org",
                        language="en",
                        subject=message.subject,
                        body_text=message.text,
                        body_html=message.html,
                        state="queued",
                        attempts=0,
                        created_at=now,
                        sent_at=None,
                    )
                ],
            }
        )
    # The audit events' hash chain, as intake writes it (built here too, outside the timed part).
    # The bare phase writes into a database of its own, whose trail starts with these events.
    from domain.audit_chain import GENESIS, chain

    chain(GENESIS, [event for app in rows for event in app["audit_event"]])
    return rows


def run_bare(rt: Any, rows: list[dict[str, list[dict[str, Any]]]], batch: int) -> int:
    from sqlmodel import SQLModel

    tables = SQLModel.metadata.tables
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        with rt.engine.begin() as conn:
            for name in ("application", "status_change", "audit_event", "intake_key", "outbox"):
                conn.execute(tables[name].insert(), [r for app in chunk for r in app[name]])
    return len(rows)


def phase(name: str, backend: str, count: int, batch: int) -> dict[str, Any]:
    """Runs in a child process: one phase on one fresh database."""
    folder = Path(tempfile.mkdtemp(prefix="sip-bench-"))
    url = fresh_database(backend, folder)
    try:
        rt = setup(url, folder)
        docs = documents(count)
        prepared = prebuilt_rows(rt, docs) if name == "bare" else docs
        with Memory() as memory:
            started, cpu = time.perf_counter(), time.process_time()
            done = run_bare(rt, prepared, batch) if name == "bare" else run_intake(rt, prepared, batch)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        rt.engine.dispose()
        return {
            "phase": name,
            "backend": backend,
            "count": done,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_mb": memory.peak_mb["process"],
            "growth_mb": memory.growth_mb["process"],
        }
    finally:
        from engine.db import dispose_all

        dispose_all()
        drop_database(url)


def postgres_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:  # noqa: BLE001
        return False


def run_phase(name: str, backend: str, count: int, batch: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--backend", backend, "--count", str(count), "--batch", str(batch)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        print(f"  {backend} {name} failed:\n{out.stderr[-2000:]}")
        sys.exit(1)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["count"] != count:
        print(f"  {backend} {name} stored {result['count']:,} of {count:,} applications")
        sys.exit(1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each phase (at least 3)")
    parser.add_argument("--quick", action="store_true", help="1,000 applications (still 3 runs of each phase)")
    parser.add_argument("--phase", choices=["intake", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.backend, args.count, args.batch)))
        return
    count = 1_000 if args.quick else args.count
    repeats = max(3, args.repeats)

    backends = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    print(
        f"intake benchmark: {count:,} applications, transactions of {args.batch}, {repeats} runs of each phase "
        f"taken in turn, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    if "postgresql" not in backends:
        print(f"  PostgreSQL not reachable at {PG_ADMIN}: measuring SQLite only")
    for backend in backends:
        database = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "intake": []}
        for _ in range(repeats):  # in turn, so that the machine's load falls on both phases alike
            for name in ("bare", "intake"):
                runs[name].append(run_phase(name, backend, count, args.batch))
        seconds = {name: Stats(tuple(r["seconds"] for r in runs[name])) for name in runs}
        for name, label in (("bare", "bare insert"), ("intake", "intake")):
            report_stats(
                "intake",
                f"{database} {label}, applications/s",
                Stats(tuple(count / v for v in seconds[name].values)),
                "/s",
            )
            report_stats(
                "intake",
                f"{database} {label}, peak memory (process)",
                Stats(tuple(r["peak_mb"] for r in runs[name])),
                "MB",
            )
            report_stats(
                "intake",
                f"{database} {label}, memory growth during the phase",
                Stats(tuple(r["growth_mb"] for r in runs[name])),
                "MB",
            )
        cpu = {name: Stats(tuple(r["cpu_seconds"] for r in runs[name])) for name in runs}
        report_stats(
            "intake",
            f"{database} intake / bare insert, process CPU time at {count:,}",
            ratio_stats(cpu["intake"], cpu["bare"]),
            "x",
            note="for reference, no target: this process's own work, less moved by the machine's load than "
            "the time, without the database server's",
        )
        report_stats(
            "intake",
            f"{database} intake / bare insert, time at {count:,}",
            ratio_stats(seconds["intake"], seconds["bare"]),
            "x",
            target="<= 3x",
            met=lambda r: r <= 3,
            note="median of the runs' ratios, each intake run over the bare run just before it",
        )


if __name__ == "__main__":
    main()
