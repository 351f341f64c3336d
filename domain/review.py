"""Global Mercury Partnership technical review: the partnership's areas, which areas an
application is about, conflicts of interest, and the assignment of reviewers. Pure.

The assignment gives every application the number of reviewers asked for, from those
whose areas match the application's, within each reviewer's maximum load and spreading
the load, and never a conflicted reviewer. Where it cannot, it says why."""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from domain.application import Input, Integer
from domain.rounds import ReviewSettings, TechnicalCriterion

#: The eight partnership areas of the Global Mercury Partnership.
Area = Literal[
    "artisanal_gold_mining",
    "chlor_alkali",
    "air_transport_fate_research",
    "products",
    "coal_combustion",
    "waste_management",
    "supply_storage",
    "cement",
]


class Reviewer(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    organisation: str = Field(min_length=1, max_length=300)
    country: str = Field(pattern=r"^[A-Z]{3}$")
    areas: tuple[Area, ...] = Field(min_length=1)
    languages: tuple[Literal["en", "fr", "es"], ...] = Field(min_length=1)
    max_load: int = Field(ge=0, le=1000)


class AreaMap(BaseModel):
    """Data: which Convention articles and which words of an application point to which
    partnership areas (`engine/data/partnership_areas.toml`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    articles: dict[str, list[Area]]
    keywords: dict[Area, list[str]]

    def areas_of(self, articles: Iterable[int], text: str) -> set[str]:
        found: set[str] = set()
        for article in articles:
            found.update(self.articles.get(str(article), []))
        words = text.lower()
        for area, keywords in self.keywords.items():
            if any(re.search(rf"\b{re.escape(k.lower())}", words) for k in keywords):
                found.add(area)
        return found


class ConflictSource(StrEnum):
    COUNTRY = "country"  # the application is from the reviewer's country (applicant or co-applicant)
    ORGANISATION = "organisation"  # the executing agency is the reviewer's organisation
    DECLARED = "declared"  # the reviewer (or the secretariat) declared it


@dataclass(frozen=True)
class Subject:
    """What the assignment needs to know of an application."""

    reference: str
    countries: frozenset[str]  # applicant and co-applicants
    executing_agency: str
    areas: frozenset[str]
    assigned: tuple[str, ...] = ()  # reviewers (e-mails) it already has: they hold places


def _normalised(organisation: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", organisation.lower()).split())


def conflicts(reviewer: Reviewer, subject: Subject, declared: Mapping[tuple[str, str], str]) -> list[ConflictSource]:
    """Why `reviewer` must not review `subject` (empty: no conflict). `declared` maps
    (reviewer e-mail, reference) to the declared reason."""
    return _conflicts(_Person.of(reviewer), subject, declared)


@dataclass(frozen=True)
class _Person:
    """A reviewer as the assignment looks at them, worked out once."""

    email: str
    country: str
    organisation: str  # normalised
    areas: frozenset[str]
    max_load: int

    @classmethod
    def of(cls, reviewer: Reviewer) -> _Person:
        return cls(
            str(reviewer.email).lower(),
            reviewer.country,
            _normalised(reviewer.organisation),
            frozenset(reviewer.areas),
            reviewer.max_load,
        )


def _conflicts(
    person: _Person, subject: Subject, declared: Mapping[tuple[str, str], str], agency: str | None = None
) -> list[ConflictSource]:
    """`agency`: the subject's executing agency, normalised (worked out once by a caller
    that asks about many reviewers)."""
    found = []
    if person.country in subject.countries:
        found.append(ConflictSource.COUNTRY)
    if person.organisation and person.organisation == (
        agency if agency is not None else _normalised(subject.executing_agency)
    ):
        found.append(ConflictSource.ORGANISATION)
    if (person.email, subject.reference) in declared:
        found.append(ConflictSource.DECLARED)
    return found


@dataclass
class Placement:
    reference: str
    reviewers: list[str] = field(default_factory=list)  # e-mails
    unfilled: int = 0
    reasons: list[str] = field(default_factory=list)  # why places are unfilled, and who was left out


def assign(
    subjects: list[Subject],
    reviewers: list[Reviewer],
    per_application: int,
    declared: Mapping[tuple[str, str], str] | None = None,
    loads: Mapping[str, int] | None = None,
    excluded: Mapping[tuple[str, str], str] | None = None,
) -> list[Placement]:
    """Give each application `per_application` reviewers. The most constrained
    applications (fewest possible reviewers) are placed first, each taking the least
    loaded of its possible reviewers, so that load is spread and as few places as
    possible are left unfilled. `loads` are assignments the reviewers already have in
    the round; `excluded` maps (e-mail, reference) to why that reviewer is not to be
    proposed again (they declined, or the secretariat removed them). The result
    follows the order of `subjects` and is deterministic."""
    declared = declared or {}
    excluded = excluded or {}
    people = [_Person.of(r) for r in reviewers]
    load = {p.email: (loads or {}).get(p.email, 0) for p in people}
    capacity = {p.email: p.max_load for p in people}
    by_area: dict[str, list[int]] = {}
    for index, person in enumerate(people):
        for area in person.areas:
            by_area.setdefault(area, []).append(index)
    candidates: dict[str, list[str]] = {}
    left_out: dict[str, list[str]] = {}
    for subject in subjects:
        possible: list[str] = []
        left: list[str] = []
        agency = _normalised(subject.executing_agency)
        for index in sorted({i for area in subject.areas for i in by_area.get(area, [])}):  # register order
            person = people[index]
            if person.email in subject.assigned:
                continue
            why = _conflicts(person, subject, declared, agency)
            if why:
                left.append(f"{person.email} not chosen: conflict of interest ({', '.join(w.value for w in why)})")
            elif (person.email, subject.reference) in excluded:
                left.append(f"{person.email} not chosen: {excluded[person.email, subject.reference]}")
            else:
                possible.append(person.email)
        candidates[subject.reference] = possible
        left_out[subject.reference] = left
    order = sorted(range(len(subjects)), key=lambda i: (len(candidates[subjects[i].reference]), i))
    placements = {s.reference: Placement(s.reference, list(s.assigned)) for s in subjects}
    for index in order:
        subject = subjects[index]
        placement = placements[subject.reference]
        free = [(load[e], e) for e in candidates[subject.reference] if load[e] < capacity[e]]
        for _, email in heapq.nsmallest(max(per_application - len(subject.assigned), 0), free):
            placement.reviewers.append(email)
            load[email] += 1
        placement.unfilled = max(per_application - len(placement.reviewers), 0)
        if placement.unfilled:
            if not subject.areas:
                placement.reasons.append(
                    "the application's subject matches no partnership area; "
                    "assign reviewers by hand or correct the area map"
                )
            elif not candidates[subject.reference]:
                placement.reasons.append(f"no reviewer without a conflict covers {', '.join(sorted(subject.areas))}")
            else:
                placement.reasons.append(
                    f"only {len(placement.reviewers)} reviewer(s) without a conflict and "
                    f"below their maximum load cover {', '.join(sorted(subject.areas))}"
                )
        placement.reasons += left_out[subject.reference]
    return [placements[s.reference] for s in subjects]


def greedy(subjects: list[Subject], reviewers: list[Reviewer], per_application: int) -> list[Placement]:
    """The baseline the benchmark compares with: applications in order, each taking
    the first reviewers in the register who match, are free of conflict and below load."""
    people = [_Person.of(r) for r in reviewers]
    load = {p.email: 0 for p in people}
    placements = []
    for subject in subjects:
        placement = Placement(subject.reference)
        for person in people:
            if len(placement.reviewers) == per_application:
                break
            if (
                subject.areas & person.areas
                and load[person.email] < person.max_load
                and not _conflicts(person, subject, {})
            ):
                placement.reviewers.append(person.email)
                load[person.email] += 1
        placement.unfilled = per_application - len(placement.reviewers)
        placements.append(placement)
    return placements


def load_spread(placements: list[Placement], reviewers: list[Reviewer]) -> tuple[int, int]:
    """(max - min assignments per reviewer, places left unfilled)."""
    counts = {str(r.email).lower(): 0 for r in reviewers}
    for placement in placements:
        for email in placement.reviewers:
            counts[email] += 1
    return (max(counts.values()) - min(counts.values()) if counts else 0, sum(p.unfilled for p in placements))


def spread_lower_bound(max_loads: list[int], places: int) -> int:
    """The smallest load spread (max minus min per reviewer) any assignment of `places`
    places can reach, given only the reviewers' limits: the most loaded reviewer holds at
    least the level at which the places, poured up to each limit, run out, and the
    least loaded at most the smallest limit. Conflicts and areas can only raise it, so
    an assignment that reaches it is optimal."""
    if not max_loads or places <= 0:
        return 0
    if places > sum(max_loads):
        raise ValueError(f"{places} places do not fit in limits that add up to {sum(max_loads)}")
    level = next(n for n in range(max(max_loads) + 1) if sum(min(c, n) for c in max_loads) >= places)
    if level <= min(max_loads):  # every reviewer can reach the level: as even as whole places allow
        return 0 if places % len(max_loads) == 0 else 1
    return level - min(max_loads)


# --- the life of an assignment -----------------------------------------------------


class AssignmentState(StrEnum):
    PROPOSED = "proposed"  # by the assignment or the secretariat; the reviewer does not know yet
    INVITED = "invited"  # the invitation went out; the review is awaited
    SUBMITTED = "submitted"  # the reviewer submitted the review
    DECLINED = "declined"  # the reviewer declined
    CONFLICTED = "conflicted"  # a conflict of interest was declared after the assignment
    REMOVED = "removed"  # the secretariat took the reviewer off the application


#: Assignments that hold one of an application's places.
ACTIVE_STATES = frozenset({AssignmentState.PROPOSED, AssignmentState.INVITED, AssignmentState.SUBMITTED})
#: Assignments through which a reviewer sees the application.
VISIBLE_STATES = frozenset({AssignmentState.INVITED, AssignmentState.SUBMITTED})

_ASSIGNMENT_MOVES: dict[str, tuple[frozenset[AssignmentState], AssignmentState, frozenset[str]]] = {
    "invite": (frozenset({AssignmentState.PROPOSED}), AssignmentState.INVITED, frozenset({"secretariat", "system"})),
    "submit": (frozenset({AssignmentState.INVITED}), AssignmentState.SUBMITTED, frozenset({"reviewer"})),
    "decline": (frozenset({AssignmentState.INVITED}), AssignmentState.DECLINED, frozenset({"reviewer"})),
    "declare_conflict": (
        frozenset({AssignmentState.PROPOSED, AssignmentState.INVITED}),
        AssignmentState.CONFLICTED,
        frozenset({"reviewer", "secretariat"}),
    ),
    "remove": (
        frozenset({AssignmentState.PROPOSED, AssignmentState.INVITED}),
        AssignmentState.REMOVED,
        frozenset({"secretariat"}),
    ),
    "restore": (
        frozenset({AssignmentState.REMOVED, AssignmentState.DECLINED}),
        AssignmentState.PROPOSED,
        frozenset({"secretariat"}),
    ),
}


class AssignmentError(Exception):
    """A move the assignment's state does not allow; the message says why."""


def plan_assignment(state: AssignmentState, move: str, role: str) -> AssignmentState:
    """The state an assignment moves to, or `AssignmentError`."""
    sources, target, roles = _ASSIGNMENT_MOVES[move]
    if role not in roles:
        raise AssignmentError(f"a {role} may not {move.replace('_', ' ')} an assignment")
    if state not in sources:
        done = {
            AssignmentState.SUBMITTED: "the review was submitted",
            AssignmentState.DECLINED: "it was declined",
            AssignmentState.CONFLICTED: "a conflict of interest was declared",
            AssignmentState.REMOVED: "the reviewer was taken off it",
            AssignmentState.INVITED: "it is invited",
            AssignmentState.PROPOSED: "it is only proposed (no invitation yet)",
        }[state]
        raise AssignmentError(f"cannot {move.replace('_', ' ')}: {done}")
    return target


# --- reviews ---------------------------------------------------------------------


class Recommendation(StrEnum):
    SUPPORT = "support"
    SUPPORT_WITH_CHANGES = "support_with_changes"
    DO_NOT_SUPPORT = "do_not_support"


class ReviewState(StrEnum):
    DRAFT = "draft"  # saved by the reviewer, still changing
    SUBMITTED = "submitted"  # submitted: it no longer changes


COMMENT_LENGTH = 20_000


class ReviewDraft(Input):
    """What a reviewer writes: a score per technical criterion of the round, a
    recommendation, comments for the committee and, separately, comments that may be
    passed to the applicant. A draft may be partial; a submitted review may not."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    scores: dict[str, Annotated[int, Integer]] = Field(default_factory=dict)
    recommendation: Recommendation | None = None
    comments_for_committee: str | None = Field(default=None, max_length=COMMENT_LENGTH)
    comments_for_applicant: str | None = Field(default=None, max_length=COMMENT_LENGTH)


@dataclass(frozen=True)
class ReviewProblem:
    field: str
    message: str


def review_problems(draft: ReviewDraft, criteria: list[TechnicalCriterion], *, final: bool) -> list[ReviewProblem]:
    """Everything wrong with a review (empty: none). Scores must be on their
    criterion's scale; a submitted review scores every criterion, recommends, and
    tells the committee why."""
    problems = []
    by_id = {c.id: c for c in criteria}
    for criterion, score in draft.scores.items():
        known = by_id.get(criterion)
        if known is None:
            problems.append(
                ReviewProblem(
                    f"scores.{criterion}", f"is not a technical criterion of this round (criteria: {', '.join(by_id)})"
                )
            )
        elif score not in known.scale:
            problems.append(
                ReviewProblem(f"scores.{criterion}", f"{score} is not on the scale {', '.join(map(str, known.scale))}")
            )
    if final:
        problems += [
            ReviewProblem(f"scores.{c.id}", "is required to submit the review")
            for c in criteria
            if c.id not in draft.scores
        ]
        if draft.recommendation is None:
            problems.append(
                ReviewProblem(
                    "recommendation", "is required to submit the review: " + ", ".join(r.value for r in Recommendation)
                )
            )
        if not draft.comments_for_committee:
            problems.append(ReviewProblem("comments_for_committee", "is required to submit the review"))
    return problems


# --- what the committee reads ---------------------------------------------------------


@dataclass(frozen=True)
class CriterionSummary:
    id: str
    title: str
    scores: tuple[int, ...]
    mean: Decimal | None
    spread: int | None  # max - min
    disagreement: bool


@dataclass(frozen=True)
class ReviewSummary:
    """One application's submitted reviews, aggregated."""

    reference: str
    asked: int  # reviews asked for (the round's reviewers per application)
    submitted: int
    criteria: tuple[CriterionSummary, ...]
    recommendations: dict[str, int]
    disagreement: bool
    why: tuple[str, ...]  # what the disagreement is about

    @property
    def short(self) -> bool:
        """Fewer reviews than asked for."""
        return self.submitted < self.asked


def summarise(
    reference: str,
    asked: int,
    reviews: list[tuple[Mapping[str, int], str]],
    criteria: list[TechnicalCriterion],
    threshold: int,
) -> ReviewSummary:
    """Per criterion, the mean (one decimal) and spread of the submitted scores; the
    recommendations; and whether reviewers disagree strongly: scores `threshold` or
    more apart on a criterion, or one reviewer supporting what another does not."""
    rows, why = [], []
    for criterion in criteria:
        scores = tuple(s[criterion.id] for s, _ in reviews if criterion.id in s)
        mean = (Decimal(sum(scores)) / len(scores)).quantize(Decimal("0.1")) if scores else None
        spread = max(scores) - min(scores) if scores else None
        apart = spread is not None and spread >= threshold
        if apart:
            why.append(f"{criterion.id}: scores {', '.join(map(str, scores))}")
        rows.append(CriterionSummary(criterion.id, criterion.title, scores, mean, spread, apart))
    counts = {r.value: 0 for r in Recommendation}
    for _, recommendation in reviews:
        counts[recommendation] += 1
    if counts[Recommendation.DO_NOT_SUPPORT] and (
        counts[Recommendation.SUPPORT] or counts[Recommendation.SUPPORT_WITH_CHANGES]
    ):
        why.append("recommendations differ: some support, some do not")
    return ReviewSummary(reference, asked, len(reviews), tuple(rows), counts, bool(why), tuple(why))


# --- the review stage's dates -----------------------------------------------------------


def due_date(settings: ReviewSettings, invited_on: date) -> date:
    """The day reviews are due: the round's date, or `due_days` after the invitations."""
    return settings.due or invited_on + timedelta(days=settings.due_days)


class StageStep(StrEnum):
    NOTHING = "nothing"
    REMIND = "remind"  # reviews are due soon
    OVERDUE = "overdue"  # the due date has passed


def stage_step(today: date, due: date, reminder_days: int) -> StageStep:
    """What the daily run of the review stage does today."""
    if today > due:
        return StageStep.OVERDUE
    if today >= due - timedelta(days=reminder_days):
        return StageStep.REMIND
    return StageStep.NOTHING
