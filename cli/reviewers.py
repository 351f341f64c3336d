"""`sip reviewers`: the register of Global Mercury Partnership reviewers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    ACTOR,
    ByOpt,
    JsonOpt,
    fail,
    in_session,
    print_json,
    print_table,
    read_text,
    runtime,
    service_errors,
    withdraw_access,
)
from engine.db import unit_of_work
from engine.services.setup import Runtime

reviewers_app = typer.Typer(no_args_is_help=True, help="The register of Global Mercury Partnership reviewers.")


@reviewers_app.command("load")
def reviewers_load(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: name,email,organisation,country,areas,languages,max_load (areas and languages separated by ;)"
        ),
    ],
) -> None:
    """Add or update reviewers from FILE (every row is checked first)."""
    from engine.services.review.register import load_reviewers, parse_reviewers

    rt = runtime()
    with service_errors():
        reviewers = parse_reviewers(read_text(file, "the reviewers file"), str(file))
        with unit_of_work(rt.engine) as session:
            counts = load_reviewers(session, reviewers, source=str(file), actor=ACTOR, at=Runtime.now())
    typer.echo(f"{file}: {counts['reviewers']} reviewers ({counts['added']} added, {counts['updated']} updated)")


@reviewers_app.command("list")
def reviewers_list(as_json: JsonOpt = False) -> None:
    """The register of reviewers."""
    from engine.services.review.register import list_reviewers

    rows = in_session(list_reviewers)
    if as_json:
        print_json([r.model_dump(exclude={"id"}) for r in rows])
        return
    print_table(
        ["e-mail", "name", "country", "most applications", "areas"],
        [(r.email, r.name, r.country, r.max_load, ";".join(r.areas)) for r in rows],
        right={"most applications"},
    )


@reviewers_app.command("set")
def reviewers_set(
    email: str,
    name: Annotated[str | None, typer.Option(help="Full name.")] = None,
    organisation: Annotated[str | None, typer.Option(help="Organisation (conflicts: the executing agency).")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-3 (conflicts: the applicant Parties).")] = None,
    areas: Annotated[str | None, typer.Option(help="Partnership areas separated by ;")] = None,
    languages: Annotated[str | None, typer.Option(help="en, fr, es separated by ; (the first for messages)")] = None,
    max_load: Annotated[int | None, typer.Option(help="Most applications per round.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Inactive reviewers are not proposed or invited.")
    ] = None,
) -> None:
    """Add a reviewer (give every field) or change some of a reviewer's details."""
    from engine.services.review.register import set_reviewer, split_list

    changes: dict[str, Any] = {
        k: v
        for k, v in dict(name=name, organisation=organisation, country=country, max_load=max_load).items()
        if v is not None
    }
    if areas is not None:
        changes["areas"] = split_list(areas)
    if languages is not None:
        changes["languages"] = split_list(languages)
    if not changes and active is None:
        fail("say what to change, e.g. --max-load 5 or --inactive (`sip reviewers set --help`)")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        row, outcome = set_reviewer(session, email, changes, active=active, actor=ACTOR, at=Runtime.now())
    typer.echo(
        f"{row.email}: {outcome}; {row.name}, {row.organisation} ({row.country}), areas "
        f"{';'.join(row.areas)}, load ≤ {row.max_load}, {'active' if row.active else 'inactive'}"
    )


@reviewers_app.command("revoke")
def reviewers_revoke(
    email: str,
    reason: Annotated[str, typer.Option(help="Why the access is withdrawn (audited).")],
    by: ByOpt = None,
) -> None:
    """Withdraw every sign-in link, session and bundle link of a person, at once. They
    may still ask for a new link by e-mail while active; to keep them out, also
    `sip reviewers set EMAIL --inactive`."""
    withdraw_access(email, reason, by)
