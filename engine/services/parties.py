"""The Parties register: the shipped default (`engine/data/parties.csv`) and its
replacement by the secretariat (`sip parties load FILE`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import delete
from sqlmodel import Session, col, select

from domain.application import FieldError
from domain.lifecycle import Role
from domain.parties import Party
from engine.services import audit
from engine.services.csvfile import all_or_nothing, csv_rows, row_errors
from engine.services.errors import InvalidInput
from engine.tables import PartyRecord
from notifications import party_name

DEFAULT_REGISTER = Path(__file__).resolve().parent.parent / "data" / "parties.csv"
COLUMNS = ["iso3", "iso2", "name", "un_regional_group", "party_since", "ldc", "sids", "economy", "source_note"]


def parse_parties(text: str, source: str) -> list[Party]:
    """Every row is checked; all problems are reported together, by line."""
    errors: list[FieldError] = []
    parties: list[Party] = []
    seen: dict[str, int] = {}
    for line, row in csv_rows(text, source, COLUMNS):
        cleaned = {k: v or None for k, v in row.items()}
        try:
            party = Party.model_validate(cleaned)
        except ValidationError as exc:
            errors += row_errors(exc, f"{source}:{line}: ")
            continue
        if party.iso3 in seen:
            errors.append(
                FieldError(
                    path=f"{source}:{line}: iso3",
                    message=f"duplicate code {party.iso3} (first on line {seen[party.iso3]})",
                )
            )
            continue
        seen[party.iso3] = line
        parties.append(party)
    return all_or_nothing(parties, errors, source, what="Parties", unchanged="the register was not changed")


def read_parties_file(path: Path) -> list[Party]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the Parties file: {exc}") from None
    return parse_parties(text, str(path))


def replace_register(
    session: Session, parties: list[Party], *, source: str, actor: str, at: datetime
) -> dict[str, int]:
    """Replace the whole register in the caller's transaction; audited with counts."""
    before = {p.iso3: p for p in session.exec(select(PartyRecord)).all()}
    new = {p.iso3: p for p in parties}
    added = sorted(set(new) - set(before))
    removed = sorted(set(before) - set(new))
    changed = sorted(
        code for code in set(new) & set(before) if Party.model_validate(before[code], from_attributes=True) != new[code]
    )
    session.exec(delete(PartyRecord))
    session.add_all(PartyRecord(**p.model_dump()) for p in parties)
    counts = {"parties": len(parties), "added": len(added), "removed": len(removed), "changed": len(changed)}
    audit.record(
        session,
        at=at,
        actor=actor,
        role=Role.SECRETARIAT,
        action="parties.replaced",
        subject_type="register",
        subject_id="parties",
        details={"source": source, **counts, "added_codes": added, "removed_codes": removed, "changed_codes": changed},
    )
    return counts


@dataclass(frozen=True)
class PartyNames:
    """The names of the register's Parties (or of some of them), for a reader of any
    language: `name(code, language)`; a code the register does not hold is its own name."""

    records: dict[str, tuple[str, str]]  # ISO alpha-3 code -> (alpha-2 code, the register's name)

    def name(self, code: str, language: str = "en") -> str:
        found = self.records.get(code)
        return code if found is None else party_name(found[0], found[1], language)

    def __contains__(self, code: object) -> bool:
        return code in self.records

    def codes(self) -> set[str]:
        return set(self.records)


def party_names(session: Session, codes: set[str] | None = None) -> PartyNames:
    """The names of the register's Parties (or of `codes` only)."""
    statement = select(PartyRecord.iso3, PartyRecord.iso2, PartyRecord.name)
    if codes is not None:
        statement = statement.where(col(PartyRecord.iso3).in_(codes))
    return PartyNames({iso3: (iso2, name) for iso3, iso2, name in session.exec(statement).all()})


def list_parties(session: Session) -> list[PartyRecord]:
    """The register, by ISO code."""
    return list(session.exec(select(PartyRecord).order_by(col(PartyRecord.iso3))).all())
