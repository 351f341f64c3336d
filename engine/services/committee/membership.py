"""The Steering Committee's membership: loaded from CSV (every row checked before
anything is written, the Parties checked against the register), edited one by one,
and read as it stood on a given day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from domain.application import FieldError
from domain.committee import (
    Member,
    overlapping_terms,
    serving,
)
from domain.lifecycle import Role
from engine.services import audit, revocation
from engine.services.csvfile import all_or_nothing, csv_rows, row_errors
from engine.services.errors import InvalidInput
from engine.tables import (
    CommitteeMember,
    PartyRecord,
)

COLUMNS = ["name", "email", "country", "role", "term_start", "term_end", "language"]


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
                    message=f"{member.country} is not in the Parties register",
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
    return set(session.exec(select(PartyRecord.iso3)).all())


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
    """Add or update terms by (e-mail, start of term); terms not in the file stay. A term
    brought to an end on or before today ends the member's bundle links at once."""
    existing = {(r.email, r.term_start): r for r in session.exec(select(CommitteeMember)).all()}
    added = updated = 0
    leaving: list[str] = []
    for member in members:
        email = str(member.email).lower()
        values = _values(member)
        row = existing.get((email, member.term_start))
        if row is None:
            session.add(CommitteeMember(email=email, term_start=member.term_start, updated_at=at, **values))
            added += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            if left_early(row.term_end, member.term_end, at):
                leaving.append(email)
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
        role=Role.SECRETARIAT,
        action="committee.loaded",
        subject_type="register",
        subject_id="committee",
        details={"source": source, **counts},
    )
    for email in leaving:
        revocation.end_member_access(session, email, cause="left the committee", actor=actor, at=at)
    return counts


def left_early(before: date, after: date, at: datetime) -> bool:
    """A term brought to an end on or before today: the member has left the committee,
    and their bundle links end at once."""
    return after < before and after <= at.date()


EDITABLE = ("name", "country", "role", "term_end", "language")


def set_member(
    session: Session, email: str, term_start: date, changes: dict[str, Any], *, actor: str, at: datetime
) -> tuple[CommitteeMember, str]:
    """Add a term (every field given) or change some fields of one. A term brought to an
    end on or before today ends the member's bundle links at once."""
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
    leaving = row is not None and left_early(row.term_end, member.term_end, at)
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
            role=Role.SECRETARIAT,
            action=f"committee.member_{outcome}",
            subject_type="member",
            subject_id=email,
            details={"term_start": term_start.isoformat(), "fields": sorted(changes)},
        )
        if leaving:
            revocation.end_member_access(session, email, cause="left the committee", actor=actor, at=at)
    return row, outcome


def members_on(session: Session, day: date) -> list[Member]:
    return serving(
        [as_member(r) for r in session.exec(select(CommitteeMember).order_by(CommitteeMember.email)).all()], day
    )


def regions(session: Session) -> dict[str, str | None]:
    return dict(session.exec(select(PartyRecord.iso3, PartyRecord.un_regional_group)).all())
