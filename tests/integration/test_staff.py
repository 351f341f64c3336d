"""The secretariat's staff accounts, on SQLite and PostgreSQL: added with a password
kept only as an Argon2 hash, a sign-in checked against it, wrong passwords counted and
the account locked after too many in a row, a disabled account refused; every change
and sign-in audited under the account's address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from domain.staff import FAILURES_BEFORE_LOCK, LOCKED_FOR, StaffRole
from engine.db import reading, unit_of_work
from engine.services.errors import Conflict, InvalidInput, Unauthorized
from engine.services.setup import Runtime
from engine.services.staff import REFUSED, add_staff, disable_staff, list_staff, sign_in
from engine.tables import AuditEvent, StaffAccount

AT = datetime(2018, 9, 3, 9, tzinfo=UTC)
EMAIL, PASSWORD = "amina.diallo@un.example.org", "mercury free artisanal gold"


def add(rt: Runtime, email: str = EMAIL, role: StaffRole = StaffRole.OFFICER) -> None:
    with unit_of_work(rt.engine) as session:
        add_staff(session, email, "Amina Diallo", role, PASSWORD, actor="admin", at=AT)


def actions(rt: Runtime) -> list[tuple[str, str, str | None]]:
    with reading(rt.engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.subject_type == "staff").order_by(col(AuditEvent.id))
        ).all()
    return [(e.action, e.actor, e.reason) for e in events]


def test_an_account_keeps_only_a_hash_and_signs_in_with_its_password(rt: Runtime) -> None:
    add(rt, "Amina.Diallo@UN.example.org")
    with reading(rt.engine) as session:
        row = session.exec(select(StaffAccount)).one()
    assert row.email == EMAIL and PASSWORD not in row.password_hash and row.password_hash.startswith("$argon2id$")
    signed = sign_in(rt.engine, "AMINA.diallo@un.example.org", PASSWORD, at=AT)
    assert signed.email == EMAIL and signed.role is StaffRole.OFFICER and signed.last_sign_in_at == AT
    assert actions(rt) == [("staff.added", "admin", None), ("staff.signed_in", EMAIL, None)]


def test_a_weak_password_or_an_address_already_used_is_refused(rt: Runtime) -> None:
    with unit_of_work(rt.engine) as session, pytest.raises(InvalidInput) as short:
        add_staff(session, EMAIL, "Amina", StaffRole.OFFICER, "short", actor="admin", at=AT)
    assert short.value.errors[0].path == "$.password" and "at least 12 characters" in short.value.message
    add(rt)
    with unit_of_work(rt.engine) as session, pytest.raises(Conflict):
        add_staff(session, EMAIL, "Amina", StaffRole.ADMIN, PASSWORD + "!", actor="admin", at=AT)


def test_wrong_passwords_lock_the_account_for_a_while_and_every_refusal_says_the_same(rt: Runtime) -> None:
    add(rt)
    for attempt in range(FAILURES_BEFORE_LOCK):
        with pytest.raises(Unauthorized) as refused:
            sign_in(rt.engine, EMAIL, f"guess number {attempt}", at=AT)
        assert refused.value.message == REFUSED
    with pytest.raises(Unauthorized):  # locked: even the right password is refused
        sign_in(rt.engine, EMAIL, PASSWORD, at=AT + LOCKED_FOR - timedelta(seconds=1))
    with pytest.raises(Unauthorized) as unknown:
        sign_in(rt.engine, "nobody@un.example.org", PASSWORD, at=AT)
    assert unknown.value.message == REFUSED  # an unknown address answers the same
    assert sign_in(rt.engine, EMAIL, PASSWORD, at=AT + LOCKED_FOR).email == EMAIL  # the lock ends
    refusals = [a for a in actions(rt) if a[0] == "staff.sign_in_refused"]
    assert refusals[-1] == ("staff.sign_in_refused", EMAIL, "locked") and len(refusals) == FAILURES_BEFORE_LOCK + 1
    with reading(rt.engine) as session:
        assert session.exec(select(StaffAccount)).one().failed_attempts == 0  # counted again from zero


def test_a_disabled_account_cannot_sign_in(rt: Runtime) -> None:
    add(rt)
    with unit_of_work(rt.engine) as session:
        disable_staff(session, EMAIL, actor="admin", at=AT)
    with pytest.raises(Unauthorized):
        sign_in(rt.engine, EMAIL, PASSWORD, at=AT)
    with reading(rt.engine) as session:
        (view,) = list_staff(session)
    assert not view.active
    assert ("staff.disabled", "admin", None) in actions(rt) and ("staff.sign_in_refused", EMAIL, "disabled") in actions(
        rt
    )
