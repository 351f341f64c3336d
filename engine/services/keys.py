"""The secretariat's API keys, kept in the database as hashes: made (the key is shown
once), listed, revoked (audited: who, when, why), and checked on each request of the
secretariat's routes.

A key works until its expiry or its revocation, whichever comes first; a revoked key
is refused from the next request on. Its last use is written down at most once a
minute (`domain.keys.LAST_USED_EVERY`): a request whose key was used less than a
minute ago writes nothing, so that reading the API is not a write per request; the
list shows the last use to the minute. The last use is bookkeeping, not a change of
state: it is not audited (making and revoking keys are).

Keys of an older installation, kept as name:sha256 pairs in SIP_SECRETARIAT_KEYS,
keep working: full scope, no expiry, and their use is not tracked (there is no row to
write it to). They are listed as "from settings" and revoked by taking them out of
the setting."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from domain.hints import Hint, Step
from domain.keys import (
    LAST_USED_EVERY,
    KeyScope,
    KeyState,
    allows,
    key_state,
    last_use_due,
    name_problem,
)
from domain.lifecycle import Role
from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.errors import Forbidden, InvalidInput, NotAllowed, NotFound, Unauthorized
from engine.services.tokens import token_hash
from engine.tables import ApiKey, table_of

log = logging.getLogger("sip.keys")

#: What every key made here starts with: it tells a secret scanner (and a person) what it is.
KEY_START = "sip_"
#: How much of a key is kept in clear to tell keys apart ("sip_" and 8 of its 43 random characters).
PREFIX_LENGTH = 12
#: Where a key of SIP_SECRETARIAT_KEYS comes from, in a list.
FROM_SETTINGS = "from settings"
NEW_KEY = (Hint(Step.NEW_KEY),)


@dataclass(frozen=True)
class Officer:
    """Who a request's key belongs to, and what it may do. `key_id` is None for a key
    of SIP_SECRETARIAT_KEYS."""

    name: str
    scope: KeyScope
    key_id: int | None = None


@dataclass(frozen=True)
class NewKey:
    id: int
    name: str
    scope: KeyScope
    prefix: str
    created_at: datetime
    expires_at: datetime
    key: str  # shown once, never stored


@dataclass(frozen=True)
class KeyView:
    """A key as listed. A key of SIP_SECRETARIAT_KEYS has no id, prefix, dates or last use."""

    id: int | None
    name: str
    prefix: str | None
    scope: KeyScope
    state: str  # active, expired, revoked, or "from settings"
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    reason: str | None = None


def create_key(
    session: Session, name: str, *, scope: KeyScope, expires_at: datetime, actor: str, at: datetime
) -> NewKey:
    """Make a key for an officer; the key itself is in the answer only."""
    problem = name_problem(name)
    if problem:
        raise InvalidInput(f"{name!r}: {problem}")
    if expires_at <= at:
        raise InvalidInput(f"the key would expire at once ({expires_at:%Y-%m-%d %H:%M} UTC): give a later expiry")
    key = KEY_START + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=key[:PREFIX_LENGTH],
        token_hash=token_hash(key),
        scope=scope,
        created_at=at,
        created_by=actor,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="api_key.created",
        subject_type="api_key",
        subject_id=str(row.id),
        details={"name": name, "prefix": row.prefix, "scope": scope.value, "expires_at": expires_at.isoformat()},
    )
    return NewKey(row.id, name, scope, row.prefix, at, expires_at, key)


def _view(row: ApiKey, at: datetime) -> KeyView:
    return KeyView(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scope=KeyScope(row.scope),
        state=key_state(expires_at=row.expires_at, revoked_at=row.revoked_at, at=at).value,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        reason=row.reason,
    )


def list_keys(session: Session, settings_keys: dict[str, str], *, at: datetime) -> list[KeyView]:
    """Every key: those of the database (by officer, oldest first), then those of the settings."""
    rows = session.exec(select(ApiKey).order_by(col(ApiKey.name), col(ApiKey.id))).all()
    from_settings = [
        KeyView(None, name, None, KeyScope.FULL, FROM_SETTINGS, None, None, None)
        for name in sorted(settings_keys.values())
    ]
    return [_view(r, at) for r in rows] + from_settings


def revoke_keys(
    session: Session,
    which: str,
    *,
    reason: str | None,
    actor: str,
    at: datetime,
    settings_keys: dict[str, str] | None = None,
) -> list[KeyView]:
    """Revoke a key by its id, or every key of an officer not yet revoked by their
    name; each revocation is audited (who, why). The keys are refused from the next
    request on."""
    which = which.strip()
    if which.isdigit():
        row = session.get(ApiKey, int(which))
        if row is None:
            raise NotFound(f"no API key {which}", hints=(Hint(Step.LIST_KEYS),))
        if row.revoked_at is not None:
            raise NotAllowed(
                f"key {which} ({row.name}) was already revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC"
                f" by {row.revoked_by}",
                hints=(Hint(Step.LIST_KEYS),),
            )
        rows = [row]
    else:
        rows = list(
            session.exec(
                select(ApiKey).where(ApiKey.name == which, col(ApiKey.revoked_at).is_(None)).order_by(col(ApiKey.id))
            ).all()
        )
        if not rows:
            if which in (settings_keys or {}).values():
                raise NotAllowed(
                    f"{which}'s key is kept in the setting SIP_SECRETARIAT_KEYS, not in the database: take "
                    f"their name:sha256 pair out of the setting where the API runs, and restart it"
                )
            raise NotFound(
                f"{which!r} has no API key to revoke (none, or all revoked already)", hints=(Hint(Step.LIST_KEYS),)
            )
    for row in rows:
        row.revoked_at = at
        row.revoked_by = actor
        row.reason = audit.fit_reason(reason)
        session.add(row)
        audit.record(
            session,
            at=at,
            actor=actor,
            role=Role.SECRETARIAT,
            action="api_key.revoked",
            subject_type="api_key",
            subject_id=str(row.id),
            reason=reason,
            details={"name": row.name, "prefix": row.prefix, "scope": KeyScope(row.scope).value},
        )
    session.flush()
    return [_view(r, at) for r in rows]


def from_settings(key: str, settings_keys: dict[str, str]) -> Officer | None:
    """The officer whose key of SIP_SECRETARIAT_KEYS this is (full scope), or None."""
    name = settings_keys.get(token_hash(key))
    return None if name is None else Officer(name, KeyScope.FULL)


def authenticate(engine: Engine, key: str, *, at: datetime) -> Officer:
    """The officer whose key of the database this is, if it still works at `at`;
    Unauthorized otherwise, saying why (unknown, expired, revoked). Writes the key's
    last use if the one written is a minute old or more."""
    with reading(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.token_hash == token_hash(key))).first()
    if row is None or row.id is None:
        raise Unauthorized("a secretariat API key is needed (Authorization: Bearer <key>)")
    state = key_state(expires_at=row.expires_at, revoked_at=row.revoked_at, at=at)
    if state is KeyState.REVOKED:
        assert row.revoked_at is not None
        raise Unauthorized(
            f"this API key ({row.prefix}…, {row.name}) was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC "
            "and no longer works: ask the engine's administrator for a new key",
            hints=NEW_KEY,
            actor=row.name,  # a key that names an officer: audited under their name, not counted as a guess
        )
    if state is KeyState.EXPIRED:
        raise Unauthorized(
            f"this API key ({row.prefix}…, {row.name}) expired on {row.expires_at:%Y-%m-%d %H:%M} UTC "
            "and no longer works: ask the engine's administrator for a new key",
            hints=NEW_KEY,
            actor=row.name,  # a key that names an officer: audited under their name, not counted as a guess
        )
    if last_use_due(row.last_used_at, at):
        _used(engine, row.id, at)
    return Officer(row.name, KeyScope(row.scope), row.id)


def _used(engine: Engine, key_id: int, at: datetime) -> None:
    """Write a key's last use, unless another request wrote one less than a minute
    before (the condition is in the statement, so that requests at the same time write once).
    A failure to write it (a database busy for long) does not refuse the request."""
    table = table_of(ApiKey)
    try:
        with unit_of_work(engine) as session:
            session.execute(
                update(table)
                .where(
                    table.c.id == key_id,
                    or_(table.c.last_used_at.is_(None), table.c.last_used_at <= at - LAST_USED_EVERY),
                )
                .values(last_used_at=at)
            )
    except SQLAlchemyError as exc:  # bookkeeping: the request goes on; the next use tries again
        log.warning("the last use of API key %s was not written (%s)", key_id, exc.__class__.__name__)


def check_scope(officer: Officer, needed: KeyScope, what: str) -> None:
    """Refuse (Forbidden) what the officer's key may not do; `what` names the request."""
    if not allows(officer.scope, needed):
        raise Forbidden(
            f"this API key ({officer.name}) has scope {officer.scope.value}, which only reads: {what} changes "
            f"the engine's state and needs a key with scope {needed.value}; ask the engine's administrator for one",
            hints=(Hint(Step.NEW_KEY, option=f"scope_{needed.value}"),),
        )
