"""What the GMP review of a round is made of, read and moved by the other review
modules: a round's applications, reviewers, assignments and declared conflicts in one
load (`round_review`), the assignment's state machine step (`move_assignment`), and
the review stage's record and deadline."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from domain.hints import Hint, Step
from domain.lifecycle import Role, Status
from domain.review import (
    ACTIVE_STATES,
    AreaMap,
    AssignmentError,
    AssignmentState,
    Placement,
    Reviewer,
    Subject,
    assign,
    plan_assignment,
)
from domain.rounds import RoundDefinition
from engine.services import audit
from engine.services.applications import countries_of
from engine.services.errors import Conflict, NotAllowed
from engine.services.rounds import definition_of, get_round
from engine.tables import (
    Application,
    DeclaredConflict,
    ReviewAssignment,
    ReviewerRecord,
    ReviewStage,
    table_of,
)
from notifications import LANGUAGES

AREA_MAP = Path(__file__).resolve().parents[2] / "data" / "partnership_areas.toml"


@lru_cache
def area_map(path: Path = AREA_MAP) -> AreaMap:
    return AreaMap.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


def as_reviewer(row: ReviewerRecord) -> Reviewer:
    return Reviewer(
        name=row.name,
        email=row.email,
        organisation=row.organisation,
        country=row.country,
        areas=tuple(row.areas),
        languages=tuple(row.languages),
        max_load=row.max_load,
    )


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
REVIEWABLE = (Status.SCREENED, Status.GMP_REVIEW)


#: Applications whose review can be shown: those above, and those past the review.
REVIEWED = (
    *REVIEWABLE,
    Status.READY_FOR_COMMITTEE,
    Status.APPROVED,
    Status.APPROVED_WITH_CONDITIONS,
    Status.NOT_APPROVED,
    Status.DEFERRED,
)


@dataclass
class RoundReview:
    """A round's GMP review as stored: what the assignment and its views need."""

    definition: RoundDefinition
    applications: list[Application]
    people: dict[int, ReviewerRecord]  # every reviewer of the register, by id
    assignments: dict[int, list[ReviewAssignment]]  # by application id, in order of creation
    declared: dict[tuple[str, str], str]  # (e-mail, reference) -> reason

    def active(self, application_id: int) -> list[ReviewAssignment]:
        return [a for a in self.assignments.get(application_id, []) if a.state in ACTIVE_STATES]

    def loads(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rows in self.assignments.values():
            for a in rows:
                if a.state in ACTIVE_STATES:
                    email = self.people[a.reviewer_id].email
                    counts[email] = counts.get(email, 0) + 1
        return counts

    def excluded(self) -> dict[tuple[str, str], str]:
        by_id = {a.id: a.reference for a in self.applications}
        return {
            (self.people[a.reviewer_id].email, by_id[a.application_id]): NOT_AGAIN[a.state]
            for rows in self.assignments.values()
            for a in rows
            if a.state not in ACTIVE_STATES and a.application_id in by_id
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


def round_review(
    session: Session, round_id: str, *, for_update: bool = False, statuses: tuple[Status, ...] = REVIEWABLE
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
                col(Application.status).in_(statuses),
            )
            .order_by(col(Application.id))
        ).all()
    )
    people = {p.id or 0: p for p in session.exec(select(ReviewerRecord).order_by(col(ReviewerRecord.id))).all()}
    assignments: dict[int, list[ReviewAssignment]] = {}
    for a in session.exec(
        select(ReviewAssignment).where(ReviewAssignment.round_id == round_id).order_by(col(ReviewAssignment.id))
    ).all():
        assignments.setdefault(a.application_id, []).append(a)
    declared = declared_conflicts(session, col(DeclaredConflict.application_id).in_([a.id for a in applications]))
    return RoundReview(definition, applications, people, assignments, declared)


def declared_conflicts(session: Session, where: ColumnElement[bool]) -> dict[tuple[str, str], str]:
    """Declared conflicts matching `where`: (reviewer's e-mail, reference) -> reason."""
    return {
        (email, ref): reason
        for email, ref, reason in session.exec(
            select(ReviewerRecord.email, Application.reference, DeclaredConflict.reason)
            .join(ReviewerRecord, col(ReviewerRecord.id) == DeclaredConflict.reviewer_id)
            .join(Application, col(Application.id) == DeclaredConflict.application_id)
            .where(where)
        ).all()
    }


def move_assignment(
    session: Session,
    row: ReviewAssignment,
    move: str,
    *,
    role: Role,
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
    before = row.state
    try:
        after = plan_assignment(before, move, role)
    except AssignmentError as exc:
        raise NotAllowed(f"{reference}, {reviewer}: {exc}") from None
    values: dict[str, Any] = {"state": after, "changed_at": at}
    if after is AssignmentState.INVITED:
        values["invited_at"] = at
    if note is not None:
        values["note"] = audit.fit_reason(note)
    table = table_of(ReviewAssignment)
    changed = session.execute(update(table).where(table.c.id == row.id, table.c.state == before).values(**values))
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
        from_status=before,
        to_status=after,
        reason=note,
        details={"reviewer": reviewer, **(details or {})},
    )


def local_day(at: datetime, definition: RoundDefinition) -> date:
    return at.astimezone(definition.zone).date()


def deadline(stage: ReviewStage, definition: RoundDefinition) -> datetime:
    """The end of the due day in the round's time zone."""
    return datetime.combine(stage.due_on + timedelta(days=1), time(), tzinfo=definition.zone)


def stage_of(session: Session, round_id: str, *, for_update: bool = False) -> ReviewStage | None:
    statement = select(ReviewStage).where(ReviewStage.round_id == round_id)
    if for_update:
        statement = statement.with_for_update()
    return session.exec(statement).first()


def open_stage(session: Session, round_id: str, *, for_update: bool = False) -> ReviewStage:
    stage = stage_of(session, round_id, for_update=for_update)
    if stage is None:
        raise NotAllowed(
            f"the GMP review of round {round_id} has not started; it starts when the reviewers are invited",
            hints=(Hint(Step.INVITE_REVIEWERS, round_id=round_id),),
        )
    if stage.closed_at is not None:
        raise NotAllowed(
            f"the GMP review of round {round_id} closed on {stage.closed_at:%Y-%m-%d}; reviews are no longer taken"
        )
    return stage


def language_of(reviewer: ReviewerRecord) -> str:
    """The reviewer's first language that the engine writes in (English otherwise)."""
    return next((lang for lang in reviewer.languages if lang in LANGUAGES), "en")
