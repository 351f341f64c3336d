"""`sip serve` and `sip demo`: the HTTP API, and the demo."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli.common import (
    prefect_failed,
    runtime,
    safe_url,
    service_errors,
)
from engine.db import dispose_all
from engine.settings import get_settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processes answering requests.")] = 1,
) -> None:
    """Start the HTTP API (OpenAPI page at /docs): the ASGI application `api.main:app`,
    in WORKERS processes."""
    rt = runtime()  # migrated once here, before the workers start
    typer.echo(
        f"SIP engine API on http://{host}:{port} (documentation: http://{host}:{port}/docs), {workers} "
        f"worker(s); database: {safe_url(rt.settings)}"
    )
    if workers == 1:
        import uvicorn

        uvicorn.run("api.main:app", host=host, port=port, log_level="info")
        return
    # Several workers: uvicorn starts each as a new Python process ("spawn"), which
    # imports the parent's main module first. That of `sip` imports the whole CLI
    # (seconds on a busy machine), before the worker answers uvicorn's health check
    # (5 s), so uvicorn took it for hung and killed it, again and again. The supervisor
    # is uvicorn itself instead, with its own small main module: each worker imports
    # only the application, after it answers the health check.
    dispose_all()  # this process's connections end here; each worker opens its own
    sys.stdout.flush()
    # -P: the current folder is not put first on the path, so nothing in it stands in for the engine.
    arguments = ["-P", "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port)]
    os.execv(sys.executable, [sys.executable, *arguments, "--workers", str(workers), "--log-level", "info"])  # noqa: S606 - a fixed program and arguments


def demo(fresh: Annotated[bool, typer.Option(help="Start from an empty embedded database.")] = False) -> None:
    """Run round 1 (2018) as far as the engine goes, on the embedded database."""
    from demo.run import run_demo
    from engine.prefect_quiet import PrefectDidNotStart

    try:
        with service_errors():
            code = run_demo(get_settings(), fresh=fresh, echo=typer.echo)
    except PrefectDidNotStart as exc:
        prefect_failed("the demo", exc)
    raise typer.Exit(code)
