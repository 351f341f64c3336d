"""`sip parties`: the Parties register."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    ACTOR,
    JsonOpt,
    in_session,
    print_json,
    print_table,
    runtime,
    service_errors,
)
from engine.db import unit_of_work
from engine.services import parties as party_service
from engine.services.setup import Runtime

parties_app = typer.Typer(no_args_is_help=True, help="The Parties register.")


@parties_app.command("load")
def parties_load(file: Annotated[Path, typer.Argument(help="A Parties register (CSV, columns as shipped).")]) -> None:
    """Replace the Parties register with FILE (all rows are checked first)."""
    rt = runtime()
    with service_errors():
        parties = party_service.read_parties_file(file)
        with unit_of_work(rt.engine) as session:
            counts = party_service.replace_register(session, parties, source=str(file), actor=ACTOR, at=Runtime.now())
    typer.echo(
        f"register replaced from {file}: {counts['parties']} Parties "
        f"({counts['added']} added, {counts['removed']} removed, {counts['changed']} changed)"
    )


@parties_app.command("list")
def parties_list(as_json: JsonOpt = False) -> None:
    """The Parties register."""
    rows = in_session(party_service.list_parties)
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    print_table(
        ["ISO3", "name", "UN regional group", "Party since", "economy", "LDC, SIDS"],
        [
            (
                r.iso3,
                r.name,
                r.un_regional_group,
                r.party_since or "unknown",
                r.economy,
                " ".join(f for f, on in (("LDC", r.ldc), ("SIDS", r.sids)) if on),
            )
            for r in rows
        ],
    )
