"""After the decision: a grant for every approval, its states as a table, the round's
post-award settings, its instalments, and what a payment must respect.

The programme's exact post-award rules are not known: every number here (instalment
shares and what releases them, report periods, tolerances, deadlines) is a setting of
the round's `[grants]` table, with a default, never a rule in code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.application import BUDGET_CATEGORIES, NUL
from domain.money import CENT, Amount


class GrantState(StrEnum):
    AWARDED = "awarded"  # the approval's letter is queued; no agreement yet
    AGREEMENT_SENT = "agreement_sent"
    AGREEMENT_SIGNED = "agreement_signed"  # by both: the recipient, then the secretariat
    ACTIVE = "active"  # signed, and every condition of the committee met
    SUSPENDED = "suspended"
    CLOSING = "closing"
    CLOSED = "closed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({GrantState.CLOSED, GrantState.CANCELLED})


@dataclass(frozen=True)
class GrantTransition:
    name: str
    sources: frozenset[GrantState]
    target: GrantState
    needs_reason: bool = False


def _t(name: str, sources: set[GrantState], target: GrantState, *, needs_reason: bool = False) -> GrantTransition:
    return GrantTransition(name, frozenset(sources), target, needs_reason)


#: The transition table of a grant. Nothing outside it can happen to one.
GRANT_TRANSITIONS: dict[str, GrantTransition] = {
    t.name: t
    for t in (
        _t("send_agreement", {GrantState.AWARDED}, GrantState.AGREEMENT_SENT),
        # the agreement may have gone out from the engine or, as the secretariat's own document, by other means
        _t("sign_agreement", {GrantState.AWARDED, GrantState.AGREEMENT_SENT}, GrantState.AGREEMENT_SIGNED),
        _t("activate", {GrantState.AGREEMENT_SIGNED}, GrantState.ACTIVE),
        _t("suspend", {GrantState.ACTIVE}, GrantState.SUSPENDED, needs_reason=True),
        _t("resume", {GrantState.SUSPENDED}, GrantState.ACTIVE, needs_reason=True),
        _t("begin_closing", {GrantState.ACTIVE}, GrantState.CLOSING),
        _t("close", {GrantState.CLOSING}, GrantState.CLOSED),
        _t("cancel", set(GrantState) - FINAL_STATES, GrantState.CANCELLED, needs_reason=True),
    )
}


class GrantTransitionError(Exception):
    """A change the table does not allow; the message says what is allowed instead."""


def plan_grant_transition(current: GrantState, name: str, *, reason: str | None = None) -> GrantState:
    """The state a transition leads to, or `GrantTransitionError` saying why not."""
    transition = GRANT_TRANSITIONS.get(name)
    if transition is None:
        raise GrantTransitionError(f"unknown change {name!r}; known: {', '.join(sorted(GRANT_TRANSITIONS))}")
    if current not in transition.sources:
        allowed = sorted(t.name for t in GRANT_TRANSITIONS.values() if current in t.sources)
        raise GrantTransitionError(
            f"cannot {name} a grant that is {current.value}; allowed now: {', '.join(allowed) or 'none (final)'}"
        )
    if transition.needs_reason and not (reason and reason.strip()):
        raise GrantTransitionError(f"{name} needs a reason")
    return transition.target


#: Who signs the agreement, in this order.
SIGNERS = ("recipient", "secretariat")
#: The largest signed agreement kept (a scanned PDF).
SIGNED_FILE_BYTES = 20_000_000


def signature_problems(kind: str, signed: list[tuple[str, str]], signer: str, content: bytes) -> list[tuple[str, str]]:
    """Why a signature cannot be recorded: the order (the recipient, then the secretariat),
    the same person twice, or a file that is not a PDF of at most SIGNED_FILE_BYTES.
    `signed`: the (kind, signer) of the signatures recorded so far."""
    problems: list[tuple[str, str]] = []
    if kind not in SIGNERS:
        problems.append(("as", "is recipient or secretariat"))
    elif kind in {k for k, _ in signed}:
        problems.append(("as", f"the {kind}'s signature is recorded already"))
    elif SIGNERS.index(kind) != len(signed):
        problems.append(("as", f"the {SIGNERS[len(signed)]} signs first"))
    if len(signer.strip()) > 200:
        problems.append(("signer", "is longer than 200 characters"))
    if signer.strip().casefold() in {name.strip().casefold() for _, name in signed}:
        problems.append(("signer", f"{signer} has signed already: each signature is another person's"))
    if not signer.strip():
        problems.append(("signer", "is required"))
    if not content.startswith(b"%PDF-"):
        problems.append(("file", "is not a PDF"))
    elif len(content) > SIGNED_FILE_BYTES:
        problems.append(("file", f"is over {SIGNED_FILE_BYTES // 1_000_000} MB"))
    return problems


#: What releases an instalment.
Milestone = Literal["signature", "first_progress_report", "final_report"]
MILESTONES: tuple[Milestone, ...] = ("signature", "first_progress_report", "final_report")


class InstalmentRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The instalment's share of the award, in per cent.
    share: Decimal = Field(gt=0, le=100, decimal_places=2)
    #: What must hold before it is released: the agreement signed (and the grant active),
    #: the first progress report accepted, or the final report accepted.
    after: Milestone


def _default_instalments() -> list[InstalmentRule]:
    return [
        InstalmentRule(share=Decimal(40), after="signature"),
        InstalmentRule(share=Decimal(40), after="first_progress_report"),
        InstalmentRule(share=Decimal(20), after="final_report"),
    ]


class GrantSettings(BaseModel):
    """The round's `[grants]` table: every value has a default, and the round file may set each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instalments: list[InstalmentRule] = Field(default_factory=_default_instalments, min_length=1, max_length=12)
    #: A progress report (narrative and financial) every this many months of the project.
    report_every_months: int = Field(default=6, ge=1, le=24)
    #: A progress report is due this many days after the end of the period it covers.
    progress_report_days: int = Field(default=30, ge=1, le=180)
    #: The final report is due this many days after the project's end.
    final_report_days: int = Field(default=60, ge=1, le=365)
    #: Spending over a budget category beyond this share of it is flagged (per cent).
    category_tolerance_percent: Decimal = Field(default=Decimal(10), ge=0, le=100)
    #: Reminders this many days before a report is due; escalation this many days after.
    reminder_days: int = Field(default=14, ge=0, le=90)
    escalation_days: int = Field(default=14, ge=1, le=180)
    #: A report sent back for revision is due again this many days later (at the earliest).
    revision_days: int = Field(default=30, ge=1, le=180)
    #: A released instalment unpaid this many days later is flagged to the secretariat.
    payment_days: int = Field(default=30, ge=1, le=365)
    #: An unspent balance is returned (or written off with a reason) within this many days of the final report.
    balance_return_days: int = Field(default=365, ge=1, le=1095)

    @model_validator(mode="after")
    def _whole_award(self) -> GrantSettings:
        total = sum((rule.share for rule in self.instalments), Decimal(0))
        if total != 100:
            raise ValueError(f"the instalments' shares add up to {total} %, not 100 %")
        return self


def instalment_amounts(award: Decimal, rules: list[InstalmentRule]) -> list[Decimal]:
    """Each instalment's amount, to the cent: its share of the award rounded down, the
    last one taking what is left, so that they add up to the award exactly."""
    amounts = [(award * rule.share / 100).quantize(CENT, rounding=ROUND_DOWN) for rule in rules[:-1]]
    return [*amounts, award - sum(amounts, Decimal(0))]


def payment_problems(amount: Decimal, *, paid: Decimal, award: Decimal, due: Decimal) -> list[tuple[str, str]]:
    """Why a payment cannot be recorded: (field, what is wrong); none when it can.
    `due`: what the instalments released so far leave to pay."""
    problems: list[tuple[str, str]] = []
    if amount <= 0:
        problems.append(("amount", "must be more than zero"))
    elif paid + amount > award:
        total = paid + amount
        problems.append(
            ("amount", f"{amount:,.2f} would bring the payments to {total:,.2f}, above the award of {award:,.2f}")
        )
    elif amount > due:
        problems.append(
            ("amount", f"{amount:,.2f} is more than the {due:,.2f} the instalments released so far leave to pay")
        )
    return problems


def add_months(day: date, months: int) -> date:
    """The same day `months` later (the month's last day where it is shorter)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31,
            30, 31][month - 1]  # fmt: skip
    return date(year, month, min(day.day, last))


@dataclass(frozen=True)
class Condition:
    """One of the committee's conditions, as a line of the grant's checklist."""

    text: str
    met_at: datetime | None = None
    evidence: str | None = None


def conditions_of(text: str | None) -> list[Condition]:
    """The committee's conditions as a checklist: one line (or sentence list item) each."""
    lines = [line.strip(" -•*\t") for line in (text or "").splitlines()]
    return [Condition(line) for line in lines if line]


# --- Reports -------------------------------------------------------------------------


class ReportKind(StrEnum):
    PROGRESS = "progress"  # narrative and financial, for a period of the project
    FINAL = "final"  # narrative and financial, for the whole project


class ReportState(StrEnum):
    DUE = "due"
    SUBMITTED = "submitted"
    REVISION_REQUESTED = "revision_requested"
    ACCEPTED = "accepted"


#: The transition table of a report: (name) -> (from, to, needs a reason).
REPORT_TRANSITIONS: dict[str, tuple[frozenset[ReportState], ReportState, bool]] = {
    "submit": (frozenset({ReportState.DUE, ReportState.REVISION_REQUESTED}), ReportState.SUBMITTED, False),
    "accept": (frozenset({ReportState.SUBMITTED}), ReportState.ACCEPTED, False),
    "ask_revision": (frozenset({ReportState.SUBMITTED}), ReportState.REVISION_REQUESTED, True),
}


def plan_report_transition(current: ReportState, name: str, *, reason: str | None = None) -> ReportState:
    sources, target, needs_reason = REPORT_TRANSITIONS[name]
    if current not in sources:
        said = {
            ReportState.DUE: "is not submitted yet",
            ReportState.SUBMITTED: "is submitted and waits for the secretariat's review",
            ReportState.REVISION_REQUESTED: "waits for the recipient's revision",
            ReportState.ACCEPTED: "is accepted already",
        }[current]
        raise GrantTransitionError(f"the report {said}")
    if needs_reason and not (reason and reason.strip()):
        raise GrantTransitionError("asking for a revision needs the reasons")
    return target


@dataclass(frozen=True)
class ScheduledReport:
    number: int  # 1, 2, ... in the order they fall due; the final report is the last
    kind: ReportKind
    period_end: date
    due_on: date


def report_schedule(start: date, end: date, settings: GrantSettings) -> list[ScheduledReport]:
    """The reports a grant owes, from its agreement's start and (amended) end: a progress
    report for every `report_every_months` of the project before its end, then the final
    report `final_report_days` after the end."""
    reports: list[ScheduledReport] = []
    months = settings.report_every_months
    while (period_end := add_months(start, months * (len(reports) + 1))) < end:
        due = period_end + timedelta(days=settings.progress_report_days)
        reports.append(ScheduledReport(len(reports) + 1, ReportKind.PROGRESS, period_end, due))
    final = ScheduledReport(len(reports) + 1, ReportKind.FINAL, end, end + timedelta(days=settings.final_report_days))
    return [*reports, final]


def amended_schedule(
    start: date, end: date, settings: GrantSettings, *, progress_periods: set[date], today: date
) -> list[ScheduledReport]:
    """The schedule after the end moved (an extension): as `report_schedule`, less the
    progress reports the grant did not owe before (their period is not among
    `progress_periods`, the ends of the progress periods it has) whose due date is past
    already: the report after them covers their period, so that an extension never makes
    a report late on the day it is granted."""
    planned = report_schedule(start, end, settings)
    kept = [p for p in planned if p.kind is ReportKind.FINAL or p.period_end in progress_periods or p.due_on >= today]
    return [replace(p, number=number) for number, p in enumerate(kept, 1)]


class ReminderStep(StrEnum):
    NONE = "none"
    REMIND = "remind"  # within reminder_days before the due date: the recipient is reminded
    OVERDUE = "overdue"  # past the due date: the recipient is told it is late
    ESCALATE = "escalate"  # escalation_days past it: the secretariat is told too


def reminder_step(today: date, due_on: date, settings: GrantSettings) -> ReminderStep:
    """Where a report not yet in stands on `today`."""
    if today >= due_on + timedelta(days=settings.escalation_days):
        return ReminderStep.ESCALATE
    if today > due_on:
        return ReminderStep.OVERDUE
    if settings.reminder_days and today >= due_on - timedelta(days=settings.reminder_days):
        return ReminderStep.REMIND
    return ReminderStep.NONE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(NUL)
        return value


class IndicatorProgress(_Strict):
    #: Form A's output (its id) and the indicator's number in it (1, 2, ...).
    output: str = Field(min_length=1, max_length=300)
    indicator: int = Field(ge=1, le=200)
    progress: str = Field(min_length=1, max_length=5_000)


class ReportContent(_Strict):
    """What the recipient reports: what happened, progress per indicator of form A's
    outputs, and the spending in the period per budget category of form B."""

    narrative: str = Field(min_length=1, max_length=20_000)
    indicators: list[IndicatorProgress] = Field(default_factory=list, max_length=2_000)
    spending: dict[Literal[BUDGET_CATEGORIES], Amount] = Field(default_factory=dict)  # type: ignore[valid-type]


def read_report(data: Any, outputs: list[dict[str, Any]]) -> tuple[ReportContent | None, list[tuple[str, str]]]:
    """A report's content, checked against the shape above and form A's outputs: every
    indicator is reported once, and only form A's. Returns it, or the problems
    as (field, what is wrong)."""
    try:
        content = ReportContent.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "report"
            problems.append((where, str(error["msg"])))
        return None, problems
    # form A's ids are the applicant's text: two outputs may share one, and each of theirs is reported
    expected = Counter(
        (str(output.get("id")), number)
        for output in outputs
        for number, _ in enumerate(output.get("indicators") or [], 1)
    )
    problems = []
    seen: Counter[tuple[str, int]] = Counter()
    for index, line in enumerate(content.indicators):
        key = (line.output, line.indicator)
        seen[key] += 1
        if key not in expected:
            problems.append(
                (f"indicators.{index}", f"form A has no indicator {line.indicator} in output {line.output}")
            )
        elif seen[key] > expected[key]:
            problems.append(
                (f"indicators.{index}", f"indicator {line.indicator} of output {line.output} is reported twice")
            )
    for (output, number), count in sorted(expected.items()):
        if seen[(output, number)] < count:
            problems.append(("indicators", f"indicator {number} of output {output} has no progress reported"))
    return (None if problems else content), problems


@dataclass(frozen=True)
class SpendingFlag:
    category: str
    budget: Decimal
    spent: Decimal
    evidence: str


def spending_flags(
    budget: dict[str, Decimal], spent: dict[str, Decimal], tolerance_percent: Decimal
) -> list[SpendingFlag]:
    """The budget categories whose spending so far is beyond the round's tolerance over
    what they were given, with the figures as evidence (a category with no budget at all
    is flagged at any spending)."""
    flags = []
    for category in sorted(spent):
        given, used = budget.get(category, Decimal(0)), spent[category]
        limit = given * (1 + tolerance_percent / 100)
        if used > limit:
            if given:
                over = (used - given) / given * 100
                evidence = (
                    f"{category}: {used:,.2f} spent of {given:,.2f} budgeted, {over:.1f} % over "
                    f"(the round's tolerance is {tolerance_percent} %)"
                )
            else:
                evidence = f"{category}: {used:,.2f} spent, and the budget gives this category nothing"
            flags.append(SpendingFlag(category, given, used, evidence))
    return flags


# --- Amendments ----------------------------------------------------------------------


class AmendmentKind(StrEnum):
    EXTENSION = "extension"  # a no-cost extension: a new end date
    REALLOCATION = "reallocation"  # the budget moved between categories, the total unchanged
    CONTACT = "contact"  # a new contact person
    AGENCY = "agency"  # a new executing agency


class AmendmentState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REFUSED = "refused"


def extension_problems(start: date, end: date, new_end: date, accepted_until: date | None) -> list[tuple[str, str]]:
    """Why a new end date cannot be: before the start, the same as now, or before the end
    of a period whose report is accepted already."""
    if new_end <= start:
        return [("ends_on", f"{new_end} is not after the grant's start ({start})")]
    if new_end == end:
        return [("ends_on", f"the grant ends on {end} already")]
    if accepted_until and new_end < accepted_until:
        return [("ends_on", f"{new_end} is before {accepted_until}, the end of a period whose report is accepted")]
    return []


def reallocation_problems(budget: dict[str, Decimal], new: dict[str, Decimal]) -> list[tuple[str, str]]:
    """Why a budget reallocation cannot be: an unknown category, a negative amount, or a
    total that differs from the budget's (a reallocation moves money; it adds none)."""
    problems = [(f"budget.{c}", "is not a budget category") for c in sorted(new) if c not in BUDGET_CATEGORIES]
    problems += [(f"budget.{c}", "is below zero") for c in sorted(new) if new[c] < 0]
    before, after = sum(budget.values(), Decimal(0)), sum(new.values(), Decimal(0))
    if not problems and before != after:
        problems.append(("budget", f"adds up to {after:,.2f}; a reallocation keeps the total of {before:,.2f}"))
    if not problems and all(budget.get(c, Decimal(0)) == new.get(c, Decimal(0)) for c in set(budget) | set(new)):
        problems.append(("budget", "is the budget as it is"))
    return problems


# --- Close-out -----------------------------------------------------------------------


def close_problems(
    *, final_accepted: bool, owed: Decimal, unspent: Decimal, settled: Decimal, lessons: str | None
) -> list[tuple[str, str]]:
    """What still stands between a closing grant and its close: the final report
    accepted, what the released instalments still owe the recipient paid (`owed`: the
    spending the reports show, within what was released, less what was paid), the
    unspent balance returned or written off, the lessons recorded."""
    problems = []
    if not final_accepted:
        problems.append(("final_report", "is not accepted yet"))
    if owed > 0:
        problems.append(("payments", f"{owed:,.2f} of the released instalments, spent by the project, is not paid yet"))
    if settled < unspent:
        problems.append(
            ("balance", f"{unspent - settled:,.2f} of the unspent {unspent:,.2f} is neither returned nor written off")
        )
    if not (lessons and lessons.strip()):
        problems.append(("lessons", "are not recorded yet"))
    return problems
