"""What every command shares: the state of the command being run (in the click
context, not in globals), refusals said plainly and audited, the database, and the
flows a command runs in its own process."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from domain.application import FieldError
from domain.hints import Hint, Step
from domain.lifecycle import Role
from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.errors import ServiceError
from engine.services.setup import Runtime, prepare
from engine.settings import Settings, get_settings

if TYPE_CHECKING:
    from engine.services.stages import CommitteeSummary

#: Who a command acts as in the audit trail (whoever runs `sip` on the engine's machine).
ACTOR = "secretariat"
T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON instead of text.")]
#: Who acts, for the audit trail (`officer_name`: this, else the login at the terminal).
ByOpt = Annotated[
    str | None, typer.Option("--by", help="The officer's name for the audit trail (default: your login).")
]
#: The level at which the CLI keeps Prefect's console logging quiet.
QUIET = "CRITICAL"


@dataclass
class CommandState:
    """What the command being run knows about itself: its words (for the audit of a
    refusal) and the database, once prepared."""

    command: list[str] = field(default_factory=list)
    runtime: Runtime | None = None


#: The state of the command being run: the root `typer.Context`'s object, also reachable
#: here so that the helpers below need no context passed to them.
_current: ContextVar[CommandState | None] = ContextVar("sip_command", default=None)


@contextmanager
def command_state(ctx: typer.Context, words: list[str]) -> Iterator[CommandState]:
    """The state of the command `ctx` runs, for as long as it runs."""
    now = ctx.ensure_object(CommandState)
    now.command = words
    token = _current.set(now)
    try:
        yield now
    finally:
        _current.reset(token)


def state() -> CommandState:
    """The state of the command being run (outside a command, a state of its own)."""
    return _current.get() or CommandState()


#: Each step of a refusal's hints as the command that takes it: the hint fills in the
#: round, application, person and option it names; what it leaves open stays a placeholder.
COMMANDS: dict[Step, str] = {
    Step.LOAD_ROUND: "sip rounds load FILE",
    Step.LIST_ROUNDS: "sip rounds list",
    Step.OPEN_ROUND: "sip rounds open {round_id}",
    Step.LOAD_PARTIES: "sip parties load FILE",
    Step.LIST_PARTIES: "sip parties list",
    Step.LIST_APPLICATIONS: "sip applications list {round_id}",
    Step.SCREEN: "sip screen {round_id}",
    Step.OVERRIDE_SCREENING: (
        "sip screen override {round_id} {reference} --verdict screened|incomplete|ineligible --reason TEXT"
    ),
    Step.CLOSE_SCREENING: "sip screen close {round_id}",
    Step.LOAD_REVIEWERS: "sip reviewers load FILE",
    Step.LIST_REVIEWERS: "sip reviewers list",
    Step.SET_REVIEWER: "sip reviewers set {email} {option}",
    Step.SHOW_ASSIGNMENT: "sip review show {round_id}",
    Step.ASSIGN_REVIEWERS: "sip review assign {round_id}",
    Step.INVITE_REVIEWERS: "sip review invite {round_id}",
    Step.EXTEND_REVIEW: "sip review extend {round_id} --due {option}",
    Step.CLOSE_REVIEW: "sip review close {round_id}",
    Step.LOAD_COMMITTEE: "sip committee load FILE",
    Step.LIST_COMMITTEE: "sip committee list",
    Step.SCHEDULE_MEETING: "sip committee meeting {round_id} --on YYYY-MM-DD --place PLACE",
    Step.SET_FUNDS: "sip committee funds {round_id} AMOUNT",
    Step.RECORD_DECISIONS: "sip decisions load {round_id} FILE",
    Step.LIST_DECISIONS: "sip decisions list {round_id}",
    Step.SEND_LETTERS: "sip letters send {round_id}",
    Step.LIST_FAILED_MESSAGES: "sip outbox list --failed",
    Step.MIGRATE: "sip db upgrade",
    Step.START_FRESH: "sip demo --fresh",
    Step.NEW_KEY: "sip keys new NAME {option}",
    Step.LIST_KEYS: "sip keys list",
}
#: How many of a refusal's problems are printed (a broken file may have a problem per line).
LISTED_PROBLEMS = 50
#: The options a hint may name, as the command's own.
_OPTIONS = {"active": "--active", "max_load": "--max-load N", "scope_full": "--scope full"}


def command_for(hint: Hint) -> str:
    """The hint as a command to type."""
    option = _OPTIONS.get(hint.option or "", hint.option)
    if option is None:
        option = "YYYY-MM-DD" if hint.step is Step.EXTEND_REVIEW else "[OPTIONS]"
    return COMMANDS[hint.step].format(
        round_id=hint.round_id or "ROUND_ID",
        reference=hint.reference or "REFERENCE",
        email=hint.email or "EMAIL",
        option=option,
    )


def fail(message: str, errors: list[Any] | None = None, code: int = 1, hints: tuple[Hint, ...] = ()) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    errors = errors or []
    for error in errors[:LISTED_PROBLEMS]:
        typer.echo(f"  {error.path}: {error.message}", err=True)
    if len(errors) > LISTED_PROBLEMS:
        more = len(errors) - LISTED_PROBLEMS
        typer.echo(f"  … and {more:,} more problem(s); correct these first and try again", err=True)
    for hint in hints:
        typer.echo(f"  next: {command_for(hint)}", err=True)
    raise typer.Exit(code)


def _audit_refusal(exc: ServiceError) -> None:
    """A refused command is audited (once the database is there to hold it)."""
    now = state()
    if now.runtime is None:
        return
    command = " ".join(now.command) or "?"
    try:
        audit.record_refusal(
            now.runtime.engine,
            exc,
            actor=ACTOR,
            role=Role.SECRETARIAT,
            action=f"cli.{command.replace(' ', '.')}",
            subject_type="command",
            subject_id=f"sip {command}",
        )
    except Exception as failure:  # noqa: BLE001 - the refusal itself is what the user must see
        typer.secho(f"warning: the refusal could not be audited ({failure.__class__.__name__})", err=True)


def officer_name(given: str | None) -> str:
    """Who acts, for the audit trail: the name given (--by), else the login name at the
    terminal, else the secretariat."""
    if given and given.strip():
        return given.strip()[:200]
    import getpass

    try:
        return f"{ACTOR}:{getpass.getuser()}"
    except (KeyError, OSError):
        return ACTOR


def withdraw_access(email: str, reason: str, by: str | None) -> None:
    """`sip reviewers revoke` and `sip committee revoke`: end every link and session of a person."""
    from engine.services.revocation import revoke_person

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        revoked = revoke_person(session, email, reason=reason, actor=officer_name(by), at=Runtime.now())
    typer.echo(
        f"{revoked.email}: access withdrawn; {revoked.sessions} session(s), {revoked.links} sign-in link(s) and "
        f"{revoked.bundle_links} bundle link(s) ended"
    )


@contextmanager
def service_errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as exc:
        _audit_refusal(exc)
        if len(exc.errors) > 1:
            fail(f"refused, {len(exc.errors)} problems; nothing was changed:", exc.errors, hints=exc.hints)
        # The message names the field and says what to do; add the error if it does not already say it.
        fail(exc.message, [e for e in exc.errors if e.message not in exc.message], hints=exc.hints)


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


def runtime(defaults: bool = True) -> Runtime:
    settings = settings_or_fail()
    with service_errors():
        rt = prepare(settings, defaults=defaults)
    state().runtime = rt
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


def local(value: datetime, zone: str = "Europe/Zurich") -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _jsonable(value: Any) -> Any:
    """What json cannot write itself: a service's dataclass as its fields, a date or an
    instant in ISO 8601, anything else (decimals) as its text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable))


#: The width of a table printed to a file or a pipe (not a terminal): generous, so that a
#: row stays on one line for grep and the tests, whatever the terminal's width.
PLAIN_WIDTH = 240


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    title: str | None = None,
    *,
    right: Collection[str] = (),
    row_styles: Sequence[str | None] | None = None,
) -> None:
    """Print rows under their columns' headers (a `rich` table; nothing if there are no
    rows). The columns named in `right` (numbers, amounts) are right-justified; a row's
    style (e.g. "red") is row_styles[i]. Values are printed as they are (None as "-",
    no markup read in them). The first column (the row's key) and the numbers are never
    wrapped; a longer value wraps at its spaces, or folds onto the next line, rather than
    being cut. To a terminal, the table fits its width, in colour; to a file or a pipe,
    plain text (no colour codes, no trailing spaces) up to PLAIN_WIDTH wide."""
    from rich import box
    from rich.console import Console
    from rich.table import Column, Table
    from rich.text import Text

    rows = list(rows)
    if not rows:
        return
    table = Table(
        *(
            # The row's key (the first column) and numbers are kept whole; other values wrap to fit.
            Column(c, justify="right" if c in right else "left", no_wrap=i == 0 or c in right, overflow="fold")
            for i, c in enumerate(columns)
        ),
        title=title,
        title_justify="left",
        box=box.SIMPLE,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    styles = list(row_styles or [])
    for i, row in enumerate(rows):
        table.add_row(
            *(Text("-" if v is None else str(v)) for v in row),
            style=styles[i] if i < len(styles) else None,
        )
    if sys.stdout.isatty():
        Console(highlight=False).print(table)
        return
    plain = Console(width=PLAIN_WIDTH, force_terminal=False, color_system=None, highlight=False, emoji=False)
    with plain.capture() as printed:
        plain.print(table)
    typer.echo("\n".join(line.rstrip() for line in printed.get().splitlines()))


def safe_url(settings: Settings) -> str:
    from engine.services.setup import safe_url as without_password

    return without_password(settings.url)


def announce_prefect() -> None:
    import os

    server = os.environ.get("PREFECT_API_URL")
    typer.echo(
        f"running on the Prefect server at {server}…"
        if server
        else "starting Prefect (a local server for this command, 5-30 s)…",
        err=True,
    )


def prefect_failed(what: str, exc: BaseException) -> NoReturn:
    fail(
        f"{what} could not run: {exc.__class__.__name__}: {exc}. Nothing was half-written; run the command "
        "again, and if it fails the same way, set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher or "
        "point PREFECT_API_URL at a server"
    )


def run_flow(where: str, *, announce: bool = True, **params: Any) -> Any:
    """Run a stage's flow (`module:function`) in this process. Call it once what the
    stage would refuse has been checked: Prefect takes seconds to start."""
    import importlib

    from engine.prefect_quiet import in_process_runs, prefect_starting, quiet_prefect

    if announce:
        announce_prefect()
    module, name = where.split(":")
    flow: Any = None
    from flows.common import started_in

    token = started_in.set("sip command line")
    try:
        with quiet_prefect(), prefect_starting():  # the server starts while the flow's code is imported
            flow = getattr(importlib.import_module(module), name)
        with service_errors(), quiet_prefect(), in_process_runs():
            return flow(**params)
    except (ServiceError, typer.Exit):  # a refusal, already told
        raise
    except Exception as exc:  # Prefect itself failed (e.g. its server did not start)
        prefect_failed(f"the {getattr(flow, 'name', module.rpartition('.')[2])} flow", exc)
    finally:
        started_in.reset(token)


def instant_option(at: str | None, option: str = "--at") -> datetime | None:
    """An instant the user gave (ISO 8601 with its offset, not in the future), or a clear error at once."""
    from flows.common import instant

    if at is None:
        return None
    try:
        return instant(at)
    except ServiceError as exc:
        fail(exc.message.replace("at=", f"{option} ", 1))


def date_option(value: str | None, option: str) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date; write it as YYYY-MM-DD")


def amount_argument(value: str, what: str) -> Any:
    from domain.committee import parse_amount

    try:
        return parse_amount(value)
    except (ValueError, ArithmeticError) as exc:  # e.g. more digits than an amount has
        fail(f"{what}: {exc if isinstance(exc, ValueError) else 'is not an amount the engine keeps'}")


def to_committee(round_id: str, reason: str | None, at: str | None) -> None:
    from engine.services.stages import check_committee

    when = instant_option(at)
    in_session(check_committee, round_id)
    result: CommitteeSummary = run_flow(
        "flows.review:send_to_committee_flow", round_id=round_id, reason=reason, at=when
    )
    if not result.changed:
        typer.echo(f"{round_id}: already with the committee")
        return
    typer.echo(f"{round_id}: {result.sent} application(s) ready for the committee")
    if result.short:
        typer.echo(f"  with fewer GMP reviews than asked: {', '.join(result.short)}")


def quiet_console() -> None:
    """Prefect's console logging is for operators of a Prefect server (`sip flows
    serve` shows it); the CLI prints its own progress and errors. (Logs still reach
    the Prefect API.)"""
    import os

    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", QUIET)
