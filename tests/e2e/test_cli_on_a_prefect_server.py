"""Where a long-lived Prefect server is configured (PREFECT_API_URL), a `sip` command
runs its flow on it: the run is recorded there, and no ephemeral server is started.
Where none is, the command starts Prefect's local server itself, runs the flow on it,
and leaves no server behind."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.settings import Settings
from tests.conftest import ROUND1

pytestmark = pytest.mark.deployed


def _open_round1(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`sip rounds open` for round 1, as a user runs it (a process of its own)."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "rounds", "open", ROUND1, "--at", "2018-06-05T09:00:00+02:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_command_runs_its_flow_on_the_configured_prefect_server_without_an_ephemeral_one(
    prefect: tuple[str, Path], sqlite_settings: Settings
) -> None:
    api, home = prefect
    # With the ephemeral server disabled, a command that tried to start one would fail.
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home), "PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}
    done = _open_round1(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"running on the Prefect server at {api}" in done.stderr
    assert "starting Prefect" not in done.stderr
    assert f"{ROUND1}: opened" in done.stdout
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, timeout=10).json()
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={"limit": 50}, timeout=10).json()}
    assert [(flows[r["flow_id"]], r["state_type"]) for r in runs if flows[r["flow_id"]] == "open-round"] == [
        ("open-round", "COMPLETED")
    ]


def _processes_with(home: Path) -> list[int]:
    """The processes whose environment names this PREFECT_HOME."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"PREFECT_HOME={home}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_a_command_with_no_prefect_server_configured_starts_its_own_and_leaves_none_behind(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    done = _open_round1(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting Prefect (a local server for this command" in done.stderr
    assert f"{ROUND1}: opened" in done.stdout
    assert _processes_with(home) == []  # the server ended with the command
    with sqlite3.connect(home / "prefect.db") as db:  # the run was recorded on that server, completed
        runs = db.execute(
            "SELECT flow.name, flow_run.state_type FROM flow_run JOIN flow ON flow.id = flow_run.flow_id"
        ).fetchall()
    assert runs == [("open-round", "COMPLETED")]


def test_a_local_server_whose_command_fails_before_it_answers_is_stopped_at_once(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    code = (
        "import engine.prefect_quiet as q\n"
        "try:\n"
        "    with q.prefect_starting():\n"
        "        raise KeyError('the command failed')\n"
        "except KeyError:\n"
        "    print('stopped' if q._local is None else 'left', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stdout + done.stderr
    assert _processes_with(home) == []
