"""`sip applications`: import, forms sent again, and the list."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ACTOR,
    JsonOpt,
    fail,
    in_session,
    print_json,
    print_table,
    run_flow,
    runtime,
    service_errors,
)
from engine.db import reading, unit_of_work
from engine.services import applications as app_service
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from flows.intake import ImportSummary

applications_app = typer.Typer(no_args_is_help=True, help="Applications: import and list.")


@applications_app.command("import")
def applications_import(
    round_id: str,
    paths: Annotated[list[Path], typer.Argument(help="Application files (JSON) or folders of them.")],
    as_json: JsonOpt = False,
) -> None:
    """Import applications received by the secretariat (runs the `import-applications` flow).
    Exits 1 if any file was refused; the others are imported."""
    from engine.services.intake import check_import

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")
    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        check_import(session, round_id)
    summary: ImportSummary = run_flow(
        "flows.intake:import_applications_flow", round_id=round_id, paths=[str(p) for p in paths]
    )
    if as_json:
        from dataclasses import asdict

        print_json(asdict(summary))
    else:
        results = summary.results
        print_table(
            ["outcome", "reference", "file"],
            [
                (
                    ("imported" if item.created else "already imported") if item.reference else "refused",
                    item.reference or None,
                    item.file,
                )
                for item in results
            ],
            row_styles=[None if item.reference else "red" for item in results],
        )
        for item in results:
            if not item.reference:
                typer.secho(f"{item.file} refused:", fg=typer.colors.RED)
                for error in item.errors:
                    typer.echo(f"    {error.path}: {error.message}")
        typer.echo(
            f"{summary.files} files: {summary.imported} imported, {summary.already_imported} "
            f"already imported, {summary.failed} refused"
        )
    if summary.failed:
        if not as_json:
            typer.echo(
                "Correct the refused files and import them again; the others will not be imported twice.", err=True
            )
        raise typer.Exit(1)


@applications_app.command("resubmit")
def applications_resubmit(
    reference: str,
    file: Annotated[Path, typer.Argument(help="JSON with the forms sent again: form_a, form_b and/or form_c.")],
) -> None:
    """Put forms an applicant sent again (e.g. by e-mail) on file; the application is screened again."""
    from domain.lifecycle import Role
    from engine.services.follow_up import resubmit_forms
    from engine.services.intake import read_file

    rt = runtime()
    content, problem = read_file(file, rt.settings.max_request_bytes)
    if content is None:
        fail(f"{file}: {problem}")
    with service_errors(), unit_of_work(rt.engine) as session:
        result = resubmit_forms(
            session, rt.settings, reference, content, actor=ACTOR, role=Role.SECRETARIAT, at=Runtime.now()
        )
    typer.echo(f"{reference}: {'forms on file' if result.changed else 'already on file'}; status {result.status}")


@applications_app.command("list")
def applications_list(round_id: str, as_json: JsonOpt = False) -> None:
    """The round's applications, one row each: reference, Party, public and internal status, amount, title."""
    lines = in_session(app_service.list_applications, round_id)
    if as_json:
        print_json(
            [
                {
                    "reference": a.reference,
                    "party": a.party,
                    "party_name": a.party_name,
                    "title": a.title,
                    "amount_requested": None if a.amount_requested is None else f"{a.amount_requested:.2f}",
                    "language": a.language,
                    "public_status": a.public_status.value,
                    "status": a.status.value,
                    "submitted_at": a.submitted_at.isoformat(),
                }
                for a in lines
            ]
        )
        return
    if not lines:
        typer.echo(f"no applications in {round_id}")
    print_table(
        ["reference", "Party", "public status", "status", "amount", "title"],
        [
            (
                a.reference,
                a.party,
                a.public_status.value,
                a.status.value,
                None if a.amount_requested is None else f"{a.amount_requested:,.0f}",
                a.title or "(no title)",
            )
            for a in lines
        ],
        right={"amount"},
    )
