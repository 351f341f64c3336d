"""`sip`, the root command: each group of commands lives in a module of its own
(`cli/rounds.py`, `cli/screening.py`, ...); here they are put together, in the order
of a round."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli import (
    applications,
    audit,
    committee,
    db,
    decisions,
    flows,
    grants,
    keys,
    outbox,
    parties,
    reports,
    review,
    reviewers,
    rounds,
    screening,
    serve,
    staff,
)
from cli.common import command_state, quiet_console
from engine.settings import get_settings

#: The commands, as `sip --help` lists them: in the order of a round, then the running of the engine.
ORDER = (
    "rounds",
    "parties",
    "applications",
    "screen",
    "reviewers",
    "review",
    "committee",
    "bundles",
    "decisions",
    "letters",
    "report",
    "export",
    "outbox",
    "serve",
    "flows",
    "keys",
    "audit",
    "db",
    "demo",
)


class _Commands(TyperGroup):
    """The root command: lists its commands in the order of a round, and remembers
    which command runs (for the audit of a refusal)."""

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]  # typer's own click
        known = super().list_commands(ctx)
        return [name for name in ORDER if name in known] + [name for name in known if name not in ORDER]

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer's own click
        words = [*getattr(ctx, "_protected_args", []), *ctx.args]
        with command_state(ctx, [w for w in words if not w.startswith("-")][:2]):
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="Grant-management engine of the Specific International Programme (Minamata Convention).",
)
for group, name in (
    (rounds.rounds_app, "rounds"),
    (parties.parties_app, "parties"),
    (applications.applications_app, "applications"),
    (screening.screen_app, "screen"),
    (reviewers.reviewers_app, "reviewers"),
    (review.review_app, "review"),
    (committee.committee_app, "committee"),
    (decisions.decisions_app, "decisions"),
    (decisions.letters_app, "letters"),
    (grants.grants_app, "grants"),
    (reports.export_app, "export"),
    (outbox.outbox_app, "outbox"),
    (flows.flows_app, "flows"),
    (keys.keys_app, "keys"),
    (staff.staff_app, "staff"),
    (audit.audit_app, "audit"),
    (db.db_app, "db"),
):
    app.add_typer(group, name=name)
app.command("bundles")(committee.bundles)
app.command("report")(reports.round_report)
app.command("serve")(serve.serve)
app.command("demo")(serve.demo)


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="SIP_DATA_DIR", help="Folder of the embedded database and secret key."),
    ] = None,
) -> None:
    if data_dir is not None:
        os.environ["SIP_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()


def main() -> None:
    quiet_console()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing half-written stays behind (each step is one transaction)", err=True)
        sys.exit(130)
