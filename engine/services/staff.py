"""The secretariat's staff accounts: made by an administrator (or with `sip staff add`),
listed, disabled; a password checked with its Argon2 hash, wrong ones counted, and the
account locked for a while after too many in a row. Every change and every sign-in,
refused or not, is audited under the account's address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.lifecycle import Role
from domain.staff import StaffRole, lock_after, password_problem
from engine.db import unit_of_work
from engine.services import audit
from engine.services.errors import Conflict, InvalidInput, NotFound, Unauthorized
from engine.tables import StaffAccount

#: Argon2id with the library's current parameters (a hash made with older ones is made
#: again at the next sign-in).
HASHER = PasswordHasher()
#: What a refused sign-in says, whatever the reason (an unknown address, a wrong password,
#: a disabled or locked account): it never tells which.
REFUSED = "the e-mail address and password do not match an active account; try again, or ask an administrator"


@dataclass(frozen=True)
class StaffView:
    email: str
    name: str
    role: StaffRole
    active: bool
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    created_at: datetime
    created_by: str
    #: Whether signing in also asks for a code of the account's authenticator app.
    second_factor: bool = False

    @classmethod
    def of(cls, row: StaffAccount) -> StaffView:
        return cls(
            row.email,
            row.name,
            row.role,
            row.active,
            row.locked_until,
            row.last_sign_in_at,
            row.created_at,
            row.created_by,
            row.totp_secret is not None,
        )


def add_staff(
    session: Session, email: str, name: str, role: StaffRole, password: str, *, actor: str, at: datetime
) -> StaffView:
    """A new account; refused, naming the field, for an address already used or a weak password."""
    email = email.strip().lower()
    problem = password_problem(password, email)
    if problem is not None:
        raise InvalidInput(f"the password {problem}", [FieldError(path="$.password", message=problem)])
    if not name.strip():
        raise InvalidInput("give the officer's name", [FieldError(path="$.name", message="is required")])
    if session.exec(select(StaffAccount).where(StaffAccount.email == email)).first() is not None:
        raise Conflict(f"{email} already has an account (the list of accounts shows it); give another address")
    row = StaffAccount(
        email=email,
        name=name.strip(),
        role=role,
        password_hash=HASHER.hash(password),
        created_at=at,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="staff.added",
        subject_type="staff",
        subject_id=email,
        details={"role": role.value, "name": row.name},
    )
    return StaffView.of(row)


def list_staff(session: Session) -> list[StaffView]:
    return [StaffView.of(r) for r in session.exec(select(StaffAccount).order_by(col(StaffAccount.email))).all()]


def disable_staff(session: Session, email: str, *, actor: str, at: datetime) -> StaffView:
    """The account can no longer sign in (kept, with its history)."""
    row = session.exec(select(StaffAccount).where(StaffAccount.email == email.strip().lower())).first()
    if row is None:
        raise NotFound(f"no account for {email}: check the address against the list of accounts")
    if row.active:
        row.active, row.disabled_at, row.disabled_by = False, at, actor
        session.add(row)
        audit.record(
            session,
            at=at,
            actor=actor,
            role=Role.SECRETARIAT,
            action="staff.disabled",
            subject_type="staff",
            subject_id=row.email,
        )
    return StaffView.of(row)


def sign_in(engine: Engine, email: str, password: str, *, at: datetime) -> StaffView:
    """`authenticate` in a transaction of its own, committed before a refusal is raised
    (so that the wrong password is counted and audited)."""
    with unit_of_work(engine) as session:
        found = authenticate(session, email, password, at=at)
    if isinstance(found, Unauthorized):
        raise found
    return found


def authenticate(session: Session, email: str, password: str, *, at: datetime) -> StaffView | Unauthorized:
    """The account whose address and password these are, if it may sign in now; else the
    refusal (`Unauthorized`, the same for every reason), for the caller to raise once its
    transaction has committed. A wrong password is counted (and audited under the
    address); too many in a row lock the account for a while."""
    row = session.exec(
        select(StaffAccount).where(StaffAccount.email == email.strip().lower()).with_for_update()
    ).first()
    if row is None:
        HASHER.hash(password)  # as long as a real check: the time does not tell which addresses exist
        return Unauthorized(REFUSED)
    try:
        HASHER.verify(row.password_hash, password)
        right = True
    except (VerificationError, InvalidHashError):
        right = False
    locked = row.locked_until is not None and row.locked_until > at
    if not right or locked or not row.active:
        why = "locked" if locked else "disabled" if not row.active else "wrong password"
        if not right and not locked:
            row.failed_attempts += 1
            row.locked_until = lock_after(row.failed_attempts, at)
            session.add(row)
        audit.record(
            session,
            at=at,
            actor=row.email,
            role=Role.SECRETARIAT,
            action="staff.sign_in_refused",
            subject_type="staff",
            subject_id=row.email,
            reason=why,
            details={"failed_attempts": row.failed_attempts},
        )
        return Unauthorized(REFUSED, actor=row.email)
    if HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = HASHER.hash(password)
    if row.totp_secret is None:  # with a second factor, the count goes on until its code is right
        row.failed_attempts, row.locked_until = 0, None
    row.last_sign_in_at = at
    session.add(row)
    audit.record(
        session, at=at, actor=row.email, role=Role.SECRETARIAT, action="staff.signed_in", subject_type="staff",
        subject_id=row.email,
    )  # fmt: skip
    return StaffView.of(row)


def sign_in_elsewhere(engine: Engine, email: str, *, via: str, at: datetime) -> StaffView:
    """An officer whom the organisation's identity provider signed in (single sign-on): their
    account, if it may sign in now. The provider checked who they are; the engine still
    decides who may come in (an account an administrator made, active, not locked). Audited
    as a sign-in `via` the provider; a refusal is audited too, and says the same for every
    reason."""
    with unit_of_work(engine) as session:
        row = session.exec(
            select(StaffAccount).where(StaffAccount.email == email.strip().lower()).with_for_update()
        ).first()
        refusal: Unauthorized | None = None
        if row is None:
            refusal = Unauthorized(REFUSED)
        else:
            locked = row.locked_until is not None and row.locked_until > at
            if locked or not row.active:
                audit.record(
                    session, at=at, actor=row.email, role=Role.SECRETARIAT, action="staff.sign_in_refused",
                    subject_type="staff", subject_id=row.email, reason="locked" if locked else "disabled",
                    details={"via": via},
                )  # fmt: skip
                refusal = Unauthorized(REFUSED, actor=row.email)
            else:
                row.last_sign_in_at = at
                session.add(row)
                audit.record(
                    session, at=at, actor=row.email, role=Role.SECRETARIAT, action="staff.signed_in",
                    subject_type="staff", subject_id=row.email, details={"via": via},
                )  # fmt: skip
                view = StaffView.of(row)
    if refusal is not None:
        raise refusal
    return view
