"""The secretariat's routes (a secretariat API key): trigger screening and follow it,
record what people add to it, keep the register of GMP reviewers, and run the GMP
review (assignment, invitations, the close to the committee) and follow it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import ConfigDict, Field, StrictBool
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from api.common import error_responses
from api.deps import NowDep, RuntimeDep, SecretariatReader, SecretariatWriter
from api.schemas import (
    AccessRevokedOut,
    ApplicationAssignmentOut,
    ConflictRecordedOut,
    DueMovedOut,
    InformationRequestedOut,
    OutboxMessageOut,
    OverrideOut,
    ReviewerAddedOut,
    ReviewerOut,
    ReviewerRemovedOut,
    ReviewerSetOut,
    ReviewFlowStarted,
    ReviewStageOut,
    RoundGrantOut,
    ScoresRecordedOut,
    ScreeningProgress,
    ScreeningRow,
    ScreeningStarted,
)
from api.stages import check_first, start_stage
from domain.application import NOT_BLANK, Email, FieldError, Input, Integer, IsoDate
from domain.lifecycle import Role
from domain.review import Area
from domain.rounds import RoundStatus
from engine.db import reading, unit_of_work
from engine.services import appraisal, follow_up, report, revocation, stages
from engine.services import grants as grant_service
from engine.services import outbox as outbox_service
from engine.services import rounds as round_service
from engine.services.errors import InvalidInput, NotFound
from engine.services.review import assignment as review_assignment
from engine.services.review import invitations, register, views
from engine.services.screening import check_screening, screening_counts
from engine.services.setup import Runtime
from engine.tables import ReviewerRecord

log = logging.getLogger("sip.api")
router = APIRouter(prefix="/rounds/{round_id}", tags=["secretariat"], responses=error_responses(401, 503))


class ScoreIn(Input):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(max_length=60)
    criterion: str = Field(max_length=64)
    score: Annotated[int, Integer]
    comment: str | None = Field(default=None, max_length=4000)


class ScoresIn(Input):
    model_config = ConfigDict(extra="forbid")

    scores: list[ScoreIn] = Field(min_length=1, max_length=10_000)


class OverrideIn(Input):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["screened", "incomplete", "ineligible"]
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


class InformationRequestIn(Input):
    model_config = ConfigDict(extra="forbid")

    items: list[Annotated[str, Field(min_length=1, max_length=follow_up.ITEM_LENGTH, pattern=NOT_BLANK)]] = Field(
        min_length=1, max_length=follow_up.MAX_ITEMS
    )
    due: IsoDate | None = None


@router.post(
    "/screening",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScreeningStarted,
    responses=error_responses(401, 404, 409, 503),
)
async def start_screening(round_id: str, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> ScreeningStarted:
    """Start the `screen-applications` flow for a closed round (a run of its deployment
    where there is a Prefect server); answers at once with the flow run's id."""
    await run_in_threadpool(check_first, rt, check_screening, round_id, at=now)
    from flows.screening import screen_applications_flow

    flow_run_id = await start_stage(
        rt, screen_applications_flow, {"round_id": round_id}, officer=officer, round_id=round_id
    )
    return ScreeningStarted(flow_run_id=flow_run_id, round=round_id, progress=f"/rounds/{round_id}/screening")


@router.get("/screening", response_model=ScreeningProgress, responses=error_responses(401, 404))
def screening_progress(round_id: str, rt: RuntimeDep, officer: SecretariatReader) -> ScreeningProgress:
    """How far screening is, and each application's outcome (ranked by weighted score)."""
    with reading(rt.engine) as session:
        row = round_service.get_round(session, round_id)
        rows = report.report_rows(session, round_id)
        counts = screening_counts(session, round_id)
    return ScreeningProgress(
        round=round_id,
        status=RoundStatus(row.status),
        counts=counts,
        applications=[
            ScreeningRow(
                rank=r.rank,
                reference=r.reference,
                party=r.party,
                region=r.region,
                ldc=r.ldc,
                sids=r.sids,
                verdict=r.verdict,
                overridden=r.overridden,
                failed=r.failed.split(),
                needs_judgement=r.needs_judgement.split(),
                weighted_score=None if r.weighted_score is None else str(r.weighted_score),
                scored_weight=None if r.scored_weight is None else str(r.scored_weight),
                unscored=r.unscored.split(),
            )
            for r in rows
        ],
    )


@router.post("/screening/scores", response_model=ScoresRecordedOut, responses=error_responses(401, 404, 422))
def record_scores(
    round_id: str, body: ScoresIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ScoresRecordedOut:
    """Record appraisal scores (all, or none if one is wrong: every problem is listed)."""
    rows = [
        appraisal.ScoreRow(s.reference, s.criterion, str(s.score), s.comment, f"$.scores[{i}]")
        for i, s in enumerate(body.scores)
    ]
    with unit_of_work(rt.engine) as session:
        changed = appraisal.record_scores(session, round_id, rows, actor=officer, at=now)
    return ScoresRecordedOut(scores=len(rows), recorded=changed)


@router.post(
    "/applications/{reference}/override", response_model=OverrideOut, responses=error_responses(401, 404, 409, 422)
)
def override(
    round_id: str, reference: str, body: OverrideIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> OverrideOut:
    """Replace an automatic screening verdict with a person's decision, for a reason."""
    with unit_of_work(rt.engine) as session:
        changed = appraisal.override(
            session, rt.settings, round_id, reference, body.verdict, reason=body.reason, actor=officer, at=now
        )
    return OverrideOut(reference=reference, verdict=body.verdict, changed=changed)


@router.post(
    "/applications/{reference}/information-request",
    response_model=InformationRequestedOut,
    responses=error_responses(401, 404, 409, 422),
)
def request_information(
    round_id: str, reference: str, body: InformationRequestIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> InformationRequestedOut:
    """Ask the applicant for missing items by a date (default: the round's response days)."""
    with unit_of_work(rt.engine) as session:
        due = follow_up.request_information(
            session, rt.settings, round_id, reference, body.items, due=body.due, actor=officer, at=now
        )
    return InformationRequestedOut(reference=reference, due=due)


# --- GMP review -----------------------------------------------------------------------


class InvitationsIn(Input):
    model_config = ConfigDict(extra="forbid")

    due: IsoDate | None = Field(default=None, description="the day reviews are due (default: the round's)")


class DueIn(Input):
    model_config = ConfigDict(extra="forbid")

    due: IsoDate


class CloseIn(Input):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class ConflictIn(Input):
    model_config = ConfigDict(extra="forbid")

    email: Email
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


@router.post(
    "/review/assignment",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReviewFlowStarted,
    responses=error_responses(401, 404, 409, 503),
)
async def propose_reviewers(round_id: str, rt: RuntimeDep, officer: SecretariatWriter) -> ReviewFlowStarted:
    """Run the `assign-gmp-reviewers` flow: propose reviewers for the open places."""
    from flows.review import assign_gmp_reviewers_flow

    await run_in_threadpool(check_first, rt, review_assignment.check_assignment, round_id)
    run_id = await start_stage(
        rt, assign_gmp_reviewers_flow, {"round_id": round_id}, officer=officer, round_id=round_id
    )
    return ReviewFlowStarted(flow_run_id=run_id, round=round_id, follow=f"/rounds/{round_id}/review/assignment")


@router.get(
    "/review/assignment", response_model=list[ApplicationAssignmentOut], responses=error_responses(401, 404, 409)
)
def assignment(round_id: str, rt: RuntimeDep, officer: SecretariatReader) -> list[ApplicationAssignmentOut]:
    """Each application's reviewers and their state, its open places, who would be
    proposed for them, and why reviewers were not chosen."""
    with reading(rt.engine) as session:
        lines = review_assignment.assignment_view(session, round_id)
    return [ApplicationAssignmentOut.model_validate(line, from_attributes=True) for line in lines]


@router.put(
    "/applications/{reference}/reviewers/{email}",
    response_model=ReviewerAddedOut,
    responses=error_responses(401, 404, 409),
)
def add_reviewer(
    round_id: str, reference: str, email: str, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ReviewerAddedOut:
    """Put a reviewer on an application by hand (never one with a conflict of interest,
    and within their maximum load); invite them with POST /review/invitations."""
    with unit_of_work(rt.engine) as session:
        outcome = review_assignment.add_reviewer(session, round_id, reference, email, actor=officer, at=now)
    return ReviewerAddedOut(reference=reference, reviewer=email.lower(), outcome=outcome)


@router.delete(
    "/applications/{reference}/reviewers/{email}",
    response_model=ReviewerRemovedOut,
    responses=error_responses(401, 404, 409, 422),
)
def remove_reviewer(
    round_id: str,
    reference: str,
    email: str,
    rt: RuntimeDep,
    now: NowDep,
    officer: SecretariatWriter,
    reason: str = Query(min_length=1, max_length=2000),
) -> ReviewerRemovedOut:
    """Take a reviewer off an application, for a reason (not after their review is submitted)."""
    with unit_of_work(rt.engine) as session:
        review_assignment.remove_reviewer(session, round_id, reference, email, reason=reason, actor=officer, at=now)
    return ReviewerRemovedOut(reference=reference, reviewer=email.lower())


@router.post(
    "/applications/{reference}/conflicts",
    response_model=ConflictRecordedOut,
    responses=error_responses(401, 404, 409, 422),
)
def record_conflict(
    round_id: str, reference: str, body: ConflictIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ConflictRecordedOut:
    """Record a reviewer's conflict of interest with an application (they come off it)."""
    with unit_of_work(rt.engine) as session:
        recorded = review_assignment.record_conflict(
            session,
            round_id,
            reference,
            str(body.email),
            reason=body.reason,
            actor=officer,
            role=Role.SECRETARIAT,
            at=now,
        )
    return ConflictRecordedOut(reference=reference, reviewer=str(body.email).lower(), recorded=recorded)


@router.post(
    "/review/invitations",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReviewFlowStarted,
    responses=error_responses(401, 404, 409, 422, 503),
)
async def invite(
    round_id: str, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter, body: InvitationsIn | None = None
) -> ReviewFlowStarted:
    """Run the `invite-gmp-reviewers` flow: invite the proposed reviewers and open the stage."""
    from flows.review import invite_gmp_reviewers_flow

    due = body.due if body else None
    await run_in_threadpool(check_first, rt, invitations.check_invite, round_id, at=now, due=due)
    run_id = await start_stage(
        rt,
        invite_gmp_reviewers_flow,
        {"round_id": round_id, "due": due.isoformat() if due else None},
        officer=officer,
        round_id=round_id,
    )
    return ReviewFlowStarted(flow_run_id=run_id, round=round_id, follow=f"/rounds/{round_id}/review")


@router.put("/review/due", response_model=DueMovedOut, responses=error_responses(401, 404, 409, 422))
def move_due_date(round_id: str, body: DueIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> DueMovedOut:
    """Move the day the reviews are due (the reminders follow it)."""
    with unit_of_work(rt.engine) as session:
        before = invitations.extend(session, round_id, body.due, actor=officer, at=now)
    return DueMovedOut(round=round_id, due_on=body.due, was=before)


@router.post(
    "/review/close",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReviewFlowStarted,
    responses=error_responses(401, 404, 409, 422, 503),
)
async def close_review(
    round_id: str, rt: RuntimeDep, officer: SecretariatWriter, body: CloseIn | None = None
) -> ReviewFlowStarted:
    """Run the `send-to-committee` flow: close the GMP review (or, in a round without it,
    screening); applications short of reviews go forward marked as such."""
    from flows.review import send_to_committee_flow

    await run_in_threadpool(check_first, rt, stages.check_committee, round_id)
    run_id = await start_stage(
        rt,
        send_to_committee_flow,
        {"round_id": round_id, "reason": body.reason if body else None},
        officer=officer,
        round_id=round_id,
    )
    return ReviewFlowStarted(flow_run_id=run_id, round=round_id, follow=f"/rounds/{round_id}/review")


@router.get("/review", response_model=ReviewStageOut, responses=error_responses(401, 404, 409))
def review(round_id: str, rt: RuntimeDep, officer: SecretariatReader) -> ReviewStageOut:
    """The review stage: its due date and state, and per application the reviews in,
    those outstanding, and their aggregation (mean and spread per criterion, the
    recommendations, and whether reviewers disagree strongly)."""
    with reading(rt.engine) as session:
        view = views.review_stage_view(session, round_id)
    return ReviewStageOut.model_validate(view, from_attributes=True)


@router.get("/grants", response_model=list[RoundGrantOut], responses=error_responses(401, 404))
def grants(round_id: str, rt: RuntimeDep, officer: SecretariatReader) -> list[RoundGrantOut]:
    """The round's grants (one per approval whose letter is queued): state, award, what
    was released and paid, the balance, conditions met and signatures."""
    with reading(rt.engine) as session:
        lines = grant_service.list_grants(session, round_id)
    return [
        RoundGrantOut(
            **{
                **line.__dict__,
                "state": line.state.value,
                **{k: f"{getattr(line, k):.2f}" for k in ("award", "released", "paid", "balance")},
            }
        )
        for line in lines
    ]


# --- the register of reviewers ------------------------------------------------------------

reviewers_router = APIRouter(prefix="/reviewers", tags=["secretariat"], responses=error_responses(401, 503))


Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]
Organisation = Annotated[str, Field(min_length=1, max_length=300, pattern=NOT_BLANK)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 3166 alpha-3, e.g. PER")]
Areas = Annotated[list[Area], Field(min_length=1, description="partnership areas, e.g. artisanal_gold_mining")]
Languages = Annotated[
    list[Literal["en", "fr", "es"]], Field(min_length=1, description="en, fr, es; the first is used for messages")
]
Load = Annotated[int, Field(ge=0, le=1000, description="at most this many applications to review"), Integer]


class ReviewerIn(Input):
    """Some fields of a reviewer of the register (PATCH: those to change), checked as the
    register checks them (`null`, like a field left out, keeps what is there)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    organisation: Organisation | None = None
    country: Country | None = None
    areas: Areas | None = None
    languages: Languages | None = None
    max_load: Load | None = None
    active: StrictBool | None = None


class ReviewerPutIn(ReviewerIn):
    """Every field of a reviewer of the register (PUT)."""

    name: Name
    organisation: Organisation
    country: Country
    areas: Areas
    languages: Languages
    max_load: Load


@reviewers_router.get("", response_model=list[ReviewerOut], responses=error_responses(401))
def list_reviewers(rt: RuntimeDep, officer: SecretariatReader) -> list[ReviewerOut]:
    """The register of Global Mercury Partnership reviewers."""
    with reading(rt.engine) as session:
        return [ReviewerOut.model_validate(r, from_attributes=True) for r in register.list_reviewers(session)]


def _set_reviewer(
    rt: Runtime, now: datetime, officer: str, email: str, body: ReviewerIn, *, whole: bool
) -> ReviewerSetOut:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True, exclude={"active"}).items() if v is not None}
    if whole:
        missing = [f for f in register.EDITABLE_FIELDS if changes.get(f) is None]
        if missing:
            raise InvalidInput(
                f"PUT gives every field; missing: {', '.join(missing)} (PATCH changes some)",
                [FieldError(path=f"$.{f}", message="is required") for f in missing],
            )
    with unit_of_work(rt.engine) as session:
        row, outcome = register.set_reviewer(session, email, changes, active=body.active, actor=officer, at=now)
        return ReviewerSetOut.model_validate({**row.model_dump(), "outcome": outcome})


@reviewers_router.put("/{email}", response_model=ReviewerSetOut, responses=error_responses(401, 422))
def put_reviewer(
    email: Email, body: ReviewerPutIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ReviewerSetOut:
    """Add a reviewer, or replace their details."""
    return _set_reviewer(rt, now, officer, email, body, whole=True)


class RevocationIn(Input):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=2000, pattern=NOT_BLANK, description="why the access is withdrawn (audited)"
    )


def withdraw_access(rt: Runtime, now: datetime, officer: str, email: str, body: RevocationIn) -> AccessRevokedOut:
    """End every link and session of a person at once (the service `revoke_person`)."""
    with unit_of_work(rt.engine) as session:
        revoked = revocation.revoke_person(session, email, reason=body.reason, actor=officer, at=now)
    return AccessRevokedOut(
        email=revoked.email,
        sessions=revoked.sessions,
        links=revoked.links,
        bundle_links=revoked.bundle_links,
        revoked_at=now,
    )


@reviewers_router.post("/{email}/revocation", response_model=AccessRevokedOut, responses=error_responses(401, 404, 422))
def revoke_reviewer(
    email: Email, body: RevocationIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> AccessRevokedOut:
    """Withdraw every sign-in link and session of a person (and their committee bundle
    links, if they are also a member), at once, for a reason. They may still ask for a
    new link by e-mail while they are an active reviewer with reviews to do: to keep
    them out, also set `active: false`."""
    return withdraw_access(rt, now, officer, email, body)


@reviewers_router.patch("/{email}", response_model=ReviewerSetOut, responses=error_responses(401, 404, 422))
def patch_reviewer(
    email: Email, body: ReviewerIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ReviewerSetOut:
    """Change some of a reviewer's details (e.g. max_load, or active=false to take them
    out of future assignments)."""
    with reading(rt.engine) as session:
        if session.exec(select(ReviewerRecord).where(ReviewerRecord.email == email.strip().lower())).first() is None:
            raise NotFound(f"no reviewer {email!r} in the register; PUT adds one")
    return _set_reviewer(rt, now, officer, email, body, whole=False)


# --- the outbox -----------------------------------------------------------------------------

outbox_router = APIRouter(prefix="/outbox", tags=["secretariat"], responses=error_responses(401, 503))


@outbox_router.get("", response_model=list[OutboxMessageOut], responses=error_responses(401, 422))
def outbox(
    rt: RuntimeDep,
    officer: SecretariatReader,
    state: str | None = Query(default=None, pattern="^(queued|sent|failed)$"),
    round_id: str | None = Query(default=None, alias="round", max_length=40),
) -> list[OutboxMessageOut]:
    """The notifications (`state=failed`: those that failed for good, with why)."""
    with reading(rt.engine) as session:
        messages = outbox_service.list_messages(session, state=state, round_id=round_id)
    return [OutboxMessageOut.model_validate(m, from_attributes=True) for m in messages]
