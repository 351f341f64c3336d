"""The secretariat's staff accounts as rules: what a role may do, what a password must
be, and when repeated wrong passwords lock an account for a while."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class StaffRole(StrEnum):
    """`officer` runs rounds; `read-only` looks; `admin` also manages the accounts and API keys."""

    OFFICER = "officer"
    READ_ONLY = "read-only"
    ADMIN = "admin"


#: Wrong passwords in a row that lock an account, and for how long.
FAILURES_BEFORE_LOCK = 5
LOCKED_FOR = timedelta(minutes=15)
#: The shortest password an account may have (a passphrase is better than a clever word).
SHORTEST_PASSWORD = 12


def password_problem(password: str, email: str) -> str | None:
    """Why a password cannot be an account's, or None."""
    if len(password) < SHORTEST_PASSWORD:
        return f"is too short: at least {SHORTEST_PASSWORD} characters (a few words make a good one)"
    if password.strip().lower() == email.strip().lower() or password.isspace():
        return "must not be the e-mail address or blank"
    return None


def may_act(role: StaffRole) -> bool:
    """Whether the role may change the engine's state (a read-only account may not)."""
    return role is not StaffRole.READ_ONLY


def lock_after(failures: int, at: datetime) -> datetime | None:
    """Until when an account is locked after `failures` wrong passwords in a row (None: not locked)."""
    return at + LOCKED_FOR if failures >= FAILURES_BEFORE_LOCK else None
