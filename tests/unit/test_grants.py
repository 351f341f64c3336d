"""The grants' pure rules: the reports' schedule as extensions move it, and when a report
not yet in is reminded, overdue or escalated."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from domain.grants import (
    GrantSettings,
    ReminderStep,
    ReportKind,
    amended_schedule,
    reminder_step,
    report_schedule,
)

SETTINGS = GrantSettings()


def test_two_extensions_never_bring_back_a_period_the_first_one_left_out() -> None:
    start = date(2018, 11, 2)
    first = report_schedule(start, date(2020, 11, 2), SETTINGS)  # progress to 2019-05-02, 2019-11-02, 2020-05-02
    periods = {r.period_end for r in first if r.kind is ReportKind.PROGRESS}
    once = amended_schedule(start, date(2022, 11, 2), SETTINGS, progress_periods=periods, today=date(2021, 3, 1))
    # the period to 2020-11-02 was due on 2020-12-02, before the extension: the next report covers it
    assert [r.period_end for r in once if r.kind is ReportKind.PROGRESS] == [
        date(2019, 5, 2), date(2019, 11, 2), date(2020, 5, 2), date(2021, 5, 2), date(2021, 11, 2), date(2022, 5, 2),
    ]  # fmt: skip
    periods = {r.period_end for r in once if r.kind is ReportKind.PROGRESS}
    twice = amended_schedule(start, date(2023, 5, 2), SETTINGS, progress_periods=periods, today=date(2021, 6, 1))
    assert date(2020, 11, 2) not in {r.period_end for r in twice}
    assert [r.number for r in twice] == list(range(1, len(twice) + 1)) and twice[-1].kind is ReportKind.FINAL
    assert all(r.due_on >= date(2021, 6, 1) for r in twice if r.period_end not in periods)


@given(
    start=st.dates(min_value=date(2018, 1, 1), max_value=date(2030, 12, 31)),
    months=st.integers(min_value=1, max_value=60),
    extra=st.integers(min_value=1, max_value=36),
    today_after=st.integers(min_value=0, max_value=2000),
)
def test_an_extension_never_makes_a_new_report_late_on_its_day(
    start: date, months: int, extra: int, today_after: int
) -> None:
    from datetime import timedelta

    from domain.grants import add_months

    end = add_months(start, months)
    before = report_schedule(start, end, SETTINGS)
    periods = {r.period_end for r in before if r.kind is ReportKind.PROGRESS}
    today = start + timedelta(days=today_after)
    after = amended_schedule(start, add_months(end, extra), SETTINGS, progress_periods=periods, today=today)
    assert [r.number for r in after] == list(range(1, len(after) + 1))
    assert [r.kind for r in after].count(ReportKind.FINAL) == 1 and after[-1].kind is ReportKind.FINAL
    assert all(r.due_on >= today for r in after if r.kind is ReportKind.PROGRESS and r.period_end not in periods)
    assert [r.period_end for r in after] == sorted(r.period_end for r in after)


def test_a_report_is_reminded_then_overdue_then_escalated() -> None:
    due = date(2019, 6, 1)
    steps = [reminder_step(d, due, SETTINGS) for d in (date(2019, 5, 17), date(2019, 5, 18), due, date(2019, 6, 2),
                                                        date(2019, 6, 14), date(2019, 6, 15))]  # fmt: skip
    assert steps == [
        ReminderStep.NONE, ReminderStep.REMIND, ReminderStep.REMIND, ReminderStep.OVERDUE, ReminderStep.OVERDUE,
        ReminderStep.ESCALATE,
    ]  # fmt: skip
