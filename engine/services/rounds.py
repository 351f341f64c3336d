"""Rounds: loading definitions from TOML, storing them, and the secretariat's
actions on a round (open, close), each audited."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.hints import Hint, Step
from domain.lifecycle import Role
from domain.money import STORED
from domain.rounds import (
    RoundActionError,
    RoundDefinition,
    RoundStatus,
    accepts_applications,
    effective_status,
    plan_close,
    plan_open,
    round_move,
)
from engine.services import audit
from engine.services.errors import InvalidInput, NotAllowed, NotFound
from engine.tables import Round

#: Once a round is past these, its definition (criteria, dates) no longer changes.
EDITABLE = {RoundStatus.DRAFT, RoundStatus.OPEN, RoundStatus.CLOSED}


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def parse_round(text: str, source: str) -> RoundDefinition:
    """Validate a round definition. Errors name the file and the key (or, for TOML
    syntax, the line and column)."""
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark, as the CSV loaders take it
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{source}: not valid TOML: {exc}", [FieldError(path=source, message=f"not valid TOML: {exc}")]
        ) from None
    except RecursionError:  # tables or arrays nested beyond the parser's reach
        message = "nests too deep to be a round definition"
        raise InvalidInput(f"{source}: {message}", [FieldError(path=source, message=message)]) from None
    try:
        return RoundDefinition.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            key = _key_path(err["loc"])
            message = (
                "is required"
                if err["type"] == "missing"
                else (
                    "is not a key of a round definition (check its spelling)"
                    if err["type"] == "extra_forbidden"
                    else err["msg"].removeprefix("Value error, ")
                )
            )
            errors.append(FieldError(path=f"{source}: {key}", message=message))
        listing = "; ".join(f"{e.path}: {e.message}" for e in errors)
        raise InvalidInput(f"round definition rejected: {listing}", errors) from None


def read_round_file(path: Path) -> RoundDefinition:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the round file: {exc}") from None
    return parse_round(text, str(path))


class RoundView(BaseModel):
    """A round as anyone may see it: dates, status, whether it accepts applications."""

    id: str
    title: str
    opens_at: datetime
    closes_at: datetime
    timezone: str
    status: RoundStatus
    accepts_applications: bool
    stages: list[str]
    currency: str
    amount_min: str
    amount_max: str

    @classmethod
    def of(cls, row: Round, now: datetime) -> RoundView:
        definition = definition_of(row)
        stored = row.status
        return cls(
            id=row.id,
            title=row.title,
            opens_at=definition.opens_at,
            closes_at=definition.closes_at,
            timezone=definition.timezone,
            status=effective_status(stored, definition, now),
            accepts_applications=accepts_applications(stored, definition, now),
            stages=list(definition.stages),
            amount_min=f"{definition.amount_min:.2f}",
            amount_max=f"{definition.amount_max:.2f}",
            currency=definition.currency,
        )


def definition_of(row: Round) -> RoundDefinition:
    return stored_definition(row.id, row.definition)


def stored_definition(round_id: str, definition: dict[str, Any]) -> RoundDefinition:
    """A round's definition as stored (`Round.definition`), checked."""
    try:
        return RoundDefinition.model_validate(definition, context=STORED)
    except ValidationError as exc:
        problems = "; ".join(f"{_key_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise InvalidInput(
            f"the stored definition of round {round_id} is not valid for this version of the engine "
            f"({problems}); correct its file and load it again",
            hints=(Hint(Step.LOAD_ROUND),),
        ) from None


def get_round(session: Session, round_id: str, *, for_update: bool = False) -> Round:
    statement = select(Round).where(Round.id == round_id)
    if for_update:
        statement = statement.with_for_update()
    row = session.exec(statement).first()
    if row is None:
        known = ", ".join(session.exec(select(Round.id).order_by(col(Round.opens_at))).all()) or "none loaded"
        raise NotFound(
            f"no round {round_id!r} (known rounds: {known}); a round is known once its file is loaded",
            hints=(Hint(Step.LIST_ROUNDS), Hint(Step.LOAD_ROUND)),
        )
    return row


def list_rounds(session: Session, now: datetime) -> list[RoundView]:
    return [RoundView.of(r, now) for r in session.exec(select(Round).order_by(col(Round.opens_at))).all()]


def store_round(
    session: Session, definition: RoundDefinition, *, source: str, actor: str, at: datetime
) -> tuple[Round, str]:
    """Insert or update a round's definition. Returns the row and what happened:
    `created`, `updated` or `unchanged`. A round past its close keeps its definition."""
    data = definition.model_dump(mode="json")
    row = session.get(Round, definition.id)
    if row is None:
        row = Round(
            id=definition.id,
            title=definition.title,
            opens_at=definition.opens_at,
            closes_at=definition.closes_at,
            status=RoundStatus.DRAFT,
            definition=data,
            source=source,
            updated_at=at,
        )
        session.add(row)
        audit.record(
            session,
            at=at,
            actor=actor,
            role=Role.SECRETARIAT,
            action="round.loaded",
            subject_type="round",
            subject_id=definition.id,
            to_status=RoundStatus.DRAFT,
            details={"source": source},
        )
        return row, "created"
    if row.definition == data:
        return row, "unchanged"
    if RoundStatus(row.status) not in EDITABLE:
        raise NotAllowed(
            f"round {definition.id} is {row.status}; its definition can no longer change "
            "(load it under a new id for a new call for applications)"
        )
    changed = sorted(k for k in data if data[k] != row.definition.get(k))
    row.title, row.opens_at, row.closes_at = definition.title, definition.opens_at, definition.closes_at
    row.definition, row.source, row.updated_at = data, source, at
    session.add(row)
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="round.updated",
        subject_type="round",
        subject_id=definition.id,
        details={"source": source, "changed": changed},
    )
    return row, "updated"


def move_round(
    session: Session,
    row: Round,
    move: str,
    *,
    actor: str,
    at: datetime,
    role: Role = Role.SECRETARIAT,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> RoundStatus:
    """Every change of a round's status goes through here: the move must be in the
    round's table (`domain.rounds.ROUND_TRANSITIONS`), and one audit event records it.
    The event is dated when it is recorded; the instant the move takes effect (a
    scheduled close run late, the demo's 2018 dates) is kept beside it. Returns the
    status the round had."""
    stored = row.status
    try:
        transition = round_move(stored, move, row.id)
    except RoundActionError as exc:
        raise NotAllowed(str(exc), hints=exc.hints) from None
    recorded = datetime.now(UTC)
    row.status, row.updated_at = transition.target, recorded
    session.add(row)
    audit.record(
        session,
        at=recorded,
        actor=actor,
        role=role,
        action=transition.action,
        subject_type="round",
        subject_id=row.id,
        from_status=stored,
        to_status=transition.target,
        reason=reason,
        details={**(details or {}), "effective_at": at.isoformat()},
    )
    return stored


def _act(
    session: Session, round_id: str, move: str, plan: Any, *, actor: str, at: datetime, reason: str | None
) -> tuple[Round, bool]:
    row = get_round(session, round_id, for_update=True)
    if _planned(row, plan) is row.status:
        return row, False
    move_round(session, row, move, actor=actor, at=at, reason=reason)
    return row, True


def _opening(at: datetime) -> Any:
    def plan(stored: RoundStatus, definition: RoundDefinition) -> RoundStatus:
        return stored if stored is not RoundStatus.DRAFT else plan_open(stored, definition, at)

    return plan


def _closing(at: datetime, early_reason: str | None) -> Any:
    def plan(stored: RoundStatus, definition: RoundDefinition) -> RoundStatus:
        if stored not in (RoundStatus.DRAFT, RoundStatus.OPEN):
            return stored
        return plan_close(stored, definition, at, early_reason=early_reason)

    return plan


def open_round(session: Session, round_id: str, *, actor: str, at: datetime) -> tuple[Round, bool]:
    """Open a draft round (at or after `opens_at`). A round opened before (open now,
    or already further on) is left as it is: changed=False."""
    return _act(session, round_id, "open", _opening(at), actor=actor, at=at, reason=None)


def close_round(
    session: Session, round_id: str, *, actor: str, at: datetime, early_reason: str | None = None
) -> tuple[Round, bool]:
    """Close an open round after its deadline (or before it, with a reason). A round
    closed before (closed now, or further on) is left as it is: changed=False."""
    return _act(session, round_id, "close", _closing(at, early_reason), actor=actor, at=at, reason=early_reason)


def check_open(session: Session, round_id: str, *, at: datetime) -> None:
    """What `open_round` refuses, checked beforehand (before a flow starts)."""
    _planned(get_round(session, round_id), _opening(at))


def check_close(session: Session, round_id: str, *, at: datetime, early_reason: str | None = None) -> None:
    """What `close_round` refuses, checked beforehand (before a flow starts)."""
    _planned(get_round(session, round_id), _closing(at, early_reason))


def _planned(row: Round, plan: Any) -> RoundStatus:
    try:
        planned: RoundStatus = plan(row.status, definition_of(row))
        return planned
    except RoundActionError as exc:
        raise NotAllowed(str(exc), hints=exc.hints) from None
