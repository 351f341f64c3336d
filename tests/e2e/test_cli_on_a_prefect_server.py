"""Where a long-lived Prefect server is configured (PREFECT_API_URL), a `sip` command
runs its flow on it: the run is recorded there, and no ephemeral server is started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.settings import Settings
from tests.conftest import ROUND1

pytestmark = pytest.mark.deployed


def test_a_command_runs_its_flow_on_the_configured_prefect_server_without_an_ephemeral_one(
    prefect: tuple[str, Path], sqlite_settings: Settings
) -> None:
    api, home = prefect
    # With the ephemeral server disabled, a command that tried to start one would fail.
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home), "PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "rounds", "open", ROUND1, "--at", "2018-06-05T09:00:00+02:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"running on the Prefect server at {api}" in done.stderr
    assert "starting Prefect" not in done.stderr
    assert f"{ROUND1}: opened" in done.stdout
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, timeout=10).json()
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={"limit": 50}, timeout=10).json()}
    assert [(flows[r["flow_id"]], r["state_type"]) for r in runs if flows[r["flow_id"]] == "open-round"] == [
        ("open-round", "COMPLETED")
    ]
