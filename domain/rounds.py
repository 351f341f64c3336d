"""Rounds as data: the validated shape of a round definition, and the round's
status as it follows its dates and the secretariat's actions. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.grants import GrantSettings
from domain.hints import Hint, Step
from domain.money import Amount

ROUND_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
STAGES = ("screening", "gmp_review", "committee")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2018-08-31T23:59:59+02:00")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


#: Checks the engine evaluates for an appraisal criterion of kind "check".
CheckRule = Literal[
    "consultation_confirmed",
    "logical_framework_complete",
    "gender_addressed",
    "co_financing_declared",
    "related_projects_declared",
]

#: The completeness checklist (chapter 2 of the guidelines); a round lists the ones it uses.
CompletenessCheck = Literal[
    "form_a",
    "form_b",
    "form_c",
    "form_c_signed",
    "consultation_confirmed",
    "logical_framework",
    "workplan",
    "budget_lines",
]
COMPLETENESS_CHECKS: tuple[CompletenessCheck, ...] = get_args(CompletenessCheck)
Economy = Literal["developing", "transition", "developed"]


class CriterionKind(StrEnum):
    CHECK = "check"  # evaluated by the engine
    JUDGEMENT = "judgement"  # scored by a person on the round's scale


Language = Literal["fr", "es"]


class _Titled(BaseModel):
    """A title in English, and in French and Spanish where the round file gives them
    (`title_translations = { fr = "...", es = "..." }`); English where it does not."""

    title: str = Field(min_length=1, max_length=300)
    title_translations: dict[Language, str] = Field(default_factory=dict)

    def title_in(self, language: str) -> str:
        return next((title for lang, title in self.title_translations.items() if lang == language), self.title)


class Criterion(_Titled):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$", max_length=64)
    kind: CriterionKind
    weight: Decimal = Field(ge=0)
    scale: list[int] | None = None
    rule: CheckRule | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _scale_matches_kind(self) -> Criterion:
        if self.kind is CriterionKind.JUDGEMENT:
            if not self.scale:
                raise ValueError(f"criterion {self.id!r}: a judgement needs a scale with at least one value")
            if len(set(self.scale)) != len(self.scale):
                raise ValueError(f"criterion {self.id!r}: the scale repeats a value")
            if self.rule is not None:
                raise ValueError(f"criterion {self.id!r}: a judgement is scored by a person and has no rule")
        else:
            if self.scale is not None:
                raise ValueError(f"criterion {self.id!r}: only a judgement has a scale")
            if self.rule is None:
                raise ValueError(
                    f"criterion {self.id!r}: a check needs the rule the engine evaluates, one of "
                    f"{', '.join(get_args(CheckRule))}"
                )
        return self


class TechnicalCriterion(_Titled):
    """A criterion the Global Mercury Partnership's reviewers score, on its scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$", max_length=64)
    scale: list[int] = Field(min_length=2)
    description: str | None = None

    @field_validator("scale")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("the scale repeats a value")
        return value


def _default_technical_criteria() -> list[TechnicalCriterion]:
    """The engine's DEFAULT technical criteria (the partnership's own are not public)."""
    scale = [1, 2, 3, 4, 5]
    return [
        TechnicalCriterion(id=i, title=en, title_translations={"fr": fr, "es": es}, scale=scale)
        for i, en, fr, es in (
            (
                "technical_soundness",
                "Technical soundness of the approach",
                "Solidité technique de l'approche",
                "Solidez técnica del enfoque",
            ),
            (
                "area_relevance",
                "Relevance to the partnership area and the Convention's obligations",
                "Pertinence au regard du domaine de partenariat et des obligations de la Convention",
                "Pertinencia para el área de la Alianza y las obligaciones del Convenio",
            ),
            (
                "feasibility",
                "Feasibility of the activities, workplan and budget",
                "Faisabilité des activités, du plan de travail et du budget",
                "Viabilidad de las actividades, el plan de trabajo y el presupuesto",
            ),
            (
                "expected_results",
                "Expected results for reducing mercury use, emissions or releases",
                "Résultats attendus pour la réduction de l'utilisation, des émissions ou des rejets de mercure",
                "Resultados esperados en la reducción del uso, las emisiones o las liberaciones de mercurio",
            ),
        )
    ]


class ReviewSettings(BaseModel):
    """The Global Mercury Partnership review stage of a round (rounds whose `stages`
    include gmp_review). Every value has a default; the round file may set each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Where the technical criteria come from, e.g. 'default'.
    criteria_set: str = Field(default="default", min_length=1)
    criteria: list[TechnicalCriterion] = Field(default_factory=_default_technical_criteria, min_length=1)
    #: The day reviews are due (in the round's time zone); unset: `due_days` after the invitations.
    due: date | None = None
    due_days: int = Field(default=21, ge=1, le=365)
    #: A reminder goes to reviewers with reviews outstanding this many days before the due date.
    reminder_days: int = Field(default=3, ge=0, le=60)
    #: Reviewers disagree strongly on a criterion when their scores are this far apart (max - min).
    disagreement_threshold: int = Field(default=2, ge=1)
    #: Whether the committee's bundles name the reviewers (otherwise "Reviewer 1", "Reviewer 2").
    reviewer_identities_to_committee: bool = False

    @model_validator(mode="after")
    def _distinct_criteria(self) -> ReviewSettings:
        ids = [c.id for c in self.criteria]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"review criteria ids repeat: {', '.join(dupes)}")
        return self


class CommitteeSettings(BaseModel):
    """How the Steering Committee decides on the round's applications (its rules are
    not public: settings with safe defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Members who must take part in a decision; unset: a majority of the members serving.
    quorum: int | None = Field(default=None, ge=1, le=10)
    decision_rule: Literal["consensus", "majority"] = "consensus"


class Meeting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    starts_on: str
    ends_on: str
    place: str


class RoundDefinition(BaseModel):
    """One call for applications, as the secretariat writes it in `rounds/*.toml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(max_length=40)
    title: str = Field(min_length=1, max_length=200)
    title_translations: dict[Language, str] = Field(default_factory=dict)
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    timezone: str = "Europe/Zurich"
    currency: Literal["USD"] = "USD"
    amount_min: Amount
    amount_max: Amount
    stages: list[Literal["screening", "gmp_review", "committee"]]
    max_applications_per_party: int | None = Field(default=None, ge=1)
    max_duration_months: int | None = Field(default=None, ge=1)
    eligible_economies: list[Economy] = Field(default=["developing", "transition"], min_length=1)
    completeness_checks: list[CompletenessCheck] = Field(default=list(COMPLETENESS_CHECKS))
    #: Days an applicant has to send items the secretariat asks for (unless it gives a date).
    response_days: int = Field(default=14, ge=1, le=365)
    #: Global Mercury Partnership reviewers per application (rounds with the gmp_review stage).
    reviewers_per_application: int = Field(default=2, ge=1, le=10)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    committee: CommitteeSettings = Field(default_factory=CommitteeSettings)
    #: After the decision: instalments, reports, tolerances and deadlines (every one a setting).
    grants: GrantSettings = Field(default_factory=GrantSettings)
    languages: list[Literal["en", "fr", "es"]] = ["en", "fr", "es"]
    criteria_set: str = Field(min_length=1, description="where the criteria come from, e.g. 'default'")
    criteria: list[Criterion]
    meeting: Meeting | None = None
    notes: str | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ROUND_ID.match(value):
            raise ValueError("lower-case letters, digits and single hyphens only, e.g. sip-2018-r1")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Zurich (Geneva)") from None
        return value

    @field_validator("stages")
    @classmethod
    def _stages_in_order(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a stage is listed twice")
        if value != [s for s in STAGES if s in value]:
            raise ValueError(f"stages must keep the order {', '.join(STAGES)}")
        if "screening" not in value or "committee" not in value:
            raise ValueError("every round has the screening and committee stages")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RoundDefinition:
        if self.closes_at <= self.opens_at:
            raise ValueError(
                f"closes_at ({self.closes_at.isoformat()}) must be after opens_at ({self.opens_at.isoformat()})"
            )
        if self.amount_min > self.amount_max:
            raise ValueError(f"amount_min ({self.amount_min}) is above amount_max ({self.amount_max})")
        ids = [c.id for c in self.criteria]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"criteria ids repeat: {', '.join(dupes)}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def title_in(self, language: str) -> str:
        return next((title for lang, title in self.title_translations.items() if lang == language), self.title)

    @property
    def has_gmp_review(self) -> bool:
        return "gmp_review" in self.stages


class RoundStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    SCREENING = "screening"
    REVIEW = "review"
    COMMITTEE = "committee"
    DECIDED = "decided"
    ARCHIVED = "archived"


class RoundActionError(Exception):
    """A secretariat action on a round that its status or dates do not allow, with the
    steps that would allow it."""

    def __init__(self, message: str, hints: tuple[Hint, ...] = ()):
        super().__init__(message)
        self.hints = hints


@dataclass(frozen=True)
class RoundMove:
    """One move of a round's status: from which statuses, to which, and the audit
    action that records it. Whether a move is due (the dates, the stages a round has)
    is for the `plan_*` rules below; which moves exist at all is this table."""

    name: str
    sources: frozenset[RoundStatus]
    target: RoundStatus
    action: str


#: Every move of a round's status, in the order of a round.
ROUND_TRANSITIONS: dict[str, RoundMove] = {
    move.name: move
    for move in (
        RoundMove("open", frozenset({RoundStatus.DRAFT}), RoundStatus.OPEN, "round.opened"),
        RoundMove("close", frozenset({RoundStatus.OPEN}), RoundStatus.CLOSED, "round.closed"),
        RoundMove("start_screening", frozenset({RoundStatus.CLOSED}), RoundStatus.SCREENING, "round.screening"),
        RoundMove("open_review", frozenset({RoundStatus.SCREENING}), RoundStatus.REVIEW, "round.review_opened"),
        RoundMove(
            "to_committee",
            frozenset({RoundStatus.SCREENING, RoundStatus.REVIEW}),
            RoundStatus.COMMITTEE,
            "round.to_committee",
        ),
        RoundMove("decide", frozenset({RoundStatus.COMMITTEE}), RoundStatus.DECIDED, "round.decided"),
    )
}


def round_move(stored: RoundStatus, name: str, round_id: str) -> RoundMove:
    """The move `name` from `stored`, or why the table does not allow it."""
    move = ROUND_TRANSITIONS[name]
    if stored not in move.sources:
        allowed = " or ".join(sorted(s.value for s in move.sources))
        raise RoundActionError(
            f"round {round_id} is {stored.value}; it can only be moved to {move.target.value} from {allowed}"
        )
    return move


def effective_status(stored: RoundStatus, definition: RoundDefinition, now: datetime) -> RoundStatus:
    """The status a person should see. An open round whose deadline has passed is
    closed even if nobody has run the close yet: the status follows the dates."""
    if stored is RoundStatus.OPEN and now > definition.closes_at:
        return RoundStatus.CLOSED
    return stored


def accepts_applications(stored: RoundStatus, definition: RoundDefinition, now: datetime) -> bool:
    """Applications are taken from `opens_at` to `closes_at`, both included, while the
    round is open. One second after `closes_at` is late."""
    return stored is RoundStatus.OPEN and definition.opens_at <= now <= definition.closes_at


def accepts_import(stored: RoundStatus, definition: RoundDefinition, received_at: datetime) -> bool:
    """The secretariat may import an application that reached it (by e-mail) while the
    round was open, also after the close, until screening starts."""
    return stored in (RoundStatus.OPEN, RoundStatus.CLOSED) and (
        definition.opens_at <= received_at <= definition.closes_at
    )


def due_by_dates(stored: RoundStatus, definition: RoundDefinition, now: datetime) -> RoundStatus | None:
    """What a round's own dates call for at `now`: a draft round inside its window
    opens, an open round past its deadline closes; None when nothing is due. (A draft
    round whose deadline has passed was never meant to open: the rounds of past years
    are loaded as drafts.)"""
    if stored is RoundStatus.DRAFT and definition.opens_at <= now <= definition.closes_at:
        return RoundStatus.OPEN
    if stored is RoundStatus.OPEN and now > definition.closes_at:
        return RoundStatus.CLOSED
    return None


def dates_ahead(
    stored: RoundStatus, definition: RoundDefinition, now: datetime, until: datetime
) -> list[tuple[RoundStatus, datetime]]:
    """The round's openings and closes due after `now` and by `until`, each with the
    first instant it may take effect (a close: one second after the deadline)."""
    ahead = []
    if stored is RoundStatus.DRAFT and now < definition.opens_at <= until:
        ahead.append((RoundStatus.OPEN, definition.opens_at))
    closes = definition.closes_at + timedelta(seconds=1)
    if (stored is RoundStatus.OPEN or ahead) and now < closes <= until:
        ahead.append((RoundStatus.CLOSED, closes))
    return ahead


def plan_open(stored: RoundStatus, definition: RoundDefinition, now: datetime) -> RoundStatus:
    if stored is not RoundStatus.DRAFT:
        raise RoundActionError(f"round {definition.id} is {stored.value}; only a draft round can be opened")
    if now < definition.opens_at:
        raise RoundActionError(
            f"round {definition.id} opens at {definition.opens_at.isoformat()}; "
            "schedule the open-round flow for that time or correct opens_at in the round file"
        )
    if now > definition.closes_at:
        raise RoundActionError(
            f"round {definition.id} closed at {definition.closes_at.isoformat()}; it can no longer be opened"
        )
    return RoundStatus.OPEN


def plan_close(
    stored: RoundStatus, definition: RoundDefinition, now: datetime, *, early_reason: str | None = None
) -> RoundStatus:
    if stored is not RoundStatus.OPEN:
        raise RoundActionError(f"round {definition.id} is {stored.value}; only an open round can be closed")
    if now <= definition.closes_at and not (early_reason and early_reason.strip()):
        raise RoundActionError(
            f"round {definition.id} accepts applications until {definition.closes_at.isoformat()}; "
            "to close it before its deadline, give a reason"
        )
    return RoundStatus.CLOSED


def plan_review(stored: RoundStatus, definition: RoundDefinition) -> RoundStatus:
    """The GMP review stage opens with the first invitations, after screening."""
    if not definition.has_gmp_review:
        raise RoundActionError(
            f"round {definition.id} has no GMP review stage (its stages: {', '.join(definition.stages)})"
        )
    if stored is RoundStatus.REVIEW:
        return stored
    if stored is not RoundStatus.SCREENING:
        raise RoundActionError(
            f"round {definition.id} is {stored.value}; reviewers are invited after screening and before the committee",
            (Hint(Step.SCREEN, round_id=definition.id),) if stored is RoundStatus.CLOSED else (),
        )
    return RoundStatus.REVIEW


def plan_committee(stored: RoundStatus, definition: RoundDefinition) -> RoundStatus:
    """To the committee: from the review stage where the round has one, else straight
    from screening."""
    if stored in (RoundStatus.COMMITTEE, RoundStatus.DECIDED, RoundStatus.ARCHIVED):
        return stored  # with the committee already, or past it
    expected = RoundStatus.REVIEW if definition.has_gmp_review else RoundStatus.SCREENING
    if stored is not expected:
        step = "the GMP review stage must be open" if definition.has_gmp_review else "it must be in screening"
        # The step that comes next from where the round is, if it is one of the two before.
        after = {RoundStatus.CLOSED: Step.SCREEN, RoundStatus.SCREENING: Step.INVITE_REVIEWERS}.get(stored)
        hints = (Hint(after, round_id=definition.id),) if after else ()
        raise RoundActionError(f"round {definition.id} is {stored.value}; to go to the committee {step}", hints)
    return RoundStatus.COMMITTEE
