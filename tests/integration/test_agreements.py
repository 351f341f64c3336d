"""The grant's agreement: made from its template in the recipient's language (HTML, and
PDF where WeasyPrint is installed) with its SHA-256, sent through the outbox with a
personal link that opens that version; a new version on sending again; none once signed;
a broken template of the secretariat's refused with nothing sent."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from domain.grants import GrantState
from engine.db import reading, unit_of_work
from engine.services.agreements import open_agreement, send_agreement
from engine.services.committee.bundles import pdf_renderer
from engine.services.errors import NotAllowed, NotFound
from engine.services.grants import grant_of, record_signature
from engine.services.outbox import materialize
from engine.services.setup import Runtime
from engine.tables import GrantAgreement, OutboxMessage
from tests.integration.test_opendata import AT, decided  # noqa: F401  (the fixture)

BEN = "SIP-2018-R1-0001"
SENT = AT + timedelta(days=10)


def test_the_agreement_is_made_in_the_recipients_language_and_its_link_opens_it(decided: Runtime) -> None:  # noqa: F811
    with unit_of_work(decided.engine) as session:
        line = send_agreement(session, decided.settings, BEN, actor="officer", at=SENT)
        message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "grant_agreement_sent")).one()
        sent = materialize(session, decided.settings, message)
        assert grant_of(session, BEN).state == GrantState.AGREEMENT_SENT
    html = line.html.read_text(encoding="utf-8")
    assert line.language == "fr" and '<html lang="fr">' in html
    assert "Accord de subvention SIP-2018-R1-0001" in html and "150\u202f000,00\xa0$US" in html
    assert "Name the district focal points." in html  # the committee's condition, as it wrote it
    if pdf_renderer() is not None:
        assert line.pdf is not None and line.pdf.read_bytes().startswith(b"%PDF-")
        assert line.sha256 == hashlib.sha256(line.pdf.read_bytes()).hexdigest()
    else:
        assert line.pdf is None and line.sha256 == hashlib.sha256(html.encode()).hexdigest()
    assert message.recipient == "focal.point@example.bj" and message.language == "fr"
    assert "[[agreement-link]]" in message.body_text  # the token goes in at delivery only
    token = sent.text.split("/agreement?token=")[1].split()[0]
    with reading(decided.engine) as session:
        assert open_agreement(session, decided.settings, token).html == line.html
        with pytest.raises(NotFound):
            open_agreement(session, decided.settings, token[:-2] + "xx")


def test_sending_again_makes_a_new_version_and_a_signed_agreement_is_not_sent(decided: Runtime) -> None:  # noqa: F811
    with unit_of_work(decided.engine) as session:
        first = send_agreement(session, decided.settings, BEN, actor="officer", at=SENT)
        second = send_agreement(session, decided.settings, BEN, actor="officer", at=SENT + timedelta(days=1))
        for kind, signer in (("recipient", "Aïcha Dossou"), ("secretariat", "Monika Stankiewicz")):
            record_signature(
                session, BEN, kind=kind, signer=signer, signed_on=SENT.date(), file_name="a.pdf", content=b"%PDF-1.7",
                actor="officer", at=SENT + timedelta(days=2),
            )  # fmt: skip
        with pytest.raises(NotAllowed, match="is agreement signed"):
            send_agreement(session, decided.settings, BEN, actor="officer", at=SENT + timedelta(days=3))
        versions = session.exec(select(GrantAgreement.version)).all()
    assert (first.version, second.version, sorted(versions)) == (1, 2, [1, 2])
    assert first.html != second.html and first.html.exists()


def test_a_broken_agreement_template_of_the_secretariat_is_refused_and_nothing_is_sent(
    decided: Runtime,  # noqa: F811
    tmp_path: Path,
) -> None:
    (tmp_path / "grant_agreement.html").write_text("<p>{{ award | no_such_filter }}</p>")
    settings = decided.settings.model_copy(update={"templates_dir": tmp_path})
    with pytest.raises(NotAllowed, match="grant_agreement.html"), unit_of_work(decided.engine) as session:
        send_agreement(session, settings, BEN, actor="officer", at=SENT)
    with reading(decided.engine) as session:
        assert grant_of(session, BEN).state == GrantState.AWARDED
        assert session.exec(select(GrantAgreement)).all() == []
    assert not (decided.settings.data_dir / "agreements").exists()


def test_an_earlier_versions_link_says_a_newer_one_was_sent_and_a_signed_agreement_gets_no_new_version(
    decided: Runtime,  # noqa: F811
) -> None:
    from engine.services.errors import Gone

    with unit_of_work(decided.engine) as session:
        send_agreement(session, decided.settings, BEN, actor="officer", at=SENT)
        first = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "grant_agreement_sent")).one()
        old_link = materialize(session, decided.settings, first).text.split("/agreement?token=")[1].split()[0]
        second = send_agreement(session, decided.settings, BEN, actor="officer", at=SENT + timedelta(days=1))
        record_signature(
            session, BEN, kind="recipient", signer="Aïcha Dossou", signed_on=SENT.date(), file_name="a.pdf",
            content=b"%PDF-1.7", actor="officer", at=SENT + timedelta(days=2),
        )  # fmt: skip
        with pytest.raises(NotAllowed, match="the recipient has signed the agreement as it was sent"):
            send_agreement(session, decided.settings, BEN, actor="officer", at=SENT + timedelta(days=3))
    with reading(decided.engine) as session:
        with pytest.raises(Gone, match="a newer version"):
            open_agreement(session, decided.settings, old_link)
        rows = session.exec(select(GrantAgreement.version, GrantAgreement.recipient)).all()
    assert second.version == 2 and sorted(rows) == [(1, "focal.point@example.bj"), (2, "focal.point@example.bj")]
    if pdf_renderer() is not None:
        assert "&format=pdf" in first.body_text  # the PDF has its own link in the message
