"""`sip audit`: the audit trail."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer

from cli.common import fail, print_json, runtime, service_errors

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")


@audit_app.command("verify")
def audit_verify(
    as_json: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
) -> None:
    """Check the audit trail's hash chain, event by event in id order: each event must
    hash to its stored hash and name the hash of the event before it. Reports the
    events checked, or the first broken link (the event, and whether its content was
    edited, an event before it is missing, or the link was changed) and exits with 1.
    Note the last hash it gives and compare it at the next check: the chain cannot
    show events removed from its very end, nor a trail rewritten whole."""
    from engine.services.audit_trail import verify

    rt = runtime(defaults=False)
    shown = 0
    with typer.progressbar(
        length=1, label="checking the audit trail", file=sys.stderr, show_pos=True, hidden=as_json
    ) as bar:

        def progress(checked: int, total: int) -> None:
            nonlocal shown
            bar.length = max(total, checked, 1)
            bar.update(checked - shown)
            shown = checked

        with service_errors():
            result = verify(rt.engine, progress=progress)
    if as_json:
        data = asdict(result)
        data["ok"] = result.ok
        if result.broken is not None:
            data["broken"]["message"] = result.broken.describe()
        print_json(data)
        if not result.ok:
            raise typer.Exit(1)
        return
    if result.broken is not None:
        fail(
            f"the audit trail is broken after {result.checked:,} good event(s): {result.broken.describe()}",
        )
    last = f"; last event {result.head_id}, hash {result.head_hash}" if result.head_id is not None else ""
    typer.echo(f"audit trail OK: {result.checked:,} event(s) checked{last}")
