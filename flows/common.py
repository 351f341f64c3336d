from __future__ import annotations

from datetime import UTC, datetime

from engine.services.setup import Runtime, prepare
from engine.settings import get_settings


def runtime() -> Runtime:
    """The database, migrated; the same one the CLI and API use (settings from the
    environment)."""
    return prepare(get_settings(), defaults=False)


def instant(at: str | None) -> datetime:
    """The instant a stage takes effect: now, or a past scheduled time (ISO 8601 with
    an offset), e.g. a round's close run after a machine was down."""
    now = datetime.now(UTC)
    if at is None:
        return now
    value = datetime.fromisoformat(at)
    if value.tzinfo is None:
        raise ValueError(f"at={at!r} needs a UTC offset, e.g. 2018-08-31T23:59:59+02:00")
    if value > now:
        raise ValueError(f"at={at!r} is in the future; schedule the flow for that time instead")
    return value
