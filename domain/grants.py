"""After the decision: a grant for every approval, its states as a table, the round's
post-award settings, its instalments, and what a payment must respect.

The programme's exact post-award rules are not known: every number here (instalment
shares and what releases them, report periods, tolerances, deadlines) is a setting of
the round's `[grants]` table, with a default, never a rule in code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.money import CENT


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
    #: The final report is due this many days after the project's end.
    final_report_days: int = Field(default=60, ge=1, le=365)
    #: Spending over a budget category beyond this share of it is flagged (per cent).
    category_tolerance_percent: Decimal = Field(default=Decimal(10), ge=0, le=100)
    #: Reminders this many days before a report is due; escalation this many days after.
    reminder_days: int = Field(default=14, ge=0, le=90)
    escalation_days: int = Field(default=14, ge=1, le=180)
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
