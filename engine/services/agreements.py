"""A grant's agreement (issue 16): generated from a template in the recipient's language
(`grant_agreement.html`, which the secretariat may override in SIP_TEMPLATES_DIR as it
does the letters), kept as HTML and, where WeasyPrint is installed, PDF under the data
folder with its SHA-256, and sent through the outbox with a personal link that opens it.
Sending it again makes a new version; the link of an earlier one keeps opening that one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal
from jinja2 import TemplateError
from sqlmodel import Session, col, func, select

from domain.grants import GrantState
from domain.lifecycle import Role
from engine.services import audit, outbox
from engine.services.committee.bundles import pdf_renderer
from engine.services.errors import Gone, NotAllowed, NotFound
from engine.services.grant_reports import budget_of, recipient_of
from engine.services.grants import grant_of, local_day, months_between, move_grant, settings_of
from engine.services.intake import status_page_url
from engine.services.parties import party_names
from engine.services.rounds import definition_of, get_round
from engine.services.tokens import derive_agreement_token, token_hash
from engine.settings import Settings
from engine.tables import Application, Grant, GrantAgreement, GrantInstalment, GrantSignature
from notifications import AGREEMENT_LINK_PLACEHOLDER, labels, render
from notifications.render import TEMPLATES, RenderError, environment

#: The states of a grant whose agreement may be sent (again, as a new version).
SENDABLE = (GrantState.AWARDED, GrantState.AGREEMENT_SENT)


@dataclass(frozen=True)
class AgreementLine:
    reference: str
    version: int
    language: str
    html: Path
    pdf: Path | None
    sha256: str
    recipient: str
    made_at: datetime


def agreement_html(
    session: Session, settings: Settings, grant: Grant, language: str, *, version: int, at: datetime
) -> str:
    """The agreement of `grant` in `language`, as the template (or the secretariat's own)
    writes it."""
    application = session.get(Application, grant.application_id)
    assert application is not None
    definition = definition_of(get_round(session, grant.round_id))
    rules = settings_of(session, grant)
    instalments = session.exec(
        select(GrantInstalment).where(GrantInstalment.grant_id == grant.id).order_by(col(GrantInstalment.number))
    ).all()
    form_a = application.form_a or {}
    context: dict[str, Any] = dict(
        language=language,
        version=version,
        made_on=local_day(session, grant, at),
        reference=grant.reference,
        title=application.title,
        objective=form_a.get("objective"),
        party=party_names(session, {grant.party}).name(grant.party, language),
        executing_agency=grant.executing_agency,
        round_title=definition.title_in(language),
        decided_on=grant.planned_start,
        months=months_between(grant.planned_start, grant.planned_end),
        award=grant.award,
        instalments=[
            dict(
                number=i.number,
                share=format_decimal(i.share, locale=language),
                amount=i.amount,
                after=labels.label(labels.MILESTONES, i.after, language),
            )
            for i in instalments
        ],  # fmt: skip
        budget=[(labels.code(c, language), a) for c, a in sorted(budget_of(grant).items()) if a > Decimal(0)],
        tolerance=format_decimal(rules.category_tolerance_percent, locale=language),
        conditions=[c["text"] for c in grant.conditions],
        every=rules.report_every_months,
        progress_days=rules.progress_report_days,
        final_days=rules.final_report_days,
        return_days=rules.balance_return_days,
    )
    try:
        template = environment(language, TEMPLATES, settings.templates_dir).get_template("grant_agreement.html")
        return template.render(**context)
    except TemplateError as exc:
        raise NotAllowed(
            f"template grant_agreement.html: {exc}; correct the template and send it again: nothing was sent"
        ) from None


def send_agreement(session: Session, settings: Settings, reference: str, *, actor: str, at: datetime) -> AgreementLine:
    """Make the agreement in the recipient's language (HTML, and PDF where WeasyPrint is
    installed), keep it, and queue its message with the personal link; the grant's
    agreement is then sent. Sending it again makes a new version."""
    grant = grant_of(session, reference, for_update=True)
    if grant.state not in SENDABLE:
        raise NotAllowed(
            f"{reference} is {grant.state.replace('_', ' ')}: its agreement is sent before it is signed "
            "(a signed one is not sent again; an amendment changes it)"
        )
    signed = session.exec(select(GrantSignature.kind).where(GrantSignature.grant_id == grant.id)).first()
    if signed is not None:
        raise NotAllowed(
            f"{reference}: the {signed} has signed the agreement as it was sent; a new version would not be the one "
            "signed (record the secretariat's signature, or amend the grant once it is in force)"
        )
    application = session.get(Application, grant.application_id)
    assert application is not None
    recipient = recipient_of(grant, application)
    version = 1 + int(
        session.exec(select(func.count()).select_from(GrantAgreement).where(GrantAgreement.grant_id == grant.id)).one()
    )
    html = agreement_html(session, settings, grant, recipient.language, version=version, at=at)
    definition = definition_of(get_round(session, grant.round_id))
    base = settings.public_base_url.rstrip("/")
    renderer = pdf_renderer()
    link = f"{base}/agreement?token={AGREEMENT_LINK_PLACEHOLDER}"
    try:  # rendered before anything is written: a broken template of the secretariat's leaves nothing behind
        message = render(
            "grant_agreement_sent",
            recipient.language,
            dict(
                language=recipient.language, contact_name=recipient.name, reference=reference,
                title=application.title, round_title=definition.title_in(recipient.language), award=grant.award,
                points=[], agreement_url=link, pdf_url=f"{link}&format=pdf" if renderer is not None else None,
                status_url=status_page_url(settings, reference, recipient.language),
                programme_email=settings.programme_email,
            ),
            overrides=settings.templates_dir,
        )  # fmt: skip
    except RenderError as exc:
        raise NotAllowed(f"{exc}; correct the template and send it again") from None
    folder = Path("agreements") / reference
    (settings.data_dir / folder).mkdir(parents=True, exist_ok=True)
    html_path = folder / f"agreement-v{version}.{recipient.language}.html"
    pdf_path = folder / f"agreement-v{version}.{recipient.language}.pdf" if renderer is not None else None
    written = [settings.data_dir / p for p in (html_path, pdf_path) if p is not None]
    try:
        digest = _write(settings, html, html_path, pdf_path, renderer)
        key = f"grant_agreement:{reference}:{version}"
        row = GrantAgreement(
            grant_id=grant.id or 0, version=version, language=recipient.language, recipient=recipient.email,
            html_path=str(html_path), pdf_path=str(pdf_path) if pdf_path else None, sha256=digest, message_key=key,
            token_hash=token_hash(derive_agreement_token(settings.key(), key)), made_by=actor, made_at=at,
        )  # fmt: skip
        session.add(row)
        session.flush()
    except Exception:
        for path in written:  # no row, no files: a version is kept whole or not at all
            path.unlink(missing_ok=True)
        raise
    outbox.enqueue_rows(
        session,
        [
            outbox.message_row(
                key=key, kind="grant_agreement_sent", recipient=recipient.email, message=message, at=at,
                round_id=grant.round_id, application_id=application.id,
            )
        ],
    )  # fmt: skip
    if grant.state == GrantState.AWARDED:
        move_grant(session, grant, "send_agreement", actor=actor, at=at)
    audit.record(
        session, at=at, actor=actor, role=Role.SECRETARIAT, action="grant.agreement_made", subject_type="grant",
        subject_id=reference,
        details={"version": version, "language": recipient.language, "sha256": digest, "pdf": pdf_path is not None},
    )  # fmt: skip
    session.flush()
    return _line(settings, grant, row, row.recipient)


def _write(settings: Settings, html: str, html_path: Path, pdf_path: Path | None, renderer: Any) -> str:
    """Write the agreement's files; returns the SHA-256 of the PDF (the HTML's if none)."""
    (settings.data_dir / html_path).write_text(html, encoding="utf-8")
    if pdf_path is None:
        return hashlib.sha256(html.encode()).hexdigest()
    content = renderer(string=html).write_pdf()
    (settings.data_dir / pdf_path).write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def _line(settings: Settings, grant: Grant, row: GrantAgreement, recipient: str) -> AgreementLine:
    return AgreementLine(
        reference=grant.reference, version=row.version, language=row.language,
        html=settings.data_dir / row.html_path, pdf=settings.data_dir / row.pdf_path if row.pdf_path else None,
        sha256=row.sha256, recipient=recipient, made_at=row.made_at,
    )  # fmt: skip


def latest_agreement(session: Session, settings: Settings, reference: str) -> AgreementLine | None:
    grant = grant_of(session, reference)
    row = session.exec(
        select(GrantAgreement).where(GrantAgreement.grant_id == grant.id).order_by(col(GrantAgreement.version).desc())
    ).first()
    if row is None:
        return None
    return _line(settings, grant, row, row.recipient)


def open_agreement(session: Session, settings: Settings, token: str) -> AgreementLine:
    """The agreement a personal link opens (the version its message sent)."""
    row = session.exec(select(GrantAgreement).where(GrantAgreement.token_hash == token_hash(token))).first()
    if row is None:
        raise NotFound("this link opens no agreement: check that the whole address was copied from the message")
    grant = session.get(Grant, row.grant_id)
    assert grant is not None
    if grant.state == GrantState.CANCELLED:
        raise Gone(f"the grant {grant.reference} was cancelled: its agreement is withdrawn")
    newer = session.exec(
        select(GrantAgreement.version).where(GrantAgreement.grant_id == grant.id, GrantAgreement.version > row.version)
    ).first()
    if newer is not None:
        raise Gone(
            f"a newer version of the agreement of {grant.reference} was sent: open the link of the latest message"
        )
    return _line(settings, grant, row, row.recipient)
