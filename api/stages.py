"""Starting a stage from the API. With a Prefect server (PREFECT_API_URL), the route
creates a run of the stage's deployment and answers at once: the run is the
orchestrator's, on a served engine or a worker, and a restart of the API never ends
it. The embedded default (no Prefect server) runs the flow in a thread of the API
process. Either way the officer's request, with the run's id, goes in the audit trail
(the run's own changes are recorded under the run)."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from domain.lifecycle import Role
from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.errors import Unavailable
from engine.services.setup import Runtime
from flows.common import ON_DEMAND

log = logging.getLogger("sip.api")


def check_first(rt: Runtime, check: Any, round_id: str, **kwargs: Any) -> None:
    """Refuse at once what the flow would refuse (the answer names why; the refusal is audited)."""
    with reading(rt.engine) as session:
        check(session, round_id, **kwargs)


def orchestrator() -> str | None:
    """The Prefect server stages run on, if there is one."""
    return os.environ.get("PREFECT_API_URL") or None


async def start_stage(rt: Runtime, flow: Any, parameters: dict[str, Any], *, officer: str, round_id: str) -> str:
    """Start the stage's flow for the officer; returns the flow run's id at once."""
    server = orchestrator()
    if server:
        deployment = f"{flow.name}/{ON_DEMAND}"
        run_id = await _run_deployment(server, deployment, parameters, officer=officer, round_id=round_id)
        where = {"deployment": deployment, "prefect": server}
    else:
        run_id = await _run_here(flow, parameters, officer=officer)
        where = {"runs_in": "the API process (no PREFECT_API_URL)"}
    await run_in_threadpool(
        _record_request, rt, flow.name, run_id, parameters, where, officer=officer, round_id=round_id
    )
    return run_id


async def _run_deployment(
    server: str, deployment: str, parameters: dict[str, Any], *, officer: str, round_id: str
) -> str:
    import httpx
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = await arun_deployment(
            deployment,
            parameters=parameters,
            timeout=0,
            as_subflow=False,
            tags=["sip", f"round:{round_id}", f"requested-by:{officer}"],
        )
    except ObjectNotFound:
        raise Unavailable(
            f"the {deployment} deployment is not on the Prefect server at {server}: serve the "
            "engine's flows there (`sip flows serve`) or register them for workers (`sip flows "
            "deploy --pool NAME`), then ask again"
        ) from None
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"the Prefect server at {server} does not answer ({exc.__class__.__name__}); nothing was "
            "started: check that it runs, then ask again"
        ) from None
    return str(run.id)


async def _run_here(flow: Any, parameters: dict[str, Any], *, officer: str) -> str:
    """The embedded default: the run is created on the local Prefect server and runs
    in a thread of this process."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await client.create_flow_run(flow, parameters=parameters)

    def target() -> None:
        from prefect.flow_engine import run_flow

        from engine.prefect_quiet import in_process_runs
        from flows.common import started_in

        started_in.set(f"the API for {officer}")
        try:
            # No heartbeats: the run lives and dies with this process, as does the ephemeral server.
            with in_process_runs():
                run_flow(flow, flow_run=flow_run)  # its parameters are the run's, with the flow's defaults
        except Exception:  # the flow run's state in Prefect records it too
            log.exception("flow run %s (%s) failed", flow_run.id, flow.name)

    threading.Thread(target=target, name=f"flow-run-{flow_run.id}", daemon=True).start()
    return str(flow_run.id)


def _record_request(
    rt: Runtime,
    stage: str,
    run_id: str,
    parameters: dict[str, Any],
    where: dict[str, str],
    *,
    officer: str,
    round_id: str,
) -> None:
    with unit_of_work(rt.engine) as session:
        audit.record(
            session,
            at=datetime.now(UTC),
            actor=officer,
            role=Role.SECRETARIAT,
            action="stage.requested",
            subject_type="round",
            subject_id=round_id,
            details={"flow": stage, "flow_run_id": run_id, "parameters": parameters, **where},
        )
