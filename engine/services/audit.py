"""The append-only audit trail and the status history: every state change writes one
audit event (who, what, when it was recorded, why) in the same transaction; an
application's transitions also write a status-change row.

Every event is written through `append`, which chains it to the one before it (its
`prev_hash`, and its own `hash`: see `domain.audit_chain`), so that `sip audit verify`
finds an event changed or removed by any path. Two transactions must not both chain to
the same last event: on PostgreSQL `append` takes a transaction-scoped advisory lock
before it reads the last hash (held until commit, so the next writer reads this one's
events); on SQLite every writing transaction holds the database's write lock from its
BEGIN IMMEDIATE (`engine.db`), and a deferred one that another writer overtook cannot
write at all (SQLITE_BUSY_SNAPSHOT), so it cannot fork the chain either."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlmodel import Session

from domain.audit_chain import GENESIS, chain
from domain.lifecycle import PUBLIC_STATUS, Role, TransitionRecord
from engine.db import unit_of_work
from engine.services.errors import ServiceError
from engine.tables import AuditEvent, table_of

#: The key of the PostgreSQL advisory lock that orders writers of the audit trail ("SIPAUDIT").
CHAIN_LOCK = int.from_bytes(b"SIPAUDIT", "big") >> 1


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    role: Role,
    action: str,
    subject_type: str,
    subject_id: str,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    append(
        session,
        [
            dict(
                at=at,
                actor=actor,
                role=role,
                action=action,
                subject_type=subject_type,
                subject_id=subject_id,
                from_status=from_status,
                to_status=to_status,
                reason=fit_reason(reason),
                details=details,
            )
        ],
    )


def append(session: Session, events: list[dict[str, Any]]) -> None:
    """Write audit events (values as `audit_values` gives them), in this order, at the
    end of the hash chain, in the caller's transaction: one lock, one read of the last
    hash and one insert, whatever the number of events (each gets its `prev_hash` and
    `hash` in place)."""
    if not events:
        return
    session.flush()  # what the session holds goes first (as it would have without the chain)
    table = table_of(AuditEvent)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    head = session.execute(select(table.c.hash).order_by(table.c.id.desc()).limit(1)).scalar_one_or_none()
    chain(head or GENESIS, events)
    session.execute(insert(table), events)


REASON_LENGTH = 2000


def fit_reason(reason: str | None) -> str | None:
    """A reason as the audit trail keeps it (at most 2,000 characters; a longer one is
    cut, its whole text being in the record it explains)."""
    if reason is None or len(reason) <= REASON_LENGTH:
        return reason
    return reason[: REASON_LENGTH - 1] + "…"


def history_values(transition: TransitionRecord, *, application_id: int, key: str) -> dict[str, Any]:
    """The status-change row of an application's transition (`at`: when it took effect)."""
    return dict(
        application_id=application_id,
        key=key,
        transition=transition.transition,
        from_status=transition.from_status,
        to_status=transition.to_status,
        public_status=PUBLIC_STATUS[transition.to_status],
        at=transition.at,
    )


def audit_values(
    transition: TransitionRecord,
    *,
    reference: str,
    recorded_at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit event of an application's transition. Its time is when it was
    recorded; a transition that took effect earlier (a back-dated import) says so."""
    recorded_at = recorded_at or datetime.now(UTC)
    extra = dict(details or {})
    if transition.at != recorded_at:
        extra["effective_at"] = transition.at.isoformat()
    return dict(
        at=recorded_at,
        actor=transition.actor,
        role=transition.role,
        action=f"application.{transition.transition}",
        subject_type="application",
        subject_id=reference,
        from_status=transition.from_status,
        to_status=transition.to_status,
        reason=fit_reason(transition.reason),
        details=extra or None,
    )


@contextmanager
def refusals_recorded(
    engine: Engine, *, actor: str, role: Role, action: str, subject_type: str, subject_id: str
) -> Iterator[None]:
    """Run an attempt; if a service refuses it (its own transaction is rolled back),
    the refusal is audited in a transaction of its own, then raised again."""
    try:
        yield
    except ServiceError as exc:
        record_refusal(
            engine, exc, actor=actor, role=role, action=action, subject_type=subject_type, subject_id=subject_id
        )
        raise


def record_refusal(
    engine: Engine,
    exc: ServiceError,
    *,
    actor: str,
    role: Role,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit a refused attempt, in a transaction of its own (once per refusal)."""
    if exc.audited:
        return
    with unit_of_work(engine) as session:
        record_refused(
            session,
            exc,
            at=datetime.now(UTC),
            actor=actor,
            role=role,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            details=details,
        )
    exc.audited = True


def record_refused(
    session: Session,
    exc: ServiceError,
    *,
    at: datetime,
    actor: str,
    role: Role,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """The audit event of a refused attempt (`<action>.refused`: the refusal's message,
    its code and its field errors), in the caller's transaction."""
    record(
        session,
        at=at,
        actor=actor[:200],
        role=role,
        action=f"{action}.refused"[:60],
        subject_type=subject_type,
        subject_id=subject_id[:100],
        reason=exc.message,
        details={"error": exc.code, "errors": [e.model_dump() for e in exc.errors], **(details or {})},
    )


#: The actor of a refusal whose caller nobody knows (no credential, or one that names nobody).
UNKNOWN = "unknown"
#: Where more distinct sources refuse within one window than the sampler keeps apart.
OTHER_SOURCES = "(other sources)"


@dataclass
class _Tally:
    """A source's refusals in one window."""

    start: datetime
    refused: int = 0
    audited: int = 0  # of them, audited on their own (the first, where it was one the sampler recorded)
    last_at: datetime | None = None
    actions: Counter[str] = field(default_factory=Counter)


class RefusalSampler:
    """The refusals of unknown callers (no credential, an unknown link, token, access
    code or key), audited one row per source and minute, with a count, so that a
    client sending thousands of forged tokens cannot fill the append-only trail.

    - The first refusal of a source in a minute is audited as before
      (`<action>.refused`, actor `unknown`), its details naming the `source` and
      saying it is `sampled` (the first recorded: a 429 that came before it is only
      counted).
    - The others of that minute are only counted, in memory; so are the requests a
      rate limit refused (`count`: a 429 is not audited on its own).
    - Once the minute is over, one `refusals.counted` event (role `system`, subject
      the source) gives the total of the minute (`refused`), how many of them were
      audited on their own, and the count of each action. It is written by the next
      refusal the sampler records, from any source, or by `flush` (the API calls it
      when it stops). A minute whose refusals were all audited needs no count.

    What this does not keep: a process that is killed (not stopped) loses the counts
    of the minute under way (its first rows are in the trail); each process of the
    API samples on its own, so N processes write up to 2N rows per source and
    minute. Refusals of someone a credential names (a reviewer's ended session, a
    member's expired bundle link, a reviewer asking for an application not theirs)
    do not come here: they are audited one by one under that person's name.
    Thread-safe: one lock guards the counts; the rows are written outside it."""

    def __init__(self, *, window: timedelta = timedelta(minutes=1), max_sources: int = 10_000):
        self.window = window
        self.max_sources = max_sources
        self._lock = threading.Lock()
        self._tallies: dict[str, _Tally] = {}
        self._ended: list[tuple[str, _Tally]] = []  # counts of ended minutes, not written yet

    def _start_of(self, at: datetime) -> datetime:
        seconds = self.window.total_seconds()
        return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)

    def _tally(self, source: str, at: datetime, action: str) -> tuple[str, _Tally, bool]:
        """The source's tally of the minute of `at`, counting one more (under the lock);
        whether it is new. The tallies of the minutes before are put aside."""
        start = self._start_of(at)
        self._ended += self._take(lambda t: t.start < start)
        if source not in self._tallies and len(self._tallies) >= self.max_sources:
            source = OTHER_SOURCES
        tally = self._tallies.get(source)
        new = tally is None
        if tally is None:
            tally = self._tallies[source] = _Tally(start=start)
        tally.refused += 1
        tally.last_at = max(at, tally.last_at or at)
        tally.actions[action] += 1
        return source, tally, new

    def count(self, *, source: str, at: datetime, action: str) -> None:
        """Count a refusal that is not audited on its own (a request a rate limit
        refused): it is in its minute's `refusals.counted` event. No database work."""
        with self._lock:
            self._tally(source, at, action)

    def record(
        self,
        engine: Engine,
        exc: ServiceError,
        *,
        source: str,
        at: datetime,
        role: Role,
        action: str,
        subject_type: str,
        subject_id: str,
    ) -> bool:
        """Count an unknown caller's refusal; audit it if it is its source's first in
        the minute (then True). The counts of the minutes that ended are written too."""
        with self._lock:
            source, tally, _ = self._tally(source, at, f"{action}.refused")
            first = tally.audited == 0  # none of the minute's refusals is in the trail yet
            tally.audited = 1
            ended, self._ended = self._ended, []
        if first or ended:
            with unit_of_work(engine) as session:
                self._write_counts(session, ended, at=at)
                if first:
                    record_refused(
                        session,
                        exc,
                        at=at,
                        actor=UNKNOWN,
                        role=role,
                        action=action,
                        subject_type=subject_type,
                        subject_id=subject_id,
                        details={
                            "source": source,
                            "sampled": "the first refusal of this source in the minute; the minute's "
                            "refusals are counted in a refusals.counted event once it is over",
                        },
                    )
        exc.audited = True
        return first

    def flush(self, engine: Engine, *, at: datetime | None = None, everything: bool = False) -> int:
        """Write the counts of the minutes that ended before `at` (with `everything`,
        of the minute under way too: when the API stops). Returns the events written."""
        at = at or datetime.now(UTC)
        start = self._start_of(at)
        with self._lock:
            ended = self._ended + self._take(lambda t: everything or t.start < start)
            self._ended = []
        if not any(t.refused > t.audited for _, t in ended):
            return 0
        with unit_of_work(engine) as session:
            return self._write_counts(session, ended, at=at)

    def pending(self) -> int:
        """The refusals counted whose count is not written yet."""
        with self._lock:
            return sum(t.refused for t in self._tallies.values()) + sum(t.refused for _, t in self._ended)

    def _take(self, ended: Callable[[_Tally], bool]) -> list[tuple[str, _Tally]]:
        taken = [(source, tally) for source, tally in self._tallies.items() if ended(tally)]
        for source, _ in taken:
            del self._tallies[source]
        return taken

    def _write_counts(self, session: Session, ended: list[tuple[str, _Tally]], *, at: datetime) -> int:
        written = 0
        for source, tally in ended:
            if tally.refused <= tally.audited:
                continue
            end = min(tally.start + self.window, max(at, tally.last_at or at))
            record(
                session,
                at=at,
                actor=UNKNOWN,
                role=Role.SYSTEM,
                action="refusals.counted",
                subject_type="source",
                subject_id=source[:100],
                reason=f"{tally.refused} refusals of unknown callers from {source} between "
                f"{tally.start:%Y-%m-%d %H:%M:%S} and {end:%H:%M:%S} UTC, {tally.audited} of them audited "
                "on their own",
                details={
                    "source": source,
                    "from": tally.start.isoformat(),
                    "to": end.isoformat(),
                    "refused": tally.refused,
                    "audited_one_by_one": tally.audited,
                    "by_action": dict(sorted(tally.actions.items())),
                },
            )
            written += 1
        return written
