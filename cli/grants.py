"""`sip grants`: the grants that follow the committee's approvals: the list, the
agreement's signatures, the conditions met, and the payments."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    ByOpt,
    JsonOpt,
    amount_argument,
    date_option,
    fail,
    officer_name,
    print_json,
    print_table,
    read_text,
    runtime,
    service_errors,
)
from engine.db import reading, unit_of_work
from engine.services.setup import Runtime

grants_app = typer.Typer(no_args_is_help=True, help="The grants that follow the committee's approvals.")


@grants_app.command("list")
def grants_list(round_id: str, as_json: JsonOpt = False) -> None:
    """Every grant of the round: its state, award, what was paid and the balance, the
    instalments released so far, its conditions met and its signatures."""
    from engine.services.grants import list_grants

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        lines = list_grants(session, round_id)
    if as_json:
        print_json(lines)
        return
    if not lines:
        typer.echo(f"{round_id}: no grant yet; one is made for each approval when its letter is queued")
        return
    print_table(
        ["reference", "Party", "state", "award", "released", "paid", "balance", "conditions met", "signed", "until"],
        (
            (
                g.reference, g.party, g.state.value, f"{g.award:,.2f}", f"{g.released:,.2f}", f"{g.paid:,.2f}",
                f"{g.balance:,.2f}", f"{g.conditions_met} of {g.conditions}", f"{g.signatures} of 2",
                g.planned_end.isoformat(),
            )
            for g in lines
        ),
        right={"award", "released", "paid", "balance"},
    )  # fmt: skip


@grants_app.command("sign")
def grants_sign(
    reference: str,
    signer: Annotated[str, typer.Option(help="Who signed, e.g. 'Thabo Mokoena, national focal point'.")],
    as_: Annotated[str, typer.Option("--as", help="recipient (first), then secretariat.")],
    file: Annotated[Path, typer.Option(help="The signed agreement (PDF); its SHA-256 is kept.")],
    on: Annotated[str | None, typer.Option(help="The day it was signed (default: today).")] = None,
    by: ByOpt = None,
) -> None:
    """Record a signature of the grant's agreement: the recipient's, then the secretariat's.
    With both, and every condition met, the grant is active and its first instalment released."""
    from engine.services.grants import record_signature

    try:
        content = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: cannot read the signed agreement: {exc.strerror or exc}")
    now = Runtime.now()
    signed_on: date | None = date_option(on, "--on")  # none: today, where the round is
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = record_signature(
            session, reference, kind=as_, signer=signer, signed_on=signed_on, file_name=file.name, content=content,
            actor=officer_name(by), at=now,
        )  # fmt: skip
    typer.echo(
        f"{reference}: the {as_}'s signature is recorded ({line.signatures} of 2); the grant is {line.state.value}"
    )


@grants_app.command("condition")
def grants_condition(
    reference: str,
    number: Annotated[int, typer.Argument(help="The condition's number, as `sip grants show` lists them.")],
    evidence: Annotated[str, typer.Option(help="What shows it is met, e.g. 'Letter of the ministry, 12 Nov'.")],
    by: ByOpt = None,
) -> None:
    """Record that one of the committee's conditions is met, with its evidence."""
    from engine.services.grants import meet_condition

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = meet_condition(session, reference, number, evidence, actor=officer_name(by), at=Runtime.now())
    typer.echo(
        f"{reference}: condition {number} met ({line.conditions_met} of {line.conditions}); "
        f"the grant is {line.state.value}"
    )


@grants_app.command("show")
def grants_show(reference: str, as_json: JsonOpt = False) -> None:
    """A grant: its state, money, conditions (numbered), instalments and payments."""
    from sqlmodel import col, select

    from engine.services.grant_changes import close_out, list_amendments
    from engine.services.grant_reports import list_reports
    from engine.services.grants import grant_of, line_of
    from engine.tables import GrantInstalment, GrantPayment, GrantSignature

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        grant = grant_of(session, reference)
        line = line_of(session, grant)
        instalments = session.exec(
            select(GrantInstalment).where(GrantInstalment.grant_id == grant.id).order_by(col(GrantInstalment.number))
        ).all()
        payments = session.exec(select(GrantPayment).where(GrantPayment.grant_id == grant.id)).all()
        signatures = session.exec(select(GrantSignature).where(GrantSignature.grant_id == grant.id)).all()
        reports = list_reports(session, reference)
        amendments = list_amendments(session, reference)
        closing = close_out(session, reference)
    if as_json:
        print_json(
            {
                **line.__dict__,
                "starts_on": grant.starts_on,
                "ends_on": grant.ends_on,
                "conditions": grant.conditions,
                "instalments": [i.model_dump(exclude={"id", "grant_id"}) for i in instalments],
                "payments": [p.model_dump(exclude={"id", "grant_id"}) for p in payments],
                "signatures": [s.model_dump(exclude={"id", "grant_id"}) for s in signatures],
                "reports": reports,
                "amendments": amendments,
                "close_out": {**closing.__dict__, "problems": [f"{f}: {m}" for f, m in closing.problems]},
            }
        )
        return
    typer.echo(
        f"{reference} ({line.party}): {line.state.value}; award {line.award:,.2f}, paid {line.paid:,.2f}, "
        f"balance {line.balance:,.2f}; {line.planned_start} to {line.planned_end}"
    )
    for number, condition in enumerate(grant.conditions, 1):
        met = f"met {condition['met_at'][:10]}: {condition['evidence']}" if condition.get("met_at") else "not met yet"
        typer.echo(f"  condition {number}: {condition['text']} ({met})")
    for s in signatures:
        typer.echo(f"  signed by the {s.kind}: {s.signer} on {s.signed_on} (SHA-256 {s.sha256[:16]}…)")
    print_table(
        ["instalment", "share", "amount", "released by"],
        ((i.number, f"{i.share:.0f} %", f"{i.amount:,.2f}", i.after.replace("_", " ")) for i in instalments),
        right={"share", "amount"},
    )
    print_table(
        ["paid on", "amount", "finance reference", "recorded by"],
        ((p.paid_on, f"{p.amount:,.2f}", p.finance_ref, p.recorded_by) for p in payments),
        right={"amount"},
    )
    if grant.starts_on:
        typer.echo(f"  agreement in force: {grant.starts_on} to {grant.ends_on}")
    print_table(
        ["report", "kind", "period to", "due", "state"],
        ((r.number, r.kind, r.period_end, r.due_on, r.state.replace("_", " ")) for r in reports),
    )
    for a in amendments:
        typer.echo(f"  amendment {a.number} ({a.kind}, {a.state}): {a.before} -> {a.after}")
    if grant.state in ("closing", "closed"):
        _print_close_out(closing)


@grants_app.command("pay")
def grants_pay(
    reference: str,
    amount: Annotated[str, typer.Argument(help="US dollars paid, e.g. 60000 or 60000.00")],
    finance_ref: Annotated[str, typer.Option("--finance-ref", help="The finance office's reference of the payment.")],
    on: Annotated[str | None, typer.Option(help="The day it was paid (default: today).")] = None,
    by: ByOpt = None,
) -> None:
    """Record a payment to an active grant, within what its instalments released and never above the award."""
    from engine.services.grants import pay

    now = Runtime.now()
    paid_on: date | None = date_option(on, "--on")  # none: today, where the round is
    value = amount_argument(amount, "AMOUNT")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = pay(session, reference, value, finance_ref=finance_ref, paid_on=paid_on, actor=officer_name(by), at=now)
    typer.echo(
        f"{reference}: {value:,.2f} paid ({finance_ref}); paid {line.paid:,.2f} of {line.award:,.2f}, "
        f"balance {line.balance:,.2f}"
    )


@grants_app.command("reports")
def grants_reports(reference: str, as_json: JsonOpt = False) -> None:
    """A grant's reports: each one's period, due date and state, and the spending flags
    of those submitted."""
    from engine.services.grant_reports import list_reports

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        reports = list_reports(session, reference)
    if as_json:
        print_json(reports)
        return
    if not reports:
        typer.echo(f"{reference}: no reports yet; they are scheduled when the grant becomes active")
        return
    print_table(
        ["report", "kind", "period to", "due", "state", "revisions"],
        ((r.number, r.kind, r.period_end, r.due_on, r.state.replace("_", " "), r.revisions) for r in reports),
    )
    for r in reports:
        for flag in r.flags:
            typer.echo(f"  report {r.number}, flagged: {flag}")
        if r.reason and r.state == "revision_requested":
            typer.echo(f"  report {r.number}, sent back: {r.reason}")


@grants_app.command("report")
def grants_report(
    reference: str,
    number: Annotated[int, typer.Argument(help="The report's number, as `sip grants reports` lists them.")],
    file: Annotated[
        Path,
        typer.Option(
            help="The report as JSON: {narrative, indicators: [{output, indicator, progress}], spending: {category: "
            "amount}}."
        ),
    ],
    by: ByOpt = None,
) -> None:
    """Record a report the recipient sent (progress per indicator of form A's outputs,
    spending per budget category); spending beyond the round's tolerance is flagged."""
    import json

    from domain.lifecycle import Role
    from engine.services.grant_reports import submit_report

    text = read_text(file, "the report")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{file}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = submit_report(
            session, reference, number, data, actor=officer_name(by), role=Role.SECRETARIAT, at=Runtime.now()
        )
    typer.echo(f"{reference}: report {number} ({line.kind}) is submitted")
    for flag in line.flags:
        typer.echo(f"  flagged: {flag}")


@grants_app.command("accept")
def grants_accept(
    reference: str,
    number: Annotated[int, typer.Argument(help="The report's number.")],
    note: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    by: ByOpt = None,
) -> None:
    """Accept a submitted report. The first progress report accepted releases the
    instalment waiting for it; the final report releases the last, and the grant is closing."""
    from engine.services.grant_reports import accept_report
    from engine.services.grants import grant_of, line_of

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        accept_report(session, reference, number, note=note, actor=officer_name(by), at=Runtime.now())
        grant = line_of(session, grant_of(session, reference))
    typer.echo(
        f"{reference}: report {number} is accepted; released {grant.released:,.2f} of {grant.award:,.2f}, "
        f"paid {grant.paid:,.2f}; the grant is {grant.state.value}"
    )


@grants_app.command("revise")
def grants_revise(
    reference: str,
    number: Annotated[int, typer.Argument(help="The report's number.")],
    reason: Annotated[list[str], typer.Option(help="Why it is sent back (repeat for each point).")],
    by: ByOpt = None,
) -> None:
    """Send a submitted report back for revision, with the reasons; the recipient is told
    in their language."""
    from engine.services.grant_reports import ask_revision

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = ask_revision(
            session, rt.settings, reference, number, "\n".join(reason), actor=officer_name(by), at=Runtime.now()
        )
    typer.echo(f"{reference}: report {number} is sent back for revision, due again on {line.due_on}")


def _amendment_change(
    end: str | None,
    budget: list[str] | None,
    contact_name: str | None,
    contact_email: str | None,
    contact_language: str,
    agency: str | None,
) -> tuple[str, dict[str, object]]:
    given = [k for k, v in (("--end", end), ("--budget", budget), ("--contact-name", contact_name),
                            ("--agency", agency)) if v]  # fmt: skip
    if len(given) != 1:
        fail("give one change: --end DATE, --budget CATEGORY=AMOUNT (repeated), --contact-name and --contact-email, "
             "or --agency NAME")  # fmt: skip
    if end:
        return "extension", {"ends_on": date_option(end, "--end")}
    if budget:
        amounts: dict[str, object] = {}
        for item in budget:
            category, _, amount = item.partition("=")
            if not amount:
                fail(f"--budget {item!r}: write it as CATEGORY=AMOUNT, e.g. travel=12000")
            amounts[category.strip()] = amount_argument(amount, f"--budget {category.strip()}")
        return "reallocation", {"budget": amounts}
    if contact_name:
        return "contact", {"contact": {"name": contact_name, "email": contact_email, "language": contact_language}}
    return "agency", {"executing_agency": agency}


@grants_app.command("amend")
def grants_amend(
    reference: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the amendment and in the audit trail).")],
    end: Annotated[str | None, typer.Option(help="A no-cost extension: the new end date (YYYY-MM-DD).")] = None,
    budget: Annotated[
        list[str] | None, typer.Option(help="A reallocation: CATEGORY=AMOUNT for each category that changes.")
    ] = None,
    contact_name: Annotated[str | None, typer.Option(help="A new contact person: the name.")] = None,
    contact_email: Annotated[str | None, typer.Option(help="... and the address.")] = None,
    contact_language: Annotated[str, typer.Option(help="... and the language: en, fr or es.")] = "en",
    agency: Annotated[str | None, typer.Option(help="A new executing agency: its name.")] = None,
    requested: Annotated[
        bool, typer.Option("--requested", help="Record it as asked for, to decide later (`sip grants decide`).")
    ] = False,
    by: ByOpt = None,
) -> None:
    """Amend a grant: an extension (its reports move to the new schedule, due dates
    already past too), a budget reallocation, a new contact or executing agency. Recorded
    by the secretariat, it is approved at once unless --requested."""
    from domain.lifecycle import Role
    from engine.services.grant_changes import decide_amendment, request_amendment

    kind, change = _amendment_change(end, budget, contact_name, contact_email, contact_language, agency)
    rt = runtime()
    now, actor = Runtime.now(), officer_name(by)
    with service_errors(), unit_of_work(rt.engine) as session:
        line = request_amendment(session, reference, kind, change, reason, actor=actor, role=Role.SECRETARIAT, at=now)
        if not requested:
            line = decide_amendment(session, reference, line.number, True, reason, actor=actor, at=now)
    typer.echo(f"{reference}: amendment {line.number} ({kind}) is {line.state}: {line.before} -> {line.after}")


@grants_app.command("amendments")
def grants_amendments(reference: str, as_json: JsonOpt = False) -> None:
    """A grant's amendments, in their order, with what each changed and its decision."""
    from engine.services.grant_changes import list_amendments

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        lines = list_amendments(session, reference)
    if as_json:
        print_json(lines)
        return
    if not lines:
        typer.echo(f"{reference}: no amendment")
    for a in lines:
        decided = f"{a.state} by {a.decided_by}: {a.decision_reason}" if a.decided_by else "waiting for a decision"
        typer.echo(f"{a.number}. {a.kind}: {a.before} -> {a.after} (asked by {a.requested_by}: {a.request_reason}; "
                   f"{decided})")  # fmt: skip


@grants_app.command("decide")
def grants_decide(
    reference: str,
    number: Annotated[int, typer.Argument(help="The amendment's number.")],
    decision: Annotated[str, typer.Argument(help="approve or refuse")],
    reason: Annotated[str, typer.Option(help="Why.")],
    by: ByOpt = None,
) -> None:
    """Approve or refuse an amendment that was asked for."""
    from engine.services.grant_changes import decide_amendment

    if decision not in ("approve", "refuse"):
        fail(f"DECISION {decision!r}: write approve or refuse")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = decide_amendment(
            session, reference, number, decision == "approve", reason, actor=officer_name(by), at=Runtime.now()
        )
    typer.echo(f"{reference}: amendment {number} ({line.kind}) is {line.state}")


def _print_close_out(state: object) -> None:
    from engine.services.grant_changes import CloseOut

    assert isinstance(state, CloseOut)
    typer.echo(
        f"{state.reference}: {state.state}; paid {state.paid:,.2f}, spent {state.spent:,.2f}, unspent "
        f"{state.unspent:,.2f} (returned {state.returned:,.2f}, written off {state.written_off:,.2f})"
        + (f"; to settle by {state.due_by}" if state.due_by else "")
    )
    for field, problem in state.problems:
        typer.echo(f"  before it closes: {field.replace('_', ' ')} {problem}")


@grants_app.command("return")
def grants_return(
    reference: str,
    amount: Annotated[str, typer.Argument(help="US dollars the recipient returned.")],
    finance_ref: Annotated[
        str, typer.Option("--finance-ref", help="The finance office's reference of the money received.")
    ],
    on: Annotated[str | None, typer.Option(help="The day it was received (default: today).")] = None,
    by: ByOpt = None,
) -> None:
    """Record unspent money returned by the recipient of a closing grant."""
    _settle(reference, "returned", amount, on, finance_ref, None, by)


@grants_app.command("write-off")
def grants_write_off(
    reference: str,
    amount: Annotated[str, typer.Argument(help="US dollars of the unspent balance written off.")],
    reason: Annotated[str, typer.Option(help="Why it is written off.")],
    on: Annotated[str | None, typer.Option(help="The day it was written off (default: today).")] = None,
    by: ByOpt = None,
) -> None:
    """Write off (part of) the unspent balance of a closing grant, with the reason."""
    _settle(reference, "written_off", amount, on, None, reason, by)


def _settle(
    reference: str, kind: str, amount: str, on: str | None, finance_ref: str | None, reason: str | None, by: str | None
) -> None:
    from engine.services.grant_changes import settle

    now = Runtime.now()
    value = amount_argument(amount, "AMOUNT")
    day: date | None = date_option(on, "--on")  # none: today, where the round is
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        state = settle(session, reference, kind, value, settled_on=day, finance_ref=finance_ref, reason=reason,
                       actor=officer_name(by), at=now)  # fmt: skip
    _print_close_out(state)


@grants_app.command("lessons")
def grants_lessons(
    reference: str,
    file: Annotated[Path, typer.Option(help="The lessons learnt and the evaluation's findings (text).")],
    by: ByOpt = None,
) -> None:
    """Record what the project taught (kept with the grant; needed before it closes)."""
    from engine.services.grant_changes import record_lessons

    text = read_text(file, "the lessons")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        state = record_lessons(session, reference, text, actor=officer_name(by), at=Runtime.now())
    _print_close_out(state)


@grants_app.command("close")
def grants_close(reference: str, by: ByOpt = None) -> None:
    """Close a grant: its final report accepted, its unspent balance settled, its lessons recorded."""
    from engine.services.grant_changes import close

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        state = close(session, reference, actor=officer_name(by), at=Runtime.now())
    _print_close_out(state)


@grants_app.command("close-out")
def grants_close_out(reference: str) -> None:
    """Where a grant's close-out stands, and what is left before it can close."""
    from engine.services.grant_changes import close_out

    rt = runtime()
    with service_errors(), reading(rt.engine) as session:
        state = close_out(session, reference)
    _print_close_out(state)


@grants_app.command("daily")
def grants_daily(
    at: Annotated[str | None, typer.Option(help="Past instant (ISO 8601) to run it as of.")] = None,
) -> None:
    """The grants' daily run (the `grants-day` flow, scheduled when the flows are served):
    reminders and overdue notices to recipients, escalations and flags to the secretariat."""
    from cli.common import instant_option, run_flow

    when = instant_option(at)
    runtime()
    result = run_flow("flows.grants:grants_day_flow", at=when)
    typer.echo(
        f"{result.reports_outstanding} report(s) outstanding: {result.reminders} reminder(s) and "
        f"{result.overdue_notices} overdue notice(s) queued, {result.escalated} escalated to the secretariat; "
        f"{result.instalments_flagged} instalment(s) unpaid and {result.balances_flagged} balance(s) unsettled flagged"
    )


@grants_app.command("agreement")
def grants_agreement(
    reference: str,
    copy_to: Annotated[
        Path | None, typer.Option("--copy-to", help="Also copy the agreement's files (HTML, PDF) into this folder.")
    ] = None,
    by: ByOpt = None,
) -> None:
    """Send the grant's agreement: made in the recipient's language from the template (HTML,
    and PDF with the `pdf` extra), kept with its SHA-256, and queued with a personal link
    to open it. Sending it again makes a new version."""
    import shutil

    from engine.services.agreements import send_agreement

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = send_agreement(session, rt.settings, reference, actor=officer_name(by), at=Runtime.now())
    files = [p for p in (line.html, line.pdf) if p is not None]
    if copy_to is not None:
        copy_to.mkdir(parents=True, exist_ok=True)
        files = [Path(shutil.copy(p, copy_to / p.name)) for p in files]
    typer.echo(
        f"{reference}: agreement version {line.version} ({line.language}) queued to {line.recipient} with its link; "
        f"SHA-256 {line.sha256[:16]}…"
    )
    for path in files:
        typer.echo(f"  {path}")
    if line.pdf is None:
        typer.echo("  (HTML only: install the `pdf` extra, WeasyPrint, for the PDF)")


@grants_app.command("expert")
def grants_expert(
    reference: str,
    number: Annotated[int, typer.Argument(help="The submitted report's number.")],
    email: Annotated[str, typer.Argument(help="A reviewer of the GMP register.")],
    by: ByOpt = None,
) -> None:
    """Ask a GMP expert to review a submitted report (the review stage's rules: no conflict
    of interest, within their load); they are sent a sign-in link in their language."""
    from engine.services.report_reviews import ask_review

    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = ask_review(session, rt.settings, reference, number, email, actor=officer_name(by), at=Runtime.now())
    typer.echo(f"{reference}: {line.reviewer} is asked to review report {number}, by {line.due_on}")
