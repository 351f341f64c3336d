"""What every flow shares: the database, the instant a stage takes effect, parameters
as the Prefect UI shows them, who started a run, refusals that end a run cleanly, and
the summary a run leaves behind."""

from __future__ import annotations

import functools
import logging
import os
import re
import time
import typing
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from pydantic import Field
from pydantic_core import PydanticUndefined

from domain.application import FieldError
from engine.db import reading
from engine.services.errors import InvalidInput, ServiceError
from engine.services.rounds import get_round
from engine.services.setup import Runtime, prepare
from engine.settings import get_settings

P = ParamSpec("P")
R = TypeVar("R")

#: The deployment of each stage run on demand (the API, the Prefect UI, a round's dates).
ON_DEMAND = "on-demand"
#: Where a run started in-process comes from (the `sip` command line, the demo, the
#: API's embedded mode). A deployment's run is named by Prefect, never by a parameter.
started_in: ContextVar[str] = ContextVar("started_in", default="a process of the engine")


def runtime() -> Runtime:
    """The database, migrated (or checked, where migrations are their own step); the
    same one the CLI and API use (settings from the environment). A deployment's run
    may work in a folder of its own (a worker's runs do), so it refuses a folder named
    by a relative path rather than use another database or files folder."""
    settings = get_settings()
    relative = settings.relative_folders()
    if relative and _deployment_run():
        raise InvalidInput(
            f"{', '.join(relative)} name(s) a folder by a relative path, and this run works in "
            f"{os.getcwd()}: set absolute paths (e.g. SIP_DATA_DIR=/var/lib/sip) where the flows run "
            "(`sip flows serve` does it itself)",
            [FieldError(path=name, message="is a relative path") for name in relative],
        )
    return prepare(settings, defaults=False)


def _deployment_run() -> bool:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def instant(at: datetime | str | None, *, wait: float = 0) -> datetime:
    """The instant a stage takes effect: now, or a past scheduled time (ISO 8601 with
    an offset), e.g. a round's close run after a machine was down. An instant at most
    `wait` seconds ahead is waited for (a scheduled run may start a few seconds early:
    Prefect's runner and workers take runs before their time)."""
    now = datetime.now(UTC)
    if at is None:
        return now
    try:
        value = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    except ValueError:
        raise _bad_at(at, "is not an instant (ISO 8601), e.g. 2018-08-31T23:59:59+02:00") from None
    if value.tzinfo is None:
        raise _bad_at(at, "needs a UTC offset, e.g. 2018-08-31T23:59:59+02:00")
    if value > now + timedelta(seconds=wait):
        raise _bad_at(at, "is in the future; schedule the flow for that time instead")
    if value > now:
        time.sleep((value - now).total_seconds())
    return value


def _bad_at(at: datetime | str, problem: str) -> InvalidInput:
    shown = at.isoformat() if isinstance(at, datetime) else at
    return InvalidInput(f"at={shown!r} {problem}", [FieldError(path="at", message=problem)])


def param(title: str, description: str, default: Any = PydanticUndefined, **constraints: Any) -> Any:
    """A flow parameter with the title and description the Prefect UI shows in its form."""
    return Field(default, description=description, json_schema_extra={"title": title}, **constraints)


def round_param() -> Any:
    return param(
        "Round",
        "The round's identifier, e.g. sip-2024-r4 (the rounds: `sip rounds list`).",
        min_length=1,
        max_length=40,
    )


def at_param(what: str) -> Any:
    return param("Dated at", f"The past instant {what} is dated, with its UTC offset; empty for now.", None)


def started_by() -> str:
    """Who started this run, for the audit trail: the deployment and the flow run's id
    as Prefect records them (a run from the Prefect UI, a schedule, the API or a
    worker), or, for a run started in-process, where it was started."""
    from prefect.runtime import deployment, flow_run

    run_id = flow_run.get_id()
    if _deployment_run():
        return f"{flow_run.get_flow_name()}/{deployment.get_name()} run {run_id}"[:200]
    return f"{started_in.get()}, flow run {run_id}"[:200]


def check_round(round_id: str) -> None:
    """An unknown round ends the run at once, naming the rounds there are."""
    with reading(runtime().engine) as session:
        get_round(session, round_id)


class _RefusalsOnce(logging.Filter):
    """Prefect's engine logs any failed run's exception again, with a traceback, when
    the run ends ("Engine execution exited with unexpected exception"). A refusal was
    logged once already, plainly: that second record is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.exc_info
            and isinstance(record.exc_info[1], ServiceError)
            and str(record.msg).startswith("Engine execution exited")
        )


logging.getLogger("prefect.flow_runs").addFilter(_RefusalsOnce())


def refusals_end_the_run(fn: Callable[P, R]) -> Callable[P, R]:
    """A flow whose stage is refused (an unknown round, a round not ready for it) ends
    Failed with the refusal's message in its logs, not a traceback. Called in-process,
    the refusal is raised to the caller as before."""
    # Prefect reads the parameters' types through the wrapper, in this module's
    # namespace: give it the types themselves, not their names.
    fn.__annotations__ = typing.get_type_hints(fn)

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> Any:
        from prefect import get_run_logger
        from prefect.states import Failed

        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            logger = get_run_logger()
            logger.error("refused: %s", exc.message)
            for error in exc.errors:
                if error.message not in exc.message:
                    logger.error("  %s: %s", error.path, error.message)
            steps = "; ".join(hint.words for hint in exc.hints)
            if steps:
                logger.error("  next: %s", steps)
            # The state carries a copy without the traceback: the refusal is the message.
            refusal = type(exc)(exc.message, exc.errors, hints=exc.hints)
            refusal.audited = exc.audited
            return Failed(message=f"{exc.message} (next: {steps})" if steps else exc.message, data=refusal)

    return run


def artifact_key(stage: str, round_id: str | None = None) -> str:
    """A key Prefect accepts (lowercase letters, digits, dashes): one per stage and
    round, so the UI keeps each run's summary as a version of it."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{stage}-{round_id}" if round_id else stage).strip("-")[:100]


def summarise(
    stage: str,
    round_id: str | None,
    title: str,
    rows: Iterable[tuple[str, Any]],
    notes: Iterable[str] = (),
    columns: tuple[str, str] = ("", "Number"),
) -> None:
    """Leave the run's summary in the Prefect UI: a markdown table of what it did."""
    from prefect.artifacts import create_markdown_artifact

    rows = list(rows)
    lines = [f"### {title}", ""]
    if rows:
        lines += [
            f"| {columns[0]} | {columns[1]} |",
            "|---|---:|",
            *(f"| {name} | {_cell(value)} |" for name, value in rows),
            "",
        ]
    lines += [f"- {_cell(note)}" for note in notes]
    create_markdown_artifact(
        markdown="\n".join(lines).rstrip() + "\n", key=artifact_key(stage, round_id), description=title
    )


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
