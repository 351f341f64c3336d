"""The Steering Committee: its members and their terms, who may take part in a
decision on an application, and the rules a recorded decision must keep. Pure.

The committee has ten members, two from each UN region, two of them co-chairs; a
round's committee is the membership on the meeting date. A member does not take part
in the decision on an application from their own country, nor on one where they
declared a conflict (DOMAIN.md: the safe default)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.application import Email, Input
from domain.lifecycle import Status
from domain.money import CENT, CentsIn

REGIONS = ("AFRICA", "ASIA_PACIFIC", "CEE", "GRULAC", "WEOG")
MEMBERS, PER_REGION, CO_CHAIRS = 10, 2, 2


class Member(BaseModel):
    """A member of the Steering Committee for one term."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    name: str = Field(min_length=1, max_length=200)
    email: Email
    country: str = Field(pattern=r"^[A-Z]{3}$")
    role: Literal["member", "co-chair"]
    term_start: date
    term_end: date
    language: Literal["en", "fr", "es"]

    @model_validator(mode="after")
    def _term(self) -> Member:
        if self.term_end < self.term_start:
            raise ValueError(f"the term ends ({self.term_end}) before it starts ({self.term_start})")
        return self

    def serves_on(self, day: date) -> bool:
        return self.term_start <= day <= self.term_end


def serving(members: Iterable[Member], day: date) -> list[Member]:
    """The committee on `day`: the members whose term covers it."""
    return [m for m in members if m.serves_on(day)]


@dataclass(frozen=True)
class CompositionGap:
    """One way the committee of a day differs from its rule: too many or too few members
    (`region` None), members from a region, or co-chairs (`kind`)."""

    kind: Literal["members", "region", "co_chairs"]
    count: int
    expected: int
    region: str | None = None


def composition_gaps(members: list[Member], region_of: Mapping[str, str | None]) -> list[CompositionGap]:
    """How the committee of one day differs from its rule: ten members, two per UN
    region, two co-chairs (empty: as it should be). A vacancy is reported, not refused."""
    gaps = []
    if len(members) != MEMBERS:
        gaps.append(CompositionGap("members", len(members), MEMBERS))
    regions = Counter(region_of.get(m.country) for m in members)
    for region in REGIONS:
        if regions.get(region, 0) != PER_REGION:
            gaps.append(CompositionGap("region", regions.get(region, 0), PER_REGION, region))
    co_chairs = sum(m.role == "co-chair" for m in members)
    if co_chairs != CO_CHAIRS:
        gaps.append(CompositionGap("co_chairs", co_chairs, CO_CHAIRS))
    return gaps


def composition_problems(members: list[Member], region_of: Mapping[str, str | None]) -> list[str]:
    """`composition_gaps` in the secretariat's words (English)."""
    said = {
        "members": "{count} members serve, not {expected}",
        "region": "{count} member(s) from {region}, not {expected}",
        "co_chairs": "{count} co-chair(s), not {expected}",
    }
    return [
        said[g.kind].format(count=g.count, expected=g.expected, region=g.region)
        for g in composition_gaps(members, region_of)
    ]


def overlapping_terms(members: list[Member]) -> list[tuple[Member, Member]]:
    """Pairs of terms of the same person that overlap (a register error)."""
    by_email: dict[str, list[Member]] = {}
    for m in members:
        by_email.setdefault(str(m.email).lower(), []).append(m)
    pairs = []
    for terms in by_email.values():
        terms.sort(key=lambda m: m.term_start)
        pairs += [(a, b) for a, b in zip(terms, terms[1:], strict=False) if b.term_start <= a.term_end]
    return pairs


def member_conflict(member: Member, countries: Iterable[str], declared: bool) -> str | None:
    """Why `member` takes no part in the decision on an application from `countries`
    (applicant and co-applicants): own country, or a declared conflict. None: no conflict."""
    if member.country in set(countries):
        return "own country"
    if declared:
        return "declared conflict"
    return None


class Decision(StrEnum):
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    NOT_APPROVED = "not_approved"
    DEFERRED = "deferred"


#: The transition of the application's state machine each decision makes.
TRANSITION = {
    Decision.APPROVED: "approve",
    Decision.APPROVED_WITH_CONDITIONS: "approve_with_conditions",
    Decision.NOT_APPROVED: "not_approve",
    Decision.DEFERRED: "defer",
}
APPROVALS = frozenset({Decision.APPROVED, Decision.APPROVED_WITH_CONDITIONS})
#: Statuses of an application that did not pass screening.
NOT_SCREENED_IN = frozenset({Status.SUBMITTED, Status.INFORMATION_REQUESTED, Status.INCOMPLETE, Status.INELIGIBLE})

_AMOUNT = re.compile(r"^\d+(\.\d{1,2})?$")


def parse_amount(text: str) -> Decimal:
    """An amount as the secretariat writes it in a decisions sheet: digits, and cents
    after a point; no thousands separator, no currency sign."""
    value = text.strip()
    if not _AMOUNT.match(value):
        raise ValueError(
            f"{text!r} is not an amount: write 200000 or 200000.50, without thousands separators or "
            "currency sign (amounts are in US dollars)"
        )
    return Decimal(value).quantize(CENT)


class DecisionIn(Input):
    """A decision of the committee on one application, as the secretariat records it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reference: str = Field(min_length=1, max_length=60)
    decision: Decision
    amount: CentsIn | None = None
    conditions: str | None = Field(default=None, max_length=5000)
    recommendations: str | None = Field(default=None, max_length=10000)
    #: Who took part; default: the meeting's attendees without the conflicted members.
    participants: list[Email] | None = None
    #: Why the committee decides on an application that did not pass screening.
    exception: str | None = Field(default=None, max_length=2000)


@dataclass(frozen=True)
class Facts:
    """What a decision is checked against."""

    status: Status
    requested: Decimal | None
    amount_min: Decimal
    amount_max: Decimal
    funds_available: Decimal | None
    approved_elsewhere: Decimal  # approvals of the round's other applications
    committee: frozenset[str]  # e-mails of the members serving on the meeting date
    conflicted: Mapping[str, str]  # member e-mail -> why they take no part
    quorum: int


def decision_problems(d: DecisionIn, facts: Facts, participants: list[str]) -> list[tuple[str, str]]:
    """Every rule the decision breaks, as (field, message); empty: it may be recorded."""
    problems: list[tuple[str, str]] = []
    if d.decision in APPROVALS:
        if d.amount is None:
            problems.append(("amount", "an approval needs the amount approved"))
        else:
            if facts.requested is not None and d.amount > facts.requested:
                problems.append(("amount", f"{d.amount:,.2f} is above the {facts.requested:,.2f} requested"))
            if not facts.amount_min <= d.amount <= facts.amount_max:
                problems.append(
                    (
                        "amount",
                        f"{d.amount:,.2f} is outside the round's range "
                        f"({facts.amount_min:,.0f} to {facts.amount_max:,.0f})",
                    )
                )
            if facts.funds_available is None:
                problems.append(
                    ("amount", "the funds available for the round are not set: set them before recording approvals")
                )
            elif facts.approved_elsewhere + d.amount > facts.funds_available:
                problems.append(
                    (
                        "amount",
                        f"approvals would total {facts.approved_elsewhere + d.amount:,.2f}, "
                        f"above the {facts.funds_available:,.2f} available",
                    )
                )
    elif d.amount is not None:
        problems.append(("amount", f"a decision '{d.decision.value}' carries no amount"))
    if d.decision is Decision.APPROVED_WITH_CONDITIONS and not d.conditions:
        problems.append(("conditions", "an approval with conditions needs the conditions"))
    if d.decision is Decision.DEFERRED and not (d.recommendations or d.conditions):
        problems.append(("recommendations", "say why the decision is deferred (recommendations)"))
    if facts.status in (Status.INFORMATION_REQUESTED, Status.WITHDRAWN):
        problems.append(
            (
                "reference",
                f"{d.reference} is {facts.status.value.replace('_', ' ')}: "
                + (
                    "it waits for the applicant's answer; screen it first"
                    if facts.status is Status.INFORMATION_REQUESTED
                    else "nothing to decide"
                ),
            )
        )
    elif facts.status in NOT_SCREENED_IN and not d.exception:
        problems.append(
            (
                "exception",
                f"{d.reference} did not pass screening ({facts.status.value}); the committee "
                "decides on it only with a reasoned exception",
            )
        )
    unknown = sorted(set(participants) - facts.committee)
    if unknown:
        problems.append(("participants", f"not on the committee on the meeting date: {', '.join(unknown)}"))
    conflicted = sorted(p for p in participants if p in facts.conflicted)
    if conflicted:
        problems.append(
            (
                "participants",
                "conflicted, so taking no part: " + ", ".join(f"{p} ({facts.conflicted[p]})" for p in conflicted),
            )
        )
    if len(participants) < facts.quorum:
        problems.append(("participants", f"{len(participants)} member(s) took part; the quorum is {facts.quorum}"))
    return problems


def quorum_of(setting: int | None, serving_count: int) -> int:
    """The round's quorum, or (unset) a majority of the members serving."""
    return setting if setting is not None else serving_count // 2 + 1


#: How far from its round a committee meeting may be: from the day the round opens to two
#: years after it closes, and a fortnight long at most.
MEETING_LATEST_AFTER_CLOSE = timedelta(days=731)
MEETING_LONGEST = timedelta(days=14)


def meeting_problems(starts_on: date, ends_on: date, opens_on: date, closes_on: date) -> list[tuple[str, str]]:
    """What is wrong with a meeting's dates for its round, as (field, why); none if they hold:
    it ends on or after the day it starts, lasts at most a fortnight, and starts between the
    round's opening and two years after its closing."""
    problems: list[tuple[str, str]] = []
    latest = closes_on + MEETING_LATEST_AFTER_CLOSE
    if starts_on < opens_on:
        problems.append(("starts_on", f"is before the round opens ({opens_on})"))
    elif starts_on > latest:
        problems.append(("starts_on", f"is more than two years after the round closes ({closes_on}); at most {latest}"))
    if ends_on < starts_on:
        problems.append(("ends_on", f"is before the meeting starts ({starts_on})"))
    elif ends_on - starts_on >= MEETING_LONGEST:
        last = starts_on + MEETING_LONGEST - timedelta(days=1)
        problems.append(("ends_on", f"makes a meeting longer than {MEETING_LONGEST.days} days; at most {last}"))
    return problems
