"""What the API answers, by role. Applicant-facing models carry no score, reviewer,
committee member or internal note."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.lifecycle import PublicStatus


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
