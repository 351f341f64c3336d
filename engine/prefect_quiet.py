"""How the engine runs Prefect flows in its own process: quietly (Prefect's own console
logging and the lines its ephemeral server prints while shutting down, "Error flushing
events" and CancelledError, are not for the user), and without flow-run heartbeats."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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
    heartbeats.

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
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@contextmanager
def prefect_starting() -> Iterator[None]:
    """Start Prefect's ephemeral server (where no PREFECT_API_URL names one) in a thread
    while the block runs, and wait for it at the end of the block: its start (seconds)
    overlaps what the block does. Any failure is left for the first flow call to report."""
    import contextlib
    import contextvars
    import threading

    # Imported here, in the caller's thread: two threads importing the same modules at
    # once can deadlock on their import locks. Only the server's start overlaps.
    from prefect.client.orchestration import get_client

    def start() -> None:
        # A failure is left for the first flow call to report, plainly.
        with contextlib.suppress(Exception):
            get_client(sync_client=True)  # starts the ephemeral server, once per process

    # The thread sees this context's Prefect settings (e.g. a test harness's server), not the process's.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(start,), name="prefect-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
