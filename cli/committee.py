"""`sip committee` and `sip bundles`: the Steering Committee, its meeting and its review bundles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    ACTOR,
    ByOpt,
    JsonOpt,
    amount_argument,
    date_option,
    fail,
    in_session,
    instant_option,
    print_json,
    print_table,
    read_text,
    run_flow,
    runtime,
    service_errors,
    withdraw_access,
)
from engine.db import unit_of_work
from engine.services.setup import Runtime

if TYPE_CHECKING:
    from engine.services.committee.bundles import BundlesSummary

committee_app = typer.Typer(no_args_is_help=True, help="The Steering Committee: members, meeting, funds, conflicts.")


@committee_app.command("load")
def committee_load(
    file: Annotated[
        Path, typer.Argument(help="CSV: name,email,country,role,term_start,term_end,language (role member or co-chair)")
    ],
) -> None:
    """Add or update the committee's members by term (every row is checked first)."""
    from engine.services.committee.membership import known_parties, load_members, parse_members

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
    from engine.services.committee.membership import members_on, regions

    day = date_option(on, "--on") or Runtime.now().date()
    members, region_of = in_session(lambda s: (members_on(s, day), regions(s)))
    problems = composition_problems(members, region_of)
    if as_json:
        print_json(
            {"on": day.isoformat(), "members": [m.model_dump(mode="json") for m in members], "composition": problems}
        )
        return
    print_table(
        ["e-mail", "name", "country", "region", "role", "term", "language"],
        [
            (
                m.email,
                m.name,
                m.country,
                region_of.get(m.country),
                m.role,
                f"{m.term_start} → {m.term_end}",
                m.language,
            )
            for m in members
        ],
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
    from engine.services.committee.membership import set_member

    start = date_option(term_start, "--term-start")
    changes = {k: v for k, v in dict(name=name, country=country, role=role, language=language).items() if v is not None}
    if term_end is not None:
        changes["term_end"] = date_option(term_end, "--term-end")
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
    from engine.services.committee.meeting import schedule_meeting

    starts, ends = date_option(on, "--on"), date_option(until, "--until")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        meeting = schedule_meeting(session, round_id, starts, ends, place, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{round_id}: the committee meets {meeting.starts_on} to {meeting.ends_on}, {meeting.place}")


@committee_app.command("funds")
def committee_funds(round_id: str, amount: Annotated[str, typer.Argument(help="US dollars, e.g. 1000000")]) -> None:
    """Set the funds available for the round's approvals."""
    from engine.services.committee.meeting import set_funds

    value = amount_argument(amount, "the funds")
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
    from engine.services.committee.meeting import set_attendees

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
    from engine.services.committee.meeting import declare_member_conflict

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        recorded = declare_member_conflict(session, round_id, reference, email, reason, actor=ACTOR, at=Runtime.now())
    typer.echo(f"{reference}: {email.lower()}'s conflict {'recorded' if recorded else 'already recorded'}")


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

    from engine.services.committee.bundles import check_bundles

    when = instant_option(at)
    in_session(check_bundles, round_id)
    try:  # a folder that cannot be made is refused before the flow runs
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--output {output}: cannot make the folder: {exc.strerror or exc}")
    result: BundlesSummary = run_flow("flows.committee:prepare_committee_bundles_flow", round_id=round_id, at=when)
    from engine.services.committee.bundles import file_name

    for m in result.members:
        shutil.copyfile(m.path, output / f"{file_name(m.email)}.html")
        if m.pdf:
            shutil.copyfile(m.pdf, output / f"{file_name(m.email)}.pdf")
    print_table(
        ["member", "version", "state", "left out (conflict)", "changes"],
        [
            (
                m.email,
                m.version,
                "new" if m.new else "unchanged",
                ", ".join(m.withheld),
                "; ".join(m.changes),
            )
            for m in result.members
        ],
        right={"version"},
    )
    typer.echo(
        f"{result.prepared} new version(s), {result.unchanged} unchanged, {result.notified} member(s) "
        f"notified; in {output}/" + ("" if result.pdf else " (HTML only: install WeasyPrint for PDF, see the README)")
    )


@committee_app.command("revoke")
def committee_revoke(
    email: str,
    reason: Annotated[str, typer.Option(help="Why the access is withdrawn (audited).")],
    by: ByOpt = None,
) -> None:
    """Withdraw every sign-in link, session and bundle link of a person, at once.
    Preparing the bundles again gives a member still on the committee a new link."""
    withdraw_access(email, reason, by)
