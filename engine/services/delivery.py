"""Delivery of the outbox: a relay claims a batch of queued messages, sends them, and
marks each sent, or failed for now (tried again later, after a growing wait), or
failed for good after `SIP_DELIVERY_ATTEMPTS` tries. Nothing is deleted.

Exactly once, as the recipient sees it: each message has a Message-ID derived from
its business key. Two relays never claim the same row (PostgreSQL: `FOR UPDATE SKIP
LOCKED`; SQLite takes the write lock at the start of the claim). The one window left
is a relay that dies after the server accepted messages and before it recorded them
sent (it records every 25 messages): once its claim expires (5 minutes), another
relay sends those again, with the same Message-ID, so mail clients show each once. A
relay whose claim runs out stops sending, and records nothing over a relay that took
the claim over."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Engine, Integer, String, bindparam, column, func, or_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import NoResultFound
from sqlmodel import Session, col, select

from domain.lifecycle import Role
from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.outbox import materialize
from engine.settings import Settings
from engine.tables import MessageState, OutboxMessage, table_of
from notifications.mail import ascii_domain, build, message_id, wire_bytes

LEASE = timedelta(minutes=5)


class DeliveryError(Exception):
    """One message could not be sent this time (the relay tries it again later)."""

    permanent = False  # it never will be as it is: failed at once, for a person to see
    connection_lost = False  # the rest of the batch goes back to the queue, no attempt counted


class PermanentError(DeliveryError):
    permanent = True


class ConnectionLost(DeliveryError):
    connection_lost = True


class Sender(Protocol):
    def send(self, email: Message, sender: str, recipient: str) -> None: ...


class FileBackend:
    """One .eml file per message, named by its Message-ID: a message sent again
    replaces its own file, so nobody reads it twice. The embedded default."""

    def __init__(self, folder: Path):
        self.folder = folder

    @contextmanager
    def open(self) -> Iterator[Sender]:
        self.folder.mkdir(parents=True, exist_ok=True)
        yield self

    def send(self, email: Message, sender: str, recipient: str) -> None:
        name = str(email["Message-ID"]).strip("<>").split("@")[0] + ".eml"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".sending.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(wire_bytes(email))
            os.replace(tmp, self.folder / name)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise DeliveryError(f"cannot write {self.folder / name}: {exc.strerror or exc}") from exc


class SmtpBackend:
    """A mail server, one connection per batch: SMTP_SECURITY none, starttls or tls."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @contextmanager
    def open(self) -> Iterator[Sender]:
        s = self.settings
        host, port = s.smtp_host, s.smtp_port_or_default
        try:
            if s.smtp_security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, timeout=s.smtp_timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(host, port, timeout=s.smtp_timeout)
                if s.smtp_security == "starttls":
                    client.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                client.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"cannot connect to the mail server {host}:{port} ({s.smtp_security}): {exc}; check "
                "SMTP_HOST, SMTP_PORT, SMTP_SECURITY and the credentials"
            ) from exc
        try:
            yield _SmtpSender(client)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()


class _SmtpSender:
    def __init__(self, client: smtplib.SMTP):
        self.client = client
        self.utf8 = client.has_extn("smtputf8")

    def send(self, email: Message, sender: str, recipient: str) -> None:
        address = smtp_address(recipient, self.utf8)  # PermanentError for an address no retry will help
        options = ["SMTPUTF8"] if not address.isascii() else []
        try:
            self.client.sendmail(sender, [address], wire_bytes(email), mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, refusal = next(iter(exc.recipients.values()))
            error = PermanentError if 500 <= code < 600 else DeliveryError
            raise error(f"the server refused {recipient}: {code} {refusal.decode(errors='replace')}") from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise ConnectionLost(f"the server closed the connection: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            reply = f"the server answered {exc.smtp_code} {_text(exc.smtp_error)}"
            if exc.smtp_code == 421:  # the server is closing the connection
                raise ConnectionLost(reply) from exc
            raise (PermanentError if 500 <= exc.smtp_code < 600 else DeliveryError)(reply) from exc
        except (OSError, smtplib.SMTPException) as exc:  # a timeout or a broken connection
            raise ConnectionLost(f"the connection failed: {exc.__class__.__name__}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - anything else fails this message alone
            raise DeliveryError(f"{exc.__class__.__name__}: {exc}") from exc


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def smtp_address(address: str, utf8: bool) -> str:
    """The address as the SMTP envelope takes it: an internationalised domain in its
    ASCII (punycode) form; a non-ASCII mailbox name only where the server says SMTPUTF8."""
    try:
        converted = ascii_domain(address)
    except UnicodeError as exc:
        raise PermanentError(
            f"{address}: the domain is not a valid internationalised domain name; correct the address"
        ) from exc
    if not converted.isascii() and not utf8:
        raise PermanentError(
            f"{address}: the mail server does not take non-ASCII mailbox names (SMTPUTF8); "
            "correct the address or use another server"
        )
    return converted


def backend_for(settings: Settings) -> FileBackend | SmtpBackend:
    return SmtpBackend(settings) if settings.notifications_backend == "smtp" else FileBackend(settings.mail_folder)


# --- the relay --------------------------------------------------------------------------------


def _due(now: datetime, due: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        col(OutboxMessage.state) == MessageState.QUEUED,
        or_(col(OutboxMessage.next_attempt_at).is_(None), col(OutboxMessage.next_attempt_at) <= due),
        or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
    )


def claim(
    engine: Engine, relay: str, *, now: datetime, limit: int, lease: timedelta = LEASE, due: datetime | None = None
) -> list[int]:
    """Claim up to `limit` messages due by `due` (default: now), for `lease`: no other
    relay takes them meanwhile."""
    with unit_of_work(engine) as session:
        statement = (
            select(col(OutboxMessage.id)).where(*_due(now, due or now)).order_by(col(OutboxMessage.id)).limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        ids = [i for i in session.exec(statement).all() if i is not None]
        if ids:
            session.execute(
                update(table_of(OutboxMessage))
                .where(col(OutboxMessage.id).in_(ids))
                .values(claimed_by=relay, claimed_until=now + lease)
            )
    return ids


@dataclass
class Delivered:
    sent: int = 0
    retrying: int = 0  # failed this time; tried again later
    failed: int = 0  # failed for good
    released: int = 0  # not tried (the connection was lost, or the claim ran out): back in the queue
    errors: list[str] = field(default_factory=list)

    def add(self, other: Delivered) -> None:
        self.sent, self.retrying, self.failed, self.released = (
            self.sent + other.sent,
            self.retrying + other.retrying,
            self.failed + other.failed,
            self.released + other.released,
        )
        self.errors += other.errors


#: Outcomes are recorded every this many messages: a relay that dies re-sends at most these.
RECORD_EVERY = 25
#: A relay stops sending this long before its claim runs out.
MARGIN = timedelta(seconds=30)


def deliver_claimed(
    engine: Engine,
    settings: Settings,
    ids: list[int],
    *,
    relay: str,
    now: datetime,
    backend: FileBackend | SmtpBackend | None = None,
    lease: timedelta = LEASE,
) -> Delivered:
    """Send the messages `relay` claimed, over one connection, recording the outcomes as
    it goes (every `RECORD_EVERY` messages). A lost connection, or a claim about to run
    out, ends the batch: what was not tried goes back to the queue."""
    result = Delivered()
    if not ids:
        return result
    backend = backend or backend_for(settings)
    stop_at = time.monotonic() + (lease - MARGIN).total_seconds()
    with reading(engine) as session:
        rows = list(
            session.exec(
                select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)).order_by(col(OutboxMessage.id))
            ).all()
        )
        emails: dict[int | None, Message] = {}
        unmade: list[tuple[OutboxMessage, DeliveryError]] = []
        for m in rows:
            try:
                emails[m.id] = build(
                    materialize(session, settings, m),
                    sender=settings.sender,
                    recipient=m.recipient,
                    mid=message_id(m.key, settings.sender),
                    date=now,
                    kind=m.kind,
                )
            except NoResultFound as exc:  # what its secret is derived from is gone: no retry will help
                unmade.append(
                    (
                        m,
                        PermanentError(
                            f"the message cannot be made ({exc}); it needs a person "
                            "(it is listed with the failed messages)"
                        ),
                    )
                )
    outcomes: list[tuple[OutboxMessage, DeliveryError | None]] = list(unmade)
    tried = {m.id for m, _ in unmade}
    try:
        with backend.open() as connection:
            for message in rows:
                if message.id in tried:
                    continue
                if time.monotonic() > stop_at:
                    break  # the claim runs out soon: leave the rest to the next run
                tried.add(message.id)
                try:
                    connection.send(emails[message.id], settings.sender, message.recipient)
                    outcomes.append((message, None))
                except DeliveryError as exc:
                    outcomes.append((message, exc))
                    if exc.connection_lost:
                        break
                if len(outcomes) >= RECORD_EVERY:
                    _record(engine, settings, outcomes, relay=relay, now=now, result=result)
                    outcomes = []
    except DeliveryError as exc:  # no connection at all: this counts as an attempt for each message
        outcomes += [(m, exc) for m in rows if m.id not in tried]
        tried |= {m.id for m in rows}
    finally:
        _record(engine, settings, outcomes, relay=relay, now=now, result=result)
        untried = [m.id for m in rows if m.id not in tried]
        if untried:
            _release(engine, relay, untried)
            result.released += len(untried)
    return result


def _release(engine: Engine, relay: str, ids: list[int | None]) -> None:
    table = table_of(OutboxMessage)
    with unit_of_work(engine) as session:
        session.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.claimed_by == relay)
            .values(claimed_by=None, claimed_until=None)
        )


#: The longest a failed message waits before its next try.
MAX_WAIT = timedelta(days=1)


def _record(
    engine: Engine,
    settings: Settings,
    outcomes: list[tuple[OutboxMessage, DeliveryError | None]],
    *,
    relay: str,
    now: datetime,
    result: Delivered,
) -> None:
    """Record what happened to each message, only where `relay` still holds the claim
    (a relay whose claim ran out does not overwrite the relay that took over)."""
    if not outcomes:
        return
    table = table_of(OutboxMessage)
    mine = (table.c.id == bindparam("b_id"), table.c.claimed_by == relay)
    sent = [m for m, error in outcomes if error is None]
    with unit_of_work(engine) as session:
        if sent:
            done = {
                "state": MessageState.SENT,
                "sent_at": now,
                "attempts": table.c.attempts + 1,
                "last_attempt_at": now,
                "claimed_by": None,
                "claimed_until": None,
                "last_error": None,
            }
            mids = [(m.id, message_id(m.key, settings.sender)) for m in sent]
            if session.get_bind().dialect.name == "postgresql":
                # One statement joined with the rows' ids and Message-IDs, passed as two
                # arrays (one statement, compiled once): an executemany is a statement
                # per row, even pipelined.
                given = (
                    func.unnest(bindparam("b_ids", type_=ARRAY(Integer)), bindparam("b_mids", type_=ARRAY(String)))
                    .table_valued(column("id", Integer), column("mid", String))
                    .render_derived(name="sent")
                )
                session.execute(
                    update(table)
                    .where(table.c.id == given.c.id, table.c.claimed_by == relay)
                    .values(**done, message_id=given.c.mid),
                    {"b_ids": [i for i, _ in mids], "b_mids": [mid for _, mid in mids]},
                )
            else:  # in the process: a statement per row costs little
                session.execute(
                    update(table).where(*mine).values(**done, message_id=bindparam("b_mid")),
                    [{"b_id": i, "b_mid": mid} for i, mid in mids],
                )
            result.sent += len(sent)
        rows: list[dict[str, Any]] = []
        for message, error in outcomes:
            if error is None:
                continue
            attempts = message.attempts + 1
            final = error.permanent or attempts >= settings.delivery_attempts
            wait = min(timedelta(seconds=settings.delivery_backoff_seconds * 2 ** min(attempts - 1, 20)), MAX_WAIT)
            rows.append(
                {
                    "b_id": message.id,
                    "b_state": MessageState.FAILED if final else MessageState.QUEUED,
                    "b_next": None if final else now + wait,
                    "b_error": str(error)[:1000],
                }
            )
            result.failed += final
            result.retrying += not final
            if final:
                audit.record(
                    session,
                    at=now,
                    actor=f"relay {relay}",
                    role=Role.SYSTEM,
                    action="notification.failed",
                    subject_type="notification",
                    subject_id=str(message.id),
                    reason=str(error),
                    details={"key": message.key, "recipient": message.recipient, "attempts": attempts},
                )
        if rows:
            session.execute(
                update(table)
                .where(*mine)
                .values(
                    state=bindparam("b_state"),
                    attempts=table.c.attempts + 1,
                    next_attempt_at=bindparam("b_next"),
                    last_error=bindparam("b_error"),
                    last_attempt_at=now,
                    claimed_by=None,
                    claimed_until=None,
                ),
                rows,
            )
            result.errors += sorted({r["b_error"] for r in rows})


def deliver(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    batch: int = 100,
    limit: int | None = None,
    relay: str | None = None,
    lease: timedelta = LEASE,
) -> Delivered:
    """Deliver what is due, batch after batch, until nothing is left (or `limit`). What
    fails waits for a later run: only messages due when the run starts are tried."""
    relay = relay or uuid.uuid4().hex[:12]
    started = now or datetime.now(UTC)
    total = Delivered()
    done = 0
    while limit is None or done < limit:
        at = now or datetime.now(UTC)
        ids = claim(engine, relay, now=at, due=started, lease=lease, limit=min(batch, limit - done) if limit else batch)
        if not ids:
            break
        outcome = deliver_claimed(engine, settings, ids, relay=relay, now=at, lease=lease)
        total.add(outcome)
        done += len(ids)
        if outcome.released:  # the connection was lost: the next run starts afresh
            break
    return total


def retry_failed(session: Session, ids: list[int] | None, *, actor: str, at: datetime) -> int:
    """Queue failed messages again (all of them when `ids` is None), e.g. once the
    mail server is fixed or an address corrected. Returns how many."""
    table = table_of(OutboxMessage)
    statement = update(table).where(table.c.state == MessageState.FAILED)
    if ids is not None:
        statement = statement.where(table.c.id.in_(ids))
    count = session.execute(statement.values(state=MessageState.QUEUED, attempts=0, next_attempt_at=None)).rowcount  # type: ignore[attr-defined]
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="notification.requeued",
        subject_type="outbox",
        subject_id="failed",
        details={"ids": ids, "count": count},
    )
    return int(count)
