"""`sip`: the command line of the SIP engine, thin over the same services the API
and the flows call."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from domain.application import FieldError
from engine.db import reading, unit_of_work
from engine.services import applications as app_service
from engine.services import audit
from engine.services import outbox as outbox_service
from engine.services import parties as party_service
from engine.services import rounds as round_service
from engine.services.errors import ServiceError
from engine.services.setup import Runtime, prepare
from engine.settings import Settings, get_settings


class _Commands(TyperGroup):
    """The root command: remembers which command runs, for the audit of a refusal."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click.Context
        words = [*getattr(ctx, "_protected_args", []), *ctx.args]
        _command[:] = [w for w in words if not w.startswith("-")][:2]
        return super().invoke(ctx)


_command: list[str] = []
app = typer.Typer(
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Grant-management engine of the Specific International Programme (Minamata Convention).",
)
rounds_app = typer.Typer(no_args_is_help=True, help="Rounds: load definitions, list, open and close.")
parties_app = typer.Typer(no_args_is_help=True, help="The Parties register.")
applications_app = typer.Typer(no_args_is_help=True, help="Applications: import and list.")
outbox_app = typer.Typer(no_args_is_help=True, help="Queued notifications.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
app.add_typer(rounds_app, name="rounds")
app.add_typer(parties_app, name="parties")
app.add_typer(applications_app, name="applications")
app.add_typer(outbox_app, name="outbox")
app.add_typer(db_app, name="db")

ACTOR = "secretariat"
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON instead of text.")]


def fail(message: str, errors: list[Any] | None = None, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    for error in errors or []:
        typer.echo(f"  {error.path}: {error.message}", err=True)
    raise typer.Exit(code)


_runtime: list[Runtime] = []  # the database this command works on, once prepared


def _audit_refusal(exc: ServiceError) -> None:
    """A refused command is audited (once the database is there to hold it)."""
    if not _runtime:
        return
    command = " ".join(_command) or "?"
    try:
        audit.record_refusal(
            _runtime[0].engine,
            exc,
            actor=ACTOR,
            role="secretariat",
            action=f"cli.{command.replace(' ', '.')}",
            subject_type="command",
            subject_id=f"sip {command}",
        )
    except Exception as failure:  # noqa: BLE001 - the refusal itself is what the user must see
        typer.secho(f"warning: the refusal could not be audited ({failure.__class__.__name__})", err=True)


@contextmanager
def service_errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as exc:
        _audit_refusal(exc)
        if len(exc.errors) > 1:
            fail(f"refused, {len(exc.errors)} problems; nothing was changed:", exc.errors)
        # The message names the field and says what to do; add the error if it does not already say it.
        fail(exc.message, [e for e in exc.errors if e.message not in exc.message])


def settings_or_fail() -> Settings:
    """The settings, or a message naming each one at fault."""
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        fail(
            "the settings are not valid; correct them in the environment or .env:",
            [
                FieldError(
                    path=str(e["loc"][0]) if e["loc"] else "settings", message=e["msg"].removeprefix("Value error, ")
                )
                for e in exc.errors()
            ],
        )
    raise AssertionError("unreachable")


def runtime(defaults: bool = True) -> Runtime:
    settings = settings_or_fail()
    with service_errors():
        rt = prepare(settings, defaults=defaults)
    _runtime[:] = [rt]
    return rt


def in_session(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        return fn(session, *args, **kwargs)


def read_text(path: Path, what: str) -> str:
    """A text file the user named (UTF-8, with or without a byte-order mark), or a clear error."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}")
    raise AssertionError("unreachable")


def local(value: datetime, zone: str = "Europe/Zurich") -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.callback()
def main_options(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="SIP_DATA_DIR", help="Folder of the embedded database and secret key."),
    ] = None,
) -> None:
    _runtime.clear()
    if data_dir is not None:
        import os

        os.environ["SIP_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()


# --- db ----------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (and load the default register and rounds). Where
    SIP_MIGRATE_ON_START=false, this is the step that does it (before the API and the
    workers start)."""
    from engine import migrate

    settings = settings_or_fail()
    with service_errors():
        rt = prepare(settings.model_copy(update={"migrate_on_start": True}))
    _runtime[:] = [rt]
    typer.echo(f"database at revision {migrate.current(rt.engine)}: {safe_url(rt.settings)}")


def safe_url(settings: Settings) -> str:
    from engine.services.setup import safe_url as without_password

    return without_password(settings.url)


# --- rounds ------------------------------------------------------------------


@rounds_app.command("list")
def rounds_list(as_json: JsonOpt = False) -> None:
    """The rounds, with their dates and whether they accept applications."""
    views = in_session(round_service.list_rounds, Runtime.now())
    if as_json:
        print_json([v.model_dump(mode="json") for v in views])
        return
    for v in views:
        accepting = "accepting applications" if v.accepts_applications else "not accepting"
        typer.echo(
            f"{v.id:<14} {v.status.value:<10} {local(v.opens_at, v.timezone)} → "
            f"{local(v.closes_at, v.timezone)}  {accepting}  {v.title}"
        )


@rounds_app.command("load")
def rounds_load(file: Annotated[Path, typer.Argument(help="A round definition (TOML).")]) -> None:
    """Validate a round file, store it and print the round."""
    rt = runtime()
    with service_errors():
        definition = round_service.read_round_file(file)
        with unit_of_work(rt.engine) as session:
            row, outcome = round_service.store_round(
                session, definition, source=str(file), actor=ACTOR, at=Runtime.now()
            )
            view = round_service.RoundView.of(row, Runtime.now())
    typer.echo(f"{outcome}: {definition.id} — {definition.title}")
    typer.echo(f"  applications from {local(view.opens_at, view.timezone)} to {local(view.closes_at, view.timezone)}")
    typer.echo(
        f"  amounts {definition.currency} {definition.amount_min:,.0f} to {definition.amount_max:,.0f}; "
        f"stages: {', '.join(definition.stages)}; {len(definition.criteria)} criteria "
        f"({definition.criteria_set} set); status {view.status.value}"
    )


def _announce_prefect() -> None:
    import os

    server = os.environ.get("PREFECT_API_URL")
    typer.echo(
        f"running on the Prefect server at {server}…"
        if server
        else "starting Prefect (a local server for this command, 10-30 s)…",
        err=True,
    )


def _run_flow(where: str, *, announce: bool = True, **params: Any) -> Any:
    """Run a stage's flow (`module:function`) in this process. Call it once what the
    stage would refuse has been checked: Prefect takes seconds to start."""
    import importlib

    from engine.prefect_quiet import quiet_prefect
    from flows.common import started_in

    if announce:
        _announce_prefect()
    module, name = where.split(":")
    flow = getattr(importlib.import_module(module), name)
    token = started_in.set("sip command line")
    with service_errors(), quiet_prefect():
        try:
            return flow(**params)
        except ServiceError:
            raise
        except Exception as exc:  # Prefect itself failed (e.g. its server did not start)
            fail(
                f"the {getattr(flow, 'name', 'Prefect')} flow could not run: {exc.__class__.__name__}: {exc}. "
                "Nothing was half-written; run the command again, and if it fails the same way, set "
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher or point PREFECT_API_URL at a server"
            )
        finally:
            started_in.reset(token)
    raise AssertionError("unreachable")


def _instant(at: str | None, option: str = "--at") -> datetime | None:
    """An instant the user gave (ISO 8601 with its offset, not in the future), or a clear error at once."""
    from flows.common import instant

    if at is None:
        return None
    try:
        return instant(at)
    except ServiceError as exc:
        fail(exc.message.replace("at=", f"{option} ", 1))
    raise AssertionError("unreachable")


@rounds_app.command("open")
def rounds_open(
    round_id: str, at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) at which it opened.")] = None
) -> None:
    """Open a round for applications (runs the `open-round` flow)."""
    when = _instant(at)
    in_session(round_service.check_open, round_id, at=when or Runtime.now())
    result = _run_flow("flows.opening:open_round_flow", round_id=round_id, at=when)
    typer.echo(f"{round_id}: {'opened' if result['changed'] else 'already ' + str(result['status'])}")


@rounds_app.command("close")
def rounds_close(
    round_id: str,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) at which it closed.")] = None,
    early_reason: Annotated[str | None, typer.Option(help="Why it closes before its deadline.")] = None,
) -> None:
    """Close a round (runs the `close-round` flow)."""
    when = _instant(at)
    in_session(round_service.check_close, round_id, at=when or Runtime.now(), early_reason=early_reason)
    result = _run_flow("flows.opening:close_round_flow", round_id=round_id, at=when, early_reason=early_reason)
    typer.echo(f"{round_id}: {'closed' if result['changed'] else 'already ' + str(result['status'])}")


# --- parties -------------------------------------------------------------------


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
    from sqlmodel import select

    from engine.tables import Party

    rows = in_session(lambda s: s.exec(select(Party).order_by(Party.iso3)).all())
    if as_json:
        print_json([r.model_dump() for r in rows])
        return
    for r in rows:
        flags = " ".join(f for f, on in (("LDC", r.ldc), ("SIDS", r.sids)) if on)
        typer.echo(
            f"{r.iso3}  {r.name:<45} {r.un_regional_group or '-':<12} since {r.party_since or 'unknown':<10} "
            f"{r.economy:<10} {flags}"
        )


# --- applications --------------------------------------------------------------


@applications_app.command("import")
def applications_import(
    round_id: str,
    paths: Annotated[list[Path], typer.Argument(help="Application files (JSON) or folders of them.")],
    as_json: JsonOpt = False,
) -> None:
    """Import applications received by the secretariat (runs the `import-applications` flow).
    Exits 1 if any file was refused; the others are imported."""
    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        round_service.get_round(session, round_id)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")
    summary = _run_flow("flows.intake:import_applications_flow", round_id=round_id, paths=[str(p) for p in paths])
    if as_json:
        print_json(summary)
    else:
        for item in summary["results"]:
            if item["reference"]:
                typer.echo(
                    f"{'imported' if item['created'] else 'already imported':<17} {item['reference']}  {item['file']}"
                )
            else:
                typer.secho(f"{'refused':<17} {'':<17} {item['file']}", fg=typer.colors.RED)
                for error in item["errors"]:
                    typer.echo(f"    {error['path']}: {error['message']}")
        typer.echo(
            f"{summary['files']} files: {summary['imported']} imported, {summary['already_imported']} "
            f"already imported, {summary['failed']} refused"
        )
    if summary["failed"]:
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
    typer.echo(f"{reference}: {'forms on file' if result['changed'] else 'already on file'}; status {result['status']}")


@applications_app.command("list")
def applications_list(round_id: str, as_json: JsonOpt = False) -> None:
    """The round's applications, one per line: reference, Party, public and internal status."""
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
    for a in lines:
        amount = "-" if a.amount_requested is None else f"{a.amount_requested:,.0f}"
        typer.echo(
            f"{a.reference}  {a.party}  {a.public_status.value:<13} {a.status.value:<20} "
            f"{amount:>9}  {(a.title or '(no title)')[:70]}"
        )


# --- screening -----------------------------------------------------------------


class _ScreenCommands(TyperGroup):
    """`sip screen ROUND_ID` runs the screening; `sip screen score|scores|override|report ...`
    record what people add to it."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "run")
        return super().resolve_command(ctx, args)


screen_app = typer.Typer(
    cls=_ScreenCommands,
    no_args_is_help=True,
    help="Screening: `sip screen ROUND_ID` runs it; score, scores, override and report.",
)
app.add_typer(screen_app, name="screen")


@screen_app.command("run", hidden=True)
def screen(
    round_id: str,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the screening is dated.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Screen a closed round (the `screen-applications` flow): completeness, eligibility,
    and the automatic appraisal criteria. Running it again screens nothing twice."""
    import threading

    from sqlalchemy import func
    from sqlmodel import select

    from engine.services.screening import check_screening, to_screen
    from engine.tables import ScreeningRecord

    when = _instant(at) or Runtime.now()
    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        check_screening(session, round_id, when)
        total = len(to_screen(session, round_id))
    done = threading.Event()
    _announce_prefect()

    def follow(bar: Any) -> None:  # the flow writes records batch by batch; show how far it is
        shown = 0
        while not done.wait(0.5):
            with reading(rt.engine) as session:
                count = session.exec(
                    select(func.count())
                    .select_from(ScreeningRecord)
                    .where(ScreeningRecord.round_id == round_id, ScreeningRecord.screened_at == when)
                ).one()
            bar.update(count - shown)
            shown = count

    with typer.progressbar(
        length=max(total, 1),
        label=f"screening {total} application(s)",
        file=sys.stderr,
        show_pos=True,
        hidden=total == 0,
    ) as bar:
        follower = threading.Thread(target=follow, args=(bar,), daemon=True)
        follower.start()
        try:
            result = _run_flow("flows.screening:screen_applications_flow", announce=False, round_id=round_id, at=when)
        finally:
            done.set()
            follower.join()
        bar.update(max(total, 1) - bar.pos)
    if as_json:
        print_json(result)
        return
    verdicts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(result["verdicts"].items())) or "none"
    typer.echo(
        f"{round_id}: {result['screened']} screened now ({verdicts}); {result['unchanged']} unchanged; "
        f"{result['notices']} notices queued"
    )
    counts = result["round_counts"]
    typer.echo("round totals: " + ", ".join(f"{v.replace('_', ' ')} {n}" for v, n in sorted(counts.items())))
    if counts.get("needs_judgement"):
        typer.echo(
            f"{counts['needs_judgement']} application(s) need a person's judgement on eligibility: "
            f"see `sip applications list {round_id}`"
        )


@screen_app.command("score")
def screen_score(
    round_id: str,
    reference: str,
    criterion: str,
    score: str,
    comment: Annotated[str | None, typer.Option(help="Why this score (for the committee).")] = None,
) -> None:
    """Record a person's appraisal score of one application on one judgement criterion."""
    from engine.services.appraisal import ScoreRow, record_scores

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        changed = record_scores(
            session,
            round_id,
            [ScoreRow(reference, criterion, score, comment, reference)],
            actor=ACTOR,
            at=Runtime.now(),
        )
        record = _record_of(session, reference)
    typer.echo(
        f"{reference}: {criterion} = {score} {'recorded' if changed else '(unchanged)'}; weighted score "
        f"{record.weighted_score if record.weighted_score is not None else '-'}"
    )


@screen_app.command("scores")
def screen_scores(
    round_id: str,
    file: Annotated[Path, typer.Argument(help="A scoring sheet (CSV: reference,criterion,score,comment).")],
) -> None:
    """Import a scoring sheet: every row is checked first; nothing is recorded if one is wrong."""
    from engine.services.appraisal import parse_score_sheet, record_scores

    rt = runtime()
    with service_errors():
        rows = parse_score_sheet(read_text(file, "the scoring sheet"), str(file))
        with unit_of_work(rt.engine) as session:
            changed = record_scores(session, round_id, rows, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{file}: {len(rows)} scores read, {changed} recorded ({len(rows) - changed} unchanged)")


@screen_app.command("override")
def screen_override(
    round_id: str,
    reference: str,
    verdict: Annotated[str, typer.Option(help="screened, incomplete or ineligible")],
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit trail).")] = "",
) -> None:
    """Replace an automatic screening verdict with a person's decision, for a reason."""
    from engine.services.appraisal import override

    if verdict not in ("screened", "incomplete", "ineligible"):
        fail(f"--verdict must be screened, incomplete or ineligible, not {verdict!r}")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        changed = override(
            session,
            rt.settings,
            round_id,
            reference,
            verdict,  # type: ignore[arg-type]
            reason=reason,
            actor=ACTOR,
            at=Runtime.now(),
        )
    typer.echo(f"{reference}: {'now ' + verdict if changed else 'already ' + verdict}")


@screen_app.command("request")
def screen_request(
    round_id: str,
    reference: str,
    item: Annotated[list[str], typer.Option(help="What is missing (repeat for each item).")],
    due: Annotated[
        str | None, typer.Option(help="Date to answer by (YYYY-MM-DD); default: the round's response_days from today.")
    ] = None,
) -> None:
    """Ask an applicant for missing items by a date; they are told in their language."""
    from datetime import date

    from engine.services.follow_up import request_information

    try:
        by = date.fromisoformat(due) if due else None
    except ValueError:
        fail(f"--due {due!r} is not a date; write it as YYYY-MM-DD")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        given = request_information(
            session, rt.settings, round_id, reference, item, due=by, actor=ACTOR, at=Runtime.now()
        )
    typer.echo(f"{reference}: information requested ({len(item)} item(s)) by {given}; the applicant is notified")


@screen_app.command("report")
def screen_report(
    round_id: str, output: Annotated[Path, typer.Option(help="Folder to write the report into.")] = Path("reports")
) -> None:
    """Write the round's screening report (HTML and CSV), grouped by region."""
    from engine.services.report import write_report

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        html, text = write_report(session, round_id, output)
    typer.echo(f"screening report: {html} and {text}")


def _record_of(session: Any, reference: str) -> Any:
    from sqlmodel import select

    from engine.tables import Application, ScreeningRecord

    return session.exec(select(ScreeningRecord).join(Application).where(Application.reference == reference)).one()


# --- outbox --------------------------------------------------------------------


@outbox_app.command("list")
def outbox_list(
    state: Annotated[str | None, typer.Option(help="Only messages in this state (queued, sent, failed).")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only the messages that failed for good.")] = False,
    round_id: Annotated[str | None, typer.Option("--round", help="Only this round's messages.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The notifications, one per line: recipient, kind, language, state (and, for a failed one, why)."""
    lines = in_session(outbox_service.list_messages, state="failed" if failed else state, round_id=round_id)
    if as_json:
        print_json([m.__dict__ for m in lines])
        return
    if not lines:
        typer.echo("no message" + (" has failed" if failed else "s"))
    for m in lines:
        typer.echo(
            f"{m.id:>5}  {m.recipient:<40} {m.kind:<34} {m.language}  {m.state:<7} "
            + (f"{m.attempts} attempt(s): {m.last_error}" if m.last_error else "")
        )
    if failed and lines:
        typer.echo(f"{len(lines)} failed; once the cause is fixed, `sip outbox retry --all` queues them again")


@outbox_app.command("deliver")
def outbox_deliver(limit: Annotated[int | None, typer.Option(help="At most this many messages.")] = None) -> None:
    """Send what is queued and due (the `deliver-notifications` flow), by the backend the settings
    name: files (NOTIFICATIONS_BACKEND=file, the default) or a mail server (smtp)."""
    rt = runtime()
    result = _run_flow("flows.delivery:deliver_notifications_flow", limit=limit)
    where = (
        f"files in {rt.settings.mail_folder}"
        if rt.settings.notifications_backend == "file"
        else f"{rt.settings.smtp_host}:{rt.settings.smtp_port_or_default}"
    )
    typer.echo(f"{result['sent']} sent ({where}), {result['retrying']} to try again later, {result['failed']} failed")
    for error in result["errors"]:
        typer.echo(f"  {error}", err=True)
    if result["failed"]:
        typer.echo("see them with `sip outbox list --failed`", err=True)


@outbox_app.command("retry")
def outbox_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="The failed messages' ids.")] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="Every failed message.")] = False,
) -> None:
    """Queue failed messages again (after the mail server or an address was fixed)."""
    from engine.services.delivery import retry_failed

    if not ids and not all_failed:
        fail("name the failed messages' ids, or --all (`sip outbox list --failed` lists them)")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        count = retry_failed(session, None if all_failed else ids, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{count} message(s) queued again; `sip outbox deliver` sends them")


# --- GMP review --------------------------------------------------------------------

reviewers_app = typer.Typer(no_args_is_help=True, help="The register of Global Mercury Partnership reviewers.")
review_app = typer.Typer(no_args_is_help=True, help="Global Mercury Partnership technical review.")
app.add_typer(reviewers_app, name="reviewers")
app.add_typer(review_app, name="review")


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
    from engine.services.review import load_reviewers, parse_reviewers

    rt = runtime()
    with service_errors():
        reviewers = parse_reviewers(read_text(file, "the reviewers file"), str(file))
        with unit_of_work(rt.engine) as session:
            counts = load_reviewers(session, reviewers, source=str(file), actor=ACTOR, at=Runtime.now())
    typer.echo(f"{file}: {counts['reviewers']} reviewers ({counts['added']} added, {counts['updated']} updated)")


@reviewers_app.command("list")
def reviewers_list(as_json: JsonOpt = False) -> None:
    """The register of reviewers."""
    from sqlmodel import select

    from engine.tables import Reviewer

    rows = in_session(lambda s: s.exec(select(Reviewer).order_by(Reviewer.email)).all())
    if as_json:
        print_json([r.model_dump(exclude={"id"}) for r in rows])
        return
    for r in rows:
        typer.echo(f"{r.email:<35} {r.name:<25} {r.country}  load ≤ {r.max_load:<3} {';'.join(r.areas)}")


@review_app.command("assign")
def review_assign(round_id: str, as_json: JsonOpt = False) -> None:
    """Propose reviewers for the round's screened applications (the `assign-gmp-reviewers` flow)."""
    from engine.services.review import check_assignment

    in_session(check_assignment, round_id)
    placements: Any = _run_flow("flows.review:assign_gmp_reviewers_flow", round_id=round_id)
    if as_json:
        print_json([{k: p[k] for k in ("reference", "reviewers", "unfilled", "reasons")} for p in placements])
        return
    for p in placements:
        typer.echo(
            f"{p['reference']}  {', '.join(p['reviewers']) or '(none)'}"
            + (f"  — {p['unfilled']} place(s) unfilled" if p["unfilled"] else "")
        )
        for reason in p["reasons"]:
            typer.echo(f"    {reason}")
    unfilled = sum(p["unfilled"] for p in placements)
    typer.echo(f"{len(placements)} applications; {unfilled} place(s) unfilled")


def _date_option(value: str | None, option: str) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date; write it as YYYY-MM-DD")


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
    from engine.services.review import set_reviewer, split_list

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


@review_app.command("show")
def review_show(round_id: str, as_json: JsonOpt = False) -> None:
    """The round's assignment: each application's reviewers and their state, open places, and why."""
    from engine.services.review import REVIEWABLE, assignment_view

    lines = in_session(assignment_view, round_id)
    if as_json:
        from dataclasses import asdict

        print_json([asdict(line) for line in lines])
        return
    for line in lines:
        typer.echo(f"{line.reference}  {line.party}  {line.status:<19} areas: {', '.join(line.areas) or '(none)'}")
        for r in line.reviewers:
            extra = f" — {r.note}" if r.note else ""
            review = ", draft saved" if r.review == "draft" else ""
            typer.echo(f"    {r.email:<35} {r.state}{review}{extra}")
        if line.open_places and line.status in REVIEWABLE:
            typer.echo(
                f"    {line.open_places} place(s) open; the assignment would propose: "
                f"{', '.join(line.proposals) or 'nobody'}"
            )
            for reason in line.reasons:
                typer.echo(f"      {reason}")


@review_app.command("add")
def review_add(round_id: str, reference: str, email: str) -> None:
    """Put a reviewer on an application by hand (never one with a conflict of interest)."""
    from engine.services.review import add_reviewer

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        outcome = add_reviewer(session, round_id, reference, email, actor=ACTOR, at=Runtime.now())
    typer.echo(
        f"{reference}: {email.lower()} {outcome}"
        + (f"; invite them with `sip review invite {round_id}`" if outcome != "unchanged" else "")
    )


@review_app.command("remove")
def review_remove(
    round_id: str,
    reference: str,
    email: str,
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit trail).")] = "",
) -> None:
    """Take a reviewer off an application, for a reason."""
    from engine.services.review import remove_reviewer

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        remove_reviewer(session, round_id, reference, email, reason=reason, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{reference}: {email.lower()} taken off; `sip review assign {round_id}` proposes someone else")


@review_app.command("conflict")
def review_conflict(
    round_id: str,
    reference: str,
    email: str,
    reason: Annotated[str, typer.Option(help="What the conflict of interest is.")] = "",
) -> None:
    """Record a reviewer's conflict of interest with an application (they come off it)."""
    from engine.services.review import record_conflict

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        recorded = record_conflict(
            session, round_id, reference, email, reason=reason, actor=ACTOR, role="secretariat", at=Runtime.now()
        )
    typer.echo(f"{reference}: conflict of interest of {email.lower()} {'recorded' if recorded else 'already recorded'}")


@review_app.command("invite")
def review_invite(
    round_id: str,
    due: Annotated[str | None, typer.Option(help="Day reviews are due (YYYY-MM-DD); default: the round's.")] = None,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the invitations are dated.")] = None,
) -> None:
    """Invite the proposed reviewers (the `invite-gmp-reviewers` flow): one message each, in
    their language, with a personal sign-in link. Running it again invites only new proposals."""
    from engine.services.reviewing import check_invite

    day = _date_option(due, "--due")
    when = _instant(at)
    in_session(check_invite, round_id, at=when or Runtime.now(), due=day)
    result = _run_flow("flows.review:invite_gmp_reviewers_flow", round_id=round_id, due=day, at=when)
    typer.echo(
        f"{round_id}: {result['invited']} assignment(s) invited, {result['reviewers']} invitation(s) queued, "
        f"{result['moved_to_review']} application(s) into review; reviews due {result['due_on']}"
    )
    if result["unfilled"]:
        typer.echo(f"  places still open on {', '.join(result['unfilled'])}: `sip review show {round_id}` says why")


@review_app.command("extend")
def review_extend(round_id: str, due: Annotated[str, typer.Option(help="New due day (YYYY-MM-DD).")]) -> None:
    """Move the day reviews are due (reminders follow it)."""
    from engine.services.reviewing import extend

    day = _date_option(due, "--due")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        before = extend(session, round_id, day, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{round_id}: reviews now due {day} (were due {before})")


@review_app.command("daily")
def review_daily(
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) to run it as of.")] = None,
) -> None:
    """The review stage's daily run (the `review-day` flow, scheduled when the flows are
    served): reminders, the overdue notice, and the close at the deadline when every review is in."""
    when = _instant(at)
    runtime()
    results: Any = _run_flow("flows.review:review_day_flow", at=when)
    if not results:
        typer.echo("no round is in GMP review")
    steps = {"nothing": "reviews not due soon", "remind": "reviews due soon", "overdue": "past the due date"}
    for r in results:
        typer.echo(
            f"{r['round']}: {steps[r['step']]}; {r['outstanding']} review(s) outstanding, {r['reminders']} "
            f"reminder(s) queued"
            + (", overdue notice to the secretariat" if r["overdue_notice"] else "")
            + (", review closed: the round goes to the committee" if r["closed"] else "")
        )


def _to_committee(round_id: str, reason: str | None, at: str | None) -> None:
    from engine.services.reviewing import check_committee

    when = _instant(at)
    in_session(check_committee, round_id)
    result = _run_flow("flows.review:send_to_committee_flow", round_id=round_id, reason=reason, at=when)
    if not result["changed"]:
        typer.echo(f"{round_id}: already with the committee")
        return
    typer.echo(f"{round_id}: {result['sent']} application(s) ready for the committee")
    if result["short"]:
        typer.echo(f"  with fewer GMP reviews than asked: {', '.join(result['short'])}")


@review_app.command("close")
def review_close(
    round_id: str,
    reason: Annotated[str | None, typer.Option(help="Why now (kept in the audit trail).")] = None,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the close is dated.")] = None,
) -> None:
    """Close the GMP review (the `send-to-committee` flow): applications short of reviews go
    forward marked as such; reviews are no longer taken."""
    _to_committee(round_id, reason, at)


@screen_app.command("close")
def screen_close(
    round_id: str,
    reason: Annotated[str | None, typer.Option(help="Why now (kept in the audit trail).")] = None,
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) the close is dated.")] = None,
) -> None:
    """Close screening of a round without GMP review (the `send-to-committee` flow): its
    screened applications go on the committee's agenda."""
    _to_committee(round_id, reason, at)


@review_app.command("summary")
def review_summary(round_id: str, as_json: JsonOpt = False) -> None:
    """The reviews in and their aggregation: mean and spread per criterion, recommendations, disagreement."""
    from engine.services.reviewing import review_stage_view

    view = in_session(review_stage_view, round_id)
    if as_json:
        print_json(view)
        return
    stage = view["stage"]
    typer.echo(
        f"{round_id}: {view['status']}; "
        + (
            f"reviews due {stage['due_on']}" + (f", closed {stage['closed_at'][:10]}" if stage["closed_at"] else "")
            if stage
            else "no invitations yet"
        )
    )
    for app in view["applications"]:
        flags = [f for f, on in (("SHORT OF REVIEWS", app["short"]), ("DISAGREEMENT", app["disagreement"])) if on]
        recs = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in app["recommendations"].items() if n) or "none"
        typer.echo(
            f"{app['reference']}  {app['reviews_submitted']}/{app['reviews_asked']} reviews "
            f"({app['outstanding']} outstanding); recommendations: {recs}  {' '.join(flags)}"
        )
        for c in app["criteria"]:
            if c["scores"]:
                typer.echo(
                    f"    {c['id']:<22} mean {c['mean']:>4}  spread {c['spread']}  scores "
                    f"{', '.join(map(str, c['scores']))}{'  !' if c['disagreement'] else ''}"
                )


# --- the Steering Committee ---------------------------------------------------------

committee_app = typer.Typer(no_args_is_help=True, help="The Steering Committee: members, meeting, funds, conflicts.")
decisions_app = typer.Typer(no_args_is_help=True, help="The committee's decisions, as the secretariat records them.")
letters_app = typer.Typer(no_args_is_help=True, help="The decision letters.")
export_app = typer.Typer(no_args_is_help=True, help="Open data.")
app.add_typer(committee_app, name="committee")
app.add_typer(decisions_app, name="decisions")
app.add_typer(letters_app, name="letters")
app.add_typer(export_app, name="export")


def _amount_argument(value: str, what: str) -> Any:
    from domain.committee import parse_amount

    try:
        return parse_amount(value)
    except ValueError as exc:
        fail(f"{what}: {exc}")


@committee_app.command("load")
def committee_load(
    file: Annotated[
        Path, typer.Argument(help="CSV: name,email,country,role,term_start,term_end,language (role member or co-chair)")
    ],
) -> None:
    """Add or update the committee's members by term (every row is checked first)."""
    from engine.services.committee import known_parties, load_members, parse_members

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        members = parse_members(read_text(file, "the membership file"), str(file), known_parties(session))
        counts = load_members(session, members, source=str(file), actor=ACTOR, at=Runtime.now())
    typer.echo(f"{file}: {counts['members']} terms ({counts['added']} added, {counts['updated']} updated)")


@committee_app.command("list")
def committee_list(
    on: Annotated[str | None, typer.Option(help="The committee on this day (YYYY-MM-DD); default: today.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The members serving on a day, and how the committee differs from its rule (10 members, 2 per region)."""
    from domain.committee import composition_problems
    from engine.services.committee import members_on, regions

    day = _date_option(on, "--on") or Runtime.now().date()
    members, region_of = in_session(lambda s: (members_on(s, day), regions(s)))
    problems = composition_problems(members, region_of)
    if as_json:
        print_json(
            {"on": day.isoformat(), "members": [m.model_dump(mode="json") for m in members], "composition": problems}
        )
        return
    for m in members:
        typer.echo(
            f"{str(m.email):<42} {m.name:<25} {m.country} {region_of.get(m.country) or '-':<13} {m.role:<9}"
            f" {m.term_start} → {m.term_end}  {m.language}"
        )
    typer.echo(
        f"{len(members)} member(s) on {day}"
        + (f"; differs from the rule: {'; '.join(problems)}" if problems else "; as the rule wants")
    )


@committee_app.command("set")
def committee_set(
    email: str,
    term_start: Annotated[str, typer.Option(help="Start of the term (YYYY-MM-DD): identifies it.")],
    name: Annotated[str | None, typer.Option()] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-3.")] = None,
    role: Annotated[str | None, typer.Option(help="member or co-chair")] = None,
    term_end: Annotated[str | None, typer.Option(help="End of the term (YYYY-MM-DD).")] = None,
    language: Annotated[str | None, typer.Option(help="en, fr or es")] = None,
) -> None:
    """Add a member's term (every field) or change some of its details."""
    from engine.services.committee import set_member

    start = _date_option(term_start, "--term-start")
    changes = {k: v for k, v in dict(name=name, country=country, role=role, language=language).items() if v is not None}
    if term_end is not None:
        changes["term_end"] = _date_option(term_end, "--term-end")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        row, outcome = set_member(session, email, start, changes, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{row.email}: {outcome}; {row.name} ({row.country}), {row.role}, {row.term_start} → {row.term_end}")


@committee_app.command("meeting")
def committee_meeting(
    round_id: str,
    on: Annotated[str, typer.Option(help="First day of the meeting (YYYY-MM-DD).")],
    place: Annotated[str, typer.Option(help="Where, or 'online'.")],
    until: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD); default: the first.")] = None,
) -> None:
    """Schedule the round's committee meeting (it decides who is on the committee: the members on that date)."""
    from engine.services.committee import schedule_meeting

    starts, ends = _date_option(on, "--on"), _date_option(until, "--until")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        meeting = schedule_meeting(session, round_id, starts, ends, place, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{round_id}: the committee meets {meeting.starts_on} to {meeting.ends_on}, {meeting.place}")


@committee_app.command("funds")
def committee_funds(round_id: str, amount: Annotated[str, typer.Argument(help="US dollars, e.g. 1000000")]) -> None:
    """Set the funds available for the round's approvals."""
    from engine.services.committee import set_funds

    value = _amount_argument(amount, "the funds")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        set_funds(session, round_id, value, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{round_id}: US$ {value:,.2f} available for approvals")


@committee_app.command("attendance")
def committee_attendance(
    round_id: str,
    emails: Annotated[
        list[str], typer.Argument(help="The members who attend (default, without this: every member serving).")
    ],
) -> None:
    """Record who attends the meeting: they take part in the decisions, less those conflicted."""
    from engine.services.committee import set_attendees

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        meeting = set_attendees(session, round_id, emails, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{round_id}: {len(meeting.attendees or [])} member(s) attend")


@committee_app.command("conflict")
def committee_conflict(
    round_id: str,
    reference: str,
    email: str,
    reason: Annotated[str, typer.Option(help="What the conflict of interest is.")] = "",
) -> None:
    """Record a member's declared conflict of interest (own-country conflicts need none)."""
    from engine.services.committee import declare_member_conflict

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        recorded = declare_member_conflict(session, round_id, reference, email, reason, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{reference}: {email.lower()}'s conflict {'recorded' if recorded else 'already recorded'}")


@app.command("bundles")
def bundles(
    round_id: str,
    output: Annotated[
        Path, typer.Option(help="Folder for the members' bundles (one file per member, named by e-mail).")
    ] = Path("bundles"),
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) they are dated.")] = None,
) -> None:
    """Prepare the committee's review bundles (the `prepare-committee-bundles` flow) and copy
    the latest version of each into OUTPUT."""
    import shutil

    from engine.services.bundles import check_bundles

    when = _instant(at)
    in_session(check_bundles, round_id)
    result = _run_flow("flows.committee:prepare_committee_bundles_flow", round_id=round_id, at=when)
    from engine.services.bundles import file_name

    output.mkdir(parents=True, exist_ok=True)
    for m in result["members"]:
        shutil.copyfile(m["path"], output / f"{file_name(m['email'])}.html")
        if m["pdf"]:
            shutil.copyfile(m["pdf"], output / f"{file_name(m['email'])}.pdf")
        state = "new" if m["new"] else "unchanged"
        withheld = f"; left out (conflict): {', '.join(m['withheld'])}" if m["withheld"] else ""
        typer.echo(f"{m['email']:<42} version {m['version']} ({state}){withheld}")
        for change in m["changes"]:
            typer.echo(f"    {change}")
    typer.echo(
        f"{result['prepared']} new version(s), {result['unchanged']} unchanged, {result['notified']} member(s) "
        f"notified; in {output}/"
        + ("" if result["pdf"] else " (HTML only: install WeasyPrint for PDF, see the README)")
    )


def _decisions_summary(summary: Any) -> None:
    from decimal import Decimal

    funds = f" of {Decimal(summary.funds_available):,.2f} available" if summary.funds_available else ""
    typer.echo(
        f"{summary.round}: {summary.recorded} decision(s) recorded, {summary.unchanged} unchanged; approvals "
        f"US$ {Decimal(summary.approved_total):,.2f}{funds}"
    )
    if summary.undecided:
        typer.echo(f"  still to decide: {', '.join(summary.undecided)}")


@decisions_app.command("record")
def decisions_record(
    round_id: str,
    reference: str,
    decision: Annotated[str, typer.Option(help="approved, approved_with_conditions, not_approved or deferred")],
    amount: Annotated[str | None, typer.Option(help="US dollars approved, e.g. 190000")] = None,
    conditions: Annotated[str | None, typer.Option()] = None,
    recommendations: Annotated[str | None, typer.Option(help="For the applicant, to resubmit.")] = None,
    participant: Annotated[
        list[str] | None,
        typer.Option(help="A member who took part (repeat); default: the attendees without the conflicted members."),
    ] = None,
    exception: Annotated[
        str | None, typer.Option(help="Why the committee decides on an application that did not pass screening.")
    ] = None,
) -> None:
    """Record one decision of the committee."""
    from pydantic import ValidationError

    from domain.committee import DecisionIn
    from engine.services.committee import record_decisions

    try:
        item = DecisionIn(
            reference=reference,
            decision=decision,
            amount=_amount_argument(amount, "--amount") if amount else None,
            conditions=conditions,
            recommendations=recommendations,
            participants=participant or None,
            exception=exception,
        )
    except ValidationError as exc:
        fail("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors()))
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        summary = record_decisions(session, round_id, [(item, reference)], actor=ACTOR, at=Runtime.now())
    _decisions_summary(summary)


@decisions_app.command("load")
def decisions_load(
    round_id: str,
    file: Annotated[Path, typer.Argument(help="CSV: reference,decision,amount,conditions,recommendations")],
) -> None:
    """Record the meeting's decisions from a sheet: all of them, or none if one breaks a rule."""
    from engine.services.committee import parse_decisions, record_decisions

    rt = runtime()
    with service_errors():
        items = parse_decisions(read_text(file, "the decisions sheet"), str(file))
        with unit_of_work(rt.engine) as session:
            summary = record_decisions(session, round_id, items, actor=ACTOR, at=Runtime.now())
    _decisions_summary(summary)


@decisions_app.command("list")
def decisions_list(round_id: str, as_json: JsonOpt = False) -> None:
    """The decisions recorded for a round."""
    from engine.services.opendata import lines

    rows = [r for r in in_session(lines, round_id) if r.decision]
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    for r in rows:
        amount = f"{r.amount:,.2f}" if r.amount is not None else "-"
        typer.echo(f"{r.reference}  {r.party}  {r.decision:<25} {amount:>12}  {r.decided_on}")
    typer.echo(f"{len(rows)} decision(s)")


@letters_app.command("send")
def letters_send(
    round_id: str, at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) they are dated.")] = None
) -> None:
    """Queue the decision letters (the `send-decision-letters` flow): one per applicant, in their language, once."""
    from engine.services.letters import check_letters

    when = _instant(at)
    in_session(check_letters, round_id)
    result = _run_flow("flows.committee:send_decision_letters_flow", round_id=round_id, at=when)
    kinds = (
        ", ".join(f"{n} {k.removeprefix('decision_').replace('_', ' ')}" for k, n in sorted(result["by_kind"].items()))
        or "none new"
    )
    typer.echo(f"{round_id}: {result['queued']} letter(s) queued ({kinds}); {result['already_sent']} sent before")


@app.command("report")
def round_report(
    round_id: str, output: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("reports")
) -> None:
    """The round report (HTML, CSV: applications, approvals, amounts by region, LDC, SIDS) and the public list
    of approved projects."""
    from engine.services.opendata import write_round_report

    paths = in_session(write_round_report, round_id, output)
    typer.echo("round report: " + ", ".join(str(p) for p in paths))


@export_app.command("360giving")
def export_360giving(
    round_id: str, output: Annotated[Path, typer.Option(help="The JSON file to write.")] = Path("grants.json")
) -> None:
    """The round's awarded grants in the 360Giving Data Standard (validated against its schema first)."""
    from engine.services.opendata import export_360giving as export

    path, count = in_session(lambda s: export(s, get_settings(), round_id, output))
    typer.echo(f"{path}: {count} grant(s), valid against the 360Giving schema 1.4")


flows_app = typer.Typer(no_args_is_help=True, help="The engine's Prefect flows.")
app.add_typer(flows_app, name="flows")


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
        if os.environ.get(name) == _QUIET:
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


# --- secretariat API keys -------------------------------------------------------

keys_app = typer.Typer(no_args_is_help=True, help="The secretariat's API keys.")
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="Whose key (kept in the audit trail), e.g. amina.diallo")],
) -> None:
    """Make an API key for a secretariat officer. The key is shown once; the settings keep only its hash."""
    import re
    import secrets

    from engine.services.tokens import token_hash

    if not re.fullmatch(r"[\w.@-]{1,100}", name):
        fail("the name may hold letters, digits and . _ - @ only")
    key = secrets.token_urlsafe(32)
    typer.echo(f"API key for {name} (give it to them; it is not shown again):\n  {key}")
    typer.echo(f"Add to SIP_SECRETARIAT_KEYS (comma-separated) where the API runs:\n  {name}:{token_hash(key)}")


# --- serve and demo --------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processes answering requests.")] = 1,
) -> None:
    """Start the HTTP API (OpenAPI page at /docs): the ASGI application `api.main:app`,
    in WORKERS processes."""
    import uvicorn

    rt = runtime()  # migrated once here, before the workers start
    typer.echo(
        f"SIP engine API on http://{host}:{port} (documentation: http://{host}:{port}/docs), {workers} "
        f"worker(s); database: {safe_url(rt.settings)}"
    )
    uvicorn.run("api.main:app", host=host, port=port, workers=workers, log_level="info")


@app.command("demo")
def demo(fresh: Annotated[bool, typer.Option(help="Start from an empty embedded database.")] = False) -> None:
    """Run round 1 (2018) as far as the engine goes, on the embedded database."""
    from demo.run import run_demo

    with service_errors():
        code = run_demo(get_settings(), fresh=fresh, echo=typer.echo)
    raise typer.Exit(code)


_QUIET = "CRITICAL"


def quiet_console() -> None:
    """Prefect's console logging is for operators of a Prefect server (`sip flows
    serve` shows it); the CLI prints its own progress and errors. (Logs still reach
    the Prefect API.)"""
    import os

    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", _QUIET)


def main() -> None:
    quiet_console()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing half-written stays behind (each step is one transaction)", err=True)
        sys.exit(130)
