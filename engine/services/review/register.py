"""The register of Global Mercury Partnership reviewers: loaded from CSV (every row
checked before anything is written), edited one by one, and, when a reviewer's
country or organisation changes, their open assignments that became conflicted
taken off."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.lifecycle import Role
from domain.review import (
    AssignmentState,
    Reviewer,
    conflicts,
)
from engine.services import audit, revocation
from engine.services.csvfile import all_or_nothing, csv_rows, row_errors
from engine.services.errors import InvalidInput
from engine.services.review.state import as_reviewer, declared_conflicts, move_assignment, subject_of
from engine.tables import (
    Application,
    DeclaredConflict,
    ReviewAssignment,
    ReviewerRecord,
)

COLUMNS = ["name", "email", "organisation", "country", "areas", "languages", "max_load"]


def split_list(value: str) -> tuple[str, ...]:
    """`a;b` as the register's CSV (and the CLI) writes areas and languages."""
    return tuple(a.strip() for a in value.split(";") if a.strip())


def reviewer_errors(exc: ValidationError, where: str) -> list[FieldError]:
    """A refused reviewer's problems, one per field (`where`: the line, or the API's path)."""

    def explain(column: str, err: ErrorDetails) -> str | None:
        if column == "areas" and err["type"] == "literal_error":
            return f"{err['input']!r} is not a partnership area ({err['ctx']['expected']})"
        return None

    return row_errors(exc, where, explain)


def parse_reviewers(text: str, source: str) -> list[Reviewer]:
    """Every row is checked; all problems are reported together, by line."""
    errors: list[FieldError] = []
    reviewers: list[Reviewer] = []
    seen: dict[str, int] = {}
    for line, row in csv_rows(text, source, COLUMNS):
        values: dict[str, Any] = dict(row)
        values["areas"] = split_list(values["areas"])
        values["languages"] = split_list(values["languages"])
        email = values["email"].lower()
        duplicate = email in seen
        if duplicate:  # also when either row has other problems
            errors.append(
                FieldError(
                    path=f"{source}:{line}: email", message=f"duplicate e-mail {email} (first on line {seen[email]})"
                )
            )
        elif email:
            seen[email] = line
        try:
            reviewer = Reviewer.model_validate(values)
        except ValidationError as exc:
            errors += reviewer_errors(exc, f"{source}:{line}: ")
            continue
        if not duplicate:
            reviewers.append(reviewer)
    return all_or_nothing(reviewers, errors, source, what="reviewers", unchanged="the register was not changed")


def load_reviewers(
    session: Session, reviewers: list[Reviewer], *, source: str, actor: str, at: datetime
) -> dict[str, int]:
    """Add or update reviewers by e-mail (those not in the file stay, as they may have
    assignments). Audited with counts."""
    existing = {r.email: r for r in session.exec(select(ReviewerRecord)).all()}
    added = updated = 0
    for reviewer in reviewers:
        email = str(reviewer.email).lower()
        values = _row_values(reviewer)
        row = existing.get(email)
        if row is None:
            session.add(ReviewerRecord(email=email, updated_at=at, **values))
            added += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            moved = row.country != values["country"] or row.organisation != values["organisation"]
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = at
            session.add(row)
            updated += 1
            if moved:
                session.flush()
                recheck_conflicts(session, row, actor=actor, at=at)
    counts = {"reviewers": len(reviewers), "added": added, "updated": updated}
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="reviewers.loaded",
        subject_type="register",
        subject_id="reviewers",
        details={"source": source, **counts},
    )
    return counts


def _row_values(reviewer: Reviewer) -> dict[str, Any]:
    return dict(
        name=reviewer.name,
        organisation=reviewer.organisation,
        country=reviewer.country,
        areas=list(reviewer.areas),
        languages=list(reviewer.languages),
        max_load=reviewer.max_load,
    )


EDITABLE_FIELDS = ("name", "organisation", "country", "areas", "languages", "max_load")


def set_reviewer(
    session: Session, email: str, changes: dict[str, Any], *, active: bool | None = None, actor: str, at: datetime
) -> tuple[ReviewerRecord, str]:
    """Add a reviewer (every field given) or change some fields of one; `active=False`
    takes them out of future assignments (their assignments stay) and ends their links
    and sessions at once. Returns the row and `added`, `updated` or `unchanged`. Every
    field is checked before anything changes."""
    email = email.strip().lower()
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not a reviewer's field: {', '.join(unknown)}",
            [FieldError(path=k, message="is not a reviewer's field") for k in unknown],
        )
    row = session.exec(select(ReviewerRecord).where(ReviewerRecord.email == email)).first()
    current = _row_values(as_reviewer(row)) if row is not None else {}
    try:
        reviewer = Reviewer.model_validate({**current, **changes, "email": email})
    except ValidationError as exc:
        errors = reviewer_errors(exc, "")
        raise InvalidInput(
            f"reviewer {email} refused: " + "; ".join(f"{e.path}: {e.message}" for e in errors), errors
        ) from None
    values = _row_values(reviewer)
    if row is None:
        row = ReviewerRecord(email=str(reviewer.email).lower(), updated_at=at, active=active is not False, **values)
        outcome = "added"
    else:
        if active is not None:
            values["active"] = active
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        if not changed:
            return row, "unchanged"
        for name, value in changed.items():
            setattr(row, name, value)
        row.updated_at = at
        outcome = "updated"
    session.add(row)
    if outcome == "updated" and changed.get("active") is False:
        # The credentials' rows are locked before the audit trail's chain lock is taken (by the
        # first event written), in the order signing in takes them: no deadlock between the two.
        session.flush()
        revocation.end_reviewer_access(session, row, cause="deactivated", actor=actor, at=at)
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action=f"reviewer.{outcome}",
        subject_type="reviewer",
        subject_id=row.email,
        details={"fields": sorted(changes) + (["active"] if active is not None else [])},
    )
    if outcome == "updated" and {"country", "organisation"} & set(changed):
        session.flush()
        recheck_conflicts(session, row, actor=actor, at=at)
    return row, outcome


def recheck_conflicts(session: Session, reviewer: ReviewerRecord, *, actor: str, at: datetime) -> list[str]:
    """After a reviewer's country or organisation changed in the register: the proposed
    or invited assignments that are now conflicted come off (state conflicted, with
    why), so the reviewer is neither invited to nor shown them. Returns their references."""
    rows = session.exec(
        select(ReviewAssignment, Application)
        .join(Application, col(Application.id) == ReviewAssignment.application_id)
        .where(
            ReviewAssignment.reviewer_id == reviewer.id,
            col(ReviewAssignment.state).in_([AssignmentState.PROPOSED, AssignmentState.INVITED]),
        )
    ).all()
    declared = declared_conflicts(session, col(DeclaredConflict.reviewer_id) == reviewer.id)
    person = as_reviewer(reviewer)
    moved = []
    for assignment, application in rows:
        why = conflicts(person, subject_of(application), declared)
        if why:
            move_assignment(
                session,
                assignment,
                "declare_conflict",
                role=Role.SECRETARIAT,
                actor=actor,
                at=at,
                reference=application.reference,
                reviewer=reviewer.email,
                note=f"conflict of interest ({', '.join(w.value for w in why)}) since the register changed",
            )
            moved.append(application.reference)
    return moved


def list_reviewers(session: Session) -> list[ReviewerRecord]:
    """The register of reviewers, by e-mail."""
    return list(session.exec(select(ReviewerRecord).order_by(col(ReviewerRecord.email))).all())
