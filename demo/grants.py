"""After round 1's decisions: its five grants through their agreements, payments, reports,
an extension and a close-out, on an invented timeline after the real decision of October
2018 (the programme's post-award record is not public: every date, amount, report and
reason here is INVENTED for the demonstration).

- The agreements go out in each recipient's language; both sign; Benin's condition is met;
  the first instalments are paid.
- The daily `grants-day` flow reminds the five of their first report; four send it; Iran's
  overspends on personnel and is sent back with the reason, then revised and accepted;
  Benin's comes late: the flow tells Benin and escalates to the secretariat.
- Lesotho's project ends: its final report is accepted, its last instalment paid, the
  unspent balance returned, the lessons recorded, and the grant closed.
- Armenia's final report is overdue when an extension is granted: its due date moves.

Running the demo again finds the grants past their agreements and leaves them as they are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlmodel import select

from demo.applications import ROUND
from domain.grants import GrantState, ReportKind
from domain.lifecycle import Role
from engine.db import reading, unit_of_work
from engine.services.agreements import send_agreement
from engine.services.grant_changes import close, close_out, decide_amendment, record_lessons, request_amendment, settle
from engine.services.grant_reports import accept_report, ask_revision, budget_of, list_reports, submit_report
from engine.services.grants import grant_of, list_grants, meet_condition, pay, record_signature
from engine.services.setup import Runtime
from engine.tables import Application, Grant

SECRETARIAT = "secretariat"
#: The invented timeline (UTC, mid-morning in Geneva).
AGREEMENTS_SENT = datetime(2018, 10, 15, 9, tzinfo=UTC)
RECIPIENTS_SIGN = datetime(2018, 11, 5, 9, tzinfo=UTC)
SECRETARIAT_SIGNS = datetime(2018, 11, 12, 9, tzinfo=UTC)  # active from this day: reports every 6 months
FIRST_PAID = datetime(2018, 11, 20, 9, tzinfo=UTC)
#: The PDF the recipient signed and sent back (a placeholder document: the demo has no real signature).
SIGNED_PDF = b"%PDF-1.4\n% the agreement as signed (demonstration)\n%%EOF\n"


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


def _report(
    grant: Grant, application: Application, share: Decimal, *, personnel: Decimal | None = None
) -> dict[str, Any]:
    """A report of the demo: progress on each indicator of form A's outputs, and `share`
    of each budget category spent in the period (`personnel`: that category's spending instead)."""
    outputs = (application.form_a or {}).get("outputs") or []
    spending = {
        category: (amount * share).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        for category, amount in budget_of(grant).items()
        if amount > 0
    }
    if personnel is not None:
        spending["personnel"] = personnel
    return {
        "narrative": "The activities of the period were carried out as planned in the workplan (demonstration text).",
        "indicators": [
            {"output": str(o["id"]), "indicator": n, "progress": "On track (demonstration text)."}
            for o in outputs
            for n, _ in enumerate(o.get("indicators") or [], 1)
        ],
        "spending": spending,
    }


def run_grants_demo(rt: Runtime, echo: Callable[[str], None]) -> None:
    """Round 1's grants from their agreements to one closed (see the module's note)."""
    from flows.grants import grants_day_flow

    with reading(rt.engine) as session:
        grants = {g.party: g for g in list_grants(session, ROUND)}
    if not grants:
        echo("     grants: none (no approval's letter queued)")
        return
    if any(g.state != GrantState.AWARDED for g in grants.values()):
        echo("     grants: taken through their agreements in an earlier run")
        _summary(rt, echo)
        return
    refs = {party: g.reference for party, g in grants.items()}
    with unit_of_work(rt.engine) as session:
        languages = [send_agreement(session, rt.settings, ref, actor=SECRETARIAT, at=AGREEMENTS_SENT).language
                     for ref in refs.values()]  # fmt: skip
    echo(
        f"     agreements: {len(languages)} sent with their personal links "
        f"({', '.join(f'{languages.count(lang)} in {lang}' for lang in sorted(set(languages)))})"
    )
    with unit_of_work(rt.engine) as session:
        for ref in refs.values():
            application = session.exec(select(Application).where(Application.reference == ref)).one()
            contact = application.applicant["contact"]["name"]
            record_signature(
                session, ref, kind="recipient", signer=f"{contact}, national focal point",
                signed_on=RECIPIENTS_SIGN.date(), file_name=f"agreement-{ref}-signed.pdf", content=SIGNED_PDF,
                actor=SECRETARIAT, at=RECIPIENTS_SIGN,
            )  # fmt: skip
            record_signature(
                session, ref, kind="secretariat", signer="Monika Stankiewicz, Executive Secretary (demonstration)",
                signed_on=SECRETARIAT_SIGNS.date(), file_name=f"agreement-{ref}-countersigned.pdf",
                content=SIGNED_PDF + b"% countersigned\n", actor=SECRETARIAT, at=SECRETARIAT_SIGNS,
            )  # fmt: skip
            for number, _ in enumerate(grant_of(session, ref).conditions, 1):
                meet_condition(session, ref, number, "Letter of the ministry naming them, 9 November 2018",
                               actor=SECRETARIAT, at=SECRETARIAT_SIGNS)  # fmt: skip
        for party, ref in refs.items():
            pay(session, ref, grants[party].award * Decimal("0.4"), finance_ref=f"UNEP-2018-{party}-1",
                       paid_on=FIRST_PAID.date(), actor="finance", at=FIRST_PAID)  # fmt: skip
    first = sum(g.award for g in grants.values()) * Decimal("0.4")
    echo(
        f"     signatures: the recipients on {RECIPIENTS_SIGN.date()}, the secretariat on {SECRETARIAT_SIGNS.date()}; "
        f"Benin's condition met; all five active; first instalments paid (US$ {first:,.0f})"
    )
    day = grants_day_flow(at=_at("2019-06-01"))
    echo(f"     grants-day 2019-06-01: {day.reminders} reminders of the first progress report (due 2019-06-11)")

    def act(when: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with unit_of_work(rt.engine) as session:
            return fn(session, *args, at=_at(when), **kwargs)

    def report_of(party: str, share: str, **kw: Any) -> dict[str, Any]:
        with reading(rt.engine) as session:
            grant = grant_of(session, refs[party])
            application = session.get(Application, grant.application_id)
            assert application is not None
            return _report(grant, application, Decimal(share), **kw)

    def submit(when: str, party: str, number: int, content: dict[str, Any]) -> Any:
        return act(
            when, submit_report, refs[party], number, content, actor=f"focal point of {party}", role=Role.APPLICANT
        )

    for party in ("ARG", "ARM", "LSO"):
        submit("2019-06-05", party, 1, report_of(party, "0.25"))
        act("2019-06-10", accept_report, refs[party], 1, note=None, actor=SECRETARIAT)
    iran = submit("2019-06-05", "IRN", 1, report_of("IRN", "0.25", personnel=Decimal("65000")))
    act("2019-06-10", ask_revision, rt.settings, refs["IRN"], 1,
        "Personnel costs are above the budget: explain them, or move the excess to the second period.",
        actor=SECRETARIAT)  # fmt: skip
    submit("2019-06-25", "IRN", 1, report_of("IRN", "0.25"))
    act("2019-06-28", accept_report, refs["IRN"], 1, note="Revised as asked.", actor=SECRETARIAT)
    echo(
        "     first progress reports: Argentina's, Armenia's and Lesotho's accepted; Iran's flagged "
        f"[{iran.flags[0]}], sent back with the reason, revised and accepted"
    )
    late = grants_day_flow(at=_at("2019-06-26"))
    echo(
        f"     grants-day 2019-06-26: {late.overdue_notices} overdue notice (Benin, in French) and "
        f"{late.escalated} report escalated to the secretariat"
    )
    submit("2019-07-15", "BEN", 1, report_of("BEN", "0.25"))
    act("2019-07-20", accept_report, refs["BEN"], 1, note="Received late; complete.", actor=SECRETARIAT)
    for party, ref in refs.items():
        act("2019-07-25", pay, ref, grants[party].award * Decimal("0.4"), finance_ref=f"UNEP-2019-{party}-2",
            paid_on=date(2019, 7, 25), actor="finance")  # fmt: skip
    echo("     second instalments paid to all five, each after its first progress report was accepted")
    for number, submitted, accepted in ((2, "2019-12-05", "2019-12-10"), (3, "2020-06-05", "2020-06-10")):
        for party in refs:
            submit(submitted, party, number, report_of(party, "0.25"))
            act(accepted, accept_report, refs[party], number, note=None, actor=SECRETARIAT)
    # Lesotho: the final report, the last instalment, the unspent balance returned, the lessons, closed.
    submit("2020-12-01", "LSO", 4, report_of("LSO", "0.1666"))
    act("2020-12-10", accept_report, refs["LSO"], 4, note="Final report complete.", actor=SECRETARIAT)
    act("2020-12-15", pay, refs["LSO"], grants["LSO"].award * Decimal("0.2"), finance_ref="UNEP-2020-LSO-3",
        paid_on=date(2020, 12, 15), actor="finance")  # fmt: skip
    # Armenia: its final report, due on 11 January 2021, is overdue when an extension is granted.
    with reading(rt.engine) as session:
        before = [r for r in list_reports(session, refs["ARM"]) if r.kind == ReportKind.FINAL][0]
    asked = act("2021-01-20", request_amendment, refs["ARM"], "extension", {"ends_on": date(2021, 5, 12)},
                "The health sector's procurement was delayed by the tender's appeal.", actor="focal point of ARM",
                role=Role.APPLICANT)  # fmt: skip
    act("2021-01-22", decide_amendment, refs["ARM"], asked.number, True,
        "The appeal is documented; no cost is added.", actor=SECRETARIAT)  # fmt: skip
    with reading(rt.engine) as session:
        after = [r for r in list_reports(session, refs["ARM"]) if r.kind == ReportKind.FINAL][0]
    echo(
        f"     Armenia: extension to 2021-05-12 granted on 2021-01-22; its final report, overdue since "
        f"{before.due_on}, is now due on {after.due_on}"
    )
    with reading(rt.engine) as session:
        unspent = close_out(session, refs["LSO"]).unspent
    act("2021-02-15", settle, refs["LSO"], "returned", unspent, settled_on=date(2021, 2, 15),
        finance_ref="UNEP-2021-LSO-R1", reason=None, actor="finance")  # fmt: skip
    act("2021-02-16", record_lessons, refs["LSO"],
        "The inventory went faster where the customs data were shared early; train the customs officers first.",
        actor=SECRETARIAT)  # fmt: skip
    closed = act("2021-02-16", close, refs["LSO"], actor=SECRETARIAT)
    echo(
        f"     Lesotho: final report accepted, last instalment paid, US$ {closed.returned:,.2f} unspent returned, "
        f"lessons recorded: {closed.state}"
    )
    _summary(rt, echo)


def _summary(rt: Runtime, echo: Callable[[str], None]) -> None:
    with reading(rt.engine) as session:
        lines = list_grants(session, ROUND)
    echo(f"     {'grant':<18} {'Party':<5} {'state':<12} {'award':>12} {'paid':>12} {'balance':>12}")
    for g in lines:
        echo(
            f"     {g.reference:<18} {g.party:<5} {g.state.value:<12} {g.award:>12,.2f} {g.paid:>12,.2f} "
            f"{g.balance:>12,.2f}"
        )
