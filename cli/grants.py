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
    signed_on: date = date_option(on, "--on") or now.date()
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
    if as_json:
        print_json(
            {
                **line.__dict__,
                "conditions": grant.conditions,
                "instalments": [i.model_dump(exclude={"id", "grant_id"}) for i in instalments],
                "payments": [p.model_dump(exclude={"id", "grant_id"}) for p in payments],
                "signatures": [s.model_dump(exclude={"id", "grant_id"}) for s in signatures],
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
    paid_on: date = date_option(on, "--on") or now.date()
    value = amount_argument(amount, "AMOUNT")
    rt = runtime()
    with service_errors(), unit_of_work(rt.engine) as session:
        line = pay(session, reference, value, finance_ref=finance_ref, paid_on=paid_on, actor=officer_name(by), at=now)
    typer.echo(
        f"{reference}: {value:,.2f} paid ({finance_ref}); paid {line.paid:,.2f} of {line.award:,.2f}, "
        f"balance {line.balance:,.2f}"
    )
