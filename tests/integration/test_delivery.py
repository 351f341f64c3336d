"""Delivery of the outbox against a real SMTP server on loopback (aiosmtpd), on SQLite
and PostgreSQL: what arrives (headers, both parts, the language, the Message-ID), a
server that refuses or is down (retries with a growing wait, then a failed mark), two
relays at once (each message sent once), and the file backend."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from engine.db import unit_of_work
from engine.services import outbox
from engine.services.delivery import claim, deliver, retry_failed
from engine.services.setup import Runtime
from engine.settings import Settings
from engine.tables import Application, AuditEvent, OutboxMessage, table_of
from notifications import RenderedMessage
from notifications.mail import message_id
from tests.tables import table_rows

T0 = datetime(2026, 11, 25, 9, tzinfo=UTC)


class Inbox:
    """An SMTP handler that keeps what arrives, or answers with `refuse`."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.refuse: str | None = None
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.refuse:
            return self.refuse
        with self.lock:
            self.received.append(message_from_bytes(envelope.original_content, policy=default))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, Controller]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller
    if controller._thread is not None:  # not stopped by the test
        controller.stop()


def smtp_settings(settings: Settings, controller: Controller, **more: Any) -> Settings:
    return settings.model_copy(
        update={
            "notifications_backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": controller.port,
            "smtp_security": "none",
            "mail_from": "sip@programme.example.org",
            "delivery_attempts": 3,
            "delivery_backoff_seconds": 60,
            **more,
        }
    )


def queue(rt: Runtime, count: int) -> None:
    rows = [
        outbox.message_row(
            key=f"test:{i}",
            kind="receipt",
            recipient=f"person{i}@example.org",
            message=RenderedMessage(subject=f"Message {i}", text=f"Text {i}\n", html=f"<p>HTML {i}</p>", language="en"),
            at=T0,
        )
        for i in range(count)
    ]
    with unit_of_work(rt.engine) as session:
        outbox.enqueue_rows(session, rows)


def states(rt: Runtime) -> dict[str, int]:
    with unit_of_work(rt.engine) as session:
        found: dict[str, int] = {}
        for state in session.exec(select(OutboxMessage.state)).all():
            found[state] = found.get(state, 0) + 1
    return found


def test_queued_messages_arrive_once_as_multipart_in_their_language_with_their_message_id(
    imported: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    settings = smtp_settings(imported.settings, controller)
    done = deliver(imported.engine, settings, now=T0)
    assert (done.sent, done.retrying, done.failed) == (4, 0, 0) and len(inbox.received) == 4
    with unit_of_work(imported.engine) as session:
        ben = session.exec(
            select(OutboxMessage).join(Application).where(Application.reference == "SIP-2018-R1-0001")
        ).one()
    mail = next(m for m in inbox.received if m["Message-ID"].strip() == ben.message_id)
    assert mail["Message-ID"] == message_id(ben.key, "sip@programme.example.org") == ben.message_id
    assert mail["Content-Language"] == "fr" and "Programme international spécifique" in mail["Subject"]
    assert mail["From"].addresses[0].addr_spec == "sip@programme.example.org" and mail["Auto-Submitted"]
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    text = mail.get_body(("plain",)).get_content()
    assert text.startswith("Bonjour ") and "Référence\u00a0: " in text  # French punctuation survives the mail
    assert "[[access-code]]" not in text and "[[access-code]]" not in mail.get_body(("html",)).get_content()
    assert states(imported) == {"sent": 4}
    assert deliver(imported.engine, settings, now=T0 + timedelta(hours=1)).sent == 0  # nothing twice
    assert len(inbox.received) == 4


def test_a_refusing_server_leads_to_retries_with_a_growing_wait_and_then_a_failed_mark(
    rt: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    queue(rt, 2)
    inbox.refuse = "451 4.3.0 Mailbox temporarily unavailable"
    first = deliver(rt.engine, settings, now=T0)
    assert (first.retrying, first.failed) == (2, 0) and "451" in first.errors[0]
    assert deliver(rt.engine, settings, now=T0 + timedelta(seconds=59)).retrying == 0  # still waiting
    assert deliver(rt.engine, settings, now=T0 + timedelta(seconds=60)).retrying == 2  # 2nd try after 60 s
    assert deliver(rt.engine, settings, now=T0 + timedelta(seconds=60 + 119)).retrying == 0  # then 120 s
    last = deliver(rt.engine, settings, now=T0 + timedelta(seconds=60 + 120))
    assert (last.retrying, last.failed) == (0, 2) and states(rt) == {"failed": 2}
    with unit_of_work(rt.engine) as session:
        failed = outbox.list_messages(session, state="failed")
        assert all(m.attempts == 3 and "451" in (m.last_error or "") for m in failed)
        assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "notification.failed")).all()) == 2
        assert retry_failed(session, None, actor="officer", at=T0) == 2  # once the cause is fixed
    inbox.refuse = None
    assert deliver(rt.engine, settings, now=T0 + timedelta(hours=1)).sent == 2 and len(inbox.received) == 2


def test_a_server_that_is_down_leads_to_a_retry_and_the_message_goes_once_it_is_back(
    rt: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    queue(rt, 3)
    controller.stop()
    down = deliver(rt.engine, settings, now=T0)
    assert down.retrying == 3 and "cannot connect to the mail server" in down.errors[0]
    back = Controller(inbox, hostname="127.0.0.1", port=controller.port)  # the server is back
    back.start()
    try:
        assert deliver(rt.engine, settings, now=T0 + timedelta(minutes=2)).sent == 3 and len(inbox.received) == 3
    finally:
        back.stop()


def test_two_relays_at_once_send_each_message_once(rt: Runtime, smtp: tuple[Inbox, Controller]) -> None:
    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    queue(rt, 120)
    results: list[Any] = []
    relays = [
        threading.Thread(
            target=lambda name=name: results.append(deliver(rt.engine, settings, now=T0, batch=7, relay=name))
        )
        for name in ("relay-a", "relay-b")
    ]
    for relay in relays:
        relay.start()
    for relay in relays:
        relay.join(60)
    ids = [m["Message-ID"].strip() for m in inbox.received]
    assert len(ids) == 120 and len(set(ids)) == 120 and sum(r.sent for r in results) == 120
    assert states(rt) == {"sent": 120}


def test_a_relay_that_died_with_its_claim_leaves_the_messages_until_the_claim_expires(
    rt: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    queue(rt, 2)
    assert len(claim(rt.engine, "died", now=T0, limit=10)) == 2  # claimed, then the relay died
    assert deliver(rt.engine, settings, now=T0 + timedelta(minutes=4)).sent == 0
    assert deliver(rt.engine, settings, now=T0 + timedelta(minutes=6)).sent == 2 and len(inbox.received) == 2


def test_the_file_backend_writes_one_eml_per_message_named_by_its_message_id(imported: Runtime) -> None:
    settings = imported.settings.model_copy(update={"outbox_dir": imported.settings.data_dir / "mail"})
    assert deliver(imported.engine, settings, now=T0).sent == 4
    files = sorted(Path(settings.mail_folder).glob("*.eml"))
    assert len(files) == 4
    mail = message_from_bytes(files[0].read_bytes(), policy=default)
    assert files[0].stem == mail["Message-ID"].strip().strip("<>").split("@")[0]
    with unit_of_work(imported.engine) as session:  # sent again (say, after a crash): the same files
        session.execute(table_of(OutboxMessage).update().values(state="queued"))  # type: ignore[attr-defined]
    deliver(imported.engine, settings, now=T0 + timedelta(hours=1))
    assert sorted(Path(settings.mail_folder).glob("*.eml")) == files


@pytest.mark.prefect
def test_the_outbox_is_delivered_from_the_command_line_and_failures_are_listed(
    imported: Runtime, smtp: tuple[Inbox, Controller], monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    from typer.testing import CliRunner

    from cli import app
    from engine.settings import get_settings

    inbox, controller = smtp
    for name, value in (
        ("NOTIFICATIONS_BACKEND", "smtp"),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", str(controller.port)),
        ("SMTP_SECURITY", "none"),
        ("SIP_DELIVERY_ATTEMPTS", "1"),
    ):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    inbox.refuse = "550 5.1.1 No such mailbox"
    refused = CliRunner().invoke(app, ["outbox", "deliver"])
    assert refused.exit_code == 0 and "0 sent (127.0.0.1:" in refused.stdout and "4 failed" in refused.stdout
    listed = CliRunner().invoke(app, ["outbox", "list", "--failed"])
    failed = [line for line in table_rows(listed.stdout) if "  failed  " in line]
    assert len(failed) == 4 and all(line.endswith("  the server answered 550 5.1.1 No such mailbox") for line in failed)
    assert "4 failed; once the cause is fixed, `sip outbox retry --all`" in listed.stdout
    assert "4 message(s) queued again" in CliRunner().invoke(app, ["outbox", "retry", "--all"]).stdout
    inbox.refuse = None
    assert "4 sent (127.0.0.1:" in CliRunner().invoke(app, ["outbox", "deliver"]).stdout
    assert len(inbox.received) == 4


def test_a_server_that_drops_the_connection_mid_batch_leaves_the_rest_for_a_retry(
    rt: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    queue(rt, 3)
    inbox.refuse = "421 4.3.2 Service shutting down"  # the server closes the connection
    dropped = deliver(rt.engine, settings, now=T0)
    # The message the server closed on counts an attempt, with the server's reason; the
    # rest go back to the queue untried.
    assert (dropped.sent, dropped.retrying, dropped.released) == (0, 1, 2) and "421" in dropped.errors[0]
    inbox.refuse = None
    assert deliver(rt.engine, settings, now=T0 + timedelta(minutes=1)).sent == 3
    with unit_of_work(rt.engine) as session:
        assert sorted(m.attempts for m in outbox.list_messages(session)) == [1, 1, 2]


def test_the_secretariat_sees_failed_messages_through_the_api(rt: Runtime, smtp: tuple[Inbox, Controller]) -> None:
    import warnings

    from api.app import create_app
    from engine.services.tokens import token_hash

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    inbox, controller = smtp
    queue(rt, 2)
    inbox.refuse = "550 5.1.1 No such mailbox"
    deliver(rt.engine, smtp_settings(rt.settings, controller, delivery_attempts=1), now=T0)
    settings = rt.settings.model_copy(update={"secretariat_keys": f"amina:{token_hash('k' * 40)}"})
    with TestClient(create_app(settings)) as client:
        failed = client.get("/outbox", params={"state": "failed"}, headers={"Authorization": f"Bearer {'k' * 40}"})
        assert client.get("/outbox").status_code == 401
    assert [(m["state"], m["attempts"]) for m in failed.json()] == [("failed", 1), ("failed", 1)]
    assert "550 5.1.1 No such mailbox" in failed.json()[0]["last_error"]


def test_a_message_that_cannot_be_made_does_not_hold_up_the_others(
    imported: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    from engine.tables import IntakeKey

    inbox, controller = smtp
    with unit_of_work(imported.engine) as session:  # the import's key is gone: its receipt's code cannot be made
        session.execute(table_of(IntakeKey).delete().where(IntakeKey.id == 1))  # type: ignore[attr-defined]
    done = deliver(imported.engine, smtp_settings(imported.settings, controller), now=T0)
    assert (done.sent, done.failed) == (3, 1) and "cannot be made" in done.errors[0]  # failed at once: no retry helps
    assert len(inbox.received) == 3


def test_a_relay_whose_claim_ran_out_does_not_overwrite_the_relay_that_took_over(
    rt: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    from engine.services.delivery import deliver_claimed

    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    queue(rt, 1)
    slow = claim(rt.engine, "slow", now=T0, limit=1)  # relay "slow" claims, then stalls past its claim
    later = T0 + timedelta(minutes=6)
    assert deliver(rt.engine, settings, now=later, relay="quick").sent == 1  # another relay took over
    inbox.refuse = "451 4.3.0 try later"
    stale = deliver_claimed(rt.engine, settings, slow, relay="slow", now=later)  # "slow" wakes up: refused
    assert stale.retrying == 1
    with unit_of_work(rt.engine) as session:  # its outcome did not overwrite the sent message
        (message,) = outbox.list_messages(session)
    assert (message.state, message.attempts) == ("sent", 1)


def test_a_non_ascii_address_fails_on_its_own_and_the_batch_goes_on(
    rt: Runtime, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, controller = smtp
    settings = smtp_settings(rt.settings, controller)
    rows = [
        outbox.message_row(
            key=f"idn:{i}",
            kind="receipt",
            recipient=address,
            at=T0,
            message=RenderedMessage(subject="S", text="T\n", html="<p>H</p>", language="en"),
        )
        for i, address in enumerate(("before@example.org", "jösé@bücher.de", "contact@bücher.de"))
    ]
    with unit_of_work(rt.engine) as session:
        outbox.enqueue_rows(session, rows)
    done = deliver(rt.engine, settings, now=T0)
    envelopes = sorted(m["To"] for m in inbox.received)
    assert (done.sent, done.failed) == (2, 1) and "non-ASCII mailbox names" in done.errors[0]
    assert envelopes == ["before@example.org", "contact@xn--bcher-kva.de"]  # the domain in its ASCII form
    assert deliver(rt.engine, settings, now=T0 + timedelta(hours=1)).sent == 0
