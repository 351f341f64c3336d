"""The sampler of unknown callers' refusals, on SQLite and PostgreSQL: one audit row
per source and minute, the rest counted in one `refusals.counted` event once the
minute is over; thread-safe; a flood of sources cannot grow its memory without end."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from domain.lifecycle import Role
from engine.db import reading
from engine.services.audit import OTHER_SOURCES, RefusalSampler
from engine.services.errors import Unauthorized
from engine.services.setup import Runtime
from engine.tables import AuditEvent

T0 = datetime(2024, 8, 1, 10, 0, 5, tzinfo=UTC)


def events(rt: Runtime) -> list[AuditEvent]:
    with reading(rt.engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all())


def refuse(rt: Runtime, sampler: RefusalSampler, source: str, at: datetime, action: str = "review.list") -> bool:
    return sampler.record(
        rt.engine,
        Unauthorized("sign in first"),
        source=source,
        at=at,
        role=Role.REVIEWER,
        action=action,
        subject_type="application",
        subject_id="assignments",
    )


def test_a_thousand_refusals_of_one_source_in_a_minute_write_one_row_and_one_count(rt: Runtime) -> None:
    sampler = RefusalSampler()
    before = len(events(rt))
    written = [refuse(rt, sampler, "127.0.0.9", T0 + timedelta(milliseconds=i)) for i in range(1000)]
    assert written.count(True) == 1 and written[0]
    first = events(rt)[before:]
    assert [(e.action, e.actor) for e in first] == [("review.list.refused", "unknown")]
    assert first[0].details and first[0].details["source"] == "127.0.0.9" and "sampled" in first[0].details
    assert first[0].reason == "sign in first"
    assert sampler.pending() == 1000
    assert sampler.flush(rt.engine, at=T0 + timedelta(seconds=30)) == 0  # the minute is not over
    assert sampler.flush(rt.engine, at=T0 + timedelta(minutes=1)) == 1
    added = events(rt)[before:]
    print(f"\n1,000 refusals from one source in one minute: {len(added)} audit rows")
    assert len(added) == 2
    count = added[1]
    assert (count.action, count.role, count.subject_type, count.subject_id) == (
        "refusals.counted",
        Role.SYSTEM,
        "source",
        "127.0.0.9",
    )
    assert count.details and count.details["refused"] == 1000
    assert count.details["by_action"] == {"review.list.refused": 1000}
    assert count.details["from"] == "2024-08-01T10:00:00+00:00" and count.details["to"] == "2024-08-01T10:01:00+00:00"
    assert sampler.pending() == 0


def test_the_next_minutes_first_refusal_writes_the_count_of_the_minute_before(rt: Runtime) -> None:
    sampler = RefusalSampler()
    before = len(events(rt))
    for i in range(5):
        refuse(rt, sampler, "127.0.0.9", T0 + timedelta(seconds=i), action="review.list" if i else "bundle.download")
    refuse(rt, sampler, "127.0.0.8", T0)  # another source: its own first row, never a count of one
    refuse(rt, sampler, "127.0.0.9", T0 + timedelta(minutes=1))
    added = [(e.action, e.subject_id) for e in events(rt)[before:]]
    assert added == [
        ("bundle.download.refused", "assignments"),
        ("review.list.refused", "assignments"),
        ("refusals.counted", "127.0.0.9"),
        ("review.list.refused", "assignments"),
    ]
    count = events(rt)[before + 2]
    assert count.details and count.details["refused"] == 5
    assert count.details["by_action"] == {"bundle.download.refused": 1, "review.list.refused": 4}
    assert sampler.pending() == 1


def test_when_the_api_stops_the_count_of_the_minute_under_way_is_written(rt: Runtime) -> None:
    sampler = RefusalSampler()
    for i in range(3):
        refuse(rt, sampler, "127.0.0.9", T0 + timedelta(seconds=i))
    assert sampler.flush(rt.engine, at=T0 + timedelta(seconds=10), everything=True) == 1
    count = events(rt)[-1]
    assert count.details and count.details["refused"] == 3 and count.details["to"] == "2024-08-01T10:00:15+00:00"


def test_refusals_counted_from_many_threads_at_once_are_all_counted_and_written_once(rt: Runtime) -> None:
    sampler = RefusalSampler()
    before = len(events(rt))
    firsts: list[bool] = []

    def client() -> None:
        firsts.extend(refuse(rt, sampler, "127.0.0.9", T0) for _ in range(100))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert firsts.count(True) == 1 and sampler.pending() == 800
    sampler.flush(rt.engine, at=T0 + timedelta(minutes=1))
    added = events(rt)[before:]
    assert len(added) == 2 and added[1].details and added[1].details["refused"] == 800


def test_past_its_number_of_sources_the_sampler_counts_the_others_together(rt: Runtime) -> None:
    sampler = RefusalSampler(max_sources=3)
    before = len(events(rt))
    for i in range(10):
        refuse(rt, sampler, f"127.0.1.{i}", T0)
    sampler.flush(rt.engine, at=T0 + timedelta(minutes=1))
    added = events(rt)[before:]
    assert [e.details["source"] for e in added if e.details] == [
        "127.0.1.0",
        "127.0.1.1",
        "127.0.1.2",
        OTHER_SOURCES,
        OTHER_SOURCES,
    ]
    assert added[-1].action == "refusals.counted" and added[-1].details and added[-1].details["refused"] == 7


def test_requests_a_rate_limit_refused_are_counted_without_a_row_of_their_own(rt: Runtime) -> None:
    sampler = RefusalSampler()
    before = len(events(rt))
    for i in range(50):
        sampler.count(source="127.0.0.9", at=T0 + timedelta(seconds=i / 2), action="api.open_session.rate_limited")
    assert len(events(rt)) == before and sampler.pending() == 50
    assert refuse(rt, sampler, "127.0.0.9", T0 + timedelta(seconds=40))  # the minute's first refusal recorded
    assert not refuse(rt, sampler, "127.0.0.9", T0 + timedelta(seconds=41))
    refuse(rt, sampler, "127.0.0.8", T0 + timedelta(minutes=1))  # another source's refusal writes the count
    added = events(rt)[before:]
    assert [e.action for e in added] == ["review.list.refused", "refusals.counted", "review.list.refused"]
    count = added[1].details
    assert count and count["refused"] == 52 and count["audited_one_by_one"] == 1
    assert count["by_action"] == {"api.open_session.rate_limited": 50, "review.list.refused": 2}
