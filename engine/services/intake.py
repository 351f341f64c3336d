"""Intake of applications (format `sip-application/1`): one service behind the API's
submit call and the secretariat's import.

An application is durable before the answer: the application, its first status
change, the audit event, the idempotency key and the receipt notification commit in
one transaction, or none of them does."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import ARRAY, Engine, String, bindparam, column, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.application import (
    ApplicationDocument,
    DocumentError,
    FieldError,
    load_json,
    validate_document,
)
from domain.hints import Hint, Step
from domain.lifecycle import PUBLIC_STATUS, PublicStatus, Role, initial_record
from domain.references import make_reference
from domain.rounds import RoundDefinition, RoundStatus, accepts_applications, accepts_import
from engine.db import unit_of_work
from engine.services import audit, outbox
from engine.services.errors import Conflict, InvalidInput, NotAccepting, ServiceError
from engine.services.parties import PartyNames, party_names
from engine.services.rounds import definition_of, get_round
from engine.services.tokens import derive_token, random_access_code, token_hash
from engine.settings import Settings
from engine.tables import Application, IntakeKey, Round, StatusChange, table_of
from notifications import ACCESS_CODE_PLACEHOLDER, render_many

#: How an application came in: the API, the secretariat's import, the applicant's portal.
Channel = Literal["api", "import", "portal"]
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


def api_key(header: str) -> str:
    """An applicant's Idempotency-Key, in its own namespace (an import's key is the
    file's hash, which an applicant must not be able to name)."""
    return f"api:{header}"


def import_key(content: bytes) -> str:
    """Importing the same file twice is recognised by its content."""
    return "import-sha256:" + hashlib.sha256(content).hexdigest()


def _request_hash(body: bytes | str) -> str:
    """A retry sends the same bytes; anything else under the same key is a conflict."""
    return hashlib.sha256(body if isinstance(body, bytes) else body.encode()).hexdigest()


def _received_error(value: Any, row: Round, definition: RoundDefinition, now: datetime) -> FieldError | None:
    """An import's receipt time (or now, if it has none) must fall inside the round."""
    if value is not None:
        try:
            received = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None  # the format's own check reports it
        if received is None or received.tzinfo is None:
            return None
    else:
        received = now
    if accepts_import(row.status, definition, received):
        return None
    return FieldError(
        path="$.received_at" if value is not None else "$",
        message=f"received {_when(received, definition)}, outside the round ({_when(definition.opens_at, definition)}"
        f" to {_when(definition.closes_at, definition)})"
        + ("" if value is not None else "; give the receipt time in received_at"),
    )


def _document_errors(
    data: dict[str, Any], row: Round, definition: RoundDefinition, channel: Channel, now: datetime, known: set[str]
) -> list[FieldError]:
    """What only intake can judge, read from the raw document so that it is reported
    together with the format's own errors: the round, the receipt time, and Party
    codes of the right shape that are not in the register."""
    errors = []
    if isinstance(data.get("round"), str) and data["round"] != row.id:
        errors.append(FieldError(path="$.round", message=f"is {data['round']!r}, but this is round {row.id!r}"))
    if channel != "import" and "received_at" in data:
        errors.append(
            FieldError(path="$.received_at", message="is only for applications the secretariat imports; leave it out")
        )
    if channel == "import" and (late := _received_error(data.get("received_at"), row, definition, now)):
        errors.append(late)
    applicant = data.get("applicant")
    if isinstance(applicant, dict):
        found: list[tuple[str, Any]] = [("$.applicant.party", applicant.get("party"))]
        co = applicant.get("co_applicants")
        if isinstance(co, list):
            found += [(f"$.applicant.co_applicants[{i}]", c) for i, c in enumerate(co)]
        errors += [
            FieldError(
                path=path,
                message=f"{code} is not in the Parties register; if this Party has joined the "
                "Convention, the secretariat must add it to the register",
            )
            for path, code in found
            if isinstance(code, str) and _PARTY_CODE.match(code) and code not in known
        ]
    return errors


def _check_round_accepts(row: Round, definition: RoundDefinition, channel: Channel, now: datetime) -> None:
    stored = row.status
    if channel == "import":
        if stored not in (RoundStatus.OPEN, RoundStatus.CLOSED):
            raise NotAccepting(
                f"round {row.id} is {stored}; applications can be imported only while it is "
                "open or closed, before screening starts",
                hints=(Hint(Step.OPEN_ROUND, round_id=row.id),) if stored is RoundStatus.DRAFT else (),
            )
        return
    if accepts_applications(stored, definition, now):
        return
    if now < definition.opens_at:
        raise NotAccepting(f"round {row.id} is not open yet; it opens at {_when(definition.opens_at, definition)}")
    if stored is RoundStatus.DRAFT and now <= definition.closes_at:
        raise NotAccepting(
            f"round {row.id} has not been opened by the secretariat yet; try again later or contact the secretariat"
        )
    raise NotAccepting(
        f"round {row.id} closed for applications at {_when(definition.closes_at, definition)}; "
        "contact the secretariat if your application could not be sent in time"
    )


def check_accepting(row: Round, definition: RoundDefinition, now: datetime) -> None:
    """`NotAccepting`, saying when it opens or closed, unless the round takes applications now."""
    _check_round_accepts(row, definition, "api", now)


def accepting(row: Round, definition: RoundDefinition, now: datetime) -> bool:
    return accepts_applications(row.status, definition, now)


def check_import(session: Session, round_id: str) -> None:
    """What an import refuses before reading any file: an unknown round, or one that
    was never opened (a draft round holds no application, so nothing could be answered
    with its receipt). A round past its close is left to the import itself: a file
    imported before is still answered with its receipt."""
    row = get_round(session, round_id)
    if row.status is RoundStatus.DRAFT:
        _check_round_accepts(row, definition_of(row), "import", datetime.now(UTC))


def _prepare(
    row: Round,
    definition: RoundDefinition,
    body: bytes | str,
    *,
    channel: Channel,
    key: str | None,
    now: datetime,
    known_parties: set[str],
) -> _Prepared:
    """Check that the round takes the application now and validate it; every
    offending field is reported together. Writes nothing."""
    _check_round_accepts(row, definition, channel, now)
    errors: list[FieldError] = []
    data: Any = None
    document = None
    try:
        data = load_json(body)
        document = validate_document(data)
    except DocumentError as exc:
        errors = exc.errors
    if isinstance(data, dict):
        errors += _document_errors(data, row, definition, channel, now, known_parties)
    if errors or document is None:
        listing = "; ".join(f"{e.path}: {e.message}" for e in errors)
        raise InvalidInput(f"the application is not valid sip-application/1: {listing}", errors)
    submitted_at = (document.received_at or now) if channel == "import" else now
    return _Prepared(document, key, _request_hash(body), submitted_at)


def _token(settings: Settings, round_id: str, key: str | None, stored_hash: str | None = None) -> str:
    """The access code: derived from the idempotency key where there is one (so a retry is
    answered with it again; `stored_hash`: in the format it was first given in)."""
    return derive_token(settings.key(), round_id, key, stored_hash) if key else random_access_code()


_Known = dict[str, tuple[str, Application]]


def _known_keys(session: Session, round_id: str, keys: set[str]) -> _Known:
    """The applications already taken in under these idempotency keys."""
    if not keys:
        return {}
    query = select(IntakeKey.key, IntakeKey.request_hash, Application).join(
        Application, col(Application.id) == IntakeKey.application_id
    )
    if session.get_bind().dialect.name == "postgresql":
        # Each key looked up in the (round, key) index, the keys passed as one array: with
        # `key IN (…)`, a planner that takes the round for a few rows (before its table's
        # statistics catch up with an import) reads every key of the round and compares
        # it with each of the batch's, a cost that grows with the round.
        given = (
            func.unnest(bindparam("keys", type_=ARRAY(String)))
            .table_valued(column("key", String))
            .render_derived(name="given")
        )
        query = query.join(given, given.c.key == IntakeKey.key).where(IntakeKey.round_id == round_id)
        found = session.execute(query, {"keys": sorted(keys)}).all()
    else:
        found = session.execute(query.where(IntakeKey.round_id == round_id, col(IntakeKey.key).in_(keys))).all()
    return {key: (request_hash, application) for key, request_hash, application in found}


def _replay(known: _Known, key: str, request_hash: str, round_id: str, settings: Settings) -> Receipt | Conflict:
    """The first receipt for a repeated request; a different request under the same
    key is a conflict."""
    first_hash, application = known[key]
    if first_hash != request_hash:
        shown = key.removeprefix("api:")
        return Conflict(
            f"Idempotency-Key {shown!r} was already used for application {application.reference}, "
            "with different content; use a new key for a different application"
        )
    return Receipt(
        application.reference,
        PUBLIC_STATUS[application.status],
        _token(settings, round_id, key, application.access_token_hash),
        round_id,
        application.submitted_at,
        created=False,
    )


def _write_many(
    session: Session,
    row: Round,
    definition: RoundDefinition,
    batch: list[_Prepared],
    known: _Known,
    *,
    channel: Channel,
    actor: str,
    role: Role,
    now: datetime,
    settings: Settings,
    party_names: PartyNames,
) -> list[Receipt | ServiceError]:
    """Store a batch of validated applications in the caller's transaction: one
    sequence update and one insert per table. `known` holds the idempotency keys
    already taken in (their first receipt is returned again)."""
    results: list[Receipt | ServiceError | None] = [None] * len(batch)
    fresh: list[int] = []  # positions of the applications to create
    first_in_batch: dict[str, int] = {}
    for position, prepared in enumerate(batch):
        key = prepared.key
        if key is not None and key in known:
            results[position] = _replay(known, key, prepared.request_hash, row.id, settings)
        elif key is not None and key in first_in_batch:
            continue  # the same request twice in one batch: answered like the first, below
        else:
            if key is not None:
                first_in_batch[key] = position
            fresh.append(position)

    if fresh:
        last = session.execute(
            update(Round)
            .where(col(Round.id) == row.id)
            .values(last_sequence=col(Round.last_sequence) + len(fresh))
            .returning(col(Round.last_sequence))
        ).scalar_one()
        first_number = last - len(fresh) + 1
        records, tokens, application_rows = {}, {}, []
        for offset, position in enumerate(fresh):
            prepared = batch[position]
            doc = prepared.document
            tokens[position] = _token(settings, row.id, prepared.key)
            records[position] = initial_record(actor=actor, role=role, at=prepared.submitted_at)
            dump = doc.model_dump(mode="json", exclude_unset=True)
            application_rows.append(
                dict(
                    reference=make_reference(row.id, first_number + offset),
                    round_id=row.id,
                    party=doc.applicant.party,
                    language=doc.applicant.language,
                    title=doc.title,
                    amount_requested=doc.amount_requested,
                    status=records[position].to_status,
                    version=1,
                    applicant=dump["applicant"],
                    form_a=dump.get("form_a"),
                    form_b=dump.get("form_b"),
                    form_c=dump.get("form_c"),
                    channel=channel,
                    submitted_at=prepared.submitted_at,
                    created_at=now,
                    access_token_hash=token_hash(tokens[position]),
                )
            )
        table = table_of(Application)
        session.execute(insert(table), application_rows)
        # Read the ids back by reference: cheaper on PostgreSQL than INSERT ... RETURNING
        # for a batch, which psycopg sends as one very long statement.
        references = [values["reference"] for values in application_rows]
        id_of: dict[str, int] = dict(
            session.execute(select(table.c.reference, table.c.id).where(table.c.reference.in_(references))).all()
        )
        changes, events, key_rows = [], [], []
        # The receipts, rendered together per language (and status): what they share once,
        # each applicant's own values for each (`notifications.render_many`).
        messages: list[dict[str, Any]] = []
        receipts: dict[tuple[str, str], list[int]] = {}
        for position, values in zip(fresh, application_rows, strict=True):
            prepared, record, reference = batch[position], records[position], values["reference"]
            doc, application_id = prepared.document, id_of[reference]
            public = PUBLIC_STATUS[record.to_status]
            changes.append(audit.history_values(record, application_id=application_id, key="submit"))
            events.append(
                audit.audit_values(
                    record,
                    reference=reference,
                    recorded_at=now,
                    details={"channel": channel, "round": row.id, "party": doc.applicant.party},
                )
            )
            if prepared.key is not None:
                key_rows.append(
                    dict(
                        round_id=row.id,
                        key=prepared.key,
                        request_hash=prepared.request_hash,
                        application_id=application_id,
                        created_at=now,
                    )
                )
            language = doc.applicant.language
            receipts.setdefault((language, public.value), []).append(len(messages))
            messages.append(
                dict(
                    key=f"receipt:{reference}",
                    recipient=str(doc.applicant.contact.email),
                    application_id=application_id,
                    values=dict(
                        contact_name=doc.applicant.contact.name,
                        reference=reference,
                        title=doc.title,
                        party_name=party_names.name(doc.applicant.party, language),
                        submitted_at=prepared.submitted_at,
                        status_url=status_page_url(settings, reference, language),
                    ),
                )
            )
            results[position] = Receipt(
                reference, public, tokens[position], row.id, prepared.submitted_at, created=True
            )
        session.execute(insert(table_of(StatusChange)), changes)
        audit.append(session, events)
        if key_rows:
            session.execute(insert(table_of(IntakeKey)), key_rows)
        rows: list[dict[str, Any]] = [{}] * len(messages)
        for (in_language, status), positions in receipts.items():
            common = dict(
                language=in_language,
                round_title=definition.title_in(in_language),
                timezone=definition.timezone,
                status=status,
                # Imported applications and the portal's get their access code by e-mail (filled in at
                # delivery, so the outbox never holds it); API submitters got it in the answer.
                access_token=ACCESS_CODE_PLACEHOLDER if channel != "api" else None,
                programme_email=settings.programme_email,
            )
            rendered = render_many("receipt", in_language, common, [messages[p]["values"] for p in positions])
            for p, message in zip(positions, rendered, strict=True):
                rows[p] = outbox.message_row(
                    key=messages[p]["key"],
                    kind="receipt",
                    recipient=messages[p]["recipient"],
                    at=now,
                    round_id=row.id,
                    application_id=messages[p]["application_id"],
                    message=message,
                )
        outbox.enqueue_fresh(session, rows)  # keys of references given above

    answers: list[Receipt | ServiceError] = []
    for position, prepared in enumerate(batch):
        answer = results[position]
        if answer is None:  # a repeat of an earlier request of this batch, answered like the first
            assert prepared.key is not None
            first = answers[first_in_batch[prepared.key]]
            answer = replace(first, created=False) if isinstance(first, Receipt) else first
        answers.append(answer)
    return answers


def status_page_url(settings: Settings, reference: str, language: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/status?reference={reference}&lang={language}"


def submit_application(
    engine: Engine,
    settings: Settings,
    round_id: str,
    body: bytes | str,
    *,
    channel: Channel = "api",
    idempotency_key: str | None = None,
    actor: str = "applicant",
    role: Role = Role.APPLICANT,
    now: datetime,
    then: Callable[[Session, Receipt], None] | None = None,
) -> Receipt:
    """Take in one application in its own transaction. `idempotency_key` is the
    applicant's header (API), `import_key(content)` (import) or the draft's (portal).
    `then`: what else to do in the same transaction with the receipt (the portal marks
    its draft submitted)."""
    key = None if idempotency_key is None else (api_key(idempotency_key) if channel == "api" else idempotency_key)
    for attempt in (1, 2):
        try:
            with unit_of_work(engine) as session:
                # Locks the round: a close cannot commit while an intake is under way.
                row = get_round(session, round_id, for_update=True)
                known = _known_keys(session, row.id, {key} if key else set())
                if key in known:  # a retry is answered even after the deadline
                    result: Receipt | ServiceError = _replay(known, key, _request_hash(body), row.id, settings)
                else:
                    definition = definition_of(row)
                    parties = party_names(session)
                    prepared = _prepare(
                        row, definition, body, channel=channel, key=key, now=now, known_parties=parties.codes()
                    )
                    [result] = _write_many(
                        session,
                        row,
                        definition,
                        [prepared],
                        known,
                        channel=channel,
                        actor=actor,
                        role=role,
                        now=now,
                        settings=settings,
                        party_names=parties,
                    )
                if isinstance(result, ServiceError):
                    raise result
                if then is not None:
                    then(session, result)
                return result
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


def iter_application_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named on the command line, and the *.json files of named folders."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        else:
            yield path


def import_batch(
    engine: Engine, settings: Settings, round_id: str, items: list[tuple[str, bytes]], *, actor: str, now: datetime
) -> list[ImportItem]:
    """Import a batch of files in one transaction: the bad ones are reported and the
    good ones stored. Re-importing a file already imported returns its reference."""
    results = [ImportItem(name) for name, _ in items]
    try:
        with unit_of_work(engine) as session:
            row = get_round(session, round_id, for_update=True)
            definition = definition_of(row)
            parties = party_names(session)
            known_parties = parties.codes()
            keys = [import_key(content) for _, content in items]
            # A file already imported is answered with its receipt, whatever the round's state now.
            known = _known_keys(session, row.id, set(keys))
            valid: list[tuple[ImportItem, _Prepared]] = []
            for result, (_name, content), key in zip(results, items, keys, strict=True):
                if key in known:
                    replayed = _replay(known, key, _request_hash(content), row.id, settings)
                    assert isinstance(replayed, Receipt)  # the key is the content's hash: never a conflict
                    result.reference, result.created = replayed.reference, False
                    continue
                try:
                    valid.append(
                        (
                            result,
                            _prepare(
                                row,
                                definition,
                                content,
                                channel="import",
                                key=key,
                                now=now,
                                known_parties=known_parties,
                            ),
                        )
                    )
                except ServiceError as exc:
                    result.errors, result.message = exc.errors, exc.message
            written = _write_many(
                session,
                row,
                definition,
                [p for _, p in valid],
                known,
                channel="import",
                actor=actor,
                role=Role.SECRETARIAT,
                now=now,
                settings=settings,
                party_names=parties,
            )
            for (result, _), outcome in zip(valid, written, strict=True):
                if isinstance(outcome, ServiceError):
                    result.errors, result.message = outcome.errors, outcome.message
                else:
                    result.reference, result.created = outcome.reference, outcome.created
        return results
    except IntegrityError:
        pass  # a concurrent import of the same file: redo this batch one file at a time
    for result, (_name, content) in zip(results, items, strict=True):
        if result.errors or result.message:
            continue
        try:
            receipt = submit_application(
                engine,
                settings,
                round_id,
                content,
                channel="import",
                idempotency_key=import_key(content),
                actor=actor,
                role=Role.SECRETARIAT,
                now=now,
            )
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
