"""`sip report` and `sip export`: the round report and the open data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    in_session,
)
from engine.settings import get_settings

export_app = typer.Typer(no_args_is_help=True, help="Open data.")


def round_report(
    round_id: str, output: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("reports")
) -> None:
    """The round report (HTML, CSV: applications, approvals, amounts by region, LDC, SIDS), the public list
    of approved projects (in English, French and Spanish) and the grants as 360Giving open data."""
    from engine.services.opendata import write_round_report

    paths = in_session(lambda s: write_round_report(s, round_id, output, get_settings()))
    typer.echo("round report: " + ", ".join(str(p) for p in paths))


@export_app.command("360giving")
def export_360giving(
    round_id: str, output: Annotated[Path, typer.Option(help="The JSON file to write.")] = Path("grants.json")
) -> None:
    """The round's awarded grants in the 360Giving Data Standard (validated against its schema first)."""
    from engine.services.opendata import export_360giving as export

    path, count = in_session(lambda s: export(s, get_settings(), round_id, output))
    typer.echo(f"{path}: {count} grant(s), valid against the 360Giving schema 1.4")
