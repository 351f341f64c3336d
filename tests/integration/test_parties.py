from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from engine.db import unit_of_work
from engine.services.errors import InvalidInput
from engine.services.parties import DEFAULT_REGISTER, read_parties_file, replace_register
from engine.services.setup import Runtime
from engine.tables import AuditEvent, PartyRecord

HEADER = "iso3,iso2,name,un_regional_group,party_since,ldc,sids,economy,source_note\n"


def test_the_shipped_register_is_loaded_by_default(rt: Runtime) -> None:
    with unit_of_work(rt.engine) as session:
        assert session.exec(select(func.count()).select_from(PartyRecord)).one() == 138
        benin = session.get(PartyRecord, "BEN")
        cameroon = session.get(PartyRecord, "CMR")
    assert benin is not None and (benin.un_regional_group, benin.ldc, benin.economy) == ("AFRICA", True, "developing")
    assert cameroon is not None and cameroon.party_since is None  # unknown date stays unknown


def test_a_register_with_a_duplicate_code_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "parties.csv"
    path.write_text(
        HEADER + "BEN,BJ,Benin,AFRICA,2017-08-16,true,false,developing,\n"
        "TGO,TG,Togo,AFRICA,2017-08-16,true,false,developing,\n"
        "BEN,BJ,Benin again,AFRICA,2017-08-16,true,false,developing,\n"
    )
    with pytest.raises(InvalidInput) as caught:
        read_parties_file(path)
    assert [(e.path, e.message) for e in caught.value.errors] == [
        (f"{path}:4: iso3", "duplicate code BEN (first on line 2)")
    ]


def test_every_bad_row_of_a_register_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "parties.csv"
    path.write_text(
        HEADER + "benin,BJ,Benin,AFRICA,2017-08-16,true,false,developing,\n"
        "TGO,TG,Togo,AFRIKA,someday,maybe,false,rich,\n"
    )
    with pytest.raises(InvalidInput) as caught:
        read_parties_file(path)
    assert {e.path.rsplit(": ", 1)[1] for e in caught.value.errors} == {
        "iso3",
        "un_regional_group",
        "party_since",
        "ldc",
        "economy",
    }


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "parties.csv"
    path.write_text("code,name\nBEN,Benin\n")
    with pytest.raises(InvalidInput, match="missing columns iso3, iso2"):
        read_parties_file(path)


def test_replacing_the_register_is_audited_with_what_changed(rt: Runtime, tmp_path: Path) -> None:
    lines = DEFAULT_REGISTER.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("CHE,")]
    kept.append("TTO,TT,Trinidad and Tobago,GRULAC,2026-09-24,false,true,developing,test\n")
    path = tmp_path / "parties.csv"
    path.write_text("".join(kept))
    with unit_of_work(rt.engine) as session:
        counts = replace_register(session, read_parties_file(path), source=str(path), actor="officer", at=rt.now())
    assert counts == {"parties": 138, "added": 1, "removed": 1, "changed": 0}
    with unit_of_work(rt.engine) as session:
        assert session.get(PartyRecord, "CHE") is None and session.get(PartyRecord, "TTO") is not None
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "parties.replaced", AuditEvent.actor == "officer")
        ).one()
        assert event.details["added_codes"] == ["TTO"] and event.details["removed_codes"] == ["CHE"]
