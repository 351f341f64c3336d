"""Global Mercury Partnership review: the register of reviewers and the assignment of
reviewers to a round's screened applications."""

from __future__ import annotations

import tomllib
from dataclasses import asdict
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from domain.application import FieldError
from domain.lifecycle import Status
from domain.review import AreaMap, Placement, Reviewer, Subject, assign
from engine.services import audit
from engine.services.csvfile import csv_rows
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.rounds import definition_of, get_round
from engine.tables import Application, DeclaredConflict, ReviewAssignment
from engine.tables import Reviewer as ReviewerRow

AREA_MAP = Path(__file__).resolve().parent.parent / "data" / "partnership_areas.toml"
COLUMNS = ["name", "email", "organisation", "country", "areas", "languages", "max_load"]


@lru_cache
def area_map(path: Path = AREA_MAP) -> AreaMap:
    return AreaMap.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


def parse_reviewers(text: str, source: str) -> list[Reviewer]:
    """Every row is checked; all problems are reported together, by line."""
    errors: list[FieldError] = []
    reviewers: list[Reviewer] = []
    seen: dict[str, int] = {}
    for line, row in csv_rows(text, source, COLUMNS):
        values: dict[str, Any] = dict(row)
        values["areas"] = tuple(a.strip() for a in values["areas"].split(";") if a.strip())
        values["languages"] = tuple(a.strip() for a in values["languages"].split(";") if a.strip())
        try:
            reviewer = Reviewer.model_validate(values)
        except ValidationError as exc:
            specific = {err["loc"][0] for err in exc.errors() if err["loc"] and err["type"] != "too_short"}
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else "row"
                if err["type"] == "too_short" and column in specific:
                    continue  # the consequence of an item refused above
                message = "is required" if err["type"] == "missing" else err["msg"]
                if column == "areas" and err["type"] == "literal_error":
                    message = f"{err['input']!r} is not a partnership area ({err['ctx']['expected']})"
                errors.append(FieldError(path=f"{source}:{line}: {column}", message=message))
            continue
        email = str(reviewer.email).lower()
        if email in seen:
            errors.append(FieldError(path=f"{source}:{line}: email",
                                     message=f"duplicate e-mail {email} (first on line {seen[email]})"))
            continue
        seen[email] = line
        reviewers.append(reviewer)
    if errors:
        raise InvalidInput(f"{source}: {len(errors)} problem(s); the register was not changed", errors)
    if not reviewers:
        raise InvalidInput(f"{source}: no reviewers in the file; the register was not changed")
    return reviewers


def load_reviewers(session: Session, reviewers: list[Reviewer], *, source: str, actor: str,
                   at: datetime) -> dict[str, int]:
    """Add or update reviewers by e-mail (those not in the file stay, as they may have
    assignments). Audited with counts."""
    existing = {r.email: r for r in session.exec(select(ReviewerRow)).all()}
    added = updated = 0
    for reviewer in reviewers:
        email = str(reviewer.email).lower()
        values = dict(name=reviewer.name, organisation=reviewer.organisation, country=reviewer.country,
                      areas=list(reviewer.areas), languages=list(reviewer.languages), max_load=reviewer.max_load)
        row = existing.get(email)
        if row is None:
            session.add(ReviewerRow(email=email, updated_at=at, **values))
            added += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = at
            session.add(row)
            updated += 1
    counts = {"reviewers": len(reviewers), "added": added, "updated": updated}
    audit.record(session, at=at, actor=actor, role="secretariat", action="reviewers.loaded", subject_type="register",
                 subject_id="reviewers", details={"source": source, **counts})
    return counts


def subject_of(application: Application) -> Subject:
    form_a = application.form_a or {}
    text = " ".join(str(form_a.get(k) or "") for k in ("title", "summary", "objective"))
    return Subject(
        reference=application.reference,
        countries=frozenset([application.party, *application.applicant.get("co_applicants", [])]),
        executing_agency=application.applicant.get("executing_agency", {}).get("name", ""),
        areas=frozenset(area_map().areas_of(form_a.get("convention_articles", []), text)),
    )


def assign_reviewers(session: Session, round_id: str, *, actor: str, at: datetime) -> list[Placement]:
    """Propose reviewers for the round's screened applications, filling only the places
    still open (an application already assigned keeps its reviewers). Returns every
    screened application's placement."""
    row = get_round(session, round_id)
    definition = definition_of(row)
    if not definition.has_gmp_review:
        raise NotAllowed(f"round {round_id} has no GMP review stage (its stages: {', '.join(definition.stages)})")
    applications = session.exec(select(Application).where(
        Application.round_id == round_id, Application.status == Status.SCREENED.value
    ).order_by(Application.id)).all()  # type: ignore[arg-type]
    people = session.exec(select(ReviewerRow).where(ReviewerRow.active).order_by(ReviewerRow.id)).all()  # type: ignore[arg-type]
    if not people:
        raise NotAllowed("the register of reviewers is empty; load it with `sip reviewers load FILE`")
    by_id = {p.id: p for p in people}
    assigned: dict[int, list[str]] = {}
    for application_id, reviewer_id in session.exec(select(ReviewAssignment.application_id,
                                                            ReviewAssignment.reviewer_id)
                                                     .where(ReviewAssignment.round_id == round_id)).all():
        if reviewer_id in by_id:
            assigned.setdefault(application_id, []).append(by_id[reviewer_id].email)
    loads = dict(session.exec(select(ReviewerRow.email, func.count()).join(ReviewAssignment)
                              .where(ReviewAssignment.round_id == round_id).group_by(ReviewerRow.email)).all())
    declared = {(by_id[r].email, ref): reason for r, ref, reason in session.exec(
        select(DeclaredConflict.reviewer_id, Application.reference, DeclaredConflict.reason)
        .join(Application, Application.id == DeclaredConflict.application_id)).all() if r in by_id}  # type: ignore[arg-type]
    reviewers = [Reviewer(name=p.name, email=p.email, organisation=p.organisation, country=p.country,
                          areas=tuple(p.areas), languages=tuple(p.languages), max_load=p.max_load)  # type: ignore[arg-type]
                 for p in people]
    per = definition.reviewers_per_application
    need = [a for a in applications if len(assigned.get(a.id or 0, [])) < per]
    placements = {p.reference: p for p in assign([subject_of(a) for a in need], reviewers, per, declared, loads)}
    id_of = {p.email: p.id for p in people}
    result = []
    for application in applications:
        already = assigned.get(application.id or 0, [])
        placement = placements.get(application.reference)
        if placement is None:
            result.append(Placement(application.reference, list(already)))
            continue
        wanted = [e for e in placement.reviewers if e not in already][:per - len(already)]
        for email in wanted:
            session.add(ReviewAssignment(round_id=round_id, application_id=application.id,
                                         reviewer_id=id_of[email], created_at=at))
        if wanted:
            audit.record(session, at=at, actor=actor, role="secretariat", action="application.reviewers_proposed",
                         subject_type="application", subject_id=application.reference,
                         details={"reviewers": wanted, "unfilled": per - len(already) - len(wanted)})
        result.append(Placement(application.reference, [*already, *wanted], per - len(already) - len(wanted),
                                placement.reasons))
    return result


def placement_json(placements: list[Placement]) -> list[dict[str, Any]]:
    return [asdict(p) for p in placements]
