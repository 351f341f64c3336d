"""The secretariat's routes for a grant (a secretariat API key): its state and money,
payments, reports (recorded for the recipient, accepted or sent back), amendments, and
close-out. Thin over `engine.services.grants`, `grant_reports` and `grant_changes`, as
the CLI is."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.attempts import AttemptDep
from api.common import Number, error_responses
from api.deps import NowDep, RuntimeDep, SecretariatReader, SecretariatWriter
from api.headers import BUNDLE_POLICY
from api.pages import PAGE_HEADERS, PersonPage, page_error_responses
from domain.application import NOT_BLANK, Input, IsoDate
from domain.lifecycle import Role
from domain.money import CentsIn, PositiveCentsIn
from engine.db import reading, unit_of_work
from engine.services import agreements, grant_changes, grant_reports, report_reviews
from engine.services import grants as grant_service
from engine.services.errors import NotFound
from engine.services.grant_reports import ReportLine
from engine.services.grants import GrantLine

router = APIRouter(prefix="/grants/{reference}", tags=["grants"], responses=error_responses(401, 404, 503))
#: The recipient's personal link to their agreement.
agreement_router = APIRouter(tags=["grants"])

Reason = Annotated[str, Field(min_length=1, max_length=5000, pattern=NOT_BLANK)]
Money = Annotated[str, Field(description="US dollars, a decimal number as a string")]


class GrantStateOut(BaseModel):
    """A grant: its state, its money (amounts as decimal strings) and its dates."""

    reference: str
    state: str
    party: str
    award: Money
    released: Money = Field(description="what the instalments' milestones released so far")
    paid: Money
    balance: Money = Field(description="the award less what was paid")
    planned_start: date
    planned_end: date
    starts_on: date | None = Field(description="the agreement's start: the day the grant became active")
    ends_on: date | None = Field(description="the agreement's end, as amended")
    conditions_met: int
    conditions: int
    signatures: int


class ReportOut(BaseModel):
    number: int
    kind: Literal["progress", "final"]
    period_end: date
    due_on: date
    state: Literal["due", "submitted", "revision_requested", "accepted"]
    submitted_at: datetime | None
    decided_at: datetime | None
    reason: str | None = Field(description="the secretariat's note or, sent back, its reasons")
    revisions: int
    flags: list[str] = Field(description="spending beyond the round's tolerance, with the figures")


class AmendmentOut(BaseModel):
    number: int
    kind: Literal["extension", "reallocation", "contact", "agency"]
    state: Literal["requested", "approved", "refused"]
    before: dict[str, Any]
    after: dict[str, Any]
    request_reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None


class CloseOutOut(BaseModel):
    reference: str
    state: str
    paid: Money
    spent: Money = Field(description="what the accepted reports spent")
    unspent: Money = Field(description="paid less spent: what the recipient returns (or is written off)")
    returned: Money
    written_off: Money
    due_by: date | None = Field(description="the day the unspent balance is settled by")
    lessons: str | None
    missing: list[str] = Field(description="what is left before the grant can close")


class PaymentIn(Input):
    model_config = ConfigDict(extra="forbid")
    amount: PositiveCentsIn
    finance_ref: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)
    paid_on: IsoDate


class AcceptIn(Input):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=5000)


class RevisionIn(Input):
    model_config = ConfigDict(extra="forbid")
    reasons: Reason


class ContactIn(Input):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=300, pattern=NOT_BLANK)
    email: str = Field(min_length=3, max_length=320)
    language: Literal["en", "fr", "es"] = "en"


class AmendmentIn(Input):
    """One change: `ends_on` (an extension), `budget` (a reallocation: each category's new
    amount), `contact`, or `executing_agency`; approved at once unless `requested`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["extension", "reallocation", "contact", "agency"]
    ends_on: IsoDate | None = None
    budget: dict[str, CentsIn] | None = Field(default=None, max_length=20)
    contact: ContactIn | None = None
    executing_agency: str | None = Field(default=None, max_length=300)
    reason: Reason
    requested: StrictBool = Field(default=False, description="true: asked for, to decide later")


class AmendmentDecisionIn(Input):
    model_config = ConfigDict(extra="forbid")
    approve: StrictBool
    reason: Reason


class SettlementIn(Input):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["returned", "written_off"]
    amount: PositiveCentsIn
    settled_on: IsoDate
    finance_ref: str | None = Field(default=None, max_length=100, description="for money returned")
    reason: str | None = Field(default=None, max_length=2000, description="for a balance written off")


class LessonsIn(Input):
    model_config = ConfigDict(extra="forbid")
    lessons: str = Field(min_length=1, max_length=20_000, pattern=NOT_BLANK)


def _grant(line: GrantLine, starts_on: date | None, ends_on: date | None) -> GrantStateOut:
    money = {k: f"{getattr(line, k):.2f}" for k in ("award", "released", "paid", "balance")}
    return GrantStateOut(
        **{**line.__dict__, "state": line.state.value, **money, "starts_on": starts_on, "ends_on": ends_on}
    )


def _report(line: ReportLine) -> ReportOut:
    return ReportOut.model_validate(line, from_attributes=True)


def _close_out(state: grant_changes.CloseOut) -> CloseOutOut:
    money = {k: f"{getattr(state, k):.2f}" for k in ("paid", "spent", "unspent", "returned", "written_off")}
    missing = [f"{f.replace('_', ' ')} {m}" for f, m in state.problems]
    return CloseOutOut(
        reference=state.reference, state=state.state, due_by=state.due_by, lessons=state.lessons, missing=missing,
        **money,
    )  # fmt: skip


@router.get("", response_model=GrantStateOut)
def grant(reference: str, rt: RuntimeDep, officer: SecretariatReader) -> GrantStateOut:
    """A grant's state, money and dates."""
    with reading(rt.engine) as session:
        found = grant_service.grant_of(session, reference)
        return _grant(grant_service.line_of(session, found), found.starts_on, found.ends_on)


@router.post("/payments", response_model=GrantStateOut, responses=error_responses(409, 422))
def pay(reference: str, body: PaymentIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> GrantStateOut:
    """Record a payment the finance office made: within what the instalments released, never above the award."""
    with unit_of_work(rt.engine) as session:
        line = grant_service.pay(
            session, reference, body.amount, finance_ref=body.finance_ref, paid_on=body.paid_on, actor=officer, at=now
        )
        found = grant_service.grant_of(session, reference)
        return _grant(line, found.starts_on, found.ends_on)


@router.get("/reports", response_model=list[ReportOut])
def reports(reference: str, rt: RuntimeDep, officer: SecretariatReader) -> list[ReportOut]:
    """The grant's reports on the schedule of its agreement and amendments."""
    with reading(rt.engine) as session:
        return [_report(r) for r in grant_reports.list_reports(session, reference)]


@router.post("/reports/{number}", response_model=ReportOut, responses=error_responses(409, 422))
def submit_report(
    reference: str,
    number: Number,
    rt: RuntimeDep,
    now: NowDep,
    officer: SecretariatWriter,
    report: Annotated[
        dict[str, Any],
        Body(
            description="{narrative, indicators: [{output, indicator, progress}], spending: {category: amount}}: "
            "every indicator of form A's outputs once, spending per budget category of form B"
        ),
    ],
) -> ReportOut:
    """Record a report the recipient sent; spending beyond the round's tolerance is flagged."""
    with unit_of_work(rt.engine) as session:
        return _report(
            grant_reports.submit_report(
                session, reference, number, report, actor=officer, role=Role.SECRETARIAT, at=now
            )
        )


@router.post("/reports/{number}/acceptance", response_model=ReportOut, responses=error_responses(409, 422))
def accept_report(
    reference: str, number: Number, body: AcceptIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ReportOut:
    """Accept a submitted report; it releases the instalments waiting for it."""
    with unit_of_work(rt.engine) as session:
        return _report(grant_reports.accept_report(session, reference, number, note=body.note, actor=officer, at=now))


@router.post("/reports/{number}/revision", response_model=ReportOut, responses=error_responses(409, 422))
def ask_revision(
    reference: str, number: Number, body: RevisionIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ReportOut:
    """Send a submitted report back with the reasons; the recipient is told in their language."""
    with unit_of_work(rt.engine) as session:
        return _report(
            grant_reports.ask_revision(session, rt.settings, reference, number, body.reasons, actor=officer, at=now)
        )


@router.get("/amendments", response_model=list[AmendmentOut])
def amendments(reference: str, rt: RuntimeDep, officer: SecretariatReader) -> list[AmendmentOut]:
    """The grant's amendments, in their order, with what each changes and its decision."""
    with reading(rt.engine) as session:
        return [
            AmendmentOut.model_validate(a, from_attributes=True)
            for a in grant_changes.list_amendments(session, reference)
        ]


@router.post("/amendments", response_model=AmendmentOut, responses=error_responses(409, 422))
def amend(reference: str, body: AmendmentIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> AmendmentOut:
    """Record an amendment (approved at once unless `requested`): an extension moves the reports' schedule."""
    changes: dict[str, dict[str, Any]] = {
        "extension": {"ends_on": body.ends_on},
        "reallocation": {"budget": body.budget},
        "contact": {"contact": body.contact.model_dump() if body.contact else None},
        "agency": {"executing_agency": body.executing_agency},
    }
    change = changes[body.kind]
    with unit_of_work(rt.engine) as session:
        line = grant_changes.request_amendment(
            session, reference, body.kind, change, body.reason, actor=officer, role=Role.SECRETARIAT, at=now
        )
        if not body.requested:
            line = grant_changes.decide_amendment(
                session, reference, line.number, True, body.reason, actor=officer, at=now
            )
    return AmendmentOut.model_validate(line, from_attributes=True)


@router.post("/amendments/{number}/decision", response_model=AmendmentOut, responses=error_responses(409, 422))
def decide(
    reference: str, number: Number, body: AmendmentDecisionIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> AmendmentOut:
    """Approve or refuse an amendment that was asked for, with the reason."""
    with unit_of_work(rt.engine) as session:
        line = grant_changes.decide_amendment(
            session, reference, number, body.approve, body.reason, actor=officer, at=now
        )
    return AmendmentOut.model_validate(line, from_attributes=True)


@router.get("/close-out", response_model=CloseOutOut)
def close_out(reference: str, rt: RuntimeDep, officer: SecretariatReader) -> CloseOutOut:
    """Where the grant's close-out stands, and what is left before it can close."""
    with reading(rt.engine) as session:
        return _close_out(grant_changes.close_out(session, reference))


@router.post("/settlements", response_model=CloseOutOut, responses=error_responses(409, 422))
def settle(reference: str, body: SettlementIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> CloseOutOut:
    """Record unspent money returned (with the finance reference) or written off (with the reason)."""
    with unit_of_work(rt.engine) as session:
        return _close_out(
            grant_changes.settle(
                session, reference, body.kind, body.amount, settled_on=body.settled_on, finance_ref=body.finance_ref,
                reason=body.reason, actor=officer, at=now,
            )
        )  # fmt: skip


@router.put("/lessons", response_model=CloseOutOut, responses=error_responses(409, 422))
def lessons(reference: str, body: LessonsIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> CloseOutOut:
    """Record what the project taught (needed before it closes)."""
    with unit_of_work(rt.engine) as session:
        return _close_out(grant_changes.record_lessons(session, reference, body.lessons, actor=officer, at=now))


@router.post("/closure", response_model=CloseOutOut, responses=error_responses(409, 422))
def close(reference: str, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> CloseOutOut:
    """Close the grant: its final report accepted, its balance settled, its lessons recorded."""
    with unit_of_work(rt.engine) as session:
        return _close_out(grant_changes.close(session, reference, actor=officer, at=now))


class AgreementOut(BaseModel):
    reference: str
    version: int
    language: str
    sha256: str = Field(description="of the PDF, or of the HTML where the engine makes no PDF")
    pdf: bool = Field(description="whether a PDF was made (WeasyPrint installed)")
    recipient: str
    made_at: datetime


def _agreement(line: agreements.AgreementLine) -> AgreementOut:
    return AgreementOut(
        reference=line.reference, version=line.version, language=line.language, sha256=line.sha256,
        pdf=line.pdf is not None, recipient=line.recipient, made_at=line.made_at,
    )  # fmt: skip


@router.post("/agreement", response_model=AgreementOut, responses=error_responses(409, 422))
def send_agreement(reference: str, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter) -> AgreementOut:
    """Make the agreement in the recipient's language (HTML, and PDF where WeasyPrint is
    installed) and queue it with the recipient's personal link; again, a new version."""
    with unit_of_work(rt.engine) as session:
        return _agreement(agreements.send_agreement(session, rt.settings, reference, actor=officer, at=now))


@router.get(
    "/agreement",
    response_model=None,
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "the latest version"}},
)
def read_agreement(
    reference: str,
    rt: RuntimeDep,
    officer: SecretariatReader,
    format: Annotated[str, Query(pattern="^(html|pdf)$")] = "html",  # noqa: A002
) -> FileResponse:
    """The latest version of the grant's agreement as it was sent (HTML, or PDF)."""
    with reading(rt.engine) as session:
        line = agreements.latest_agreement(session, rt.settings, reference)
    if line is None:
        raise NotFound(f"no agreement of {reference} was sent yet")
    return agreement_file(line, format)


def agreement_file(line: agreements.AgreementLine, format: str) -> FileResponse:  # noqa: A002
    path = line.pdf if format == "pdf" else line.html
    if path is None:
        raise NotFound(f"the agreement of {line.reference} was made as HTML only: open it without format=pdf")
    return FileResponse(
        path,
        media_type="application/pdf" if format == "pdf" else "text/html; charset=utf-8",
        filename=f"agreement-{line.reference}-v{line.version}.{format}",
        content_disposition_type="inline",
        headers={**PAGE_HEADERS, "Content-Security-Policy": BUNDLE_POLICY},
    )


@agreement_router.get(
    "/agreement",
    response_model=None,
    response_class=FileResponse,
    include_in_schema=False,
    responses=page_error_responses(404, 410, 422, 429),
    dependencies=[PersonPage()],
)
def open_agreement(
    request: Request,
    rt: RuntimeDep,
    attempt: AttemptDep,
    token: Annotated[str, Query(max_length=200)] = "",
    format: Annotated[str, Query(pattern="^(html|pdf)$")] = "html",  # noqa: A002
) -> FileResponse:
    """What the recipient's personal link opens: their agreement, in their language, as
    it was sent (HTML, or PDF with format=pdf). An unknown link answers 404 (counted
    against the source, as every link's refusal is)."""
    with (
        attempt.refusals(
            rt.engine, role=Role.APPLICANT, action="agreement.open", subject_type="grant", subject_id="link"
        ),
        reading(rt.engine) as session,
    ):
        line = agreements.open_agreement(session, rt.settings, token)
    return agreement_file(line, format)


class ExpertIn(Input):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, description="a reviewer of the GMP register")


class ExpertReviewOut(BaseModel):
    reference: str
    report: int
    reviewer: str
    reviewer_name: str
    state: Literal["invited", "submitted"]
    due_on: date
    recommendation: Literal["accept", "revise"] | None
    opinion: str | None


@router.post("/reports/{number}/experts", response_model=ExpertReviewOut, responses=error_responses(409, 422))
def ask_expert(
    reference: str, number: Number, body: ExpertIn, rt: RuntimeDep, now: NowDep, officer: SecretariatWriter
) -> ExpertReviewOut:
    """Ask a GMP expert of the register to review a submitted report: no conflict of
    interest, within their load; they are sent a sign-in link in their language."""
    with unit_of_work(rt.engine) as session:
        line = report_reviews.ask_review(session, rt.settings, reference, number, body.email, actor=officer, at=now)
    return ExpertReviewOut.model_validate(line, from_attributes=True)


@router.get("/expert-reviews", response_model=list[ExpertReviewOut])
def expert_reviews(reference: str, rt: RuntimeDep, officer: SecretariatReader) -> list[ExpertReviewOut]:
    """The GMP experts' reviews of the grant's reports, asked and given."""
    with reading(rt.engine) as session:
        lines = report_reviews.reviews_of(session, grant_service.grant_of(session, reference))
    return [ExpertReviewOut.model_validate(line, from_attributes=True) for line in lines]
