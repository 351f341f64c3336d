"""Every `sip` command that runs a flow refuses bad input before it starts Prefect: no
"starting Prefect" announcement, no Prefect server. Each command runs as a user runs
it, in a process of its own, with PREFECT_API_URL unset and the ephemeral server
disabled, so that a command that reached its flow would say it could not run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.settings import Settings
from tests.conftest import ROUND1, ROUND4

FUTURE = "2099-01-01T00:00:00+00:00"
#: (the command's words, what its refusal says); "{tmp}" is the test's own folder. Round 1
#: is a draft (never opened) and has no GMP review; round 4 has one.
REFUSALS: dict[str, tuple[list[str], str]] = {
    "rounds open: unknown round": (["rounds", "open", "nope"], "no round 'nope'"),
    "rounds open: an instant in the future": (["rounds", "open", ROUND1, "--at", FUTURE], "is in the future"),
    "rounds close: a round not open": (["rounds", "close", ROUND1], "only an open round can be closed"),
    "applications import: unknown round": (["applications", "import", "nope", "{tmp}"], "no round 'nope'"),
    "applications import: missing file": (
        ["applications", "import", ROUND1, "{tmp}/missing.json"],
        "no such file or folder",
    ),
    "applications import: a round never opened": (
        ["applications", "import", ROUND1, "{tmp}"],
        "applications can be imported only while it is open or closed",
    ),
    "screen: unknown round": (["screen", "nope"], "no round 'nope'"),
    "screen: a round not closed": (["screen", ROUND1], "screen it after it closes"),
    "screen: a bad --at": (["screen", ROUND1, "--at", "yesterday"], "--at 'yesterday' is not an instant"),
    "screen close: unknown round": (["screen", "close", "nope"], "no round 'nope'"),
    "review assign: a round without GMP review": (["review", "assign", ROUND1], "has no GMP review stage"),
    "review invite: a bad --due": (["review", "invite", ROUND4, "--due", "soon"], "--due 'soon' is not a date"),
    "review daily: a bad --at": (["review", "daily", "--at", "today"], "--at 'today' is not an instant"),
    "review close: unknown round": (["review", "close", "nope"], "no round 'nope'"),
    "bundles: a round not with the committee": (["bundles", ROUND1], "the bundles are prepared once screening"),
    "letters send: a round without decisions": (["letters", "send", ROUND1], "letters follow the committee"),
    "outbox deliver: --limit 0": (["outbox", "deliver", "--limit", "0"], "Invalid value for '--limit'"),
}


def sip_alone(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`sip ARGS` in a process of its own, with no Prefect server configured and the
    ephemeral one disabled (a flow call fails at once instead of starting one)."""
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    environment.update(PREFECT_SERVER_EPHEMERAL_ENABLED="false", **env)
    words = [a.replace("{tmp}", str(tmp)) for a in args]
    return subprocess.run(
        [sys.executable, "-m", "cli", *words], env=environment, capture_output=True, text=True, timeout=120
    )


def assert_refused_before_prefect(result: subprocess.CompletedProcess[str], says: str) -> None:
    printed = result.stdout + result.stderr
    assert result.returncode != 0, printed
    assert says in printed, printed
    assert "starting Prefect" not in printed, printed
    assert "could not run" not in printed and "Traceback" not in printed, printed


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_command_that_runs_a_flow_refuses_bad_input_without_starting_prefect(
    case: str, sqlite_settings: Settings, tmp_path: Path
) -> None:
    args, says = REFUSALS[case]
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "a.json").write_text("{}", encoding="utf-8")
    assert_refused_before_prefect(sip_alone(args, tmp_path / "incoming"), says)


def test_the_demo_refuses_fresh_on_postgresql_without_starting_prefect(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    result = sip_alone(["demo", "--fresh"], tmp_path, DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert_refused_before_prefect(result, "--fresh only empties the embedded SQLite database")
