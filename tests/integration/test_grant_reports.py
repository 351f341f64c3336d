"""After the agreement: the reports on their schedule, reviewed and releasing instalments;
amendments that move the schedule (past due dates too); the daily run's reminders,
notices and flags, sent once; close-out with the balance returned. Each refusal
changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from domain.grants import GrantSettings, GrantState, ReminderStep, ReportKind, reminder_step, report_schedule
from domain.lifecycle import Role
from engine.db import reading, unit_of_work
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.grant_changes import (
    close,
    close_out,
    decide_amendment,
    list_amendments,
    record_lessons,
    request_amendment,
    settle,
)
from engine.services.grant_reports import accept_report, ask_revision, list_reports, submit_report
from engine.services.grants import grant_of, line_of, meet_condition, pay, record_signature
from engine.services.grants_day import grants_day
from engine.services.setup import Runtime
from engine.tables import AuditEvent, OutboxMessage
from tests.integration.test_opendata import AT, decided  # noqa: F401  (the fixture)

BEN = "SIP-2018-R1-0001"
PDF = b"%PDF-1.7\n% a signed agreement\n"
SIGNED = AT + timedelta(days=30)  # 2 November 2018: the agreement signed, the condition met: active


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def report(spending: dict[str, int] | None = None, **change: Any) -> dict[str, Any]:
    return {
        "narrative": "The survey of the mining sites is done; the inventory is being written.",
        "indicators": [
            {"output": "1", "indicator": 1, "progress": "32 sites surveyed"},
            {"output": "1", "indicator": 2, "progress": "draft under review"},
            {"output": "2", "indicator": 1, "progress": "not started"},
        ],
        "spending": spending if spending is not None else {"personnel": 9000, "contractual_services": 20000},
        **change,
    }


@pytest.fixture
def active(decided: Runtime) -> Runtime:  # noqa: F811
    return activate(decided)


def activate(rt: Runtime) -> Runtime:
    """Benin's agreement signed by both on 2 November 2018 and its condition met: active."""
    with unit_of_work(rt.engine) as session:
        for kind, signer in (("recipient", "Aïcha Dossou"), ("secretariat", "Monika Stankiewicz")):
            record_signature(
                session, BEN, kind=kind, signer=signer, signed_on=SIGNED.date(), file_name="agreement.pdf",
                content=PDF, actor="officer", at=SIGNED,
            )  # fmt: skip
        meet_condition(session, BEN, 1, "Letter of the ministry naming them", actor="officer", at=SIGNED)
    return rt


def reports(rt: Runtime) -> list[tuple[int, str, date, str]]:
    with reading(rt.engine) as session:
        return [(r.number, r.kind, r.due_on, r.state) for r in list_reports(session, BEN)]


def test_the_reports_follow_the_agreement_from_the_day_the_grant_is_active(active: Runtime) -> None:
    start = SIGNED.date()
    with reading(active.engine) as session:
        grant = grant_of(session, BEN)
        line = line_of(session, grant)
    assert grant.state == GrantState.ACTIVE and grant.starts_on == start and grant.ends_on == date(2020, 11, 2)
    assert line.released == Decimal("60000.00")  # the first instalment, after the signature
    assert reports(active) == [
        (1, "progress", date(2019, 6, 1), "due"),  # 6 months, then 30 days
        (2, "progress", date(2019, 12, 2), "due"),
        (3, "progress", date(2020, 6, 1), "due"),
        (4, "final", date(2021, 1, 1), "due"),  # the end, then 60 days
    ]


def test_a_report_is_checked_against_the_logical_framework_and_its_overspending_flagged(active: Runtime) -> None:
    when = at(date(2019, 5, 20))
    for data, field in (
        (report(indicators=[]), "indicators"),  # every indicator is reported on
        (report(indicators=[{"output": "9", "indicator": 1, "progress": "x"}]), "indicators.0"),
        (report(spending={"catering": 10}), "spending.catering"),
        (report(narrative=""), "narrative"),
    ):
        with pytest.raises(InvalidInput) as refused, unit_of_work(active.engine) as session:
            submit_report(session, BEN, 1, data, actor="focal.point@example.bj", role=Role.APPLICANT, at=when)
        assert any(e.path.startswith(f"$.{field}") for e in refused.value.errors), refused.value.errors
    with pytest.raises(NotAllowed, match="report 1 comes first"), unit_of_work(active.engine) as session:
        submit_report(session, BEN, 2, report(), actor="focal.point@example.bj", role=Role.APPLICANT, at=when)
    assert reports(active)[0][3] == "due"  # nothing changed
    with unit_of_work(active.engine) as session:
        line = submit_report(
            session, BEN, 1, report({"personnel": 45000, "travel": 500}), actor="focal.point@example.bj",
            role=Role.APPLICANT, at=when,
        )  # fmt: skip
    assert line.state == "submitted"
    assert line.flags == [
        "personnel: 45,000.00 spent of 40,000.00 budgeted, 12.5 % over (the round's tolerance is 10 %)",
        "travel: 500.00 spent, and the budget gives this category nothing",
    ]


def test_a_report_sent_back_is_revised_then_accepted_releasing_the_second_instalment(active: Runtime) -> None:
    with unit_of_work(active.engine) as session:
        submit_report(session, BEN, 1, report(), actor="focal", role=Role.APPLICANT, at=at(date(2019, 5, 20)))
        with pytest.raises(InvalidInput, match="say why"):
            ask_revision(session, active.settings, BEN, 1, "  ", actor="officer", at=at(date(2019, 6, 10)))
        revised = ask_revision(
            session, active.settings, BEN, 1, "Give the number of women trained.\nAttach the inventory draft.",
            actor="officer", at=at(date(2019, 6, 10)),
        )  # fmt: skip
        assert revised.state == "revision_requested" and revised.due_on == date(2019, 7, 10)  # 30 days on
        with pytest.raises(NotAllowed, match="waits for the recipient's revision"):
            accept_report(session, BEN, 1, note=None, actor="officer", at=at(date(2019, 6, 11)))
        message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "grant_report_revision")).one()
        assert message.language == "fr" and message.recipient == "focal.point@example.bj"
        assert "Give the number of women trained." in message.body_text and "10 juillet 2019" in message.body_text
        submit_report(session, BEN, 1, report(), actor="focal", role=Role.APPLICANT, at=at(date(2019, 7, 1)))
        accept_report(session, BEN, 1, note="Clear.", actor="officer", at=at(date(2019, 7, 3)))
        line = line_of(session, grant_of(session, BEN))
        pay(session, BEN, Decimal("120000"), finance_ref="UNEP-1", paid_on=date(2019, 7, 4), actor="finance",
            at=at(date(2019, 7, 5)))  # fmt: skip
        with pytest.raises(InvalidInput, match="the instalments released so far leave to pay"):
            pay(session, BEN, Decimal("1"), finance_ref="UNEP-2", paid_on=date(2019, 7, 4), actor="finance",
                at=at(date(2019, 7, 5)))  # fmt: skip
    assert line.released == Decimal("120000.00")
    assert reports(active)[0][3] == "accepted"


def test_an_extension_moves_due_dates_already_past_and_the_reminders_start_again(active: Runtime) -> None:
    settings = GrantSettings()
    with unit_of_work(active.engine) as session:
        for number, day in ((1, date(2019, 5, 3)), (2, date(2019, 11, 3)), (3, date(2020, 5, 3))):
            submit_report(session, BEN, number, report(), actor="focal", role=Role.APPLICANT, at=at(day))
            accept_report(session, BEN, number, note=None, actor="officer", at=at(day + timedelta(days=2)))
        late = at(date(2021, 1, 20))  # the final report was due on 1 January 2021: overdue
        assert grants_day(session, active.settings, at=late).overdue_notices == 1
        for new_end, message in (
            (date(2018, 10, 1), "is not after the grant's start"),
            (date(2020, 4, 30), "is before 2020-05-02, the end of a period whose report is accepted"),
        ):
            with pytest.raises(InvalidInput, match=message):
                request_amendment(session, BEN, "extension", {"ends_on": new_end}, "Rains.", actor="officer",
                                  role=Role.SECRETARIAT, at=late)  # fmt: skip
        asked = request_amendment(session, BEN, "extension", {"ends_on": date(2021, 5, 2)}, "Floods at the sites.",
                                  actor="focal", role=Role.APPLICANT, at=late)  # fmt: skip
        assert reports(active)[3][2] == date(2021, 1, 1)  # nothing moves until it is approved
        decide_amendment(session, BEN, asked.number, True, "The floods are documented.", actor="officer", at=late)
        after = grants_day(session, active.settings, at=late + timedelta(hours=1))
    assert reports(active)[3] == (4, "final", date(2021, 7, 1), "due")
    assert [a.state for a in list_amendments_of(active)] == ["approved"]
    assert after.overdue_notices == 0 and after.reminders == 0  # not due for months now
    assert reminder_step(date(2021, 6, 20), date(2021, 7, 1), settings) is ReminderStep.REMIND
    with unit_of_work(active.engine) as session:
        assert grants_day(session, active.settings, at=at(date(2021, 6, 20))).reminders == 1
        events = session.exec(
            select(AuditEvent.action).where(AuditEvent.subject_id == BEN).order_by(col(AuditEvent.id))
        ).all()
    assert "grant.reports_scheduled" in events and events.count("grant.amendment_approved") == 1


def list_amendments_of(rt: Runtime) -> list[Any]:
    with reading(rt.engine) as session:
        return list_amendments(session, BEN)


def test_the_daily_run_reminds_tells_escalates_and_flags_once(active: Runtime) -> None:
    days = [date(2019, 5, 17), date(2019, 5, 18), date(2019, 6, 2), date(2019, 6, 15), date(2019, 6, 20)]
    results = []
    with unit_of_work(active.engine) as session:
        for day in days:
            results.append(grants_day(session, active.settings, at=at(day)))
            results.append(grants_day(session, active.settings, at=at(day, 15)))  # again the same day
        messages = session.exec(
            select(OutboxMessage.kind, OutboxMessage.recipient, OutboxMessage.language).order_by(col(OutboxMessage.id))
        ).all()
    steps = [(r.reminders, r.overdue_notices, r.escalated, r.instalments_flagged) for r in results]
    assert steps == [
        (0, 0, 0, 1), (0, 0, 0, 0),  # 17 May: 15 days before the due date of 1 June; the first instalment,
        # released on 2 November, is unpaid after 30 days: flagged once
        (1, 0, 0, 0), (0, 0, 0, 0),  # 18 May: 14 days before: reminded once
        (0, 1, 0, 0), (0, 0, 0, 0),  # 2 June: overdue: the recipient is told once
        (0, 0, 1, 0), (0, 0, 0, 0),  # 15 June: 14 days late: the secretariat is told
        (0, 0, 0, 0), (0, 0, 0, 0),
    ]  # fmt: skip
    assert [m for m in messages if m[0] != "decision_approved_with_conditions"][-4:] == [
        ("secretariat_notice", active.settings.programme_email, "en"),
        ("grant_report_reminder", "focal.point@example.bj", "fr"),
        ("grant_report_overdue", "focal.point@example.bj", "fr"),
        ("secretariat_notice", active.settings.programme_email, "en"),
    ]


def test_a_grant_closes_once_its_final_report_is_accepted_its_balance_returned_and_its_lessons_kept(
    active: Runtime,
) -> None:
    with unit_of_work(active.engine) as session:
        pay(session, BEN, Decimal("60000"), finance_ref="UNEP-1", paid_on=date(2018, 11, 20), actor="finance",
            at=at(date(2018, 11, 21)))  # fmt: skip
        with pytest.raises(NotAllowed, match="closes after its final report"):
            close(session, BEN, actor="officer", at=at(date(2019, 1, 1)))
        for number, day in ((1, date(2019, 5, 3)), (2, date(2019, 11, 3)), (3, date(2020, 5, 3))):
            submit_report(session, BEN, number, report({"personnel": 10000}), actor="focal", role=Role.APPLICANT,
                          at=at(day))  # fmt: skip
            accept_report(session, BEN, number, note=None, actor="officer", at=at(day + timedelta(days=2)))
        pay(session, BEN, Decimal("60000"), finance_ref="UNEP-2", paid_on=date(2020, 5, 5), actor="finance",
            at=at(date(2020, 5, 5)))  # fmt: skip
        submit_report(session, BEN, 4, report({"personnel": 80000}), actor="focal", role=Role.APPLICANT,
                      at=at(date(2020, 11, 3)))  # fmt: skip
        accept_report(session, BEN, 4, note=None, actor="officer", at=at(date(2020, 12, 10)))
        assert grant_of(session, BEN).state == GrantState.CLOSING
        state = close_out(session, BEN)
        assert (state.paid, state.spent, state.unspent) == (Decimal("120000.00"), Decimal("110000"), Decimal("10000"))
        with pytest.raises(NotAllowed, match="cannot close yet: balance 10,000.00 of the unspent"):
            close(session, BEN, actor="officer", at=at(date(2020, 12, 11)))
        with pytest.raises(InvalidInput, match="more than the 10,000.00 left"):
            settle(session, BEN, "returned", Decimal("10000.01"), settled_on=date(2020, 12, 20), finance_ref="R-1",
                   reason=None, actor="finance", at=at(date(2020, 12, 21)))  # fmt: skip
        settle(session, BEN, "returned", Decimal("9000"), settled_on=date(2020, 12, 20), finance_ref="R-1",
               reason=None, actor="finance", at=at(date(2020, 12, 21)))  # fmt: skip
        settle(session, BEN, "written_off", Decimal("1000"), settled_on=date(2020, 12, 21), finance_ref=None,
               reason="Bank charges of the return.", actor="officer", at=at(date(2020, 12, 21)))  # fmt: skip
        with pytest.raises(NotAllowed, match="lessons are not recorded yet"):
            close(session, BEN, actor="officer", at=at(date(2020, 12, 22)))
        record_lessons(session, BEN, "Train women miners first.", actor="officer", at=at(date(2020, 12, 22)))
        closed = close(session, BEN, actor="officer", at=at(date(2020, 12, 22)))
        with pytest.raises(NotAllowed, match="reports are received while a grant is active"):
            submit_report(session, BEN, 4, report(), actor="focal", role=Role.APPLICANT, at=at(date(2020, 12, 23)))
        with pytest.raises(NotAllowed, match="is amended while its agreement is in force"):
            request_amendment(session, BEN, "extension", {"ends_on": date(2021, 5, 2)}, "Late.", actor="officer",
                              role=Role.SECRETARIAT, at=at(date(2020, 12, 23)))  # fmt: skip
    assert closed.state == "closed" and closed.problems == []
    assert (closed.returned, closed.written_off) == (Decimal("9000.00"), Decimal("1000.00"))


def test_the_schedule_of_a_short_project_is_its_final_report_alone() -> None:
    schedule = report_schedule(date(2024, 1, 31), date(2024, 6, 30), GrantSettings())
    assert [(r.number, r.kind, r.due_on) for r in schedule] == [(1, ReportKind.FINAL, date(2024, 8, 29))]
    monthly = report_schedule(date(2024, 1, 31), date(2024, 4, 30), GrantSettings(report_every_months=1))
    assert [r.period_end for r in monthly] == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_a_report_before_its_period_ends_or_holding_a_nul_is_refused_and_nothing_changes(active: Runtime) -> None:
    with unit_of_work(active.engine) as session:
        with pytest.raises(NotAllowed, match="covers the period up to 2019-05-02; it is received from that day"):
            submit_report(session, BEN, 1, report(), actor="focal", role=Role.APPLICANT, at=at(date(2019, 5, 1)))
        with pytest.raises(InvalidInput) as nul:
            submit_report(session, BEN, 1, report(narrative="Sites\x00 surveyed."), actor="focal",
                          role=Role.APPLICANT, at=at(date(2019, 5, 3)))  # fmt: skip
        assert nul.value.errors[0].path == "$.narrative" and "NUL" in nul.value.errors[0].message
    assert reports(active)[0][3] == "due"


def test_spending_in_reports_still_under_review_counts_towards_the_flags(active: Runtime) -> None:
    with unit_of_work(active.engine) as session:
        first = submit_report(session, BEN, 1, report({"personnel": 35000}), actor="focal", role=Role.APPLICANT,
                              at=at(date(2019, 5, 3)))  # fmt: skip
        second = submit_report(session, BEN, 2, report({"personnel": 20000}), actor="focal", role=Role.APPLICANT,
                               at=at(date(2019, 11, 3)))  # fmt: skip
    assert first.flags == []
    assert second.flags == [
        "personnel: 55,000.00 spent of 40,000.00 budgeted, 37.5 % over (the round's tolerance is 10 %)"
    ]


def test_a_grant_does_not_close_while_the_project_is_owed_part_of_a_released_instalment(active: Runtime) -> None:
    with unit_of_work(active.engine) as session:
        pay(session, BEN, Decimal("60000"), finance_ref="F-1", paid_on=None, actor="finance", at=at(date(2018, 12, 1)))
        for number, day in (
            (1, date(2019, 5, 3)),
            (2, date(2019, 11, 3)),
            (3, date(2020, 5, 3)),
            (4, date(2020, 11, 3)),
        ):
            submit_report(session, BEN, number, report({"personnel": 30000}), actor="focal", role=Role.APPLICANT,
                          at=at(day))  # fmt: skip
            accept_report(session, BEN, number, note=None, actor="officer", at=at(day))
        record_lessons(session, BEN, "Plan the training early.", actor="officer", at=at(date(2020, 11, 4)))
        state = close_out(session, BEN)
        assert (state.paid, state.spent, state.unspent) == (Decimal("60000.00"), Decimal("120000"), Decimal(0))
        with pytest.raises(NotAllowed, match="payments 60,000.00 of the released instalments, spent by the project"):
            close(session, BEN, actor="officer", at=at(date(2020, 11, 5)))
        pay(session, BEN, Decimal("60000"), finance_ref="F-2", paid_on=None, actor="finance", at=at(date(2020, 11, 6)))
        assert close(session, BEN, actor="officer", at=at(date(2020, 11, 7))).state == "closed"
