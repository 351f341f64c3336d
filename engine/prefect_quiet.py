"""How the engine runs Prefect flows in its own process: quietly (Prefect's own console
logging and the lines its ephemeral server prints while shutting down, "Error flushing
events" and CancelledError, are not for the user), and without flow-run heartbeats."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_NOISY = ("prefect", "httpx", "uvicorn", "docket", "alembic")


@contextmanager
def quiet_prefect(level: int = logging.CRITICAL) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY]
    before = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lvl, _ in before:
            lg.setLevel(lvl)


@contextmanager
def in_process_runs() -> Iterator[None]:
    """Flow runs this process runs itself and waits for (`sip` commands, `sip demo`, the
    API's embedded mode), on the ephemeral server this process starts: no flow-run
    heartbeats, and the local server `prefect_starting` started, where it did.

    A heartbeat tells a Prefect server that the process running a flow is alive, so
    that it can mark the run crashed when the process dies. An ephemeral server dies
    with the process that runs the flow, so there is nothing for it to detect; and
    Prefect ends every run by joining the heartbeat thread, which sleeps in 1-second
    steps: about 1 s lost per flow.

    Where PREFECT_API_URL names a long-lived server, heartbeats are kept (about a second
    per flow): that server outlives this process and can see it die. Runs of a served
    or deployed flow (`sip flows serve`, `sip flows deploy` and its workers, `prefect
    deployment run`) are not started here and keep them too (PREFECT_FLOWS_HEARTBEAT_FREQUENCY).
    The environment variable cannot say "none", hence the setting given here."""
    import os

    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.context import SyncClientContext
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if _local is not None and _local.api_url is not None and not get_current_settings().api.url:
        updates[PREFECT_API_URL] = _local.api_url
    # One API client for every flow run in the block, where Prefect would make one per
    # run (each loads the certificate authorities: about 26 ms, 1 s over the demo).
    with temporary_settings(updates=updates), SyncClientContext.get_or_create():
        yield


class PrefectDidNotStart(RuntimeError):
    """Prefect's local server did not start (the message says how it ended)."""


class LocalServer:
    """Prefect's ephemeral server, started the way Prefect starts it (the same command,
    environment and health check as `prefect.server.api.server.SubprocessASGIServer`),
    without importing `prefect.server` into this process.

    Prefect's own class lives in the server's API module: importing it costs about 3 s
    of CPU in the command's process before the server process is even started, and the
    server then imports the same modules again. Started from here, the server's
    imports run in its own process at once, beside the command's own work: `sip screen`
    on 10,000 applications waits about 2 s less (benchmarks/screening.py). Stopped
    when this process exits, as Prefect stops its own."""

    def __init__(self) -> None:
        from prefect.settings import get_current_settings

        self.timeout = float(get_current_settings().server.ephemeral.startup_timeout_seconds)
        self.api_url: str | None = None
        self.process = self._spawn()
        import atexit

        atexit.register(self.stop)

    def _spawn(self) -> Any:
        import os
        import socket
        import subprocess
        import sys

        import prefect
        from prefect.settings import get_current_settings

        with socket.socket() as probe:  # a free loopback port
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        return subprocess.Popen(  # noqa: S603 - this interpreter, Prefect's own server command
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env={
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
        )

    def wait(self) -> None:
        """Until the server answers its health check; a clear error if it does not."""
        import http.client
        import time

        deadline = time.monotonic() + self.timeout
        respawned = False
        while True:
            code = self.process.poll()
            if code == 3 and not respawned:  # uvicorn could not start: e.g. another process took the port first
                respawned = True
                self.process = self._spawn()
                continue
            if code is not None:
                raise PrefectDidNotStart(
                    f"Prefect's local server stopped as it started (exit code {code}"
                    + (", its start failed twice)" if code == 3 else ")")
                )
            # Plain HTTP on loopback (an httpx client would load the certificate authorities first).
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", "/api/health")
                if connection.getresponse().status == 200:
                    self.api_url = f"http://127.0.0.1:{self.port}/api"
                    return
            except OSError:
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline:
                self.stop()
                raise PrefectDidNotStart(f"Prefect's local server did not answer within {self.timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


#: The local server this process started, if any (one per process, as Prefect's).
_local: LocalServer | None = None


@contextmanager
def prefect_starting() -> Iterator[None]:
    """Start Prefect's ephemeral server (where no PREFECT_API_URL names one and Prefect
    may start one) while the block runs, and wait for it at the end of the block: its
    start (seconds) overlaps what the block does. Flows then run on it inside
    `in_process_runs`. If it fails to start, the error is raised at the end of the
    block; if the block fails, the server is stopped."""
    global _local
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if _local is not None and (_local.process.poll() is not None or _local.api_url is None):
        _local.stop()  # ended, or never answered: start another
        _local = None
    wanted = _local is None and not settings.api.url and settings.server.ephemeral.enabled
    if wanted:
        _local = LocalServer()
    try:
        yield
        if wanted and _local is not None:
            _local.wait()
    except BaseException:
        if wanted and _local is not None:
            _local.stop()
            _local = None
        raise
