"""Delivery of the outbox: a relay claims a batch of queued messages, sends them, and
marks each sent, or failed for now (tried again later, after a growing wait), or
failed for good after `SIP_DELIVERY_ATTEMPTS` tries. Nothing is deleted.

Exactly once, as the recipient sees it: each message has a Message-ID derived from
its business key. Two relays never claim the same row (PostgreSQL: `FOR UPDATE SKIP
LOCKED`; SQLite takes the write lock at the start of the claim). The one window left
is a relay that dies after the server accepted a message and before it marked it
sent: once its claim expires (`SIP_DELIVERY_LEASE_SECONDS`), another relay sends the
message again, with the same Message-ID, so mail clients show it once."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, bindparam, or_, update
from sqlmodel import Session, select

from engine.db import reading, unit_of_work
from engine.services import audit
from engine.services.outbox import materialize
from engine.settings import Settings
from engine.tables import OutboxMessage
from notifications.mail import build, message_id, wire_bytes

LEASE = timedelta(minutes=5)


class DeliveryError(Exception):
    """One message could not be sent (the relay tries it again later)."""


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
                client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=s.smtp_timeout,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(host, port, timeout=s.smtp_timeout)
                if s.smtp_security == "starttls":
                    client.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                client.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"cannot connect to the mail server {host}:{port} ({s.smtp_security}): {exc}; check "
                                "SMTP_HOST, SMTP_PORT, SMTP_SECURITY and the credentials") from exc
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

    def send(self, email: Message, sender: str, recipient: str) -> None:
        try:
            self.client.sendmail(sender, [recipient], wire_bytes(email))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise DeliveryError(f"the server refused {recipient}: {code} {reply.decode(errors='replace')}") from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"the server answered {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
                                ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"the connection failed: {exc.__class__.__name__}: {exc}") from exc


def backend_for(settings: Settings) -> FileBackend | SmtpBackend:
    return SmtpBackend(settings) if settings.notifications_backend == "smtp" else FileBackend(settings.mail_folder)


# --- the relay --------------------------------------------------------------------------------

def _due(now: datetime):  # noqa: ANN202 - a SQL condition
    return (OutboxMessage.state == "queued",
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),  # type: ignore[union-attr]
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))  # type: ignore[union-attr]


def claim(engine: Engine, relay: str, *, now: datetime, limit: int, lease: timedelta = LEASE) -> list[int]:
    """Claim up to `limit` messages due now, for `lease`: no other relay takes them meanwhile."""
    with unit_of_work(engine) as session:
        statement = select(OutboxMessage.id).where(*_due(now)).order_by(OutboxMessage.id).limit(limit)  # type: ignore[arg-type]
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        ids = list(session.exec(statement).all())
        if ids:
            session.execute(update(OutboxMessage.__table__).where(OutboxMessage.id.in_(ids))  # type: ignore[attr-defined]
                            .values(claimed_by=relay, claimed_until=now + lease))
    return ids  # type: ignore[return-value]


@dataclass
class Delivered:
    sent: int = 0
    retrying: int = 0  # failed this time; tried again later
    failed: int = 0  # failed for good
    errors: list[str] = field(default_factory=list)

    def add(self, other: Delivered) -> None:
        self.sent, self.retrying, self.failed = (self.sent + other.sent, self.retrying + other.retrying,
                                                 self.failed + other.failed)
        self.errors += other.errors


def deliver_claimed(engine: Engine, settings: Settings, ids: list[int], *, relay: str, now: datetime,
                    backend: FileBackend | SmtpBackend | None = None) -> Delivered:
    """Send the messages `relay` claimed and record each outcome (one statement per
    kind of outcome)."""
    result = Delivered()
    if not ids:
        return result
    backend = backend or backend_for(settings)
    with reading(engine) as session:
        rows = list(session.exec(select(OutboxMessage).where(OutboxMessage.id.in_(ids))  # type: ignore[attr-defined]
                                 .order_by(OutboxMessage.id)).all())  # type: ignore[arg-type]
        emails: dict[int | None, Message] = {}
        failures: dict[int, str] = {}
        for m in rows:
            try:
                emails[m.id] = build(materialize(session, settings, m), sender=settings.sender, recipient=m.recipient,
                                     mid=message_id(m.key, settings.sender), date=m.created_at, kind=m.kind)
            except Exception as exc:  # noqa: BLE001 - one message that cannot be made does not hold up the others
                failures[m.id or 0] = (f"the message could not be made ({exc.__class__.__name__}: {exc}); it needs "
                                       "a person: see `sip outbox list --failed`")
    sent: list[OutboxMessage] = []
    try:
        with backend.open() as connection:
            for message in rows:
                if message.id in failures:
                    continue
                try:
                    connection.send(emails[message.id], settings.sender, message.recipient)
                    sent.append(message)
                except DeliveryError as exc:
                    failures[message.id or 0] = str(exc)
    except DeliveryError as exc:  # no connection: every message not sent yet failed this time
        for message in rows:
            if message not in sent and message.id not in failures:
                failures[message.id or 0] = str(exc)
    _record(engine, settings, sent, [m for m in rows if m.id in failures], failures, relay=relay, now=now,
            result=result)
    return result


def _record(engine: Engine, settings: Settings, sent: list[OutboxMessage], failed: list[OutboxMessage],
            errors: dict[int, str], *, relay: str, now: datetime, result: Delivered) -> None:
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    with unit_of_work(engine) as session:
        if sent:
            session.execute(update(table).where(table.c.id == bindparam("b_id")).values(
                state="sent", sent_at=now, attempts=table.c.attempts + 1, last_attempt_at=now, claimed_by=None,
                claimed_until=None, last_error=None, message_id=bindparam("b_mid")),
                [{"b_id": m.id, "b_mid": message_id(m.key, settings.sender)} for m in sent])
            result.sent += len(sent)
        rows = []
        for message in failed:
            attempts = message.attempts + 1
            final = attempts >= settings.delivery_attempts
            wait = timedelta(seconds=settings.delivery_backoff_seconds * 2 ** (attempts - 1))
            rows.append({"b_id": message.id, "b_state": "failed" if final else "queued", "b_attempts": attempts,
                         "b_next": None if final else now + wait, "b_error": errors[message.id or 0][:1000]})
            result.failed += final
            result.retrying += not final
            if final:
                audit.record(session, at=now, actor=f"relay {relay}", role="system", action="notification.failed",
                             subject_type="notification", subject_id=str(message.id), reason=errors[message.id or 0],
                             details={"key": message.key, "recipient": message.recipient, "attempts": attempts})
        if rows:
            session.execute(update(table).where(table.c.id == bindparam("b_id")).values(
                state=bindparam("b_state"), attempts=bindparam("b_attempts"), next_attempt_at=bindparam("b_next"),
                last_error=bindparam("b_error"), last_attempt_at=now, claimed_by=None, claimed_until=None), rows)
            result.errors += sorted({r["b_error"] for r in rows})


def deliver(engine: Engine, settings: Settings, *, now: datetime | None = None, batch: int = 100,
            limit: int | None = None, relay: str | None = None) -> Delivered:
    """Deliver what is due, batch after batch, until nothing is left (or `limit`)."""
    relay = relay or uuid.uuid4().hex[:12]
    total = Delivered()
    done = 0
    while limit is None or done < limit:
        at = now or datetime.now(UTC)
        ids = claim(engine, relay, now=at, limit=min(batch, limit - done) if limit else batch)
        if not ids:
            break
        total.add(deliver_claimed(engine, settings, ids, relay=relay, now=at))
        done += len(ids)
    return total


def retry_failed(session: Session, ids: list[int] | None, *, actor: str, at: datetime) -> int:
    """Queue failed messages again (all of them when `ids` is None), e.g. once the
    mail server is fixed or an address corrected. Returns how many."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    statement = update(table).where(table.c.state == "failed")
    if ids is not None:
        statement = statement.where(table.c.id.in_(ids))
    count = session.execute(statement.values(state="queued", attempts=0, next_attempt_at=None)).rowcount  # type: ignore[attr-defined]
    audit.record(session, at=at, actor=actor, role="secretariat", action="notification.requeued",
                 subject_type="outbox", subject_id="failed", details={"ids": ids, "count": count})
    return int(count)
