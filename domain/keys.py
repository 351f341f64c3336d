"""The secretariat's API keys as rules: what a key may do (its scope), whether it still
works at an instant (its state), when its last use is worth writing down, and what
an officer's name may be."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum


class KeyScope(StrEnum):
    """What a key may do: `read` looks (the secretariat's GET routes), `full` also
    changes the engine's state (starts stages, records scores, decisions...)."""

    READ = "read"
    FULL = "full"


class KeyState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


#: A key's last use is written down at most this often (a request does not write each time).
LAST_USED_EVERY = timedelta(minutes=1)
#: The longest a key may be made for, in days (ten years).
LONGEST_DAYS = 3650

_NAME = re.compile(r"[\w.@-]{1,100}")


def allows(scope: KeyScope, needed: KeyScope) -> bool:
    """Whether a key of `scope` may do what needs `needed` (full may do everything)."""
    return scope is KeyScope.FULL or needed is KeyScope.READ


def key_state(*, expires_at: datetime | None, revoked_at: datetime | None, at: datetime) -> KeyState:
    """A key's state at an instant: revoked (from when it was), expired (from its expiry on), or active."""
    if revoked_at is not None and revoked_at <= at:
        return KeyState.REVOKED
    if expires_at is not None and expires_at <= at:
        return KeyState.EXPIRED
    return KeyState.ACTIVE


def last_use_due(last_used_at: datetime | None, at: datetime) -> bool:
    """Whether a use at `at` should be written down (the last one written is older than LAST_USED_EVERY)."""
    return last_used_at is None or at - last_used_at >= LAST_USED_EVERY


def name_problem(name: str) -> str | None:
    """What is wrong with an officer's name for a key, or None. Letters, digits and
    `. _ - @`; not digits only (a number names a key, not a person)."""
    if not _NAME.fullmatch(name):
        return "the name may hold letters, digits and . _ - @ only (at most 100 characters)"
    if name.isdigit():
        return "the name may not be digits only (a number names a key)"
    return None
