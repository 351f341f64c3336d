"""Intake of applications (format `sip-application/1`): one service behind the API's
submit call and the secretariat's import.

An application is durable before the answer: the application, its first status
change, the audit event, the idempotency key and the receipt notification commit in
one transaction, or none of them does."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from domain.application import (
    ApplicationDocument,
    DocumentError,
    FieldError,
    load_json,
    validate_document,
)
from domain.lifecycle import PUBLIC_STATUS, PublicStatus, Role, Status, initial_record
from domain.references import make_reference
from domain.rounds import RoundDefinition, RoundStatus, accepts_applications, accepts_import
from engine.db import unit_of_work
from engine.services import audit, outbox
from engine.services.errors import Conflict, InvalidInput, NotAccepting, ServiceError
from engine.services.rounds import definition_of, get_round
from engine.services.tokens import derive_token, random_token, token_hash
from engine.settings import Settings
from engine.tables import Application, IntakeKey, Round, StatusChange
from engine.tables import Party as PartyRow

Channel = Literal["api", "import"]
_PARTY_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Receipt:
    reference: str
    status: PublicStatus
    access_token: str
    round_id: str
    submitted_at: datetime
    created: bool


@dataclass
class _Prepared:
    document: ApplicationDocument
    key: str | None
    request_hash: str
    submitted_at: datetime


def _when(value: datetime, definition: RoundDefinition) -> str:
    local = value.astimezone(definition.zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({definition.timezone})"


def _party_errors(data: dict[str, Any], known: set[str]) -> list[FieldError]:
    """Codes of the right shape that are not in the register (shape errors are the
    schema's to report)."""
    applicant = data.get("applicant")
    if not isinstance(applicant, dict):
        return []
    found: list[tuple[str, Any]] = [("$.applicant.party", applicant.get("party"))]
    co = applicant.get("co_applicants")
    if isinstance(co, list):
        found += [(f"$.applicant.co_applicants[{i}]", c) for i, c in enumerate(co)]
    return [
        FieldError(path=path, message=f"{code} is not in the Parties register; if this Party has joined the "
                                      "Convention, the secretariat must add it (`sip parties load FILE`)")
        for path, code in found
        if isinstance(code, str) and _PARTY_CODE.match(code) and code not in known
    ]


def _validate(body: bytes | str, known_parties: set[str]) -> ApplicationDocument:
    """Parse and validate; every offending field is reported together."""
    data = load_json(body)
    errors: list[FieldError] = []
    document = None
    try:
        document = validate_document(data)
    except DocumentError as exc:
        errors = exc.errors
    if isinstance(data, dict):
        errors += _party_errors(data, known_parties)
    if errors or document is None:
        raise DocumentError(errors)
    return document


def _request_hash(document: ApplicationDocument) -> str:
    canonical = json.dumps(document.model_dump(mode="json", exclude_unset=True), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _prepare(row: Round, definition: RoundDefinition, body: bytes | str, *, channel: Channel,
             idempotency_key: str | None, now: datetime, known_parties: set[str]) -> _Prepared:
    stored = RoundStatus(row.status)
    if channel == "api" and not accepts_applications(stored, definition, now):
        if now < definition.opens_at or stored is RoundStatus.DRAFT:
            raise NotAccepting(f"round {row.id} is not open yet; it opens at {_when(definition.opens_at, definition)}")
        raise NotAccepting(
            f"round {row.id} closed for applications at {_when(definition.closes_at, definition)}; "
            "contact the secretariat if your application could not be sent in time"
        )
    try:
        document = _validate(body, known_parties)
    except DocumentError as exc:
        raise InvalidInput(f"the application is not valid sip-application/1: {exc}", exc.errors) from None
    errors = []
    if document.round != row.id:
        errors.append(FieldError(path="$.round", message=f"is {document.round!r}, but this is round {row.id!r}"))
    submitted_at = now
    if channel == "api" and document.received_at is not None:
        errors.append(FieldError(path="$.received_at",
                                 message="is only for applications the secretariat imports; leave it out"))
    if channel == "import":
        submitted_at = document.received_at or now
        if not accepts_import(stored, definition, submitted_at):
            if stored not in (RoundStatus.OPEN, RoundStatus.CLOSED):
                raise NotAccepting(f"round {row.id} is {stored.value}; applications can be imported only while "
                                   "it is open or closed, before screening starts (open it with `sip rounds open`)")
            errors.append(FieldError(
                path="$.received_at" if document.received_at else "$",
                message=f"received {_when(submitted_at, definition)}, outside the round "
                        f"({_when(definition.opens_at, definition)} to {_when(definition.closes_at, definition)})"
                        + ("" if document.received_at else "; give the receipt time in received_at"),
            ))
    if errors:
        raise InvalidInput("; ".join(f"{e.path}: {e.message}" for e in errors), errors)
    return _Prepared(document, idempotency_key, _request_hash(document), submitted_at)


def _existing(session: Session, round_id: str, prepared: _Prepared) -> Application | None:
    if prepared.key is None:
        return None
    found = session.exec(
        select(IntakeKey, Application)
        .join(Application, Application.id == IntakeKey.application_id)  # type: ignore[arg-type]
        .where(IntakeKey.round_id == round_id, IntakeKey.key == prepared.key)
    ).first()
    if found is None:
        return None
    key_row, application = found
    if key_row.request_hash != prepared.request_hash:
        raise Conflict(
            f"Idempotency-Key {prepared.key!r} was already used for application {application.reference}, with "
            "different content; use a new key for a different application"
        )
    return application


def _token(settings: Settings, round_id: str, key: str | None) -> str:
    return derive_token(settings.key(), round_id, key) if key else random_token()


def _write(session: Session, row: Round, definition: RoundDefinition, prepared: _Prepared, *, channel: Channel,
           actor: str, role: Role, now: datetime, settings: Settings, party_names: dict[str, str]) -> Receipt:
    existing = _existing(session, row.id, prepared)
    if existing is not None:
        return Receipt(existing.reference, PUBLIC_STATUS[Status(existing.status)],
                       _token(settings, row.id, prepared.key), row.id, existing.submitted_at, created=False)

    sequence = session.execute(
        update(Round).where(Round.id == row.id)  # type: ignore[arg-type]
        .values(last_sequence=Round.last_sequence + 1).returning(Round.last_sequence)
    ).scalar_one()
    reference = make_reference(row.id, sequence)
    doc = prepared.document
    token = _token(settings, row.id, prepared.key)
    record = initial_record(actor=actor, role=role, at=prepared.submitted_at)
    dump = doc.model_dump(mode="json", exclude_unset=True)
    application = Application(
        reference=reference, round_id=row.id, party=doc.applicant.party, language=doc.applicant.language,
        title=doc.title, amount_requested=doc.amount_requested, status=record.to_status.value,
        applicant=dump["applicant"], form_a=dump.get("form_a"), form_b=dump.get("form_b"),
        form_c=dump.get("form_c"), channel=channel, submitted_at=prepared.submitted_at, created_at=now,
        access_token_hash=token_hash(token),
    )
    session.add(application)
    session.flush()
    assert application.id is not None
    public = PUBLIC_STATUS[record.to_status]
    session.add(StatusChange(application_id=application.id, key="submit", transition=record.transition,
                             from_status=None, to_status=record.to_status.value, public_status=public.value,
                             at=record.at))
    audit.record(session, at=now, actor=actor, role=role.value, action="application.submitted",
                 subject_type="application", subject_id=reference, to_status=record.to_status.value,
                 details={"channel": channel, "round": row.id, "party": doc.applicant.party,
                          "submitted_at": prepared.submitted_at.isoformat()})
    if prepared.key is not None:
        session.add(IntakeKey(round_id=row.id, key=prepared.key, request_hash=prepared.request_hash,
                              application_id=application.id, created_at=now))
    language = doc.applicant.language
    outbox.render_and_enqueue(
        session, key=f"receipt:{reference}", kind="receipt", recipient=str(doc.applicant.contact.email),
        language=language, at=now, round_id=row.id, application_id=application.id,
        context=dict(
            contact_name=doc.applicant.contact.name, reference=reference, round_title=definition.title_in(language),
            title=doc.title, party_name=party_names.get(doc.applicant.party, doc.applicant.party),
            submitted_at=prepared.submitted_at, timezone=definition.timezone, status=public.value,
            # Imported applications get their access code by e-mail; API submitters got it in the answer.
            access_token=token if channel == "import" else None,
            status_url=f"{settings.public_base_url.rstrip('/')}/applications/{reference}",
            programme_email=settings.programme_email,
        ),
    )
    return Receipt(reference, public, token, row.id, prepared.submitted_at, created=True)


def _parties(session: Session) -> dict[str, str]:
    return dict(session.exec(select(PartyRow.iso3, PartyRow.name)).all())


def submit_application(engine: Engine, settings: Settings, round_id: str, body: bytes | str, *,
                       channel: Channel = "api", idempotency_key: str | None = None, actor: str = "applicant",
                       role: Role = Role.APPLICANT, now: datetime) -> Receipt:
    """Take in one application in its own transaction."""
    for attempt in (1, 2):
        try:
            with unit_of_work(engine) as session:
                row = get_round(session, round_id)
                definition = definition_of(row)
                parties = _parties(session)
                prepared = _prepare(row, definition, body, channel=channel, idempotency_key=idempotency_key,
                                    now=now, known_parties=set(parties))
                return _write(session, row, definition, prepared, channel=channel, actor=actor, role=role,
                              now=now, settings=settings, party_names=parties)
        except IntegrityError:
            # A concurrent submission with the same idempotency key won the race;
            # the second attempt finds it and answers with its receipt.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- imports by the secretariat ------------------------------------------------

@dataclass
class ImportItem:
    name: str
    reference: str | None = None
    created: bool = False
    errors: list[FieldError] = field(default_factory=list)
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.reference is not None


@dataclass
class ImportReport:
    round_id: str
    items: list[ImportItem] = field(default_factory=list)

    @property
    def imported(self) -> list[ImportItem]:
        return [i for i in self.items if i.ok and i.created]

    @property
    def already_imported(self) -> list[ImportItem]:
        return [i for i in self.items if i.ok and not i.created]

    @property
    def failed(self) -> list[ImportItem]:
        return [i for i in self.items if not i.ok]


def import_key(content: bytes) -> str:
    """Importing the same file twice is recognised by its content."""
    return "import-sha256:" + hashlib.sha256(content).hexdigest()


def iter_application_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named on the command line, and the *.json files of named folders."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        else:
            yield path


def import_batch(engine: Engine, settings: Settings, round_id: str, items: list[tuple[str, bytes]], *,
                 actor: str, now: datetime) -> list[ImportItem]:
    """Import a batch of files in one transaction: the bad ones are reported and the
    good ones stored. Re-importing a file already imported returns its reference."""
    results = [ImportItem(name) for name, _ in items]
    try:
        with unit_of_work(engine) as session:
            row = get_round(session, round_id)
            definition = definition_of(row)
            parties = _parties(session)
            for result, (_name, content) in zip(results, items, strict=True):
                try:
                    prepared = _prepare(row, definition, content, channel="import", idempotency_key=import_key(content),
                                        now=now, known_parties=set(parties))
                except ServiceError as exc:
                    result.errors, result.message = exc.errors, exc.message
                    continue
                receipt = _write(session, row, definition, prepared, channel="import", actor=actor,
                                 role=Role.SECRETARIAT, now=now, settings=settings, party_names=parties)
                result.reference, result.created = receipt.reference, receipt.created
        return results
    except IntegrityError:
        pass  # a concurrent import of the same file: redo this batch one file at a time
    for result, (_name, content) in zip(results, items, strict=True):
        if result.errors or result.message:
            continue
        try:
            receipt = submit_application(engine, settings, round_id, content, channel="import",
                                         idempotency_key=import_key(content), actor=actor, role=Role.SECRETARIAT,
                                         now=now)
            result.reference, result.created = receipt.reference, receipt.created
        except ServiceError as exc:
            result.errors, result.message = exc.errors, exc.message
    return results


def read_file(path: Path, limit: int) -> tuple[bytes | None, str | None]:
    """The file's bytes, or why it cannot be read."""
    try:
        size = path.stat().st_size
        if size > limit:
            return None, f"the file is {size / 1e6:.1f} MB; an application is at most {limit / 1e6:.1f} MB"
        return path.read_bytes(), None
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"
