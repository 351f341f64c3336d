"""Global Mercury Partnership review: the register of reviewers, and the assignment of
reviewers to a round's screened applications, as proposed by the engine and adjusted
by the secretariat before (and after) the invitations go out."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.lifecycle import Status
from domain.review import (
    ACTIVE_STATES,
    AreaMap,
    AssignmentError,
    AssignmentState,
    Placement,
    Reviewer,
    Subject,
    assign,
    conflicts,
    plan_assignment,
)
from domain.rounds import RoundDefinition, RoundStatus
from engine.services import audit
from engine.services.applications import countries_of
from engine.services.csvfile import all_or_nothing, csv_rows, row_errors
from engine.services.errors import Conflict, InvalidInput, NotAllowed, NotFound
from engine.services.rounds import definition_of, get_round
from engine.tables import Application, DeclaredConflict, Review, ReviewAssignment, table_of
from engine.tables import Reviewer as ReviewerRow

AREA_MAP = Path(__file__).resolve().parent.parent / "data" / "partnership_areas.toml"
COLUMNS = ["name", "email", "organisation", "country", "areas", "languages", "max_load"]


@lru_cache
def area_map(path: Path = AREA_MAP) -> AreaMap:
    return AreaMap.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


def split_list(value: str) -> tuple[str, ...]:
    """`a;b` as the register's CSV (and the CLI) writes areas and languages."""
    return tuple(a.strip() for a in value.split(";") if a.strip())


def reviewer_errors(exc: ValidationError, where: str) -> list[FieldError]:
    """A refused reviewer's problems, one per field (`where`: the line, or the API's path)."""

    def explain(column: str, err: dict[str, Any]) -> str | None:
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
    existing = {r.email: r for r in session.exec(select(ReviewerRow)).all()}
    added = updated = 0
    for reviewer in reviewers:
        email = str(reviewer.email).lower()
        values = _row_values(reviewer)
        row = existing.get(email)
        if row is None:
            session.add(ReviewerRow(email=email, updated_at=at, **values))
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
        role="secretariat",
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


def as_reviewer(row: ReviewerRow) -> Reviewer:
    return Reviewer(
        name=row.name,
        email=row.email,
        organisation=row.organisation,
        country=row.country,
        areas=tuple(row.areas),
        languages=tuple(row.languages),
        max_load=row.max_load,
    )


EDITABLE_FIELDS = ("name", "organisation", "country", "areas", "languages", "max_load")


def set_reviewer(
    session: Session, email: str, changes: dict[str, Any], *, active: bool | None = None, actor: str, at: datetime
) -> tuple[ReviewerRow, str]:
    """Add a reviewer (every field given) or change some fields of one; `active=False`
    takes them out of future assignments (their assignments stay). Returns the row and
    `added`, `updated` or `unchanged`. Every field is checked before anything changes."""
    email = email.strip().lower()
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not a reviewer's field: {', '.join(unknown)}",
            [FieldError(path=k, message="is not a reviewer's field") for k in unknown],
        )
    row = session.exec(select(ReviewerRow).where(ReviewerRow.email == email)).first()
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
        row = ReviewerRow(email=str(reviewer.email).lower(), updated_at=at, active=active is not False, **values)
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
    audit.record(
        session,
        at=at,
        actor=actor,
        role="secretariat",
        action=f"reviewer.{outcome}",
        subject_type="reviewer",
        subject_id=row.email,
        details={"fields": sorted(changes) + (["active"] if active is not None else [])},
    )
    if outcome == "updated" and {"country", "organisation"} & set(changed):
        session.flush()
        recheck_conflicts(session, row, actor=actor, at=at)
    return row, outcome


def subject_of(application: Application, assigned: tuple[str, ...] = ()) -> Subject:
    form_a = application.form_a or {}
    text = " ".join(str(form_a.get(k) or "") for k in ("title", "summary", "objective"))
    return Subject(
        reference=application.reference,
        countries=frozenset(countries_of(application)),
        executing_agency=application.applicant.get("executing_agency", {}).get("name", ""),
        areas=frozenset(area_map().areas_of(form_a.get("convention_articles", []), text)),
        assigned=assigned,
    )


#: Why a reviewer who once held a place is not proposed for it again.
NOT_AGAIN = {
    AssignmentState.DECLINED: "declined the invitation",
    AssignmentState.REMOVED: "taken off this application by the secretariat",
    AssignmentState.CONFLICTED: "declared a conflict of interest",
}
#: Applications that take reviewers: screened, and (for late changes) those in review.
REVIEWABLE = (Status.SCREENED.value, Status.GMP_REVIEW.value)
#: Applications whose review can be shown: those above, and those past the review.
REVIEWED = (
    *REVIEWABLE,
    Status.READY_FOR_COMMITTEE.value,
    Status.APPROVED.value,
    Status.APPROVED_WITH_CONDITIONS.value,
    Status.NOT_APPROVED.value,
    Status.DEFERRED.value,
)


@dataclass
class RoundReview:
    """A round's GMP review as stored: what the assignment and its views need."""

    definition: RoundDefinition
    applications: list[Application]
    people: dict[int, ReviewerRow]  # every reviewer of the register, by id
    assignments: dict[int, list[ReviewAssignment]]  # by application id, in order of creation
    declared: dict[tuple[str, str], str]  # (e-mail, reference) -> reason

    def active(self, application_id: int) -> list[ReviewAssignment]:
        return [a for a in self.assignments.get(application_id, []) if a.state in ACTIVE_VALUES]

    def loads(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rows in self.assignments.values():
            for a in rows:
                if a.state in ACTIVE_VALUES:
                    email = self.people[a.reviewer_id].email
                    counts[email] = counts.get(email, 0) + 1
        return counts

    def excluded(self) -> dict[tuple[str, str], str]:
        by_id = {a.id: a.reference for a in self.applications}
        return {
            (self.people[a.reviewer_id].email, by_id[a.application_id]): NOT_AGAIN[AssignmentState(a.state)]
            for rows in self.assignments.values()
            for a in rows
            if a.state not in ACTIVE_VALUES and a.application_id in by_id
        }

    def subjects(self) -> list[Subject]:
        return [
            subject_of(a, tuple(self.people[r.reviewer_id].email for r in self.active(a.id or 0)))
            for a in self.applications
        ]

    def placements(self) -> list[Placement]:
        """What the assignment would propose now, on top of what is stored."""
        reviewers = [as_reviewer(p) for p in self.people.values() if p.active]
        return assign(
            self.subjects(),
            reviewers,
            self.definition.reviewers_per_application,
            self.declared,
            self.loads(),
            self.excluded(),
        )


ACTIVE_VALUES = frozenset(s.value for s in ACTIVE_STATES)


def round_review(
    session: Session, round_id: str, *, for_update: bool = False, statuses: tuple[str, ...] = REVIEWABLE
) -> RoundReview:
    """Load a round's review as stored; refused for a round without the GMP review stage."""
    row = get_round(session, round_id, for_update=for_update)
    definition = definition_of(row)
    if not definition.has_gmp_review:
        raise NotAllowed(
            f"round {round_id} has no GMP review stage (its stages: {', '.join(definition.stages)}); "
            "its screened applications go straight to the committee"
        )
    applications = list(
        session.exec(
            select(Application)
            .where(
                Application.round_id == round_id,
                Application.status.in_(statuses),  # type: ignore[attr-defined]
            )
            .order_by(Application.id)
        ).all()
    )
    people = {p.id: p for p in session.exec(select(ReviewerRow).order_by(ReviewerRow.id)).all()}  # type: ignore[arg-type]
    assignments: dict[int, list[ReviewAssignment]] = {}
    for a in session.exec(
        select(ReviewAssignment).where(ReviewAssignment.round_id == round_id).order_by(ReviewAssignment.id)
    ).all():
        assignments.setdefault(a.application_id, []).append(a)
    declared = declared_conflicts(
        session,
        DeclaredConflict.application_id.in_(  # type: ignore[attr-defined]
            [a.id for a in applications]
        ),
    )
    return RoundReview(definition, applications, people, assignments, declared)  # type: ignore[arg-type]


def declared_conflicts(session: Session, where: Any) -> dict[tuple[str, str], str]:
    """Declared conflicts matching `where`: (reviewer's e-mail, reference) -> reason."""
    return {
        (email, ref): reason
        for email, ref, reason in session.exec(
            select(ReviewerRow.email, Application.reference, DeclaredConflict.reason)
            .join(ReviewerRow, ReviewerRow.id == DeclaredConflict.reviewer_id)  # type: ignore[arg-type]
            .join(Application, Application.id == DeclaredConflict.application_id)  # type: ignore[arg-type]
            .where(where)
        ).all()
    }


def recheck_conflicts(session: Session, reviewer: ReviewerRow, *, actor: str, at: datetime) -> list[str]:
    """After a reviewer's country or organisation changed in the register: the proposed
    or invited assignments that are now conflicted come off (state conflicted, with
    why), so the reviewer is neither invited to nor shown them. Returns their references."""
    rows = session.exec(
        select(ReviewAssignment, Application)
        .join(Application, Application.id == ReviewAssignment.application_id)  # type: ignore[arg-type]
        .where(
            ReviewAssignment.reviewer_id == reviewer.id,
            ReviewAssignment.state.in_(
                [
                    AssignmentState.PROPOSED.value,
                    AssignmentState.INVITED.value,
                ]
            ),
        )
    ).all()
    declared = declared_conflicts(session, DeclaredConflict.reviewer_id == reviewer.id)
    person = as_reviewer(reviewer)
    moved = []
    for assignment, application in rows:
        why = conflicts(person, subject_of(application), declared)
        if why:
            move_assignment(
                session,
                assignment,
                "declare_conflict",
                role="secretariat",
                actor=actor,
                at=at,
                reference=application.reference,
                reviewer=reviewer.email,
                note=f"conflict of interest ({', '.join(w.value for w in why)}) since the register changed",
            )
            moved.append(application.reference)
    return moved


def _open_for_assignment(session: Session, round_id: str) -> None:
    status = RoundStatus(get_round(session, round_id).status)
    if status not in (RoundStatus.SCREENING, RoundStatus.REVIEW):
        raise NotAllowed(
            f"round {round_id} is {status.value}; reviewers are assigned after screening and "
            "before the review stage closes"
        )


def assign_reviewers(session: Session, round_id: str, *, actor: str, at: datetime) -> list[Placement]:
    """Propose reviewers for the round's screened applications, filling only the places
    still open: an application keeps the reviewers it has, and a reviewer who declined
    or was taken off is not proposed for it again. Returns every application's placement."""
    state = round_review(session, round_id, for_update=True)
    _assignment_checks(session, state, round_id)
    id_of = {p.email: p.id for p in state.people.values()}
    result = []
    for application, placement in zip(state.applications, state.placements(), strict=True):
        held = len(state.active(application.id or 0))
        wanted = placement.reviewers[held:]
        for email in wanted:
            session.add(
                ReviewAssignment(
                    round_id=round_id, application_id=application.id, reviewer_id=id_of[email], created_at=at
                )
            )
        if wanted:
            audit.record(
                session,
                at=at,
                actor=actor,
                role="secretariat",
                action="application.reviewers_proposed",
                subject_type="application",
                subject_id=application.reference,
                details={"reviewers": wanted, "unfilled": placement.unfilled},
            )
        result.append(placement)
    return result


def check_assignment(session: Session, round_id: str) -> None:
    """What `assign_reviewers` refuses, checked beforehand (the API does, before it starts the flow)."""
    _assignment_checks(session, round_review(session, round_id), round_id)


def _assignment_checks(session: Session, state: RoundReview, round_id: str) -> None:
    _open_for_assignment(session, round_id)
    if not any(p.active for p in state.people.values()):
        raise NotAllowed("the register of reviewers is empty; load it with `sip reviewers load FILE`")


def placement_json(placements: list[Placement]) -> list[dict[str, Any]]:
    return [asdict(p) for p in placements]


@dataclass
class AssignedReviewer:
    email: str
    name: str
    state: str
    note: str | None
    review: str | None  # draft, submitted, or None


@dataclass
class AssignmentLine:
    """One application's assignment as the secretariat sees it."""

    reference: str
    party: str
    title: str | None
    status: str
    areas: list[str]
    reviewers: list[AssignedReviewer]
    open_places: int
    proposals: list[str]  # who the assignment would propose for the open places now
    reasons: list[str] = field(default_factory=list)


def assignment_view(session: Session, round_id: str) -> list[AssignmentLine]:
    """Every application of the round's review with its reviewers (proposed, invited,
    declined...), its open places, and why reviewers were not chosen."""
    state = round_review(session, round_id, statuses=REVIEWED)
    reviews = dict(
        session.exec(
            select(Review.assignment_id, Review.state)
            .join(ReviewAssignment)
            .where(ReviewAssignment.round_id == round_id)
        ).all()
    )
    lines = []
    for application, subject, placement in zip(state.applications, state.subjects(), state.placements(), strict=True):
        rows = state.assignments.get(application.id or 0, [])
        held = len(state.active(application.id or 0))
        if application.status not in REVIEWABLE:  # past the review: nobody is proposed any more
            placement = Placement(application.reference, placement.reviewers[:held])
        lines.append(
            AssignmentLine(
                reference=application.reference,
                party=application.party,
                title=application.title,
                status=application.status,
                areas=sorted(subject.areas),
                reviewers=[
                    AssignedReviewer(
                        state.people[a.reviewer_id].email,
                        state.people[a.reviewer_id].name,
                        a.state,
                        a.note,
                        reviews.get(a.id),
                    )
                    for a in rows
                ],
                open_places=max(state.definition.reviewers_per_application - held, 0),
                proposals=placement.reviewers[held:],
                reasons=placement.reasons,
            )
        )
    return lines


def _assignment(
    session: Session, round_id: str, reference: str, email: str
) -> tuple[Application, ReviewerRow, ReviewAssignment | None]:
    application = session.exec(
        select(Application).where(Application.reference == reference, Application.round_id == round_id)
    ).first()
    if application is None:
        raise NotFound(f"no application {reference!r} in round {round_id}; `sip review show {round_id}` lists them")
    reviewer = session.exec(select(ReviewerRow).where(ReviewerRow.email == email.strip().lower())).first()
    if reviewer is None:
        raise NotFound(
            f"no reviewer {email!r} in the register; `sip reviewers list` shows it, "
            "`sip reviewers set EMAIL ...` adds one"
        )
    row = session.exec(
        select(ReviewAssignment).where(
            ReviewAssignment.application_id == application.id, ReviewAssignment.reviewer_id == reviewer.id
        )
    ).first()
    return application, reviewer, row


def move_assignment(
    session: Session,
    row: ReviewAssignment,
    move: str,
    *,
    role: str,
    actor: str,
    at: datetime,
    reference: str,
    reviewer: str,
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Change an assignment's state through the domain's rules, with its audit event.
    The row changes only if it is still in the state it was read in: a concurrent
    change (a submission racing a decline or a removal) makes this raise `Conflict`."""
    before = AssignmentState(row.state)
    try:
        after = plan_assignment(before, move, role)
    except AssignmentError as exc:
        raise NotAllowed(f"{reference}, {reviewer}: {exc}") from None
    values: dict[str, Any] = {"state": after.value, "changed_at": at}
    if after is AssignmentState.INVITED:
        values["invited_at"] = at
    if note is not None:
        values["note"] = audit.fit_reason(note)
    table = table_of(ReviewAssignment)
    changed = session.execute(update(table).where(table.c.id == row.id, table.c.state == before.value).values(**values))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"{reference}, {reviewer}: the assignment was changed by someone else meanwhile; reload it and try again"
        )
    for name, value in values.items():
        set_committed_value(row, name, value)
    audit.record(
        session,
        at=at,
        actor=actor,
        role=role,
        action=f"assignment.{move}",
        subject_type="application",
        subject_id=reference,
        from_status=before.value,
        to_status=after.value,
        reason=note,
        details={"reviewer": reviewer, **(details or {})},
    )


def add_reviewer(session: Session, round_id: str, reference: str, email: str, *, actor: str, at: datetime) -> str:
    """The secretariat puts a reviewer on an application by hand: never one with a
    conflict of interest, and within their maximum load. Returns `added`, `restored`
    (taken off or declined before) or `unchanged`."""
    state = round_review(session, round_id, for_update=True)  # loads are counted under the round's lock
    _open_for_assignment(session, round_id)
    application, reviewer, row = _assignment(session, round_id, reference, email)
    if application.status not in REVIEWABLE:
        raise NotAllowed(f"{reference} is {application.status}; reviewers review screened applications")
    if row is not None and row.state in ACTIVE_VALUES:
        return "unchanged"
    why = conflicts(as_reviewer(reviewer), subject_of(application), state.declared)
    if why:
        raise NotAllowed(
            f"{reviewer.email} has a conflict of interest with {reference} "
            f"({', '.join(w.value for w in why)}); choose another reviewer"
        )
    if not reviewer.active:
        raise NotAllowed(
            f"{reviewer.email} is inactive in the register; `sip reviewers set {reviewer.email} --active` first"
        )
    load = state.loads().get(reviewer.email, 0)
    if load >= reviewer.max_load:
        raise NotAllowed(
            f"{reviewer.email} already has {load} application(s) in {round_id}, their maximum; "
            f"raise it with `sip reviewers set {reviewer.email} --max-load N` or choose another"
        )
    areas = subject_of(application).areas
    outside = sorted(areas - set(reviewer.areas)) if not areas & set(reviewer.areas) else []
    details = {"outside_areas": outside} if outside else {}
    if row is None:
        session.add(
            ReviewAssignment(round_id=round_id, application_id=application.id, reviewer_id=reviewer.id, created_at=at)
        )
        audit.record(
            session,
            at=at,
            actor=actor,
            role="secretariat",
            action="assignment.add",
            subject_type="application",
            subject_id=reference,
            to_status=AssignmentState.PROPOSED.value,
            details={"reviewer": reviewer.email, **details},
        )
        return "added"
    move_assignment(
        session,
        row,
        "restore",
        role="secretariat",
        actor=actor,
        at=at,
        reference=reference,
        reviewer=reviewer.email,
        details=details,
    )
    return "restored"


def remove_reviewer(
    session: Session, round_id: str, reference: str, email: str, *, reason: str, actor: str, at: datetime
) -> None:
    """The secretariat takes a reviewer off an application (before or after the
    invitation, not after the review is submitted), for a reason."""
    if not reason.strip():
        raise InvalidInput(
            "say why the reviewer is taken off (--reason)", [FieldError(path="reason", message="is required")]
        )
    _open_for_assignment(session, round_id)
    _, reviewer, row = _assignment(session, round_id, reference, email)
    if row is None:
        raise NotFound(f"{reviewer.email} is not assigned to {reference}")
    move_assignment(
        session,
        row,
        "remove",
        role="secretariat",
        actor=actor,
        at=at,
        reference=reference,
        reviewer=reviewer.email,
        note=reason.strip(),
    )


def record_conflict(
    session: Session, round_id: str, reference: str, email: str, *, reason: str, actor: str, role: str, at: datetime
) -> bool:
    """A conflict of interest declared by the reviewer or recorded by the secretariat:
    kept with its source, and the reviewer comes off the application if assigned.
    Returns False if it was already recorded."""
    if not reason.strip():
        raise InvalidInput("say what the conflict of interest is", [FieldError(path="reason", message="is required")])
    application, reviewer, row = _assignment(session, round_id, reference, email)
    exists = session.exec(
        select(DeclaredConflict).where(
            DeclaredConflict.reviewer_id == reviewer.id, DeclaredConflict.application_id == application.id
        )
    ).first()
    if exists is not None:
        return False
    if row is not None and row.state == AssignmentState.SUBMITTED.value:
        raise NotAllowed(
            f"{reviewer.email} already submitted a review of {reference}; write to the secretariat "
            "if the review must be set aside"
        )
    session.add(
        DeclaredConflict(
            reviewer_id=reviewer.id,
            application_id=application.id,
            reason=reason.strip()[:2000],
            declared_by=f"{role}:{actor}",
            declared_at=at,
        )
    )
    audit.record(
        session,
        at=at,
        actor=actor,
        role=role,
        action="conflict.declared",
        subject_type="application",
        subject_id=reference,
        reason=reason.strip(),
        details={"reviewer": reviewer.email, "source": role},
    )
    if row is not None and row.state in ACTIVE_VALUES:
        move_assignment(
            session,
            row,
            "declare_conflict",
            role=role,
            actor=actor,
            at=at,
            reference=reference,
            reviewer=reviewer.email,
            note=reason.strip(),
        )
    return True


def list_reviewers(session: Session) -> list[ReviewerRow]:
    """The register of reviewers, by e-mail."""
    return list(session.exec(select(ReviewerRow).order_by(col(ReviewerRow.email))).all())
