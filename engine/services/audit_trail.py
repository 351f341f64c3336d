"""Checking the audit trail's hash chain (`sip audit verify`): every event, in id order,
must hash to its stored `hash` (else its content, or its hash, was changed) and name as
`prev_hash` the hash of the event before it (else an event between them was removed,
or a link was changed). The walk reads the trail a page at a time, in one read-only
transaction (a consistent view; events appended meanwhile are left for the next
check), so its memory does not grow with the trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine, RowMapping, func, select

from domain.audit_chain import CONTENT, GENESIS, event_hash
from engine.db import reading
from engine.tables import AuditEvent, table_of

PAGE = 5000


class Break(StrEnum):
    """How the chain is broken at an event."""

    CONTENT_EDITED = "content edited"  # the event does not hash to its stored hash
    ROW_MISSING = "row missing"  # the link names an event that is not there (ids skip)
    LINK_BROKEN = "link broken"  # the link names another hash than the event before it has


@dataclass(frozen=True)
class BrokenLink:
    event_id: int
    kind: Break
    expected: str
    found: str
    previous_id: int | None

    def describe(self) -> str:
        before = f"event {self.previous_id}" if self.previous_id is not None else "the start of the trail"
        if self.kind is Break.CONTENT_EDITED:
            return (
                f"event {self.event_id}: content edited: its fields hash to {self.expected[:16]}…, "
                f"but it stores {self.found[:16]}… (a field or its hash was changed after it was written)"
            )
        if self.kind is Break.ROW_MISSING:
            return (
                f"event {self.event_id}: row missing: it follows an event with hash {self.found[:16]}…, "
                f"which is not there (the trail goes from {before} to event {self.event_id}; "
                f"{before} has hash {self.expected[:16]}…)"
            )
        return (
            f"event {self.event_id}: link broken: it names {self.found[:16]}… as the hash of the event "
            f"before it, but {before} has {self.expected[:16]}… (that event's hash, or this link, "
            "was changed, or an event was removed)"
        )


@dataclass(frozen=True)
class Verification:
    checked: int
    total: int
    head_id: int | None
    head_hash: str
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(engine: Engine, *, page: int = PAGE, progress: Callable[[int, int], None] | None = None) -> Verification:
    """Walk the chain from the first event; stop at the first broken link.
    `progress(checked, total)` is called after each page."""
    table = table_of(AuditEvent)
    columns = [table.c.id, *(table.c[name] for name in CONTENT), table.c.prev_hash, table.c.hash]
    checked, head, head_id = 0, GENESIS, None
    with reading(engine) as session:
        total = session.execute(select(func.count()).select_from(table)).scalar_one()
        while True:
            query = select(*columns).order_by(table.c.id).limit(page)
            if head_id is not None:
                query = query.where(table.c.id > head_id)
            rows = session.execute(query).mappings().all()
            if not rows:
                break
            for row in rows:
                broken = _check(row, head, head_id)
                if broken is not None:
                    return Verification(checked, total, head_id, head, broken)
                checked, head, head_id = checked + 1, row["hash"], row["id"]
            if progress is not None:
                progress(checked, total)
    return Verification(checked, total, head_id, head, None)


def _check(event: RowMapping, head: str, head_id: int | None) -> BrokenLink | None:
    event_id: int = event["id"]
    prev_hash: str = event["prev_hash"]
    stored: str = event["hash"]
    computed = event_hash(prev_hash, event)
    if computed != stored:
        return BrokenLink(event_id, Break.CONTENT_EDITED, computed, stored, head_id)
    if prev_hash != head:
        skipped = head_id is None or event_id > head_id + 1
        kind = Break.ROW_MISSING if skipped else Break.LINK_BROKEN
        return BrokenLink(event_id, kind, head, prev_hash, head_id)
    return None
