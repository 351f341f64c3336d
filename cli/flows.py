"""`sip flows`: the engine's deployments, served or registered for workers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    QUIET,
    fail,
    runtime,
    safe_url,
    settings_or_fail,
)
from engine.settings import Settings, get_settings

flows_app = typer.Typer(no_args_is_help=True, help="The engine's Prefect flows.")


def _prefect_server() -> str:
    import os

    server = os.environ.get("PREFECT_API_URL")
    if not server:
        fail(
            "the deployments need a long-lived Prefect server: run `prefect server start` and set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api)"
        )
    return str(server)


def _prefect_logs_shown() -> None:
    """An operator serving the flows sees Prefect's log (each run, its start and its end)."""
    import os

    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        name = f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL"
        if os.environ.get(name) == QUIET:
            os.environ[name] = "INFO"


def _absolute_folders(settings: Settings) -> Settings:
    """The folders the settings name relatively, made absolute for the runs this
    process starts (each run may work in a folder of its own)."""
    import os

    values = {
        "SIP_DATA_DIR": settings.data_dir,
        "SIP_FILES_DIR": settings.files_dir,
        "SIP_OUTBOX_DIR": settings.outbox_dir,
        "SIP_TEMPLATES_DIR": settings.templates_dir,
    }
    for name in settings.relative_folders():
        os.environ[name] = str(Path(values[name] or settings.data_dir).resolve())
    get_settings.cache_clear()
    return settings_or_fail()


@flows_app.command("serve")
def flows_serve(
    limit: Annotated[int | None, typer.Option(help="At most this many runs at once.")] = None,
    poll: Annotated[
        float, typer.Option(min=0.5, max=60, help="Seconds between looks for runs to start (Prefect's default is 10).")
    ] = 2,
) -> None:
    """Serve every deployment of the engine from this process, on the Prefect server
    PREFECT_API_URL names (start one with `prefect server start`): each stage on demand
    (the Prefect UI, `prefect deployment run`, the API), the rounds' dates, the
    delivery every 5 minutes and the review stage's day at 07:00 Geneva time."""
    server = _prefect_server()
    rt = runtime()
    settings = _absolute_folders(rt.settings)
    _prefect_logs_shown()
    from prefect import serve

    from flows.deployments import deployments

    served = deployments()
    typer.echo(
        f"serving {len(served)} deployments on {server} (database: {safe_url(settings)}); each run starts "
        "in a process of its own. Ctrl-C stops serving (a run in progress is marked crashed, and running it "
        "again does nothing twice)."
    )
    serve(*served, limit=limit, print_starting_message=True, query_seconds=poll)


@flows_app.command("deploy")
def flows_deploy(
    pool: Annotated[str, typer.Option(help="The work pool (made, as a process pool, if it is not there).")],
) -> None:
    """Register every deployment of the engine in a work pool of the Prefect server
    PREFECT_API_URL names; `prefect worker start --pool NAME` on any number of machines
    then runs them. Each machine needs the engine installed and the same settings."""
    server = _prefect_server()
    rt = runtime()
    relative = rt.settings.relative_folders()
    if relative:
        fail(
            f"{', '.join(relative)} name(s) a folder by a relative path, and a worker's runs each work in a "
            "temporary folder of their own: set absolute paths (e.g. SIP_DATA_DIR=/var/lib/sip) here and on the "
            "workers, or DATABASE_URL, SIP_SECRET_KEY and SIP_FILES_DIR"
        )
    from engine.prefect_quiet import quiet_prefect
    from flows.deployments import register

    with quiet_prefect():
        try:
            registered, made = register(pool)
        except Exception as exc:  # the Prefect server's refusal or absence, said plainly
            fail(f"the deployments could not be registered on {server}: {exc.__class__.__name__}: {exc}")
    if made:
        typer.echo(f"work pool {pool!r} made (type: process)")
    for name in registered:
        typer.echo(f"  {name} → {pool}")
    typer.echo(
        f"{len(registered)} deployments in work pool {pool!r} on {server}. On each machine that runs them, "
        f"with the engine installed and the same settings (DATABASE_URL, SIP_SECRET_KEY, SIP_FILES_DIR…):\n"
        f"  prefect worker start --pool {pool}"
    )
