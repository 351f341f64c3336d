"""A round's committee meeting: its date and place, the funds available, who attends,
the members' declared conflicts, and the committee as it sits for the round."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.committee import (
    APPROVALS,
    CompositionGap,
    Member,
    composition_gaps,
    composition_problems,
    meeting_problems,
    member_conflict,
    quorum_of,
)
from domain.hints import Hint, Step
from domain.lifecycle import Role
from domain.rounds import RoundDefinition
from engine.services import audit
from engine.services.applications import countries_of, get_application
from engine.services.committee.membership import members_on, regions
from engine.services.errors import InvalidInput, NotAllowed, NotFound
from engine.services.rounds import definition_of, get_round
from engine.tables import (
    Application,
    CommitteeMeeting,
    CommitteeMember,
    DecisionRecord,
    MemberConflict,
)


def meeting_of(session: Session, round_id: str) -> CommitteeMeeting:
    """The round's meeting as scheduled, or as its round file gives it (not stored yet)."""
    meeting = session.get(CommitteeMeeting, round_id)
    if meeting is not None:
        return meeting
    definition = definition_of(get_round(session, round_id))
    if definition.meeting is None:
        raise NotAllowed(
            f"round {round_id} has no committee meeting scheduled",
            hints=(Hint(Step.SCHEDULE_MEETING, round_id=round_id),),
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


def _dated(problems: list[tuple[str, str]], starts_on: date, ends_on: date) -> list[tuple[str, str, date]]:
    return [(path, why, starts_on if path == "starts_on" else ends_on) for path, why in problems]


def schedule_meeting(
    session: Session, round_id: str, starts_on: date, ends_on: date | None, place: str, *, actor: str, at: datetime
) -> CommitteeMeeting:
    ends_on = ends_on or starts_on
    definition = definition_of(get_round(session, round_id))
    tz = ZoneInfo(definition.timezone)
    problems = meeting_problems(
        starts_on, ends_on, definition.opens_at.astimezone(tz).date(), definition.closes_at.astimezone(tz).date()
    )
    if problems:
        raise InvalidInput(
            "the meeting's dates do not fit round "
            + round_id
            + ": "
            + "; ".join(f"{path} ({value}) {why}" for path, why, value in _dated(problems, starts_on, ends_on)),
            [FieldError(path=path, message=why) for path, why in problems],
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
        role=Role.SECRETARIAT,
        action="committee.meeting_scheduled",
        subject_type="round",
        subject_id=round_id,
        details={"starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat(), "place": place.strip()},
    )
    return meeting


def approved_total(session: Session, round_id: str, *, leaving_out: int | None = None) -> Decimal:
    statement = select(func.coalesce(func.sum(DecisionRecord.amount), 0)).where(
        DecisionRecord.round_id == round_id, col(DecisionRecord.decision).in_(APPROVALS)
    )
    if leaving_out is not None:
        statement = statement.where(DecisionRecord.application_id != leaving_out)
    return Decimal(session.exec(statement).one() or 0).quantize(Decimal("0.01"))


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
        role=Role.SECRETARIAT,
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
        role=Role.SECRETARIAT,
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
        raise NotFound(f"{email} is not a member of the committee", hints=(Hint(Step.LIST_COMMITTEE),))
    if session.exec(
        select(MemberConflict).where(MemberConflict.email == email, MemberConflict.application_id == application.id)
    ).first():
        return False
    session.add(
        MemberConflict(
            email=email,
            application_id=application.id or 0,
            reason=reason.strip()[:2000],
            declared_by=actor,
            declared_at=at,
        )
    )
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
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
    def gaps(self) -> list[CompositionGap]:
        """`composition`, as data (for the members' bundles to say it in their language)."""
        return composition_gaps(self.members, self.region_of)

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
            f"nobody is on the committee on {meeting.starts_on} (the meeting of {round_id})",
            hints=(Hint(Step.LOAD_COMMITTEE),),
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
