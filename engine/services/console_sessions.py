"""The console's sessions and the accounts' second factor.

A session is a random token kept in the officer's browser (a cookie) and, as its
SHA-256, in the database. It ends when the officer signs out, after
`SIP_CONSOLE_IDLE_MINUTES` without a request, at the end of `SIP_CONSOLE_SESSION_HOURS`,
or when the account is disabled. An account with a second factor signs in with its
password, then with a code of its authenticator app (TOTP, RFC 6238, computed with
`cryptography`): until then its session opens nothing else, and lasts five minutes.
Wrong codes count with wrong passwords towards the lock-out."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken as WrongCode
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlmodel import Session, select

from domain.application import FieldError
from domain.lifecycle import Role
from domain.staff import lock_after
from engine.services import audit
from engine.services.errors import Conflict, InvalidInput, NotFound, Unauthorized
from engine.services.staff import REFUSED, StaffView
from engine.settings import Settings
from engine.tables import StaffAccount, StaffSession

#: How long a session waiting for the second factor's code lasts.
PENDING_FOR = timedelta(minutes=5)
#: A session's last use is written at most this often (not at every page).
SEEN_EVERY = timedelta(minutes=1)
#: The authenticator's codes: six digits, a new one every 30 seconds; the one before and
#: the one after are accepted too (a clock a little off, a code typed as it changed).
DIGITS, STEP_SECONDS, DRIFT_STEPS = 6, 30, 1
ISSUER = "SIP secretariat"
#: What the page says when a session no longer works (its `reason`: the sign-in form).
ENDED = "your session has ended (signed out, unused for a while, or too old): sign in again"


@dataclass(frozen=True)
class Opened:
    token: str
    staff: StaffView
    verified: bool
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, staff: StaffView, settings: Settings, *, at: datetime) -> Opened:
    """A session for an officer whose password was right: open at once, or waiting for
    the second factor's code if the account has one."""
    row = session.exec(select(StaffAccount).where(StaffAccount.email == staff.email)).one()
    token = secrets.token_urlsafe(32)
    verified = row.totp_secret is None
    expires = at + (timedelta(hours=settings.console_session_hours) if verified else PENDING_FOR)
    assert row.id is not None
    session.add(
        StaffSession(
            staff_id=row.id,
            token_hash=_digest(token),
            issued_at=at,
            last_seen_at=at,
            expires_at=expires,
            verified=verified,
        )
    )
    return Opened(token, staff, verified, expires)


def _live(
    session: Session, token: str | None, settings: Settings, at: datetime, *, for_update: bool = False
) -> tuple[StaffSession, StaffAccount]:
    if not token:
        raise Unauthorized(ENDED, reason="console_session")
    statement = (
        select(StaffSession, StaffAccount)
        .join(StaffAccount, StaffAccount.id == StaffSession.staff_id)  # type: ignore[arg-type]
        .where(StaffSession.token_hash == _digest(token))
    )
    found = session.exec(statement.with_for_update() if for_update else statement).first()
    if found is None:
        raise Unauthorized(ENDED, reason="console_session")
    row, account = found
    idle = timedelta(minutes=settings.console_idle_minutes)
    if row.ended_at is not None or row.expires_at <= at or row.last_seen_at + idle <= at or not account.active:
        raise Unauthorized(ENDED, reason="console_session", actor=account.email)
    return row, account


def signed_in(session: Session, token: str | None, settings: Settings, *, at: datetime) -> StaffView:
    """The officer whose open session this is (its last use noted), or `Unauthorized`."""
    row, account = _live(session, token, settings, at)
    locked = account.locked_until is not None and account.locked_until > at
    if not row.verified or locked:  # a locked account's sessions stop working too, for the lock's time
        raise Unauthorized(ENDED, reason="console_session", actor=account.email)
    if at - row.last_seen_at >= SEEN_EVERY:
        row.last_seen_at = at
        session.add(row)
    return StaffView.of(account)


def waiting_for_code(session: Session, token: str | None, settings: Settings, *, at: datetime) -> StaffView:
    """The officer whose session waits for the second factor's code, or `Unauthorized`."""
    row, account = _live(session, token, settings, at)
    if row.verified:
        raise Unauthorized(ENDED, reason="console_session", actor=account.email)
    return StaffView.of(account)


def give_code(
    session: Session, token: str | None, code: str, settings: Settings, *, at: datetime
) -> Opened | Unauthorized:
    """The second factor: a right code opens the session, under a new token (the one that
    waited for the code no longer works); a wrong one is counted (with the wrong passwords
    before it: a right password does not reset the count of an account with a second
    factor) and the refusal returned, for the caller to raise once its transaction has
    committed. The session and the account are locked meanwhile, so that two requests at
    once cannot both use one code, nor both count as the first wrong one."""
    row, account = _live(session, token, settings, at, for_update=True)  # both rows, the session's and the account's
    if row.verified or account.totp_secret is None:
        raise Unauthorized(ENDED, reason="console_session", actor=account.email)
    locked = account.locked_until is not None and account.locked_until > at
    step = None if locked else _matching_step(_unseal(settings, account.totp_secret), code, at, account.totp_last_step)
    if step is None:
        if not locked:
            account.failed_attempts += 1
            account.locked_until = lock_after(account.failed_attempts, at)
        if account.locked_until is not None and account.locked_until > at:
            row.ended_at = at  # locked: this sign-in is over
        session.add_all([account, row])
        audit.record(
            session, at=at, actor=account.email, role=Role.SECRETARIAT, action="staff.sign_in_refused",
            subject_type="staff", subject_id=account.email, reason="locked" if locked else "wrong code",
            details={"failed_attempts": account.failed_attempts},
        )  # fmt: skip
        return Unauthorized(REFUSED, actor=account.email, reason="second_factor")
    account.totp_last_step, account.failed_attempts, account.locked_until = step, 0, None
    fresh = secrets.token_urlsafe(32)
    row.token_hash, row.verified = _digest(fresh), True
    row.expires_at = at + timedelta(hours=settings.console_session_hours)
    row.last_seen_at = at
    session.add_all([account, row])
    audit.record(
        session, at=at, actor=account.email, role=Role.SECRETARIAT, action="staff.second_factor_passed",
        subject_type="staff", subject_id=account.email,
    )  # fmt: skip
    return Opened(fresh, StaffView.of(account), True, row.expires_at)


def end_session(session: Session, token: str | None, settings: Settings, *, at: datetime) -> StaffView:
    """Sign out: the session stops working at once (audited)."""
    row, account = _live(session, token, settings, at)
    row.ended_at = at
    session.add(row)
    audit.record(
        session, at=at, actor=account.email, role=Role.SECRETARIAT, action="staff.signed_out",
        subject_type="staff", subject_id=account.email,
    )  # fmt: skip
    return StaffView.of(account)


# --- the second factor -----------------------------------------------------------------


def new_secret() -> str:
    """A new shared secret for an authenticator app (160 bits, in base 32 as apps take it)."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// address an authenticator app reads (typed, or from a QR code)."""
    label = quote(f"{ISSUER}:{email}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(ISSUER)}&digits={DIGITS}&period={STEP_SECONDS}"


def turn_on_second_factor(
    session: Session, email: str, secret: str, code: str, settings: Settings, *, at: datetime
) -> StaffView:
    """Keep the secret once the officer's app gives a right code for it (so an app set up
    wrongly never locks them out); refused, naming the field, otherwise."""
    account = session.exec(select(StaffAccount).where(StaffAccount.email == email).with_for_update()).one()
    if account.totp_secret is not None:
        raise Conflict(
            "this account has a second factor already: turn it off (with a code of your app) to set up another"
        )
    try:
        step = _matching_step(secret, code, at, None)
    except ValueError:
        step = None
    if step is None:
        raise InvalidInput(
            "the code does not match: type the six digits your app shows now for this account",
            [FieldError(path="$.code", message="code_mismatch")],
        )
    account.totp_secret = _seal(settings, secret)
    account.totp_last_step = step
    session.add(account)
    audit.record(
        session, at=at, actor=email, role=Role.SECRETARIAT, action="staff.second_factor_on", subject_type="staff",
        subject_id=email,
    )  # fmt: skip
    return StaffView.of(account)


def turn_off_own_second_factor(
    session: Session, email: str, code: str, settings: Settings, *, at: datetime
) -> StaffView | InvalidInput:
    """The officer turns their own second factor off, with a right code of their app (a
    session left open on a shared computer is not enough to take it away). A wrong code
    counts as at sign-in (five in a row lock the account, and its sessions with it): the
    refusal is returned, for the caller to raise once the count is committed."""
    account = session.exec(select(StaffAccount).where(StaffAccount.email == email).with_for_update()).one()
    if account.totp_secret is not None:
        step = _matching_step(_unseal(settings, account.totp_secret), code, at, account.totp_last_step)
        if step is None:
            account.failed_attempts += 1
            account.locked_until = lock_after(account.failed_attempts, at) or account.locked_until
            session.add(account)
            audit.record(
                session, at=at, actor=email, role=Role.SECRETARIAT, action="staff.second_factor_code_refused",
                subject_type="staff", subject_id=email, details={"failed_attempts": account.failed_attempts},
            )  # fmt: skip
            return InvalidInput(
                "the code does not match: type the six digits your app shows now for this account",
                [FieldError(path="$.code", message="code_mismatch")],
            )
        account.totp_last_step, account.failed_attempts = step, 0
    return turn_off_second_factor(session, email, actor=email, at=at)


def turn_off_second_factor(session: Session, email: str, *, actor: str, at: datetime) -> StaffView:
    """The account signs in with its password alone again (its officer, or an
    administrator for an officer who lost their phone)."""
    account = session.exec(select(StaffAccount).where(StaffAccount.email == email.strip().lower())).first()
    if account is None:
        raise NotFound(f"no account for {email}: check the address against the list of accounts")
    if account.totp_secret is not None:
        account.totp_secret, account.totp_last_step = None, None
        session.add(account)
        audit.record(
            session, at=at, actor=actor, role=Role.SECRETARIAT, action="staff.second_factor_off",
            subject_type="staff", subject_id=email,
        )  # fmt: skip
    return StaffView.of(account)


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at `at` (for tests and for checking a set-up)."""
    return _totp(secret).generate(int(at.timestamp())).decode()


def _totp(secret: str) -> TOTP:
    key = base64.b32decode(secret.replace(" ", "").upper() + "=" * (-len(secret.replace(" ", "")) % 8))
    # SHA-1 as RFC 6238 and every authenticator app use it (an HMAC, where SHA-1's collisions do not matter)
    return TOTP(key, DIGITS, SHA1(), STEP_SECONDS, enforce_key_length=False)  # noqa: S303


def _matching_step(secret: str, code: str, at: datetime, last_step: int | None) -> int | None:
    """The time step whose code this is (one not used before), or None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = _totp(secret)
    now_step = int(at.timestamp()) // STEP_SECONDS
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        try:
            totp.verify(code.encode(), step * STEP_SECONDS)
        except WrongCode:
            continue
        return step
    return None


def _fernet(settings: Settings) -> Fernet:
    key = hashlib.sha256(b"staff-second-factor:" + settings.key()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _seal(settings: Settings, secret: str) -> str:
    return _fernet(settings).encrypt(secret.encode()).decode()


def _unseal(settings: Settings, sealed: str) -> str:
    try:
        return _fernet(settings).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise Unauthorized(
            "the account's second factor was set up under another secret key: an administrator can turn it off",
        ) from None
