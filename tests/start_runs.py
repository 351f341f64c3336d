"""Start runs of the engine's deployments through Prefect's client, as another
machine would (this process imports Prefect only, never the engine), and wait for
them to end.

    python tests/start_runs.py '[[{"deployment": "open-round/on-demand", "parameters": {...}}, ...], ...]'

Each inner list is started at once and awaited before the next; one JSON line per
run is printed: its deployment, id, final state and message."""

from __future__ import annotations

import json
import sys
import time

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

WAIT_SECONDS = 240


def main() -> int:
    batches = json.loads(sys.argv[1])
    with get_client(sync_client=True) as client:
        for batch in batches:
            runs = [
                (
                    item["deployment"],
                    run_deployment(
                        item["deployment"], parameters=item.get("parameters", {}), timeout=0, as_subflow=False
                    ),
                )
                for item in batch
            ]
            deadline = time.monotonic() + WAIT_SECONDS
            for deployment, run in runs:
                while not (state := client.read_flow_run(run.id).state) or not state.is_final():
                    if time.monotonic() > deadline:
                        print(
                            json.dumps(
                                {
                                    "deployment": deployment,
                                    "id": str(run.id),
                                    "state": "TIMEOUT",
                                    "message": f"not over after {WAIT_SECONDS} s",
                                }
                            ),
                            flush=True,
                        )
                        return 1
                    time.sleep(0.5)
                print(
                    json.dumps(
                        {
                            "deployment": deployment,
                            "id": str(run.id),
                            "state": state.type.value,
                            "message": state.message,
                        }
                    ),
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
