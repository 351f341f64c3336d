"""The Steering Committee: its membership (loaded from CSV, edited), a round's meeting
and funds, the members' declared conflicts, and the decisions the secretariat records
on the committee's behalf. Everything is checked before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from domain.application import FieldError
from domain.committee import (
    APPROVALS,
    NOT_SCREENED_IN,
    TRANSITION,
    Decision,
    DecisionIn,
    Facts,
    Member,
    composition_problems,
    decision_problems,
    member_conflict,
    overlapping_terms,
    parse_amount,
    quorum_of,
    serving,
)
from domain.lifecycle import Role, Status
from domain.rounds import RoundDefinition, RoundStatus
from engine.services import audit
from engine.services.applications import countries_of, get_application, transition
from engine.services.csvfile import all_or_nothing, csv_rows, row_errors
from engine.services.errors import InvalidInput, NotAllowed, NotFound
from engine.services.rounds import definition_of, get_round, move_round
from engine.tables import Application, CommitteeMeeting, CommitteeMember, DecisionRecord, MemberConflict
from engine.tables import Party as PartyRow

COLUMNS = ["name", "email", "country", "role", "term_start", "term_end", "language"]
DECISION_COLUMNS = ["reference", "decision", "amount", "conditions", "recommendations"]


# --- the membership ---------------------------------------------------------------------


def parse_members(text: str, source: str, parties: set[str]) -> list[Member]:
    """Every row is checked; all problems are reported together, by line."""
    errors: list[FieldError] = []
    members: list[Member] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in csv_rows(text, source, COLUMNS):
        key = (row["email"].lower(), row["term_start"])
        if key in seen:
            errors.append(
                FieldError(
                    path=f"{source}:{line}: email",
                    message=f"{row['email']} with a term from {row['term_start']} is already on line {seen[key]}",
                )
            )
            continue
        seen[key] = line
        try:
            member = Member.model_validate(row)
        except ValidationError as exc:
            errors += row_errors(exc, f"{source}:{line}: ")
            continue
        if member.country not in parties:
            errors.append(
                FieldError(
                    path=f"{source}:{line}: country",
                    message=f"{member.country} is not in the Parties register (`sip parties list`)",
                )
            )
            continue
        members.append(member)
    for a, b in overlapping_terms(members):
        errors.append(
            FieldError(
                path=f"{source}: {a.email}",
                message=f"terms overlap: {a.term_start} to {a.term_end} and {b.term_start} to {b.term_end}",
            )
        )
    return all_or_nothing(members, errors, source, what="members", unchanged="the membership was not changed")


def known_parties(session: Session) -> set[str]:
    return set(session.exec(select(PartyRow.iso3)).all())


def as_member(row: CommitteeMember) -> Member:
    return Member(
        name=row.name,
        email=row.email,
        country=row.country,
        role=row.role,
        term_start=row.term_start,
        term_end=row.term_end,
        language=row.language,
    )


def _values(member: Member) -> dict[str, Any]:
    return dict(
        name=member.name, country=member.country, role=member.role, term_end=member.term_end, language=member.language
    )


def load_members(session: Session, members: list[Member], *, source: str, actor: str, at: datetime) -> dict[str, int]:
    """Add or update terms by (e-mail, start of term); terms not in the file stay."""
    existing = {(r.email, r.term_start): r for r in session.exec(select(CommitteeMember)).all()}
    added = updated = 0
    for member in members:
        email = str(member.email).lower()
        values = _values(member)
        row = existing.get((email, member.term_start))
        if row is None:
            session.add(CommitteeMember(email=email, term_start=member.term_start, updated_at=at, **values))
            added += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = at
            session.add(row)
            updated += 1
    session.flush()
    clash = overlapping_terms([as_member(r) for r in session.exec(select(CommitteeMember)).all()])
    if clash:
        a, b = clash[0]
        raise InvalidInput(
            f"{source}: the terms of {a.email} would overlap with those already on file "
            f"({a.term_start} to {a.term_end}, {b.term_start} to {b.term_end}); the membership was "
            "not changed"
        )
    counts = {"members": len(members), "added": added, "updated": updated}
    audit.record(
        session,
        at=at,
        actor=actor,
        role="secretariat",
        action="committee.loaded",
        subject_type="register",
        subject_id="committee",
        details={"source": source, **counts},
    )
    return counts


EDITABLE = ("name", "country", "role", "term_end", "language")


def set_member(
    session: Session, email: str, term_start: date, changes: dict[str, Any], *, actor: str, at: datetime
) -> tuple[CommitteeMember, str]:
    """Add a term (every field given) or change some fields of one."""
    email = email.strip().lower()
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidInput(
            f"not a member's field: {', '.join(unknown)}",
            [FieldError(path=k, message="is not a member's field") for k in unknown],
        )
    row = session.exec(
        select(CommitteeMember).where(CommitteeMember.email == email, CommitteeMember.term_start == term_start)
    ).first()
    current = {**_values(as_member(row)), "term_start": row.term_start} if row else {"term_start": term_start}
    try:
        member = Member.model_validate({**current, **changes, "email": email})
    except ValidationError as exc:
        errors = row_errors(exc, "")
        raise InvalidInput(
            f"member {email} refused: " + "; ".join(f"{e.path}: {e.message}" for e in errors), errors
        ) from None
    if member.country not in known_parties(session):
        raise InvalidInput(
            f"{member.country} is not in the Parties register",
            [FieldError(path="country", message="is not in the Parties register")],
        )
    outcome = "unchanged"
    if row is None:
        row = CommitteeMember(email=email, term_start=term_start, updated_at=at, **_values(member))
        outcome = "added"
    elif any(getattr(row, k) != v for k, v in _values(member).items()):
        for name, value in _values(member).items():
            setattr(row, name, value)
        row.updated_at = at
        outcome = "updated"
    if outcome != "unchanged":
        session.add(row)
        session.flush()
        if overlapping_terms(
            [as_member(r) for r in session.exec(select(CommitteeMember).where(CommitteeMember.email == email)).all()]
        ):
            raise InvalidInput(f"{email}: this term would overlap another of theirs; nothing was changed")
        audit.record(
            session,
            at=at,
            actor=actor,
            role="secretariat",
            action=f"committee.member_{outcome}",
            subject_type="member",
            subject_id=email,
            details={"term_start": term_start.isoformat(), "fields": sorted(changes)},
        )
    return row, outcome


def members_on(session: Session, day: date) -> list[Member]:
    return serving(
        [as_member(r) for r in session.exec(select(CommitteeMember).order_by(CommitteeMember.email)).all()], day
    )


def regions(session: Session) -> dict[str, str | None]:
    return dict(session.exec(select(PartyRow.iso3, PartyRow.un_regional_group)).all())


# --- the meeting --------------------------------------------------------------------------


def meeting_of(session: Session, round_id: str) -> CommitteeMeeting:
    """The round's meeting as scheduled, or as its round file gives it (not stored yet)."""
    meeting = session.get(CommitteeMeeting, round_id)
    if meeting is not None:
        return meeting
    definition = definition_of(get_round(session, round_id))
    if definition.meeting is None:
        raise NotAllowed(
            f"round {round_id} has no committee meeting scheduled; schedule it with "
            f"`sip committee meeting {round_id} --on YYYY-MM-DD --place PLACE`"
        )
    return CommitteeMeeting(
        round_id=round_id,
        starts_on=date.fromisoformat(definition.meeting.starts_on),
        ends_on=date.fromisoformat(definition.meeting.ends_on),
        place=definition.meeting.place,
        updated_at=datetime.min,
    )


def _stored_meeting(session: Session, round_id: str, at: datetime) -> CommitteeMeeting:
    meeting = session.get(CommitteeMeeting, round_id)
    if meeting is None:
        meeting = meeting_of(session, round_id)
        meeting.updated_at = at
    return meeting


def schedule_meeting(
    session: Session, round_id: str, starts_on: date, ends_on: date | None, place: str, *, actor: str, at: datetime
) -> CommitteeMeeting:
    ends_on = ends_on or starts_on
    if ends_on < starts_on:
        raise InvalidInput(
            f"the meeting ends ({ends_on}) before it starts ({starts_on})",
            [FieldError(path="ends_on", message=f"is before {starts_on}")],
        )
    if not place.strip():
        raise InvalidInput(
            "say where the committee meets, or 'online'", [FieldError(path="place", message="is required")]
        )
    get_round(session, round_id)
    meeting = session.get(CommitteeMeeting, round_id) or CommitteeMeeting(
        round_id=round_id, starts_on=starts_on, ends_on=ends_on, place=place.strip(), updated_at=at
    )
    meeting.starts_on, meeting.ends_on, meeting.place, meeting.updated_at = starts_on, ends_on, place.strip(), at
    session.add(meeting)
    audit.record(
        session,
        at=at,
        actor=actor,
        role="secretariat",
        action="committee.meeting_scheduled",
        subject_type="round",
        subject_id=round_id,
        details={"starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat(), "place": place.strip()},
    )
    return meeting


def set_funds(session: Session, round_id: str, amount: Decimal, *, actor: str, at: datetime) -> CommitteeMeeting:
    """The funds available for the round's approvals (US dollars)."""
    if amount <= 0:
        raise InvalidInput(
            "the funds available must be more than zero", [FieldError(path="amount", message="must be > 0")]
        )
    get_round(session, round_id, for_update=True)  # decisions being recorded see the funds before or after
    approved = approved_total(session, round_id)
    if amount < approved:
        raise NotAllowed(f"approvals already recorded total {approved:,.2f}, more than {amount:,.2f}")
    meeting = _stored_meeting(session, round_id, at)
    if meeting.funds_available == amount:
        return meeting
    before, meeting.funds_available, meeting.updated_at = meeting.funds_available, amount, at
    session.add(meeting)
    audit.record(
        session,
        at=at,
        actor=actor,
        role="secretariat",
        action="committee.funds_set",
        subject_type="round",
        subject_id=round_id,
        details={"from": None if before is None else str(before), "to": str(amount)},
    )
    return meeting


def set_attendees(session: Session, round_id: str, emails: list[str], *, actor: str, at: datetime) -> CommitteeMeeting:
    """The members who attend the meeting (by default, every member serving on its date)."""
    get_round(session, round_id, for_update=True)
    meeting = _stored_meeting(session, round_id, at)
    emails = sorted({e.strip().lower() for e in emails if e.strip()})
    on_committee = {str(m.email).lower() for m in members_on(session, meeting.starts_on)}
    strangers = [e for e in emails if e not in on_committee]
    if strangers:
        raise InvalidInput(
            f"not on the committee on {meeting.starts_on}: {', '.join(strangers)}",
            [FieldError(path="attendees", message=f"{e} is not a member on {meeting.starts_on}") for e in strangers],
        )
    meeting.attendees, meeting.updated_at = emails, at
    session.add(meeting)
    audit.record(
        session,
        at=at,
        actor=actor,
        role="secretariat",
        action="committee.attendance_recorded",
        subject_type="round",
        subject_id=round_id,
        details={"attendees": emails},
    )
    return meeting


def declare_member_conflict(
    session: Session, round_id: str, reference: str, email: str, reason: str, *, actor: str, at: datetime
) -> bool:
    """A member's declared conflict of interest with an application (False: on file already)."""
    if not reason.strip():
        raise InvalidInput("say what the conflict of interest is", [FieldError(path="reason", message="is required")])
    application = _in_round(session, round_id, reference)
    email = email.strip().lower()
    if not session.exec(select(CommitteeMember).where(CommitteeMember.email == email)).first():
        raise NotFound(f"{email} is not a member of the committee (`sip committee list`)")
    if session.exec(
        select(MemberConflict).where(MemberConflict.email == email, MemberConflict.application_id == application.id)
    ).first():
        return False
    session.add(
        MemberConflict(
            email=email, application_id=application.id, reason=reason.strip()[:2000], declared_by=actor, declared_at=at
        )
    )
    audit.record(
        session,
        at=at,
        actor=actor,
        role="secretariat",
        action="committee.conflict_declared",
        subject_type="application",
        subject_id=reference,
        reason=reason.strip(),
        details={"member": email},
    )
    return True


def _in_round(session: Session, round_id: str, reference: str) -> Application:
    application = get_application(session, reference)
    if application.round_id != round_id:
        raise NotAllowed(f"{reference} is an application of round {application.round_id}, not {round_id}")
    return application


@dataclass
class Committee:
    """A round's committee as it meets: the members serving on the meeting date, those
    attending, and who takes no part in which decision."""

    round_id: str
    definition: RoundDefinition
    meeting: CommitteeMeeting
    members: list[Member]
    attendees: list[str]
    region_of: dict[str, str | None]
    declared: set[tuple[str, int]] = field(default_factory=set)  # (e-mail, application id)

    @property
    def composition(self) -> list[str]:
        return composition_problems(self.members, self.region_of)

    @property
    def quorum(self) -> int:
        return quorum_of(self.definition.committee.quorum, len(self.members))

    def conflicts(self, application: Application) -> dict[str, str]:
        """Member e-mail -> why they take no part in the decision on `application`."""
        countries = countries_of(application)
        found = {}
        for member in self.members:
            email = str(member.email).lower()
            why = member_conflict(member, countries, (email, application.id or 0) in self.declared)
            if why:
                found[email] = why
        return found


def committee_of(session: Session, round_id: str) -> Committee:
    definition = definition_of(get_round(session, round_id))
    meeting = meeting_of(session, round_id)
    members = members_on(session, meeting.starts_on)
    if not members:
        raise NotAllowed(
            f"nobody is on the committee on {meeting.starts_on} (the meeting of {round_id}); load the "
            "membership with `sip committee load FILE`"
        )
    attendees = meeting.attendees if meeting.attendees is not None else [str(m.email).lower() for m in members]
    declared = {
        (e, a)
        for e, a in session.exec(
            select(MemberConflict.email, MemberConflict.application_id)
            .join(Application)
            .where(Application.round_id == round_id)
        ).all()
    }
    return Committee(round_id, definition, meeting, members, attendees, regions(session), declared)


# --- decisions ------------------------------------------------------------------------------


def approved_total(session: Session, round_id: str, *, leaving_out: int | None = None) -> Decimal:
    statement = select(func.coalesce(func.sum(DecisionRecord.amount), 0)).where(
        DecisionRecord.round_id == round_id, DecisionRecord.decision.in_([d.value for d in APPROVALS])
    )
    if leaving_out is not None:
        statement = statement.where(DecisionRecord.application_id != leaving_out)
    return Decimal(session.exec(statement).one()).quantize(Decimal("0.01"))


def parse_decisions(text: str, source: str) -> list[tuple[DecisionIn, str]]:
    """A decisions sheet (CSV: reference,decision,amount,conditions,recommendations);
    every row is checked, all problems reported by line."""
    errors: list[FieldError] = []
    items: list[tuple[DecisionIn, str]] = []
    seen: dict[str, int] = {}
    for line, row in csv_rows(text, source, DECISION_COLUMNS, required=["reference", "decision"]):
        where = f"{source}:{line}"
        if row["reference"] in seen:
            errors.append(
                FieldError(
                    path=f"{where}: reference",
                    message=f"{row['reference']} is already on line "
                    f"{seen[row['reference']]}: one decision per application",
                )
            )
            continue
        seen[row["reference"]] = line
        values: dict[str, Any] = {k: v or None for k, v in row.items()}
        if values["amount"] is not None:
            try:
                values["amount"] = parse_amount(values["amount"])
            except ValueError as exc:
                errors.append(FieldError(path=f"{where}: amount", message=str(exc)))
                continue
        try:
            items.append((DecisionIn.model_validate(values), where))
        except ValidationError as exc:
            errors += row_errors(
                exc,
                f"{where}: ",
                lambda column, err: (
                    f"{err['input']!r} is not a decision: {', '.join(d.value for d in Decision)}"
                    if column == "decision"
                    else None
                ),
            )
    return all_or_nothing(items, errors, source, what="decisions", unchanged="no decision was recorded")


@dataclass
class DecisionsSummary:
    round: str
    recorded: int = 0
    unchanged: int = 0
    approved_total: str = "0.00"
    funds_available: str | None = None
    undecided: list[str] = field(default_factory=list)


def _same(record: DecisionRecord, d: DecisionIn) -> bool:
    """The decision recorded again: same content, and the same participants and exception
    where the secretariat names them."""
    return (
        (record.decision, record.amount, record.conditions or None, record.recommendations or None)
        == (d.decision.value, d.amount, d.conditions or None, d.recommendations or None)
        and (d.participants is None or sorted(str(p).lower() for p in d.participants) == sorted(record.participants))
        and (d.exception is None or d.exception == record.exception)
    )


def record_decisions(
    session: Session, round_id: str, items: list[tuple[DecisionIn, str]], *, actor: str, at: datetime
) -> DecisionsSummary:
    """Record the committee's decisions: all of them, or none if one breaks a rule (every
    problem is listed). The same decision again changes nothing."""
    row = get_round(session, round_id, for_update=True)
    if RoundStatus(row.status) not in (RoundStatus.COMMITTEE, RoundStatus.DECIDED):
        raise NotAllowed(
            f"round {round_id} is {row.status}; decisions are recorded once it is with the committee "
            f"(`sip review close {round_id}` or `sip screen close {round_id}`)"
        )
    committee = committee_of(session, round_id)
    definition = committee.definition
    funds = committee.meeting.funds_available
    errors: list[FieldError] = []
    seen: set[str] = set()
    planned: list[tuple[DecisionIn, Application, DecisionRecord | None, list[str]]] = []
    approved = approved_total(session, round_id)
    summary = DecisionsSummary(round_id)
    for d, where in items:
        if d.reference in seen:
            errors.append(FieldError(path=f"{where}: reference", message=f"{d.reference} is decided twice"))
            continue
        seen.add(d.reference)
        application = session.exec(select(Application).where(Application.reference == d.reference)).first()
        if application is None or application.round_id != round_id:
            errors.append(
                FieldError(
                    path=f"{where}: reference",
                    message=f"no application {d.reference} in {round_id} (`sip applications list {round_id}`)",
                )
            )
            continue
        record = session.exec(select(DecisionRecord).where(DecisionRecord.application_id == application.id)).first()
        if record is not None and _same(record, d):
            summary.unchanged += 1
            continue
        if record is not None and record.decision != Decision.DEFERRED.value:
            errors.append(
                FieldError(
                    path=f"{where}: decision",
                    message=f"{d.reference} was decided on "
                    f"{record.recorded_at:%Y-%m-%d} ({record.decision}); a decision is final",
                )
            )
            continue
        conflicted = committee.conflicts(application)
        participants = (
            [str(p).lower() for p in d.participants]
            if d.participants is not None
            else [e for e in committee.attendees if e not in conflicted]
        )
        this_amount = d.amount if d.decision in APPROVALS and d.amount is not None else Decimal(0)
        elsewhere = approved - (record.amount or 0 if record and record.decision in APPROVALS else Decimal(0))
        facts = Facts(
            status=Status(application.status),
            requested=application.amount_requested,
            amount_min=definition.amount_min,
            amount_max=definition.amount_max,
            funds_available=funds,
            approved_elsewhere=elsewhere,
            committee=frozenset(str(m.email).lower() for m in committee.members),
            conflicted=conflicted,
            quorum=committee.quorum,
        )
        problems = decision_problems(d, facts, participants)
        errors += [FieldError(path=f"{where}: {name}", message=message) for name, message in problems]
        if not problems:
            approved += this_amount
            planned.append((d, application, record, participants))
    if errors:
        listed = "; ".join(f"{e.path}: {e.message}" for e in errors[:5]) + ("; …" if len(errors) > 5 else "")
        raise InvalidInput(f"{len(errors)} problem(s); no decision was recorded: {listed}", errors)
    for d, application, record, participants in planned:
        _record(session, committee, d, application, record, participants, actor=actor, at=at)
        summary.recorded += 1
    session.flush()
    summary.approved_total = f"{approved_total(session, round_id):.2f}"
    summary.funds_available = None if funds is None else f"{funds:.2f}"
    summary.undecided = list(
        session.exec(
            select(Application.reference)
            .where(Application.round_id == round_id, Application.status == Status.READY_FOR_COMMITTEE.value)
            .order_by(Application.reference)
        ).all()
    )
    if not summary.undecided and RoundStatus(row.status) is RoundStatus.COMMITTEE:
        move_round(session, row, "decide", actor=actor, at=at)
    return summary


def _record(
    session: Session,
    committee: Committee,
    d: DecisionIn,
    application: Application,
    record: DecisionRecord | None,
    participants: list[str],
    *,
    actor: str,
    at: datetime,
) -> None:
    """One decision: the application's transitions (through an exception, if it did not
    pass screening), its record, and the audit."""
    reference, key = d.reference, f"decision:{d.reference}:{at.isoformat()}"
    status = Status(application.status)
    if status in NOT_SCREENED_IN:  # a reasoned exception (checked before)
        step = {Status.SUBMITTED: "pass_screening", Status.INCOMPLETE: "reinstate", Status.INELIGIBLE: "reinstate"}
        if status not in step:
            raise NotAllowed(f"{reference} is {status.value}; record its screening first")
        transition(
            session,
            reference,
            step[status],
            key=f"{key}:exception",
            actor=actor,
            role=Role.SECRETARIAT,
            at=at,
            reason=f"committee's exception: {d.exception}",
        )
        status = Status.SCREENED
    if status in (Status.SCREENED, Status.GMP_REVIEW, Status.DEFERRED):
        transition(
            session,
            reference,
            "send_to_committee",
            key=f"{key}:agenda",
            actor=actor,
            role=Role.SECRETARIAT,
            at=at,
            reason=d.exception,
        )
    reason = d.conditions if d.decision is Decision.APPROVED_WITH_CONDITIONS else (d.recommendations or d.conditions)
    transition(
        session,
        reference,
        TRANSITION[d.decision],
        key=key,
        actor=actor,
        role=Role.SECRETARIAT,
        at=at,
        reason=reason,
        details={"participants": participants, "amount": None if d.amount is None else str(d.amount)},
    )
    values = dict(
        decision=d.decision.value,
        amount=d.amount if d.decision in APPROVALS else None,
        conditions=d.conditions,
        recommendations=d.recommendations,
        participants=participants,
        rule=committee.definition.committee.decision_rule,
        exception=d.exception,
        decided_on=committee.meeting.ends_on,
        recorded_by=actor,
        recorded_at=at,
    )
    if record is None:
        record = DecisionRecord(application_id=application.id or 0, round_id=committee.round_id, **values)
    else:
        for name, value in values.items():
            setattr(record, name, value)
    session.add(record)
