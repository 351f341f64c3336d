"""Processes for the tests that run the engine as production does: a Prefect server,
the engine's served flows or workers, API processes, and a process that starts runs.
Each is on loopback, logs to a file, and is stopped (then killed) at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent
START_RUNS = Path(__file__).resolve().parent / "start_runs.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment of a process of the test: this one's, without the settings a
    test may have set for itself (its database, its Prefect)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIP_", "PREFECT_")) and k not in ("DATABASE_URL", "NOTIFICATIONS_BACKEND")
    }
    env.update(
        {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false", "PYTHONUNBUFFERED": "1", **extra}
    )
    return env


@contextmanager
def running(args: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process of its own (its own process group), stopped with SIGTERM at the end and
    killed 20 s later if it is still there."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, *, seconds: float = 120) -> None:
    """Until `url` answers 200 (or the process ends, or time runs out: the log says why)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} ended ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port, with its own PREFECT_HOME (and
    its own SQLite database there); yields its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = quiet_env(PREFECT_HOME=str(home))
    log = home / "server.log"
    with running(
        [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=home,
        log=log,
    ) as process:
        url = f"http://127.0.0.1:{port}/api"
        wait_for(f"{url}/health", process, log)
        yield url


def deployments_on(api: str) -> set[str]:
    """The deployments the Prefect server knows, as flow/deployment names."""
    deployments = httpx.post(f"{api}/deployments/filter", json={"limit": 200}, timeout=10).json()
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={"limit": 200}, timeout=10).json()}
    return {f"{flows[d['flow_id']]}/{d['name']}" for d in deployments}


def start_runs(api: str, home: Path, batches: list[list[dict[str, object]]], *, cwd: Path) -> list[dict[str, str]]:
    """Start the runs from a process of their own (Prefect's client only), batch by
    batch; returns each run's deployment, id, final state and message."""
    done = subprocess.run(
        [sys.executable, str(START_RUNS), json.dumps(batches)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=quiet_env(PREFECT_API_URL=api, PREFECT_HOME=str(home)),
    )
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (runs, done.stderr[-3000:])
    return runs
