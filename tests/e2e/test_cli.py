"""End to end through the `sip` command line (Prefect flows on the session's test
harness, the embedded SQLite database)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from cli import app
from engine.settings import Settings
from tests.conftest import ROUND1, example
from tests.tables import printed_row, table_rows

pytestmark = pytest.mark.prefect
runner = CliRunner()


def sip(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_applications(folder: Path, good: int, bad: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = json.loads(example("ben-asgm-complete.json"))
    for i in range(good):
        doc = dict(base, received_at="2018-08-01T10:00:00+02:00")
        doc["form_a"] = dict(base["form_a"], title=f"Project {i}")
        (folder / f"app-{i:03d}.json").write_text(json.dumps(doc))
    for name, content in bad.items():
        (folder / name).write_bytes(content)


def test_a_pathological_file_in_a_folder_is_refused_on_its_own_and_the_others_are_imported(
    sqlite_settings: Settings, prefect_harness: None, tmp_path: Path
) -> None:
    assert sip("rounds", "open", ROUND1, "--at", "2018-06-05T00:00:00+02:00")[0] == 0
    folder = tmp_path / "incoming"
    deep = b'{"form_a": {"objective": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    huge = b'{"form_b": {"total_requested": ' + b"9" * 5_000 + b"}}"
    write_applications(folder, 5, {"x-deep.json": deep, "x-huge.json": huge})
    code, out, err = sip("applications", "import", ROUND1, str(folder))
    assert code == 1, err
    assert "7 files: 5 imported, 0 already imported, 2 refused" in out
    assert "$.form_a.objective[0]" in out and "nests deeper than 64 levels" in out
    assert "$.form_b.total_requested: has a number of more than 64 digits" in out
    for name in ("x-deep.json", "x-huge.json"):
        printed_row(out, "refused", "-", str(folder / name))


def test_importing_100_files_with_3_bad_imports_97_reports_3_and_exits_1(
    sqlite_settings: Settings, prefect_harness: None, tmp_path: Path
) -> None:
    assert sip("rounds", "open", ROUND1, "--at", "2018-06-05T00:00:00+02:00")[0] == 0
    folder = tmp_path / "incoming"
    write_applications(
        folder,
        97,
        {
            "x-broken.json": b"{",
            "x-party.json": json.dumps(
                dict(
                    json.loads(example("ben-asgm-complete.json")),
                    received_at="2018-08-01T10:00:00+02:00",
                    applicant={"party": "ZZZ"},
                )
            ).encode(),
            "x-empty.json": b"",
        },
    )
    code, out, err = sip("applications", "import", ROUND1, str(folder))
    printed = out + err
    assert code == 1
    assert "100 files: 97 imported, 0 already imported, 3 refused" in out
    assert "$.applicant.party: ZZZ is not in the Parties register" in out
    assert sum(line.startswith("imported  ") for line in table_rows(out)) == 97
    for name in ("x-broken.json", "x-party.json", "x-empty.json"):
        printed_row(out, "refused", "-", str(folder / name))
    assert "import them again" in err
    # Re-running imports nothing twice.
    code, out, err = sip("applications", "import", ROUND1, str(folder), "--json")
    printed += out + err
    summary = json.loads(out)
    assert (code, summary["imported"], summary["already_imported"], summary["failed"]) == (1, 0, 97, 3)
    # The access codes went to the outbox, never to the command's output.
    code, out, _ = sip("outbox", "list", "--json")
    messages = json.loads(out)
    assert len(messages) == 97 and {m["kind"] for m in messages} == {"receipt"}
    from engine.db import get_engine, unit_of_work
    from engine.services.outbox import materialize
    from engine.tables import OutboxMessage

    with unit_of_work(get_engine(sqlite_settings.url)) as session:
        sent = [materialize(session, sqlite_settings, m) for m in session.exec(select(OutboxMessage)).all()]
    codes = {line.strip() for m in sent for line in m.text.splitlines() if line.startswith("    ")}
    assert len(codes) == 97 and not any(code in printed for code in codes)


def test_applications_list_prints_one_row_per_application_and_json(
    sqlite_settings: Settings, prefect_harness: None, tmp_path: Path
) -> None:
    sip("rounds", "open", ROUND1, "--at", "2018-06-05T00:00:00+02:00")
    write_applications(tmp_path / "in", 2, {})
    sip("applications", "import", ROUND1, str(tmp_path / "in"))
    code, out, _ = sip("applications", "list", ROUND1)
    assert code == 0
    assert out.splitlines()[0].split() == ["reference", "Party", "public", "status", "status", "amount", "title"]
    assert len(table_rows(out)) == 2
    printed_row(out, "SIP-2018-R1-0001", "BEN", "received", "submitted", "190,000", "Project 0")
    printed_row(out, "SIP-2018-R1-0002", "BEN", "received", "submitted", "190,000", "Project 1")
    rows = json.loads(sip("applications", "list", ROUND1, "--json")[1])
    assert rows[1] | {"submitted_at": None} == {
        "reference": "SIP-2018-R1-0002",
        "party": "BEN",
        "party_name": "Benin",
        "title": "Project 1",
        "amount_requested": "190000.00",
        "language": "fr",
        "public_status": "received",
        "status": "submitted",
        "submitted_at": None,
    }


def test_a_bad_round_file_is_refused_with_the_key_and_changes_nothing(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "r5.toml"
    path.write_text(
        Path("rounds/sip-2018-r1.toml")
        .read_text()
        .replace("sip-2018-r1", "sip-2027-r5")
        .replace("opens_at = 2018-06-05T00:00:00+02:00\n", "")
    )
    code, _, err = sip("rounds", "load", str(path))
    assert code == 1 and f"{path}: opens_at: is required" in err
    assert "sip-2027-r5" not in sip("rounds", "list")[1]


def test_a_new_round_is_added_by_loading_its_file(sqlite_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "r5.toml"
    text = Path("rounds/sip-2024-r4.toml").read_text().replace("sip-2024-r4", "sip-2026-r5")
    path.write_text(text.replace("2024-04-24", "2026-04-24").replace("2024-07-31", "2026-07-31"))
    code, out, _ = sip("rounds", "load", str(path))
    assert code == 0 and out.startswith("created: sip-2026-r5")
    assert "stages: screening, gmp_review, committee; 9 criteria (default set); status draft" in out
    assert sip("rounds", "load", str(path))[1].startswith("unchanged: sip-2026-r5")


def test_a_parties_file_with_a_duplicate_code_is_refused_and_the_register_kept(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "parties.csv"
    lines = Path("engine/data/parties.csv").read_text().splitlines(keepends=True)
    path.write_text("".join(lines + [lines[1]]))
    code, _, err = sip("parties", "load", str(path))
    assert code == 1 and "duplicate code AFG (first on line 2)" in err
    listed = sip("parties", "list")[1]
    assert len(table_rows(listed)) == 138
    printed_row(listed, "AFG", "Afghanistan", "ASIA_PACIFIC")


def test_a_parties_file_with_thousands_of_problems_lists_the_first_fifty_and_counts_the_rest(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "parties.csv"
    header = Path("engine/data/parties.csv").read_text().splitlines(keepends=True)[0]
    path.write_text(header + "".join(f"X{n},,,,,\n" for n in range(3_000)))
    code, _, err = sip("parties", "load", str(path))
    problems = [line for line in err.splitlines() if line.startswith("  ") and "next:" not in line]
    assert code == 1 and len(problems) == 51 and "Traceback" not in err
    assert re.fullmatch(r"  … and [\d,]+ more problem\(s\); correct these first and try again", problems[-1])


def test_a_round_file_with_a_byte_order_mark_loads_and_one_nested_too_deep_is_refused_by_name(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    marked = tmp_path / "marked.toml"
    marked.write_text("\ufeff" + Path("rounds/sip-2018-r1.toml").read_text(), encoding="utf-8")
    code, out, err = sip("rounds", "load", str(marked))
    assert code == 0 and "sip-2018-r1" in out, err
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    code, _, err = sip("rounds", "load", str(deep))
    assert code == 1 and f"{deep}: nests too deep to be a round definition" in err and "Traceback" not in err


def test_opening_a_round_before_its_date_is_refused_with_what_to_do(
    sqlite_settings: Settings, prefect_harness: None
) -> None:
    code, _, err = sip("rounds", "open", ROUND1, "--at", "2018-06-04T23:59:59+02:00")
    assert code == 1 and "schedule the open-round flow for that time" in err


def test_the_demo_runs_round_1_and_round_4_and_converges_when_run_again(
    sqlite_settings: Settings, prefect_harness: None
) -> None:
    from demo.run import run_demo

    lines: list[str] = []
    assert run_demo(sqlite_settings, echo=lines.append) == 0
    output = "\n".join(lines)
    assert "19 imported, 0 already imported, 0 refused" in output
    assert "Round sip-2018-r1: 19 applications from 18 Parties" in output
    assert "screen-applications: 19 screened (2 incomplete, 2 ineligible, 15 screened)" in output
    assert (
        "notifications queued: 60 (10 bundle_ready, 4 decision_approved, 1 decision_approved_with_conditions, "
        "1 decision_deferred, 9 decision_not_approved, 5 grant_agreement_sent, 1 grant_report_overdue, "
        "5 grant_report_reminder, 1 grant_report_revision, 19 receipt, 2 screening_incomplete, "
        "2 screening_ineligible; 34 in en, 10 in es, 16 in fr)"
    ) in output
    # Round 1's grants, on the demo's invented timeline after the real decision.
    assert "agreements: 5 sent with their personal links (3 in en, 1 in es, 1 in fr)" in output
    assert "grants-day 2019-06-01: 5 reminders of the first progress report" in output
    assert "grants-day 2019-06-26: 1 overdue notice (Benin, in French) and 1 report escalated" in output
    assert "its final report, overdue since 2021-01-11, is now due on 2021-07-11" in output
    assert "US$ 10,008.00 unspent returned, lessons recorded: closed" in output
    assert re.search(r"SIP-2018-R1-0006 +LSO +closed +120,000.00 +120,000.00 +0.00", output)
    assert "send-to-committee: 15 screened applications on the Steering Committee's agenda" in output
    # Round 1's committee: the Argentine and Armenian members meet their countries' applications.
    assert "martin.gomez (SIP-2018-R1-0001)" in output and "anna.hakobyan (SIP-2018-R1-0002)" in output
    assert "decisions (from decisions-2018-10-03.csv): 15 recorded, 0 unchanged; approvals US$ 930,000" in output
    assert "send-decision-letters: 15 queued" in output
    assert re.search(r"approved +approved +4\n +approved_with_conditions", output)
    grants = json.loads((sqlite_settings.data_dir / "open-data" / "grants-sip-2018-r1.json").read_text())
    assert sorted(g["recipientOrganization"][0]["name"] for g in grants["grants"]) == [
        "Government of Argentina",
        "Government of Armenia",
        "Government of Benin",
        "Government of Iran (Islamic Republic of)",
        "Government of Lesotho",
    ]
    assert len(list((sqlite_settings.data_dir / "bundles" / "sip-2018-r1").glob("*.v1.html"))) == 10
    mails = list((sqlite_settings.data_dir / "mail").glob("*.eml"))
    assert f"deliver-notifications: {len(mails)} message(s) sent now" in output and len(mails) > 70
    # Round 4, with GMP review: a decline and a declared conflict reassigned, one review missing.
    assert "the secretariat reassigns: 2 new invitation(s) for the two open places" in output
    assert "overdue notice to the secretariat" in output
    assert "send-to-committee: 8 applications on the committee's agenda; short of reviews: SIP-2024-R4-0007" in output
    assert re.search(r"SIP-2024-R4-0003 +CHN +2 of 2 +1 support, 1 do not support +disagreement", output)
    lines.clear()
    assert run_demo(sqlite_settings, echo=lines.append) == 0
    again = "\n".join(lines)
    assert "0 imported, 19 already imported, 0 refused" in again
    assert "screen-applications: done in an earlier run" in again
    assert "send-to-committee: already on the committee's agenda" in again
    assert "(reviewed in an earlier run; nothing to do again)" in again
    assert "prepare-committee-bundles: 0 new, 10 unchanged" in again and "0 recorded, 15 unchanged" in again
    assert "send-decision-letters: 0 queued, 15 sent before" in again
    assert "grants: taken through their agreements in an earlier run" in again
    assert "deliver-notifications: 0 message(s) sent now" in again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sip_serve_starts_the_api_with_its_openapi_page(sqlite_settings: Settings) -> None:
    port = _free_port()
    env = {**os.environ, "SIP_DATA_DIR": str(sqlite_settings.data_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        rounds = httpx.get(f"http://127.0.0.1:{port}/rounds", timeout=5).json()
        assert [r["id"] for r in rounds][:1] == [ROUND1]
        # The links people are sent carry their secret in the address: it never reaches the log.
        httpx.get(f"http://127.0.0.1:{port}/committee/bundle?token=bundle-secret-1&format=html", timeout=5)
        httpx.get(f"http://127.0.0.1:{port}/reviewer/sign-in?lang=fr&token=sign-in-secret-2", timeout=5)
    finally:
        server.terminate()
        server.wait(10)
    log = server.stdout.read().decode() if server.stdout else ""
    assert "GET /committee/bundle?token=[redacted]&format=html" in log, log[-2000:]
    assert "GET /reviewer/sign-in?lang=fr&token=[redacted]" in log
    assert "bundle-secret-1" not in log and "sign-in-secret-2" not in log


def test_screening_a_round_still_open_is_refused_and_changes_nothing(
    sqlite_settings: Settings, prefect_harness: None
) -> None:
    from datetime import UTC, datetime

    from engine.db import get_engine, unit_of_work
    from engine.services.rounds import open_round

    with unit_of_work(get_engine(sqlite_settings.url)) as session:
        open_round(session, ROUND1, actor="s", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
    code, _, err = sip("screen", ROUND1, "--at", "2018-08-31T12:00:00+02:00")
    assert code == 1 and "still open for applications" in err and "screen it after it closes" in err
    from engine.tables import Round

    with unit_of_work(get_engine(sqlite_settings.url)) as session:
        assert session.get(Round, ROUND1).status == "open"  # screening did not start


def test_a_screening_killed_part_way_is_finished_by_running_it_again(
    sqlite_settings: Settings, prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL
    from sqlmodel import func

    from engine.db import get_engine, unit_of_work
    from engine.tables import Application, AuditEvent, OutboxMessage

    sip("rounds", "open", ROUND1, "--at", "2018-06-05T00:00:00+02:00")
    folder = tmp_path / "in"
    write_applications(folder, 4, {})
    lso = dict(json.loads(example("lso-inventory-no-form-c.json")), received_at="2018-08-01T10:00:00+02:00")
    (folder / "lso.json").write_text(json.dumps(lso))
    assert sip("applications", "import", ROUND1, str(folder))[0] == 0
    script = tmp_path / "dies.py"
    script.write_text(
        "import os\n"
        "import flows.screening as screening\n"
        "real = screening.screen_batch\n"
        "def dies_after_the_first_batch(*args, **kwargs):\n"
        "    real(*args, **kwargs)\n"
        "    os._exit(137)  # the process is killed: no clean-up, no flow end\n"
        "screening.screen_batch = dies_after_the_first_batch\n"
        "screening.screen_applications_flow(round_id='sip-2018-r1', batch_size=2, at='2018-09-03T09:00:00+02:00')\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(Path.cwd())}
    died = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert died.returncode == 137, died.stderr[-2000:]
    engine = get_engine(sqlite_settings.url)

    def counts() -> tuple[dict[str, int], int, int]:
        with unit_of_work(engine) as session:
            statuses = dict(session.exec(select(Application.status, func.count()).group_by(Application.status)).all())
            recorded = session.exec(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "application.screening_recorded")
            ).one()
            notices = session.exec(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind != "receipt")
            ).one()
        return statuses, recorded, notices

    assert counts()[0] == {"screened": 2, "submitted": 3}  # the first batch of two was done, then it died
    code, out, _ = sip("screen", ROUND1, "--at", "2018-09-03T10:00:00+02:00")
    assert code == 0 and "3 screened now" in out
    assert counts() == ({"screened": 4, "incomplete": 1}, 5, 1)  # each application screened once, one notice
    assert "0 screened now" in sip("screen", ROUND1)[1]


def test_the_screening_commands_score_override_request_resubmit_and_report(
    sqlite_settings: Settings, prefect_harness: None, tmp_path: Path
) -> None:
    sip("rounds", "open", ROUND1, "--at", "2018-06-05T00:00:00+02:00")
    folder = tmp_path / "in"
    write_applications(folder, 1, {})
    lso = dict(json.loads(example("lso-inventory-no-form-c.json")), received_at="2018-08-01T10:00:00+02:00")
    (folder / "lso.json").write_text(json.dumps(lso))
    sip("applications", "import", ROUND1, str(folder))
    assert sip("screen", ROUND1, "--at", "2018-09-03T09:00:00+02:00")[0] == 0
    code, out, _ = sip("screen", "score", ROUND1, "SIP-2018-R1-0001", "feasibility", "3", "--comment", "sound")
    assert code == 0 and "feasibility = 3 recorded; weighted score 87.5" in out
    sheet = tmp_path / "scores.csv"
    sheet.write_text("reference,criterion,score,comment\nSIP-2018-R1-0001,elegance,3,\n")
    code, _, err = sip("screen", "scores", ROUND1, str(sheet))
    assert code == 1 and f"{sheet}:2: criterion: 'elegance' is not a criterion" in err
    code, _, err = sip("screen", "override", ROUND1, "SIP-2018-R1-0002", "--verdict", "screened")
    assert code == 1 and "needs a reason" in err
    code, out, _ = sip(
        "screen", "request", ROUND1, "SIP-2018-R1-0002", "--item", "Form C, signed", "--due", "2030-01-31"
    )
    assert code == 0 and "by 2030-01-31" in out
    forms = tmp_path / "forms.json"
    forms.write_text(
        json.dumps(
            {"form_c": {"signed_by": "Thabo Mokoena", "signed_on": "2018-09-10", "consultation_confirmed": True}}
        )
    )
    code, out, _ = sip("applications", "resubmit", "SIP-2018-R1-0002", str(forms))
    assert code == 0 and "forms on file; status screened" in out
    code, out, _ = sip("screen", "report", ROUND1, "--output", str(tmp_path / "reports"))
    assert code == 0 and (tmp_path / "reports" / "screening-sip-2018-r1.csv").read_text().count("SIP-2018-R1") == 2
