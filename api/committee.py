"""The Steering Committee's routes. The secretariat (its API key) keeps the
membership, schedules the meeting, sets the funds, prepares the bundles, records the
decisions, sends the letters and publishes the open data. A member opens their
bundle with the personal link of its message: every download is audited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ConfigDict, Field
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from api.attempts import AttemptDep
from api.common import error_responses
from api.deps import NowDep, RuntimeDep, SecretariatReader, SecretariatWriter
from api.headers import BUNDLE_POLICY
from api.pages import LANGUAGE_NAMES, PAGE_HEADERS, PersonPage, page_assets, page_error_responses
from api.schemas import (
    AccessRevokedOut,
    BundleVersionOut,
    CommitteeOut,
    DecisionsOut,
    FlowStarted,
    GrantsPackageOut,
    MeetingOut,
    MemberConflictOut,
    MemberOut,
    MemberTermOut,
)
from api.secretariat import RevocationIn, withdraw_access
from api.stages import check_first, start_stage
from domain.application import NOT_BLANK, Email, Input, IsoDate
from domain.committee import DecisionIn, composition_problems
from domain.lifecycle import Role
from domain.money import PositiveCentsIn
from engine.db import reading, unit_of_work
from engine.services import letters as letters_service
from engine.services import opendata
from engine.services.committee import bundles, membership
from engine.services.committee import decisions as committee_decisions
from engine.services.committee import meeting as committee_meeting
from engine.services.errors import NotAllowed
from engine.tables import CommitteeBundle
from notifications import labels
from notifications.render import PAGES, environment

router = APIRouter(tags=["committee"], responses=error_responses(503))
bundle_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BundleToken",
    description="The token of a committee member's bundle link, instead of token=... in the address",
)
BundleTokenDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bundle_bearer)]


class MemberIn(Input):
    """A member's term (PUT: every field for a new term; those to change otherwise; `null`
    like a field left out, keeps what is there)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)] | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 3166 alpha-3")] | None = None
    role: Literal["member", "co-chair"] | None = None
    term_end: IsoDate | None = None
    language: Literal["en", "fr", "es"] | None = None


class MeetingIn(Input):
    model_config = ConfigDict(extra="forbid")

    starts_on: IsoDate
    ends_on: IsoDate | None = None
    place: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK, description="a city, or 'online'")


class FundsIn(Input):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveCentsIn = Field(description="US dollars available for the round's approvals")


class AttendanceIn(Input):
    model_config = ConfigDict(extra="forbid")

    attendees: list[Email] = Field(min_length=1, max_length=50)


class MemberConflictIn(Input):
    model_config = ConfigDict(extra="forbid")

    email: Email
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


class DecisionsIn(Input):
    model_config = ConfigDict(extra="forbid")

    decisions: list[DecisionIn] = Field(min_length=1, max_length=5000)


@router.get("/committee", response_model=CommitteeOut, responses=error_responses(401, 422))
def members(
    rt: RuntimeDep,
    now: NowDep,
    officer: SecretariatReader,
    on: Annotated[IsoDate | None, Query(description="default: today (YYYY-MM-DD)")] = None,
) -> CommitteeOut:
    """The members serving on a day, and how the committee differs from its rule."""
    day = on or now.date()
    with reading(rt.engine) as session:
        serving, region_of = membership.members_on(session, day), membership.regions(session)
    return CommitteeOut(
        on=day,
        members=[MemberOut.model_validate(m, from_attributes=True) for m in serving],
        composition=composition_problems(serving, region_of),
    )


@router.put("/committee/{email}/{term_start}", response_model=MemberTermOut, responses=error_responses(401, 422))
def put_member(
    email: Email, term_start: IsoDate, body: MemberIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> MemberTermOut:
    """Add a member's term, or change some of its details."""
    with unit_of_work(rt.engine) as session:
        row, outcome = membership.set_member(
            session,
            email,
            term_start,
            {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None},
            actor=officer,
            at=now,
        )
        return MemberTermOut.model_validate({**row.model_dump(), "outcome": outcome})


@router.post(
    "/committee/members/{email}/revocation", response_model=AccessRevokedOut, responses=error_responses(401, 404, 422)
)
def revoke_member(
    email: Email, body: RevocationIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> AccessRevokedOut:
    """Withdraw every bundle link of a member (and their reviewer links and sessions, if
    they are also a reviewer), at once, for a reason. Preparing the bundles again gives a
    member still on the committee a new version with a new link."""
    return withdraw_access(rt, now, officer, email, body)


@router.put("/rounds/{round_id}/meeting", response_model=MeetingOut, responses=error_responses(401, 404, 422))
def meeting(round_id: str, body: MeetingIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> MeetingOut:
    """Schedule the round's committee meeting."""
    with unit_of_work(rt.engine) as session:
        row = committee_meeting.schedule_meeting(
            session, round_id, body.starts_on, body.ends_on, body.place, actor=officer, at=now
        )
        return MeetingOut.model_validate(row, from_attributes=True)


@router.put("/rounds/{round_id}/funds", response_model=MeetingOut, responses=error_responses(401, 404, 409, 422))
def funds(round_id: str, body: FundsIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> MeetingOut:
    """Set the funds available for the round's approvals."""
    with unit_of_work(rt.engine) as session:
        row = committee_meeting.set_funds(session, round_id, body.amount, actor=officer, at=now)
        return MeetingOut.model_validate(row, from_attributes=True)


@router.put("/rounds/{round_id}/attendance", response_model=MeetingOut, responses=error_responses(401, 404, 422))
def attendance(
    round_id: str, body: AttendanceIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> MeetingOut:
    """Who attends the meeting (they take part in the decisions, less those conflicted)."""
    with unit_of_work(rt.engine) as session:
        row = committee_meeting.set_attendees(
            session, round_id, [str(e) for e in body.attendees], actor=officer, at=now
        )
        return MeetingOut.model_validate(row, from_attributes=True)


@router.post(
    "/rounds/{round_id}/applications/{reference}/member-conflicts",
    response_model=MemberConflictOut,
    responses=error_responses(401, 404, 409, 422),
)
def member_conflict(
    round_id: str, reference: str, body: MemberConflictIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> MemberConflictOut:
    """Record a member's declared conflict of interest with an application."""
    with unit_of_work(rt.engine) as session:
        recorded = committee_meeting.declare_member_conflict(
            session, round_id, reference, str(body.email), body.reason, actor=officer, at=now
        )
    return MemberConflictOut(reference=reference, member=str(body.email).lower(), recorded=recorded)


@router.post(
    "/rounds/{round_id}/bundles",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FlowStarted,
    responses=error_responses(401, 404, 409, 503),
)
async def prepare(round_id: str, rt: RuntimeDep, officer: SecretariatWriter) -> FlowStarted:
    """Run the `prepare-committee-bundles` flow: one bundle per member, each told by a message."""
    from flows.committee import prepare_committee_bundles_flow

    await run_in_threadpool(check_first, rt, bundles.check_bundles, round_id)
    run_id = await start_stage(
        rt, prepare_committee_bundles_flow, {"round_id": round_id}, officer=officer, round_id=round_id
    )
    return FlowStarted(flow_run_id=run_id, round=round_id)


@router.get("/rounds/{round_id}/bundles", response_model=list[BundleVersionOut], responses=error_responses(401, 404))
def bundle_versions(round_id: str, rt: RuntimeDep, officer: SecretariatReader) -> list[BundleVersionOut]:
    """Every version of every member's bundle, with what changed."""
    with reading(rt.engine) as session:
        rows = session.exec(
            select(CommitteeBundle)
            .where(CommitteeBundle.round_id == round_id)
            .order_by(col(CommitteeBundle.email), col(CommitteeBundle.version))
        ).all()
    return [BundleVersionOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/rounds/{round_id}/decisions", response_model=DecisionsOut, responses=error_responses(401, 404, 409, 422))
def decisions(
    round_id: str, body: DecisionsIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> DecisionsOut:
    """Record the committee's decisions: all, or none if one breaks a rule (every problem listed)."""
    with unit_of_work(rt.engine) as session:
        summary = committee_decisions.record_decisions(
            session, round_id, [(d, f"$.decisions[{i}]") for i, d in enumerate(body.decisions)], actor=officer, at=now
        )
    return DecisionsOut.model_validate(summary, from_attributes=True)


@router.post(
    "/rounds/{round_id}/letters",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FlowStarted,
    responses=error_responses(401, 404, 409, 503),
)
async def letters(round_id: str, rt: RuntimeDep, officer: SecretariatWriter) -> FlowStarted:
    """Run the `send-decision-letters` flow: one letter per applicant, in their language, once."""
    from flows.committee import send_decision_letters_flow

    await run_in_threadpool(check_first, rt, letters_service.check_letters, round_id)
    run_id = await start_stage(
        rt, send_decision_letters_flow, {"round_id": round_id}, officer=officer, round_id=round_id
    )
    return FlowStarted(flow_run_id=run_id, round=round_id)


@router.get(
    "/rounds/{round_id}/360giving",
    response_model=GrantsPackageOut,
    response_model_exclude_none=True,  # a grant's optional fields are left out, not null
    responses=error_responses(401, 404, 409),
)
def grants(round_id: str, rt: RuntimeDep, officer: SecretariatReader) -> GrantsPackageOut:
    """The round's awarded grants as a 360Giving data package (validated before it is given)."""
    with reading(rt.engine) as session:
        package = opendata.grants_package(session, rt.settings, round_id)
    errors = opendata.validation_errors(package)
    if errors:
        raise NotAllowed("the package does not validate against the 360Giving schema: " + "; ".join(errors[:5]))
    return GrantsPackageOut.model_validate(package)


@router.get(
    "/committee/bundle",
    response_model=None,
    response_class=FileResponse,
    status_code=status.HTTP_200_OK,
    responses={
        200: {
            "content": {"text/html": {}, "application/pdf": {}},
            "description": "the member's page for the link (format=page, a browser's default), or the bundle "
            "itself: HTML, or PDF with format=pdf",
        },
        **page_error_responses(404, 410, 422, 429, 503),
    },
    dependencies=[PersonPage()],
    summary="A committee member's page and review bundle (the link of their message)",
)
def download(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    credentials: BundleTokenDep,
    attempt: AttemptDep,
    token: Annotated[
        str, Query(max_length=200, description="the token of the e-mailed link (a program sends it as a header)")
    ] = "",
    format: Annotated[  # noqa: A002
        str | None,
        Query(
            pattern="^(page|html|pdf)$",
            description="page: the member's page for the link (the default for a browser, which asks for "
            "text/html); html or pdf: the bundle itself (the default for any other client: html)",
        ),
    ] = None,
    lang: Annotated[str | None, Query(max_length=5, description="en, fr or es (default: the member's)")] = None,
) -> Response:
    """What the member's personal link opens: in a browser (one that asks for text/html),
    the member's page in their language (the meeting, the agenda with what they take no
    part in, the bundle to read or download); for any other client, or with `format`,
    the bundle itself. Every download is audited; the page records none. An unknown
    link answers 404 (counted against the source, and sampled: api/attempts.py), one that
    no longer works (expired, replaced by a newer version, withdrawn, or its member left
    the committee) 410, audited under the member's name: a page in the member's language
    for a browser, JSON for a client that asks for it (Accept: application/json). A
    program sends the link's token as `Authorization: Bearer <token>` rather than in the
    address.

    The e-mailed link has to carry the token in its address (a link in a message can
    only be a GET): the server's access log redacts it (`api.logs`), and the page and the
    file are sent with `Referrer-Policy: no-referrer`."""
    if credentials is not None:
        token = credentials.credentials
    browser = credentials is None and "text/html" in request.headers.get("accept", "").lower()
    format = format or ("page" if browser else "html")  # noqa: A001
    if format == "page":
        with (  # refused as a download would be: the same link, the same checks
            attempt.refusals(
                rt.engine, role=Role.COMMITTEE, action="bundle.download", subject_type="bundle", subject_id="link"
            ),
            reading(rt.engine) as session,
        ):
            landing = bundles.bundle_landing(session, rt.settings, token, at=now, language=lang)
        return _bundle_page(request, landing, token)
    with (
        attempt.refusals(
            rt.engine, role=Role.COMMITTEE, action="bundle.download", subject_type="bundle", subject_id="link"
        ),
        unit_of_work(rt.engine) as session,
    ):
        bundle, path = bundles.open_bundle(session, rt.settings, token, at=now, pdf=format == "pdf")
    media = "application/pdf" if format == "pdf" else "text/html; charset=utf-8"
    return FileResponse(
        path,
        media_type=media,
        filename=f"bundle-{bundle.round_id}-v{bundle.version}.{format}",
        content_disposition_type="inline",
        headers={**PAGE_HEADERS, "Content-Security-Policy": BUNDLE_POLICY},
    )


def _bundle_page(request: Request, landing: bundles.BundleLanding, token: str) -> HTMLResponse:
    """The member's page for their link: the meeting, its agenda (marking what they take no
    part in), and the bundle to open or download, in their language."""
    language = landing.language
    html = (
        environment(language, PAGES)
        .get_template("committee_bundle.html")
        .render(
            language=language,
            languages=LANGUAGE_NAMES,
            assets=page_assets(request),
            b=landing,
            token=token,
            money=lambda value: labels.money(value, landing.currency, language),
        )
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)
