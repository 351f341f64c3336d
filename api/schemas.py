"""What the API answers, by role: the response model of every route (a route declares
it, and converts what the services give it to it). Applicant-facing models carry no
score, reviewer, committee member or internal note.

A model drops what it does not declare: a key a route is to answer is declared here."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from domain.lifecycle import PublicStatus
from domain.review import Recommendation
from domain.rounds import RoundStatus


def _isoformat(value: datetime) -> str:
    return value.isoformat()


#: An instant as `datetime.isoformat()` writes it (`+00:00`, not pydantic's `Z`): where a
#: service gives the instant as that text (the review stage, 360Giving), the answer keeps it.
IsoDateTime = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

# --- every route's error answer ------------------------------------------------------------


class FieldErrorOut(BaseModel):
    path: str = Field(description="JSON path of the offending field, e.g. $.form_b.lines[0].amount")
    message: str


class NextStepOut(BaseModel):
    step: str = Field(description="the step, e.g. screen, invite_reviewers, set_funds")
    what: str = Field(description="the step in words")
    route: str | None = Field(default=None, description="the route that takes it, where the API has one")
    round_id: str | None = None
    reference: str | None = None
    email: str | None = None
    option: str | None = Field(default=None, description="a choice the step needs, e.g. the setting to change")


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable code, e.g. invalid, not_found, round_not_accepting")
    message: str = Field(description="what went wrong and what to do next")
    errors: list[FieldErrorOut] = Field(default_factory=list, description="every offending field, if any")
    next: list[NextStepOut] | None = Field(
        default=None, description="what would get past the refusal, where something would: each step and its route"
    )


# --- health ----------------------------------------------------------------------------------


class AliveOut(BaseModel):
    status: Literal["alive"] = "alive"


class ReadyOut(BaseModel):
    status: Literal["ready"] = "ready"


# --- applicants ----------------------------------------------------------------------------


class ReceiptOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "reference": "SIP-2018-R1-0007",
                "status": "received",
                "round": "sip-2018-r1",
                "submitted_at": "2018-08-24T13:40:00Z",
                "access_token": "(43 characters, shown once)",
            }
        }
    )

    reference: str
    status: PublicStatus
    round: str
    submitted_at: datetime
    access_token: str = Field(
        description="Shown once: keep it to check the application's status "
        "(GET /applications/{reference} with Authorization: Bearer <token>)"
    )


class TimelineItemOut(BaseModel):
    status: PublicStatus
    at: datetime


class ApplicationStatusOut(BaseModel):
    reference: str
    status: PublicStatus
    round: str
    round_title: str
    title: str | None
    submitted_at: datetime
    timeline: list[TimelineItemOut]


# --- stages started on the orchestrator ----------------------------------------------------


class FlowStarted(BaseModel):
    flow_run_id: str = Field(description="the Prefect flow run, started (it runs on after the answer)")
    round: str


class ScreeningStarted(FlowStarted):
    progress: str = Field(description="GET this path to follow the screening")


class ReviewFlowStarted(FlowStarted):
    follow: str = Field(description="GET this path to follow the result")


# --- the secretariat: screening ------------------------------------------------------------


class ScreeningRow(BaseModel):
    rank: int | None
    reference: str
    party: str
    region: str
    ldc: bool
    sids: bool
    verdict: str
    overridden: str
    failed: list[str]
    needs_judgement: list[str]
    weighted_score: str | None
    scored_weight: str | None = Field(description="share (%) of the criteria's weight scored so far")
    unscored: list[str]


class ScreeningProgress(BaseModel):
    round: str
    status: RoundStatus
    counts: dict[str, int] = Field(description="applications by screening verdict, and those not screened yet")
    applications: list[ScreeningRow]


class ScoresRecordedOut(BaseModel):
    scores: int = Field(description="scores given")
    recorded: int = Field(description="scores new or changed (the same score again changes nothing)")


class OverrideOut(BaseModel):
    reference: str
    verdict: Literal["screened", "incomplete", "ineligible"]
    changed: bool = Field(description="false: the same override was on file already")


class InformationRequestedOut(BaseModel):
    reference: str
    status: Literal["information_requested"] = "information_requested"
    due: date


# --- the secretariat: GMP review -----------------------------------------------------------


class AssignedReviewerOut(BaseModel):
    email: str
    name: str
    state: str = Field(description="proposed, invited, submitted, declined, conflicted or removed")
    note: str | None
    review: str | None = Field(description="draft or submitted")


class ApplicationAssignmentOut(BaseModel):
    """One application's reviewers, as the secretariat assigns them."""

    reference: str
    party: str
    title: str | None
    status: str
    areas: list[str]
    reviewers: list[AssignedReviewerOut]
    open_places: int
    proposals: list[str] = Field(description="who the assignment would propose for the open places now")
    reasons: list[str] = Field(description="why places are open, and why reviewers were not chosen")


class ReviewerAddedOut(BaseModel):
    reference: str
    reviewer: str
    outcome: str = Field(description="added, or unchanged if they were on it already")


class ReviewerRemovedOut(BaseModel):
    reference: str
    reviewer: str
    state: Literal["removed"] = "removed"


class ConflictRecordedOut(BaseModel):
    reference: str
    reviewer: str
    recorded: bool = Field(description="false: on file already")


class DueMovedOut(BaseModel):
    round: str
    due_on: date
    was: date


class ReviewStageDatesOut(BaseModel):
    due_on: date
    invited_at: IsoDateTime
    closed_at: IsoDateTime | None
    closed_by: str | None


class CriterionReviewsOut(BaseModel):
    id: str
    title: str
    scores: list[int]
    mean: str | None = Field(description="a decimal number, as a string")
    spread: int | None = Field(description="the highest score less the lowest")
    disagreement: bool


class SubmittedReviewOut(BaseModel):
    """A submitted review with its reviewer's name (the secretariat's view)."""

    reviewer: str
    email: str
    scores: dict[str, int]
    recommendation: str | None
    comments_for_committee: str | None
    comments_for_applicant: str | None
    submitted_at: IsoDateTime | None


class ApplicationReviewsOut(BaseModel):
    reference: str
    party: str
    title: str | None
    status: str
    reviews_asked: int
    reviews_submitted: int
    outstanding: int = Field(description="reviews invited and not submitted yet")
    short: bool = Field(description="fewer reviews submitted than asked for")
    disagreement: bool
    disagreement_on: list[str]
    recommendations: dict[str, int]
    criteria: list[CriterionReviewsOut]
    reviews: list[SubmittedReviewOut]


class ReviewStageOut(BaseModel):
    round: str
    status: RoundStatus
    stage: ReviewStageDatesOut | None = Field(description="none until reviewers are invited")
    assignments: dict[str, int] = Field(description="reviewers' assignments by state")
    short_of_reviews: list[str]
    disagreements: list[str]
    applications: list[ApplicationReviewsOut]


# --- the secretariat: the register of reviewers, and the outbox ------------------------------


class ReviewerOut(BaseModel):
    email: str
    name: str
    organisation: str
    country: str
    areas: list[str]
    languages: list[str]
    max_load: int
    active: bool
    updated_at: datetime


class ReviewerSetOut(ReviewerOut):
    outcome: str = Field(description="added, updated or unchanged")


class OutboxMessageOut(BaseModel):
    id: int
    created_at: datetime
    recipient: str
    kind: str
    language: str
    state: str = Field(description="queued, sent or failed")
    subject: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    message_id: str | None


# --- the GMP reviewers -----------------------------------------------------------------------


class SessionOut(BaseModel):
    session_token: str = Field(description="Shown once: send it as Authorization: Bearer <token>")
    expires_at: datetime
    email: str
    name: str


class LinkSentOut(BaseModel):
    message: str = Field(description="the same whether or not the address is a reviewer's")


class SignedOutOut(BaseModel):
    """The reviewer's session ended: its token no longer works."""

    email: str
    signed_out_at: datetime


class AccessRevokedOut(BaseModel):
    """What the secretariat's withdrawal of a person's access ended (each at once)."""

    email: str
    sessions: int = Field(description="reviewer sessions that were open")
    links: int = Field(description="reviewer sign-in links not yet used")
    bundle_links: int = Field(description="committee bundle links")
    revoked_at: datetime


class ReviewerAssignmentOut(BaseModel):
    """An application assigned to the reviewer who asks."""

    reference: str
    round: str
    title: str | None
    party: str
    state: str = Field(description="invited or submitted")
    review: str | None = Field(description="draft or submitted, if you saved one")
    due_on: date | None
    stage_open: bool


class ApplicantOut(BaseModel):
    executing_agency: str | None
    co_applicants: list[str]


class CriterionOut(BaseModel):
    id: str
    title: str
    scale: list[int]
    description: str | None


class ReviewOut(BaseModel):
    """The reviewer's own review."""

    state: str = Field(description="draft or submitted")
    scores: dict[str, int]
    recommendation: str | None
    comments_for_committee: str | None
    comments_for_applicant: str | None
    updated_at: datetime
    submitted_at: datetime | None


class OtherReviewOut(BaseModel):
    """Another reviewer's submitted review, unnamed."""

    reviewer: str = Field(description="Reviewer 1, Reviewer 2...")
    scores: dict[str, int]
    recommendation: str | None
    comments_for_committee: str | None


class DossierOut(BaseModel):
    reference: str
    round: str
    round_title: str
    party: str
    title: str | None
    amount_requested: str | None = Field(description="a decimal number, as a string")
    currency: str
    applicant: ApplicantOut
    form_a: dict[str, Any] | None = Field(description="form A as the applicant sent it (sip-application/1)")
    form_b: dict[str, Any] | None = Field(description="form B as the applicant sent it (sip-application/1)")
    criteria: list[CriterionOut] = Field(description="the round's technical criteria, each on its scale")
    recommendations: list[Recommendation]
    due_on: date | None
    stage_open: bool
    assignment: str = Field(description="invited or submitted")
    review: ReviewOut | None
    other_reviews: list[OtherReviewOut] = Field(description="the others' submitted reviews, once yours is")


class AssignmentLeftOut(BaseModel):
    reference: str
    state: Literal["declined", "conflicted"]


# --- the Steering Committee ------------------------------------------------------------------


class MemberOut(BaseModel):
    name: str
    email: str
    country: str = Field(description="ISO 3166 alpha-3")
    role: str = Field(description="member or co-chair")
    term_start: date
    term_end: date
    language: str


class CommitteeOut(BaseModel):
    on: date
    members: list[MemberOut]
    composition: list[str] = Field(description="how the committee differs from its rule (empty: as it should be)")


class MemberTermOut(BaseModel):
    email: str
    name: str
    country: str
    role: str
    term_start: date
    term_end: date
    language: str
    updated_at: datetime
    outcome: str = Field(description="added, updated or unchanged")


class MeetingOut(BaseModel):
    round_id: str
    starts_on: date
    ends_on: date
    place: str
    funds_available: Decimal | None = Field(description="US dollars, as a string")
    attendees: list[str] | None = Field(description="none: every member serving on the meeting date")
    updated_at: datetime


class MemberConflictOut(BaseModel):
    reference: str
    member: str
    recorded: bool = Field(description="false: on file already")


class BundleVersionOut(BaseModel):
    email: str
    version: int
    changes: list[str]
    sha256: str
    created_at: datetime


class DecisionsOut(BaseModel):
    round: str
    recorded: int
    unchanged: int
    approved_total: str = Field(description="US dollars, as a string")
    funds_available: str | None
    undecided: list[str] = Field(description="applications on the agenda without a decision yet")


# --- 360Giving (its names, camelCase: https://standard.threesixtygiving.org) ----------------


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class PublisherOut(_Camel):
    name: str
    identifier: str


class RecipientOrganizationOut(_Camel):
    id: str
    name: str
    description: str
    address_country: str | None = Field(default=None, alias="addressCountry")


class FundingOrganizationOut(_Camel):
    id: str
    name: str


class GrantProgrammeOut(_Camel):
    code: str
    title: str


class BeneficiaryLocationOut(_Camel):
    name: str
    country_code: str = Field(alias="countryCode")


class PlannedDatesOut(_Camel):
    duration: int = Field(description="months")


class GrantOut(_Camel):
    id: str
    title: str
    description: str
    currency: str
    amount_applied_for: float = Field(alias="amountAppliedFor")
    amount_awarded: float = Field(alias="amountAwarded")
    award_date: date = Field(alias="awardDate")
    recipient_organization: list[RecipientOrganizationOut] = Field(alias="recipientOrganization")
    funding_organization: list[FundingOrganizationOut] = Field(alias="fundingOrganization")
    grant_programme: list[GrantProgrammeOut] = Field(alias="grantProgramme")
    from_open_call: str = Field(alias="fromOpenCall")
    date_modified: IsoDateTime = Field(alias="dateModified")
    beneficiary_location: list[BeneficiaryLocationOut] | None = Field(default=None, alias="beneficiaryLocation")
    planned_dates: list[PlannedDatesOut] | None = Field(default=None, alias="plannedDates")


class GrantsPackageOut(_Camel):
    """A 360Giving data package, validated against the standard's schema before it is given."""

    version: str
    title: str
    description: str
    modified: IsoDateTime
    license: str
    publisher: PublisherOut
    grants: list[GrantOut]


class RoundGrantOut(BaseModel):
    """A grant of the round: its state and its money (amounts as decimal strings)."""

    reference: str
    state: str = Field(
        description="awarded, agreement_sent, agreement_signed, active, suspended, closing, closed or cancelled"
    )
    party: str
    award: str = Field(description="US dollars, a decimal number as a string")
    released: str = Field(description="what the instalments' milestones released so far")
    paid: str
    balance: str = Field(description="the award less what was paid")
    planned_start: date
    planned_end: date
    conditions_met: int
    conditions: int
    signatures: int = Field(description="of the agreement's two: the recipient's, then the secretariat's")
