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
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

#: The eight partnership areas of the Global Mercury Partnership.
Area = Literal["artisanal_gold_mining", "chlor_alkali", "air_transport_fate_research", "products",
               "coal_combustion", "waste_management", "supply_storage", "cement"]


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
        return cls(str(reviewer.email).lower(), reviewer.country, _normalised(reviewer.organisation),
                   frozenset(reviewer.areas), reviewer.max_load)


def _conflicts(person: _Person, subject: Subject, declared: Mapping[tuple[str, str], str]) -> list[ConflictSource]:
    found = []
    if person.country in subject.countries:
        found.append(ConflictSource.COUNTRY)
    if person.organisation and person.organisation == _normalised(subject.executing_agency):
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


def assign(subjects: list[Subject], reviewers: list[Reviewer], per_application: int,
           declared: Mapping[tuple[str, str], str] | None = None,
           loads: Mapping[str, int] | None = None) -> list[Placement]:
    """Give each application `per_application` reviewers. The most constrained
    applications (fewest possible reviewers) are placed first, each taking the least
    loaded of its possible reviewers, so that load is spread and as few places as
    possible are left unfilled. `loads` are assignments the reviewers already have in
    the round. The result follows the order of `subjects` and is deterministic."""
    declared = declared or {}
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
        possible, excluded = [], []
        agency = _normalised(subject.executing_agency)
        for index in sorted({i for area in subject.areas for i in by_area.get(area, [])}):  # register order
            person = people[index]
            if (person.country in subject.countries or (person.organisation and person.organisation == agency)
                    or (person.email, subject.reference) in declared):
                why = _conflicts(person, subject, declared)
                excluded.append(f"{person.email} not chosen: conflict of interest ({', '.join(w.value for w in why)})")
            else:
                possible.append(person.email)
        candidates[subject.reference] = possible
        left_out[subject.reference] = excluded
    order = sorted(range(len(subjects)), key=lambda i: (len(candidates[subjects[i].reference]), i))
    placements = {s.reference: Placement(s.reference) for s in subjects}
    for index in order:
        subject = subjects[index]
        placement = placements[subject.reference]
        free = [(load[e], e) for e in candidates[subject.reference] if load[e] < capacity[e]]
        for _, email in heapq.nsmallest(per_application, free):
            placement.reviewers.append(email)
            load[email] += 1
        placement.unfilled = per_application - len(placement.reviewers)
        if placement.unfilled:
            if not subject.areas:
                placement.reasons.append("the application's subject matches no partnership area; "
                                         "assign reviewers by hand or correct the area map")
            elif not candidates[subject.reference]:
                placement.reasons.append(f"no reviewer without a conflict covers {', '.join(sorted(subject.areas))}")
            else:
                placement.reasons.append(f"only {len(placement.reviewers)} reviewer(s) without a conflict and "
                                         f"below their maximum load cover {', '.join(sorted(subject.areas))}")
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
            if (subject.areas & person.areas and load[person.email] < person.max_load
                    and not _conflicts(person, subject, {})):
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
    return (max(counts.values()) - min(counts.values()) if counts else 0,
            sum(p.unfilled for p in placements))
