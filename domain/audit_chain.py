"""The hash chain of the audit trail: each event carries the hash of the one before it
(in id order) and its own hash, a SHA-256 over a canonical form of its content and that
previous hash. Changing, removing or inserting an event by any path (even as the
database's owner, past every trigger) breaks the chain at that event, which a walk of
the trail (`sip audit verify`) finds.

The canonical form is the JSON array
`["sip-audit/1", previous hash, at, actor, role, action, subject type, subject id,
from status, to status, reason, details]` written with sorted keys, no spaces and
UTF-8 (not escaped); `at` is the instant in UTC with microseconds (ISO 8601); a number
in the details that is a whole number is written as an integer (PostgreSQL's jsonb
keeps `1e16` as 10000000000000000), so that what is hashed is what the database gives
back. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

VERSION = "sip-audit/1"
#: The previous hash of the first event of a trail.
GENESIS = "0" * 64
#: The fields of an event that its hash covers, in the order they are hashed.
CONTENT = (
    "at",
    "actor",
    "role",
    "action",
    "subject_type",
    "subject_id",
    "from_status",
    "to_status",
    "reason",
    "details",
)


def _canonical(value: Any) -> Any:
    """A JSON value as it reads back from either database."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def instant(at: datetime) -> str:
    """An instant as hashed (a naive one is UTC, as SQLite gives it back)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def event_hash(prev_hash: str, event: Mapping[Any, Any]) -> str:
    """The hash of an event (a mapping with the CONTENT fields) that follows `prev_hash`."""
    role = event["role"]
    content = [
        VERSION,
        prev_hash,
        instant(event["at"]),
        event["actor"],
        role.value if isinstance(role, Enum) else role,
        event["action"],
        event["subject_type"],
        event["subject_id"],
        event.get("from_status"),
        event.get("to_status"),
        event.get("reason"),
        _canonical(event.get("details")),
    ]
    text = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain(head: str, events: list[dict[str, Any]]) -> str:
    """Give each event (in the order they will get their ids) its `prev_hash` and
    `hash`, after the event whose hash is `head`; returns the new head."""
    for event in events:
        event["prev_hash"] = head
        head = event["hash"] = event_hash(head, event)
    return head
