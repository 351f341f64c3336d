"""The secretariat's API keys in the database: made (the key once, its hash kept),
checked (expired and revoked keys refused, saying which), their last use written at
most once a minute, revoked with an audit event, listed with the keys of the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from domain.keys import KeyScope
from engine.db import reading, unit_of_work
from engine.services import keys
from engine.services.errors import InvalidInput, NotAllowed, NotFound, Unauthorized
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.tables import ApiKey, AuditEvent

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def make(rt: Runtime, name: str = "amina.diallo", scope: KeyScope = KeyScope.FULL, days: int = 365) -> keys.NewKey:
    with unit_of_work(rt.engine) as session:
        return keys.create_key(session, name, scope=scope, expires_at=T0 + timedelta(days=days), actor="admin", at=T0)


def key_row(rt: Runtime, key_id: int) -> ApiKey:
    with reading(rt.engine) as session:
        row = session.get(ApiKey, key_id)
    assert row is not None
    return row


def events(rt: Runtime, action: str) -> list[AuditEvent]:
    with reading(rt.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))))


def test_a_new_key_is_shown_once_kept_as_its_hash_and_its_making_audited(rt: Runtime) -> None:
    made = make(rt, scope=KeyScope.READ)
    row = key_row(rt, made.id)
    assert made.key.startswith("sip_") and len(made.key) > 40
    assert row.token_hash == token_hash(made.key) and made.key not in row.model_dump_json()
    assert row.prefix == made.key[:12] and row.scope == KeyScope.READ and row.expires_at == T0 + timedelta(days=365)
    [event] = events(rt, "api_key.created")
    assert (event.actor, event.subject_type, event.subject_id) == ("admin", "api_key", str(made.id))
    assert event.details == {
        "name": "amina.diallo",
        "prefix": row.prefix,
        "scope": "read",
        "expires_at": row.expires_at.isoformat(),
    }
    assert keys.authenticate(rt.engine, made.key, at=T0 + timedelta(hours=1)) == keys.Officer(
        "amina.diallo", KeyScope.READ, made.id
    )


@pytest.mark.parametrize(
    ("name", "expires_in", "why"),
    [
        ("amina diallo", 1, "letters, digits and . _ - @ only"),
        ("2041", 1, "digits only"),
        ("amina", 0, "would expire at once"),
    ],
)
def test_a_key_is_refused_for_a_bad_name_or_an_expiry_not_after_now(
    rt: Runtime, name: str, expires_in: int, why: str
) -> None:
    with pytest.raises(InvalidInput, match=why), unit_of_work(rt.engine) as session:
        keys.create_key(
            session, name, scope=KeyScope.FULL, expires_at=T0 + timedelta(days=expires_in), actor="a", at=T0
        )
    with reading(rt.engine) as session:
        assert session.exec(select(ApiKey)).all() == []


def test_an_unknown_key_is_refused_without_saying_more(rt: Runtime) -> None:
    make(rt)
    with pytest.raises(Unauthorized, match=r"^a secretariat API key is needed") as refused:
        keys.authenticate(rt.engine, "sip_not-a-key", at=T0)
    assert refused.value.hints == ()


def test_an_expired_key_is_refused_from_its_expiry_on_saying_so(rt: Runtime) -> None:
    made = make(rt, days=30)
    expiry = T0 + timedelta(days=30)
    assert keys.authenticate(rt.engine, made.key, at=expiry - timedelta(seconds=1)).name == "amina.diallo"
    with pytest.raises(Unauthorized, match=r"expired on 2026-12-31 09:00 UTC and no longer works") as refused:
        keys.authenticate(rt.engine, made.key, at=expiry)
    assert made.prefix in refused.value.message and refused.value.hints == keys.NEW_KEY


def test_a_revoked_key_is_refused_at_once_and_its_revocation_audited_with_who_and_why(rt: Runtime) -> None:
    made = make(rt)
    assert keys.authenticate(rt.engine, made.key, at=T0 + timedelta(minutes=1)).key_id == made.id
    at = T0 + timedelta(minutes=2)
    with unit_of_work(rt.engine) as session:
        [revoked] = keys.revoke_keys(session, str(made.id), reason="laptop stolen", actor="head.of.unit", at=at)
    assert (revoked.state, revoked.revoked_by, revoked.reason) == ("revoked", "head.of.unit", "laptop stolen")
    with pytest.raises(Unauthorized, match=r"was revoked on 2026-12-01 09:02 UTC"):
        keys.authenticate(rt.engine, made.key, at=at)
    [event] = events(rt, "api_key.revoked")
    assert (event.actor, event.subject_id, event.reason) == ("head.of.unit", str(made.id), "laptop stolen")
    assert event.details == {"name": "amina.diallo", "prefix": made.prefix, "scope": "full"}
    already = "already revoked on 2026-12-01 09:02 UTC by head.of.unit"
    with pytest.raises(NotAllowed, match=already), unit_of_work(rt.engine) as session:
        keys.revoke_keys(session, str(made.id), reason=None, actor="a", at=at)
    assert len(events(rt, "api_key.revoked")) == 1


def test_revoking_by_name_revokes_every_key_of_that_officer_and_no_other(rt: Runtime) -> None:
    first, second, other = make(rt), make(rt, scope=KeyScope.READ), make(rt, "ana.lopez")
    with unit_of_work(rt.engine) as session:
        revoked = keys.revoke_keys(session, "amina.diallo", reason="left the unit", actor="a", at=T0)
    assert [v.id for v in revoked] == [first.id, second.id]
    assert keys.authenticate(rt.engine, other.key, at=T0).name == "ana.lopez"
    for made in (first, second):
        with pytest.raises(Unauthorized, match="revoked"):
            keys.authenticate(rt.engine, made.key, at=T0)
    with pytest.raises(NotFound, match="no API key to revoke"), unit_of_work(rt.engine) as session:
        keys.revoke_keys(session, "amina.diallo", reason=None, actor="a", at=T0)
    with pytest.raises(NotFound, match="no API key 999"), unit_of_work(rt.engine) as session:
        keys.revoke_keys(session, "999", reason=None, actor="a", at=T0)


def test_a_key_of_the_settings_is_not_revoked_here_and_the_answer_says_where_it_is(rt: Runtime) -> None:
    with pytest.raises(NotAllowed, match="kept in the setting SIP_SECRETARIAT_KEYS"), unit_of_work(rt.engine) as s:
        keys.revoke_keys(s, "old.officer", reason=None, actor="a", at=T0, settings_keys={"f" * 64: "old.officer"})


def test_the_last_use_is_written_at_most_once_a_minute(rt: Runtime) -> None:
    made = make(rt)
    assert key_row(rt, made.id).last_used_at is None
    keys.authenticate(rt.engine, made.key, at=T0 + timedelta(seconds=10))
    assert key_row(rt, made.id).last_used_at == T0 + timedelta(seconds=10)
    keys.authenticate(rt.engine, made.key, at=T0 + timedelta(seconds=69))
    assert key_row(rt, made.id).last_used_at == T0 + timedelta(seconds=10)  # less than a minute: not written
    keys.authenticate(rt.engine, made.key, at=T0 + timedelta(seconds=70))
    assert key_row(rt, made.id).last_used_at == T0 + timedelta(seconds=70)


def test_the_list_shows_each_keys_state_and_last_use_and_the_keys_of_the_settings(rt: Runtime) -> None:
    active, expired, revoked = make(rt, "amina.diallo"), make(rt, "ana.lopez", days=1), make(rt, "bo.chen")
    keys.authenticate(rt.engine, active.key, at=T0 + timedelta(hours=1))
    with unit_of_work(rt.engine) as session:
        keys.revoke_keys(session, str(revoked.id), reason="test", actor="a", at=T0)
    with reading(rt.engine) as session:
        listed = keys.list_keys(session, {"f" * 64: "old.officer"}, at=T0 + timedelta(days=2))
    assert [(v.id, v.name, v.scope, v.state) for v in listed] == [
        (active.id, "amina.diallo", KeyScope.FULL, "active"),
        (expired.id, "ana.lopez", KeyScope.FULL, "expired"),
        (revoked.id, "bo.chen", KeyScope.FULL, "revoked"),
        (None, "old.officer", KeyScope.FULL, "from settings"),
    ]
    assert listed[0].last_used_at == T0 + timedelta(hours=1) and listed[1].last_used_at is None
    assert listed[3].expires_at is None and listed[3].prefix is None
    assert keys.from_settings("k", {token_hash("k"): "old.officer"}) == keys.Officer("old.officer", KeyScope.FULL)


def test_a_last_use_the_database_refuses_to_write_does_not_refuse_the_request(
    rt: Runtime, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import text

    made = make(rt)
    refuse = {
        "sqlite": ["CREATE TRIGGER no_use BEFORE UPDATE ON api_key BEGIN SELECT RAISE(ABORT, 'read-only'); END"],
        "postgresql": [
            "CREATE FUNCTION no_use() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'read-only'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER no_use BEFORE UPDATE ON api_key FOR EACH ROW EXECUTE FUNCTION no_use()",
        ],
    }[backend]
    undo = {"sqlite": ["DROP TRIGGER no_use"], "postgresql": ["DROP TRIGGER no_use ON api_key", "DROP FUNCTION no_use"]}
    with rt.engine.begin() as conn:
        for statement in refuse:
            conn.execute(text(statement))
    try:
        assert keys.authenticate(rt.engine, made.key, at=T0).name == "amina.diallo"
    finally:
        with rt.engine.begin() as conn:
            for statement in undo[backend]:
                conn.execute(text(statement))
    assert key_row(rt, made.id).last_used_at is None
    assert f"the last use of API key {made.id} was not written" in caplog.text
