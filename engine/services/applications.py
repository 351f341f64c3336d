"""Applications after intake: what the secretariat lists, what the applicant sees,
and status transitions through the domain state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, String, bindparam, cast, exists, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from domain.hints import Hint, Step
from domain.lifecycle import (
    PUBLIC_STATUS,
    PublicStatus,
    Role,
    Status,
    TransitionError,
    plan_transition,
    public_status,
)
from domain.screening import Outcome, Verdict
from engine.services import audit, outbox
from engine.services.errors import Conflict, NotAllowed, NotFound
from engine.services.rounds import get_round
from engine.services.tokens import token_matches
from engine.tables import (
    Application,
    AuditEvent,
    DecisionRecord,
    OutboxMessage,
    PartyRecord,
    Round,
    ScreeningRecord,
    StatusChange,
    table_of,
)
from notifications.reasons import reason_text


@dataclass(frozen=True)
class ApplicationLine:
    reference: str
    party: str
    party_name: str
    title: str | None
    amount_requested: Decimal | None
    language: str
    public_status: PublicStatus
    status: Status
    submitted_at: datetime


def list_applications(session: Session, round_id: str) -> list[ApplicationLine]:
    get_round(session, round_id)
    rows = session.exec(
        select(Application, PartyRecord.name)
        .join(PartyRecord, col(PartyRecord.iso3) == Application.party, isouter=True)
        .where(Application.round_id == round_id)
        .order_by(col(Application.id))
    ).all()
    return [
        ApplicationLine(
            a.reference,
            a.party,
            name or a.party,
            a.title,
            a.amount_requested,
            a.language,
            PUBLIC_STATUS[a.status],
            a.status,
            a.submitted_at,
        )
        for a, name in rows
    ]


@dataclass(frozen=True)
class TimelineEntry:
    status: PublicStatus
    at: datetime


@dataclass(frozen=True)
class ApplicantView:
    """What the applicant may see: no scores, reviewers, committee members or notes."""

    reference: str
    round_id: str
    round_title: str
    title: str | None
    status: PublicStatus
    submitted_at: datetime
    timeline: list[TimelineEntry]
    #: The round's stored definition, as the database's JSON text, where it was asked
    #: for (the status page's round title in the page's language and its time zone).
    round_definition: str | None = None


_NO_APPLICATION = "0" * 64


def _applicant_statements() -> dict[str, Any]:
    """The statements of `applicant_view`, made once (making a statement costs more
    than running it): the application by reference, with or without its round's
    definition; its status changes, with or without whether a letter is queued."""
    columns: list[Any] = [
        Application.id,
        Application.reference,
        Application.round_id,
        Application.title,
        Application.status,
        Application.submitted_at,
        Application.access_token_hash,
        col(Round.title).label("round_title"),
        DecisionRecord.decision,
        DecisionRecord.recorded_at,
    ]

    def application(*extra: Any) -> Any:
        return (
            sa_select(*columns, *extra)
            .select_from(Application)
            .join(Round, col(Round.id) == col(Application.round_id), isouter=True)
            .join(DecisionRecord, col(DecisionRecord.application_id) == col(Application.id), isouter=True)
            .where(col(Application.reference) == bindparam("reference"))
        )

    def changes(*extra: Any) -> Any:
        return (
            sa_select(col(StatusChange.to_status), col(StatusChange.at), *extra)
            .where(col(StatusChange.application_id) == bindparam("application_id"))
            .order_by(col(StatusChange.at), col(StatusChange.id))
        )

    return {
        "application": application(),
        "application_with_definition": application(cast(col(Round.definition), String).label("round_definition")),
        "changes": changes(),
        "changes_with_letter": changes(
            exists().where(col(OutboxMessage.key) == bindparam("letter")).label("letter_sent")
        ),
    }


_APPLICANT = _applicant_statements()


def applicant_view(
    session: Session, reference: str, token: str | None, *, with_definition: bool = False
) -> ApplicantView | None:
    """`applicant_on` in the session's transaction (what the caller changed in it is seen)."""
    session.flush()
    return applicant_on(session.connection(), reference, token, with_definition=with_definition)


def applicant_on(
    connection: Connection,
    reference: str,
    token: str | None,
    *,
    with_definition: bool = False,
    proven: bool = False,
) -> ApplicantView | None:
    """None for an unknown reference and for a wrong or missing token alike, so the
    answer never tells which references exist.

    Two queries, each by an index: the application with its round's title and its
    decision (by `reference`, unique), then its status changes (by `application_id`),
    which also say whether the decision's letter is queued (by the outbox's unique key).
    Only the columns shown are read (not the application's forms)."""
    row = connection.execute(
        _APPLICANT["application_with_definition" if with_definition else "application"], {"reference": reference}
    ).first()
    # Hash the token whether or not the reference exists, so that timing does not tell.
    # `proven`: the caller checked a proof that the access code was given (status_proof).
    if not token_matches(token, row.access_token_hash if row else _NO_APPLICATION) and not proven or not row:
        return None
    status = Status(row.status)
    # The letter of the current decision: asked for only where there is one (as
    # `decision_letter_sent`), in the same query as the timeline.
    letter = (
        letter_key(row.reference, row.decision, row.recorded_at)
        if row.decision is not None and Status(row.decision) == status
        else None
    )
    rows = connection.execute(
        _APPLICANT["changes" if letter is None else "changes_with_letter"],
        {"application_id": row.id} if letter is None else {"application_id": row.id, "letter": letter},
    ).all()
    if letter is None:
        letter_sent = False
    elif rows:
        letter_sent = bool(rows[0].letter_sent)
    else:  # no status change recorded (not made by the engine): ask on its own
        letter_sent = connection.execute(sa_select(exists().where(col(OutboxMessage.key) == letter))).scalar_one()
    timeline: list[TimelineEntry] = []
    for change in rows:
        public = public_status(Status(change.to_status), letter_sent=letter_sent)
        if not timeline or timeline[-1].status != public:
            timeline.append(TimelineEntry(public, change.at))
    return ApplicantView(
        reference=row.reference,
        round_id=row.round_id,
        round_title=row.round_title if row.round_title is not None else row.round_id,
        title=row.title,
        status=public_status(status, letter_sent=letter_sent),
        submitted_at=row.submitted_at,
        timeline=timeline,
        round_definition=row.round_definition if with_definition else None,
    )


@dataclass(frozen=True)
class StatusDetails:
    """What the applicant's status page says beside the status: the committee's decision
    (its amount, conditions, recommendations) once its letter is on its way; the items
    the secretariat asked for and the day they are due; what screening found missing,
    or why the application is not eligible (in the applicant's language)."""

    amount: Decimal | None = None
    conditions: str | None = None
    recommendations: str | None = None
    items: tuple[str, ...] = ()
    due: date | None = None
    #: The grant that follows an approval (engine.services.grants.GrantSummary), once made.
    grant: Any = None


_DECIDED = frozenset(
    {PublicStatus.APPROVED, PublicStatus.APPROVED_WITH_CONDITIONS, PublicStatus.NOT_APPROVED, PublicStatus.DEFERRED}
)


def status_details(connection: Connection, view: ApplicantView, language: str, currency: str) -> StatusDetails:
    """The details of `view`'s status (one more indexed query where its status has any:
    the decision, the last information request, or the screening record)."""
    status = view.status
    if status in _DECIDED:
        row = connection.execute(
            sa_select(col(DecisionRecord.amount), col(DecisionRecord.conditions), col(DecisionRecord.recommendations))
            .join(Application, col(Application.id) == col(DecisionRecord.application_id))
            .where(col(Application.reference) == view.reference)
        ).first()
        if row is None:
            return StatusDetails()
        shown = status in (PublicStatus.APPROVED, PublicStatus.APPROVED_WITH_CONDITIONS)
        return StatusDetails(
            amount=row.amount if shown else None,
            conditions=row.conditions if status is PublicStatus.APPROVED_WITH_CONDITIONS else None,
            recommendations=row.recommendations if not shown else None,
        )
    if status is PublicStatus.INFORMATION_REQUESTED:
        details = connection.execute(
            sa_select(col(AuditEvent.details))
            .where(
                col(AuditEvent.subject_id) == view.reference,
                col(AuditEvent.subject_type) == "application",
                col(AuditEvent.action) == "application.request_information",
            )
            .order_by(col(AuditEvent.id).desc())
            .limit(1)
        ).scalar()
        if not details:
            return StatusDetails()
        due = details.get("due")
        return StatusDetails(items=tuple(details.get("items", ())), due=date.fromisoformat(due) if due else None)
    if status in (PublicStatus.INCOMPLETE, PublicStatus.NOT_ELIGIBLE):
        record = connection.execute(
            sa_select(col(ScreeningRecord.checks), col(ScreeningRecord.override))
            .join(Application, col(Application.id) == col(ScreeningRecord.application_id))
            .where(col(Application.reference) == view.reference)
        ).first()
        if record is None:
            return StatusDetails()
        items = [
            reason_text(c["code"], c.get("params") or {}, language, currency)
            for c in record.checks
            if c.get("outcome") == Outcome.FAIL.value and c.get("code")
        ]
        override = record.override or {}
        if override.get("verdict") in (Verdict.INCOMPLETE.value, Verdict.INELIGIBLE.value) and override.get("reason"):
            items.append(str(override["reason"]))
        return StatusDetails(items=tuple(items))
    return StatusDetails()


def countries_of(application: Application) -> list[str]:
    """The applicant Party and the co-applicants (conflicts of interest, eligibility)."""
    return [application.party, *application.applicant.get("co_applicants", [])]


def letter_key(reference: str, decision: str, recorded_at: datetime) -> str:
    """The outbox key of a decision's letter: one per decision as recorded (a deferral
    recorded again, with new reasons, gets a letter of its own)."""
    return f"decision_letter:{reference}:{decision}:{recorded_at.astimezone(UTC):%Y%m%dT%H%M%S}"


def decision_letter_sent(session: Session, application: Application) -> bool:
    """Whether the letter of the application's current decision is on its way."""
    record = session.exec(select(DecisionRecord).where(DecisionRecord.application_id == application.id)).first()
    if record is None or Status(record.decision) != application.status:
        return False
    return bool(outbox.queued(session, [letter_key(application.reference, record.decision, record.recorded_at)]))


@dataclass(frozen=True)
class TransitionResult:
    reference: str
    from_status: Status
    status: Status
    version: int
    changed: bool


def get_application(session: Session, reference: str) -> Application:
    application = session.exec(select(Application).where(Application.reference == reference)).first()
    if application is None:
        raise NotFound(f"no application {reference!r}", hints=(Hint(Step.LIST_APPLICATIONS),))
    return application


def transition(
    session: Session,
    reference: str,
    name: str,
    *,
    key: str,
    actor: str,
    role: Role,
    at: datetime,
    reason: str | None = None,
    expected_version: int | None = None,
    details: dict[str, Any] | None = None,
) -> TransitionResult:
    """Apply a transition of the state machine, with its status-change row and audit
    event, in the caller's transaction.

    `key` identifies this transition (e.g. ``screening:<run>`` or a request id): the
    same key again changes nothing and returns changed=False. A concurrent writer
    who changed the application first makes this raise `Conflict`.
    """
    application = get_application(session, reference)
    assert application.id is not None
    current = application.status
    done = _recorded(session, application.id, key, name, reference)
    if done is not None:
        return TransitionResult(
            reference, done.from_status or done.to_status, current, application.version, changed=False
        )
    if expected_version is not None and expected_version != application.version:
        raise Conflict(
            f"{reference} changed since you read it (version {expected_version}, now "
            f"{application.version}); reload it and try again"
        )
    try:
        record = plan_transition(current, name, actor=actor, role=role, at=at, reason=reason)
    except TransitionError as exc:
        raise NotAllowed(f"{reference}: {exc}") from None
    try:
        with session.begin_nested():  # a savepoint: a lost race leaves the caller's transaction usable
            application.status = record.to_status
            session.add(application)
            session.add(StatusChange(**audit.history_values(record, application_id=application.id, key=key)))
            audit.append(
                session,
                [
                    audit.audit_values(
                        record, reference=reference, recorded_at=at, details={"key": key, **(details or {})}
                    )
                ],
            )
    except (StaleDataError, IntegrityError):
        # Someone else changed the application first. If it was this very transition
        # (a replay running at the same time), there is nothing left to do.
        done = _recorded(session, application.id, key, name, reference)
        if done is not None:
            session.refresh(application)
            return TransitionResult(reference, current, Status(application.status), application.version, changed=False)
        raise Conflict(f"{reference} was changed by someone else at the same time; reload it and try again") from None
    return TransitionResult(reference, current, record.to_status, application.version, changed=True)


def transition_many(
    session: Session, changes: list[tuple[Application, str, str, str | None]], *, actor: str, role: Role, at: datetime
) -> int:
    """`transition` for a batch (application, transition, key, reason), with one
    statement per table. Every change is planned by the state machine; keys already
    recorded change nothing. If any application changed since it was read, nothing is
    written (`Conflict`). Returns how many transitions were made."""
    if not changes:
        return 0
    ids = [a.id for a, *_ in changes]
    done = {
        (application_id, key): name
        for application_id, key, name in session.exec(
            select(StatusChange.application_id, StatusChange.key, StatusChange.transition).where(
                col(StatusChange.application_id).in_(ids)
            )
        ).all()
    }
    planned = []
    for application, name, key, reason in changes:
        earlier = done.get((application.id or 0, key))
        if earlier is not None:
            if earlier != name:
                raise Conflict(f"transition id {key!r} was already used for {earlier} of {application.reference}")
            continue
        try:
            planned.append(
                (
                    application,
                    key,
                    plan_transition(application.status, name, actor=actor, role=role, at=at, reason=reason),
                )
            )
        except TransitionError as exc:
            raise NotAllowed(f"{application.reference}: {exc}") from None
    if not planned:
        return 0
    table = table_of(Application)
    updated = session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
        .values(status=bindparam("b_status"), version=table.c.version + 1),
        [{"b_id": a.id, "b_version": a.version, "b_status": r.to_status} for a, _, r in planned],
    )
    if updated.rowcount != len(planned):  # type: ignore[attr-defined]
        raise Conflict("some applications were changed by someone else meanwhile; nothing was written, run it again")
    session.execute(
        insert(table_of(StatusChange)),
        [audit.history_values(r, application_id=a.id or 0, key=key) for a, key, r in planned],
    )
    audit.append(
        session,
        [audit.audit_values(r, reference=a.reference, recorded_at=at, details={"key": key}) for a, key, r in planned],
    )
    for application, _, _ in planned:
        session.expire(application)  # the rows changed underneath the loaded objects
    return len(planned)


def _recorded(session: Session, application_id: int, key: str, name: str, reference: str) -> StatusChange | None:
    """The transition already recorded under `key`, if any (refused if `key` was used
    for another transition)."""
    done = session.exec(
        select(StatusChange).where(StatusChange.application_id == application_id, StatusChange.key == key)
    ).first()
    if done is not None and done.transition != name:
        raise Conflict(f"transition id {key!r} was already used for {done.transition} of {reference}")
    return done
