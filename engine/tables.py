"""The database tables (SQLModel). Schema changes go through Alembic migrations in
`engine/migrations/versions`; a test checks the two agree."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, Numeric, Table, UniqueConstraint
from sqlalchemy import Enum as EnumType
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from domain.committee import Decision
from domain.grants import GrantState
from domain.keys import KeyScope
from domain.lifecycle import PublicStatus, Role, Status
from domain.review import AssignmentState, Recommendation, ReviewState
from domain.rounds import RoundStatus
from domain.screening import Verdict
from domain.staff import StaffRole

JSONType = JSON().with_variant(JSONB(), "postgresql")


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def enum_column(enum: type[StrEnum], length: int) -> EnumType:
    """A column of one of the domain's enums (a status, a state, a decision, a role):
    stored as its value in a VARCHAR(length), exactly as a plain string column (no
    database enum type, no CHECK constraint), read back as the enum's member. Writing a
    value that is not one of the enum's is refused before it reaches the database."""
    return EnumType(
        enum,
        native_enum=False,
        create_constraint=False,
        values_callable=_values,
        validate_strings=True,
        length=length,
    )


class MessageState(StrEnum):
    """Where a message of the outbox is: waiting (or waiting for another try), sent,
    or failed for good (for a person to see)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, stored in UTC on every database (SQLite keeps no
    offset, so naive values read back are UTC by construction)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the engine stores instants with a time zone only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table, for statements that write many rows at once."""
    table: Table = model.__table__  # type: ignore[attr-defined]  # SQLModel declares it only at run time
    return table


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(UTCDateTime(), **kw))


class Round(SQLModel, table=True):
    __tablename__ = "round"

    id: str = Field(primary_key=True, max_length=40)
    title: str = Field(max_length=200)
    opens_at: datetime = _ts(nullable=False)
    closes_at: datetime = _ts(nullable=False)
    status: RoundStatus = Field(sa_type=enum_column(RoundStatus, 20))
    definition: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    source: str = Field(max_length=500, description="file the definition was loaded from")
    last_sequence: int = Field(default=0, description="last application number given in this round")
    updated_at: datetime = _ts(nullable=False)


class PartyRecord(SQLModel, table=True):
    __tablename__ = "party"

    iso3: str = Field(primary_key=True, max_length=3)
    iso2: str = Field(max_length=2)
    name: str = Field(max_length=200)
    un_regional_group: str | None = Field(default=None, max_length=20)
    party_since: date | None = None
    ldc: bool
    sids: bool
    economy: str = Field(max_length=20)
    source_note: str | None = Field(default=None, max_length=1000)


_application_version = Column("version", Integer, nullable=False)
_grant_version = Column("version", Integer, nullable=False)


class Application(SQLModel, table=True):
    __tablename__ = "application"
    __mapper_args__ = {"version_id_col": _application_version}

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=60, unique=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    party: str = Field(max_length=3, index=True)
    language: str = Field(max_length=2)
    title: str | None = Field(default=None, max_length=200)
    amount_requested: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    status: Status = Field(sa_type=enum_column(Status, 30), index=True)
    version: int = Field(default=1, sa_column=_application_version)
    applicant: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    form_a: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    form_b: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    form_c: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    channel: str = Field(max_length=10, description="api or import")
    submitted_at: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False)
    access_token_hash: str = Field(max_length=64)


class StatusChange(SQLModel, table=True):
    """One row per transition of an application; (application, key) is unique, so a
    replayed transition is recognised and changes nothing."""

    __tablename__ = "status_change"
    __table_args__ = (UniqueConstraint("application_id", "key", name="uq_status_change_key"),)

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    key: str = Field(max_length=200, description="transition id given by the caller")
    transition: str = Field(max_length=40)
    from_status: Status | None = Field(default=None, sa_type=enum_column(Status, 30))
    to_status: Status = Field(sa_type=enum_column(Status, 30))
    public_status: PublicStatus = Field(sa_type=enum_column(PublicStatus, 30))
    at: datetime = _ts(nullable=False)


class AuditEvent(SQLModel, table=True):
    """Append-only (database triggers refuse UPDATE and DELETE, and TRUNCATE on
    PostgreSQL): who did what, when, why. Each event carries the hash of the event
    before it (in id order) and its own, so that a change by any path is found
    (`domain.audit_chain`, `sip audit verify`); write events with `audit.append`."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(nullable=False, index=True)
    actor: str = Field(max_length=200)
    role: Role = Field(sa_type=enum_column(Role, 20))
    action: str = Field(max_length=60)
    subject_type: str = Field(max_length=30)
    subject_id: str = Field(max_length=100, index=True)
    from_status: str | None = Field(default=None, max_length=30)
    to_status: str | None = Field(default=None, max_length=30)
    reason: str | None = Field(default=None, max_length=2000)
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class IntakeKey(SQLModel, table=True):
    """Idempotency of intake: the first result of a (round, key) is returned again."""

    __tablename__ = "intake_key"
    __table_args__ = (UniqueConstraint("round_id", "key", name="uq_intake_key"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="round.id", max_length=40)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    application_id: int = Field(foreign_key="application.id")
    created_at: datetime = _ts(nullable=False)


class OutboxMessage(SQLModel, table=True):
    """A rendered notification, written in the same transaction as the change that
    causes it; delivery reads from here. `key` (round, recipient, kind) is unique."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True)
    kind: str = Field(max_length=40)
    round_id: str | None = Field(default=None, max_length=40, index=True)
    application_id: int | None = Field(default=None, foreign_key="application.id")
    recipient: str = Field(max_length=320)
    language: str = Field(max_length=2)
    subject: str = Field(max_length=300)
    body_text: str
    body_html: str
    state: MessageState = Field(default=MessageState.QUEUED, sa_type=enum_column(MessageState, 20), index=True)
    attempts: int = 0
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = _ts(nullable=True)
    #: Delivery: not before this instant (a failed attempt waits before the next).
    next_attempt_at: datetime | None = _ts(nullable=True)
    #: The relay that claimed the message, and until when its claim holds.
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = _ts(nullable=True)
    last_attempt_at: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, max_length=1000)
    message_id: str | None = Field(default=None, max_length=250, description="the Message-ID it was sent with")


class ScreeningRecord(SQLModel, table=True):
    """An application's latest screening: each check with its outcome, evidence and
    reason. `fingerprint` identifies the inputs (the application, the round's rules,
    the Parties register): screening the same inputs again changes nothing."""

    __tablename__ = "screening_record"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    fingerprint: str = Field(max_length=64)
    verdict: Verdict = Field(sa_type=enum_column(Verdict, 20), index=True)
    checks: list[dict[str, Any]] = Field(sa_column=Column(JSONType, nullable=False))
    appraisal: list[dict[str, Any]] = Field(sa_column=Column(JSONType, nullable=False))
    weighted_score: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 1)))
    screened_at: datetime = _ts(nullable=False)
    #: A person's decision replacing the automatic verdict: {verdict, reason, by, at}.
    override: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))

    #: A screening's progress (`sip screen` counts the records it has written so far) from the index alone.
    __table_args__ = (Index("ix_screening_record_round_screened_at", "round_id", "screened_at"),)


class AppraisalScore(SQLModel, table=True):
    """A person's score of an application on one judgement criterion of its round
    (the latest; every change is in the audit trail)."""

    __tablename__ = "appraisal_score"
    __table_args__ = (UniqueConstraint("application_id", "criterion", name="uq_appraisal_score"),)

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    criterion: str = Field(max_length=64)
    score: int
    comment: str | None = Field(default=None, max_length=4000)
    scored_by: str = Field(max_length=200)
    scored_at: datetime = _ts(nullable=False)


class ReviewerRecord(SQLModel, table=True):
    """A Global Mercury Partnership expert in the secretariat's register."""

    __tablename__ = "reviewer"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    organisation: str = Field(max_length=300)
    country: str = Field(max_length=3)
    areas: list[str] = Field(sa_column=Column(JSONType, nullable=False))
    languages: list[str] = Field(sa_column=Column(JSONType, nullable=False))
    max_load: int
    active: bool = True
    updated_at: datetime = _ts(nullable=False)


class ReviewAssignment(SQLModel, table=True):
    """A reviewer asked to review an application (proposed until invited)."""

    __tablename__ = "review_assignment"
    __table_args__ = (UniqueConstraint("application_id", "reviewer_id", name="uq_review_assignment"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    application_id: int = Field(foreign_key="application.id", index=True)
    reviewer_id: int = Field(foreign_key="reviewer.id", index=True)
    state: AssignmentState = Field(default=AssignmentState.PROPOSED, sa_type=enum_column(AssignmentState, 20))
    created_at: datetime = _ts(nullable=False)
    invited_at: datetime | None = _ts(nullable=True)
    #: When it last changed state after the invitation (declined, conflict, submitted, removed).
    changed_at: datetime | None = _ts(nullable=True)
    #: Why it was declined, removed or is conflicted.
    note: str | None = Field(default=None, max_length=2000)


class Review(SQLModel, table=True):
    """A reviewer's review of an application: a draft until submitted, then fixed."""

    __tablename__ = "review"

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="review_assignment.id", unique=True)
    scores: dict[str, int] = Field(sa_column=Column(JSONType, nullable=False))
    recommendation: Recommendation | None = Field(default=None, sa_type=enum_column(Recommendation, 30))
    comments_for_committee: str | None = Field(default=None, max_length=20000)
    comments_for_applicant: str | None = Field(default=None, max_length=20000)
    state: ReviewState = Field(default=ReviewState.DRAFT, sa_type=enum_column(ReviewState, 20))
    updated_at: datetime = _ts(nullable=False)
    submitted_at: datetime | None = _ts(nullable=True)


class ReviewStage(SQLModel, table=True):
    """A round's GMP review stage: open from the first invitations until closed."""

    __tablename__ = "review_stage"

    round_id: str = Field(foreign_key="round.id", primary_key=True, max_length=40)
    due_on: date
    invited_at: datetime = _ts(nullable=False)
    closed_at: datetime | None = _ts(nullable=True)
    closed_by: str | None = Field(default=None, max_length=200)


class ReviewerToken(SQLModel, table=True):
    """A reviewer's credential, kept as a hash: a link (sent by e-mail, used once) or
    the session a link opens. A link's token is derived from the secret key and its
    nonce when the message is delivered, so the outbox never holds it."""

    __tablename__ = "reviewer_token"

    id: int | None = Field(default=None, primary_key=True)
    reviewer_id: int = Field(foreign_key="reviewer.id", index=True)
    purpose: str = Field(max_length=10, description="link or session")
    token_hash: str = Field(max_length=64, unique=True)
    nonce: str | None = Field(default=None, max_length=64)
    message_key: str | None = Field(default=None, max_length=300, unique=True)
    issued_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _ts(nullable=True)
    #: When it was ended before its time: the reviewer signed out, was deactivated, or the
    #: secretariat withdrew their access (the audit trail says which, and who did it).
    revoked_at: datetime | None = _ts(nullable=True)


class DeclaredConflict(SQLModel, table=True):
    """A conflict of interest declared by a reviewer or recorded by the secretariat."""

    __tablename__ = "declared_conflict"
    __table_args__ = (UniqueConstraint("reviewer_id", "application_id", name="uq_declared_conflict"),)

    id: int | None = Field(default=None, primary_key=True)
    reviewer_id: int = Field(foreign_key="reviewer.id")
    application_id: int = Field(foreign_key="application.id")
    reason: str = Field(max_length=2000)
    declared_by: str = Field(max_length=200)
    declared_at: datetime = _ts(nullable=False)


class CommitteeMember(SQLModel, table=True):
    """A member of the Steering Committee for one term (the same person may serve
    several terms: one row each)."""

    __tablename__ = "committee_member"
    __table_args__ = (UniqueConstraint("email", "term_start", name="uq_committee_member_term"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, index=True)
    name: str = Field(max_length=200)
    country: str = Field(max_length=3)
    role: str = Field(max_length=10)
    term_start: date
    term_end: date
    language: str = Field(max_length=2)
    updated_at: datetime = _ts(nullable=False)


class MemberConflict(SQLModel, table=True):
    """A conflict of interest a committee member declared on an application (their own
    country's applications need none: that rule is applied by itself)."""

    __tablename__ = "member_conflict"
    __table_args__ = (UniqueConstraint("email", "application_id", name="uq_member_conflict"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    application_id: int = Field(foreign_key="application.id")
    reason: str = Field(max_length=2000)
    declared_by: str = Field(max_length=200)
    declared_at: datetime = _ts(nullable=False)


class CommitteeMeeting(SQLModel, table=True):
    """A round's committee meeting as scheduled, and the funds available for the round."""

    __tablename__ = "committee_meeting"

    round_id: str = Field(foreign_key="round.id", primary_key=True, max_length=40)
    starts_on: date
    ends_on: date
    place: str = Field(max_length=200, description="a city, or 'online'")
    funds_available: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    #: E-mails of the members who attend; None: every member serving on the meeting date.
    attendees: list[str] | None = Field(default=None, sa_column=Column(JSONType))
    updated_at: datetime = _ts(nullable=False)


class DecisionRecord(SQLModel, table=True):
    """The committee's decision on an application, as the secretariat recorded it."""

    __tablename__ = "decision"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    decision: Decision = Field(sa_type=enum_column(Decision, 30))
    amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    conditions: str | None = Field(default=None, max_length=5000)
    recommendations: str | None = Field(default=None, max_length=10000)
    participants: list[str] = Field(sa_column=Column(JSONType, nullable=False))
    rule: str = Field(max_length=20)
    exception: str | None = Field(default=None, max_length=2000)
    decided_on: date = Field(description="the last day of the meeting")
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = _ts(nullable=False)


class CommitteeBundle(SQLModel, table=True):
    """One version of a member's review bundle for a round (the file is kept; its hash
    shows it was not changed)."""

    __tablename__ = "committee_bundle"
    __table_args__ = (UniqueConstraint("round_id", "email", "version", name="uq_committee_bundle"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    email: str = Field(max_length=320)
    version: int
    path: str = Field(max_length=1000, description="the HTML file as prepared, relative to SIP_FILES_DIR")
    sha256: str = Field(max_length=64, description="of the HTML file")
    #: A digest of each part (cover, summary, each dossier): what changed from one version to the next.
    digests: dict[str, str] = Field(sa_column=Column(JSONType, nullable=False))
    changes: list[str] = Field(sa_column=Column(JSONType, nullable=False))
    #: The download link's token, as a hash (the token is derived from the secret key and the bundle's id).
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _ts(nullable=False)
    #: When its link was withdrawn: the member left the committee, or the secretariat
    #: withdrew their access (the audit trail says which, and who did it).
    revoked_at: datetime | None = _ts(nullable=True)


class Installation(SQLModel, table=True):
    """Facts about the installation that every machine of it must agree on (e.g. a
    check of the secret key: never the key itself)."""

    __tablename__ = "installation"

    name: str = Field(primary_key=True, max_length=60)
    value: str = Field(max_length=200)
    recorded_at: datetime = _ts(nullable=False)


class ApiKey(SQLModel, table=True):
    """A secretariat API key, kept as a hash (the key is shown once, when it is made);
    `prefix` is the key's first characters, to tell keys apart in a list."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True, description="the officer the key belongs to")
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    scope: KeyScope = Field(sa_type=enum_column(KeyScope, 10))
    created_at: datetime = _ts(nullable=False)
    created_by: str = Field(max_length=200)
    expires_at: datetime = _ts(nullable=False)
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=2000, description="why it was revoked")


class ApplicationDraft(SQLModel, table=True):
    """An application being written in the applicant's portal: the form as the applicant
    left it (it need not be valid yet). Its link's token is derived from the secret key
    and `nonce` when the message is delivered; only its hash is kept. Submitting it
    takes it in as any application (`engine.services.intake`) and links it here."""

    __tablename__ = "application_draft"

    id: int | None = Field(default=None, primary_key=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    nonce: str = Field(max_length=64, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    email: str = Field(max_length=320, index=True)
    language: str = Field(max_length=2)
    content: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    #: The last time its link was sent (a new one at most once an hour on request).
    link_sent_at: datetime = _ts(nullable=False)
    submitted_at: datetime | None = _ts(nullable=True)
    application_id: int | None = Field(default=None, foreign_key="application.id")


class StaffAccount(SQLModel, table=True):
    """A secretariat officer's own account: the password kept only as an Argon2 hash; wrong
    passwords in a row counted, and the account locked for a while after too many."""

    __tablename__ = "staff_account"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    role: StaffRole = Field(sa_type=enum_column(StaffRole, 10))
    password_hash: str = Field(max_length=200)
    active: bool = Field(default=True)
    failed_attempts: int = Field(default=0)
    locked_until: datetime | None = _ts(nullable=True)
    last_sign_in_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts(nullable=False)
    created_by: str = Field(max_length=200)
    disabled_at: datetime | None = _ts(nullable=True)
    disabled_by: str | None = Field(default=None, max_length=200)
    #: The second factor's shared secret (TOTP, RFC 6238), sealed with the engine's secret
    #: key; None: the account signs in with its password alone.
    totp_secret: str | None = Field(default=None, max_length=300)
    #: The time step of the last code accepted: a code works once.
    totp_last_step: int | None = Field(default=None)


class Grant(SQLModel, table=True):
    """A grant: made when the letter of an approval is queued; its state follows
    `domain.grants`' table, each change audited."""

    __tablename__ = "grants"  # "grant" is a word of SQL
    __mapper_args__ = {"version_id_col": _grant_version}

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=60, unique=True, description="the application's reference")
    application_id: int = Field(foreign_key="application.id", unique=True)
    round_id: str = Field(foreign_key="round.id", index=True, max_length=40)
    state: GrantState = Field(sa_type=enum_column(GrantState, 20), index=True)
    version: int = Field(default=1, sa_column=_grant_version)
    award: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    currency: str = Field(max_length=3)
    party: str = Field(max_length=3)
    executing_agency: str = Field(max_length=300)
    #: The committee's conditions as a checklist: [{text, met_at, evidence, by}].
    conditions: list[dict[str, Any]] = Field(sa_column=Column(JSONType, nullable=False))
    planned_start: date
    planned_end: date
    #: Form B's budget by category and year: {category: {year: amount as text}}.
    budget: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    created_at: datetime = _ts(nullable=False)
    #: The agreement's start (the day of its last signature) and its end, moved by extensions.
    starts_on: date | None = None
    ends_on: date | None = None
    #: The contact person once an amendment changed it ({name, email, language}); the application's until then.
    contact: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    #: The budget by category once a reallocation changed it ({category: amount as text}); form B's until then.
    budget_now: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    #: The day the final report was accepted: the unspent balance is settled within the round's days of it.
    closing_since: date | None = None
    #: The day the secretariat was told the balance is overdue (once).
    return_flagged_on: date | None = None
    #: What the project taught, recorded at close-out.
    lessons: str | None = Field(default=None, max_length=20_000)


class GrantInstalment(SQLModel, table=True):
    """One instalment of a grant's schedule (from the round's `[grants]` setting)."""

    __tablename__ = "grant_instalment"
    __table_args__ = (UniqueConstraint("grant_id", "number", name="uq_grant_instalment"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    number: int
    share: Decimal = Field(sa_column=Column(Numeric(6, 2), nullable=False))
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    after: str = Field(max_length=30, description="what releases it: signature, first_progress_report, final_report")
    released_on: date | None = None
    #: The day the secretariat was told it is released and still unpaid (once).
    flagged_on: date | None = None


class GrantSignature(SQLModel, table=True):
    """A signature of a grant's agreement, in order (the recipient, then the secretariat),
    with the SHA-256 of the signed file (the engine never changes one)."""

    __tablename__ = "grant_signature"
    __table_args__ = (UniqueConstraint("grant_id", "kind", name="uq_grant_signature"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    kind: str = Field(max_length=20, description="recipient or secretariat")
    signer: str = Field(max_length=200)
    signed_on: date
    sha256: str = Field(max_length=64)
    file_name: str = Field(max_length=200)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = _ts(nullable=False)


class GrantPayment(SQLModel, table=True):
    """A payment made to a grant, as the finance office recorded it (the engine never changes one)."""

    __tablename__ = "grant_payment"

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    paid_on: date
    finance_ref: str = Field(max_length=100, unique=True)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = _ts(nullable=False)


class GrantAgreement(SQLModel, table=True):
    """A version of a grant's agreement as sent to the recipient: its files (HTML, and PDF
    where WeasyPrint is installed) under the data folder, their SHA-256, and the hash of
    the token of the message's personal link."""

    __tablename__ = "grant_agreement"
    __table_args__ = (UniqueConstraint("grant_id", "version", name="uq_grant_agreement"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    version: int
    language: str = Field(max_length=2)
    recipient: str = Field(max_length=320, description="the address it was sent to")
    html_path: str = Field(max_length=300, description="under the data folder")
    pdf_path: str | None = Field(default=None, max_length=300)
    sha256: str = Field(max_length=64, description="of the PDF, or of the HTML where there is no PDF")
    message_key: str = Field(max_length=200, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    made_by: str = Field(max_length=200)
    made_at: datetime = _ts(nullable=False)


class GrantReport(SQLModel, table=True):
    """A report a grant owes (progress or final), on the schedule derived from its
    agreement and amendments; its content once submitted, and the secretariat's review."""

    __tablename__ = "grant_report"
    __table_args__ = (UniqueConstraint("grant_id", "number", name="uq_grant_report"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    number: int
    kind: str = Field(max_length=20, description="progress or final")
    period_end: date
    due_on: date = Field(index=True)
    state: str = Field(max_length=20, index=True)
    content: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    #: The spending flags found when it was submitted: [{category, budget, spent, evidence}].
    flags: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    submitted_at: datetime | None = _ts(nullable=True)
    submitted_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = _ts(nullable=True)
    decided_by: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=5000)
    revisions: int = 0
    #: The due date whose escalation the secretariat was told of (once per due date).
    escalated_for: date | None = None


class GrantReportReview(SQLModel, table=True):
    """A Global Mercury Partnership expert asked to review a grant's technical report, and
    their opinion."""

    __tablename__ = "grant_report_review"
    __table_args__ = (UniqueConstraint("report_id", "reviewer_id", "revision", name="uq_grant_report_review"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="grant_report.id", index=True)
    reviewer_id: int = Field(foreign_key="reviewer.id", index=True)
    #: The report as submitted the `revision`-th time (a report sent back and sent again is reviewed anew).
    revision: int = 0
    state: str = Field(max_length=20, description="invited or submitted")
    due_on: date
    invited_by: str = Field(max_length=200)
    invited_at: datetime = _ts(nullable=False)
    recommendation: str | None = Field(default=None, max_length=20, description="accept or revise")
    opinion: str | None = Field(default=None, max_length=5000)
    submitted_at: datetime | None = _ts(nullable=True)


class GrantAmendment(SQLModel, table=True):
    """An amendment of a grant (an extension, a reallocation, a new contact or executing
    agency): numbered per grant, with what it changes from and to, and its decision."""

    __tablename__ = "grant_amendment"
    __table_args__ = (UniqueConstraint("grant_id", "number", name="uq_grant_amendment"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    number: int
    kind: str = Field(max_length=20)
    state: str = Field(max_length=20)
    before: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    after: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    request_reason: str = Field(max_length=5000)
    requested_by: str = Field(max_length=200)
    requested_at: datetime = _ts(nullable=False)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = _ts(nullable=True)
    decision_reason: str | None = Field(default=None, max_length=5000)


class GrantSettlement(SQLModel, table=True):
    """The unspent balance at close-out: returned by the recipient (with the finance
    office's reference) or written off (with the reason)."""

    __tablename__ = "grant_settlement"

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id", index=True)
    kind: str = Field(max_length=20, description="returned or written_off")
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    settled_on: date
    finance_ref: str | None = Field(default=None, max_length=100, unique=True)
    reason: str | None = Field(default=None, max_length=2000)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = _ts(nullable=False)


class StaffSession(SQLModel, table=True):
    """A signed-in officer's browser session, kept as the hash of its token. It ends when
    the officer signs out, after a while without use, or at the end of its lifetime; one
    waiting for the second factor opens nothing else."""

    __tablename__ = "staff_session"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff_account.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    issued_at: datetime = _ts(nullable=False)
    last_seen_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    #: False until the second factor's code is given (accounts that have one).
    verified: bool = Field(default=True)
    ended_at: datetime | None = _ts(nullable=True)
