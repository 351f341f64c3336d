"""The secretariat's screening report of a round: every application with its
outcome, grouped by UN region, with LDC and SIDS shown, as HTML and CSV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlmodel import Session, col, select

from domain.lifecycle import APPRAISED_STATUSES, Status
from domain.rounds import CriterionKind
from engine.services.csvfile import csv_text
from engine.services.parties import party_names
from engine.services.rounds import definition_of, get_round
from engine.tables import Application, PartyRecord, ScreeningRecord
from notifications.labels import check_title

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
REGIONS = {
    "AFRICA": "Africa",
    "ASIA_PACIFIC": "Asia-Pacific",
    "CEE": "Central and Eastern Europe",
    "GRULAC": "Latin America and the Caribbean",
    "WEOG": "Western European and Others",
    None: "No region",
}


@dataclass(frozen=True)
class ReportRow:
    rank: int | None  # among the applications that passed screening, by weighted score
    reference: str
    party: str
    party_name: str
    region: str
    ldc: bool
    sids: bool
    title: str | None
    amount_requested: Decimal | None
    status: Status
    verdict: str  # the screening verdict (as text: the committee's bundles fingerprint it), or "not screened"
    overridden: str  # the automatic verdict a person replaced, if any
    failed: str  # ids of the failed checks
    needs_judgement: str
    weighted_score: Decimal | None
    scored_weight: Decimal | None  # the share (0-100 %) of the criteria's weight the score covers so far
    unscored: str  # judgement criteria not scored yet (ids)


def report_rows(session: Session, round_id: str) -> list[ReportRow]:
    """Every application of the round with its screening outcome. A weighted score is
    given only once a person has scored at least one of the round's judgement criteria
    (before that it would be the engine's own checks alone, e.g. "100" on 9 % of the
    weight), and a rank only once every application that passed screening is scored on
    every judgement criterion: no ranking is presented before it is final."""
    judgements = {
        c.id for c in definition_of(get_round(session, round_id)).criteria if c.kind is CriterionKind.JUDGEMENT
    }
    found = session.exec(
        select(Application, ScreeningRecord, PartyRecord)
        .join(ScreeningRecord, col(ScreeningRecord.application_id) == Application.id, isouter=True)
        .join(PartyRecord, col(PartyRecord.iso3) == Application.party, isouter=True)
        .where(Application.round_id == round_id)
        .order_by(col(Application.id))
    ).all()
    regions = list(REGIONS)
    found = sorted(found, key=lambda r: regions.index(r[2].un_regional_group if r[2] else None))  # by region
    unscored = {
        a.reference: {c["id"] for c in (r.appraisal if r else []) if c["score"] is None} & judgements
        for a, r, _ in found
    }
    judged = {ref for ref, missing in unscored.items() if len(missing) < len(judgements)}
    appraised = [(a, r) for a, r, _ in found if a.status in APPRAISED_STATUSES]
    final = bool(appraised) and all(r is not None and r.weighted_score is not None for _, r in appraised)
    final = final and not any(unscored[a.reference] for a, _ in appraised)
    # Equal scores share a rank (1, 1, 3, ...): the scores in order, each ranked by the first of its value.
    ordered = sorted((r.weighted_score for _, r in appraised if r and r.weighted_score is not None), reverse=True)
    first: dict[Decimal, int] = {}
    for position, value in enumerate(ordered, 1):
        first.setdefault(value, position)
    rows = []
    for application, record, party in found:
        checks = record.checks if record else []
        score = record.weighted_score if record and application.reference in judged else None
        rows.append(
            ReportRow(
                rank=first.get(score)
                if final and score is not None and application.status in APPRAISED_STATUSES
                else None,
                reference=application.reference,
                party=application.party,
                party_name=party.name if party else application.party,
                region=REGIONS.get(party.un_regional_group if party else None, "No region"),
                ldc=bool(party and party.ldc),
                sids=bool(party and party.sids),
                title=application.title,
                amount_requested=application.amount_requested,
                status=application.status,
                verdict=(record.override or {}).get("verdict", record.verdict.value) if record else "not screened",
                overridden=(record.override or {}).get("automatic", "") if record else "",
                failed=" ".join(c["id"] for c in checks if c["outcome"] == "fail"),
                needs_judgement=" ".join(c["id"] for c in checks if c["outcome"] == "needs_judgement"),
                weighted_score=score,
                scored_weight=_scored_weight(record.appraisal) if record and record.appraisal else None,
                unscored=" ".join(c["id"] for c in (record.appraisal if record else []) if c["score"] is None),
            )
        )
    return rows


def _scored_weight(appraisal: list[dict[str, Any]]) -> Decimal:
    total = sum((Decimal(c["weight"]) for c in appraisal), Decimal(0))
    scored = sum((Decimal(c["weight"]) for c in appraisal if c["score"] is not None), Decimal(0))
    return (scored / total * 100).quantize(Decimal("1")) if total else Decimal(0)


def report_csv(rows: list[ReportRow]) -> str:
    names = list(ReportRow.__dataclass_fields__)
    return csv_text(names, ([getattr(row, n) for n in names] for row in rows))


def _by_region(rows: list[ReportRow]) -> Iterator[tuple[str, list[ReportRow]]]:
    for region in REGIONS.values():
        members = [r for r in rows if r.region == region]
        if members:
            yield region, members


@lru_cache
def documents() -> Environment:
    """The Jinja2 environment of the secretariat's and the committee's documents
    (reports, bundles): autoescaped, strict about missing variables."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def report_html(session: Session, round_id: str, rows: list[ReportRow]) -> str:
    """The screening report as the secretariat and the committee read it: checks and
    criteria by their titles, failures marked by a symbol and a word as well as colour,
    a weighted score only where a person has scored a judgement criterion (with the share
    of the weight it covers), and a ranking only once every judgement criterion is scored
    for every application that passed screening."""
    definition = definition_of(get_round(session, round_id))
    env = documents()
    verdicts: dict[str, int] = {}
    for row in rows:
        verdicts[row.verdict] = verdicts.get(row.verdict, 0) + 1
    judgements = {c.id for c in definition.criteria if c.kind is CriterionKind.JUDGEMENT}
    titles = {c.id: c.title for c in definition.criteria}
    appraised = [r for r in rows if r.status in APPRAISED_STATUSES]
    missing = sum(len(judgements & set(r.unscored.split())) for r in appraised)
    names = party_names(
        session,
        {part.split(":", 1)[1] for r in rows for part in (r.failed + " " + r.needs_judgement).split() if ":" in part},
    )
    return env.get_template("screening_report.html").render(
        definition=definition,
        regions=list(_by_region(rows)),
        verdicts=sorted(verdicts.items()),
        total=len(rows),
        generated=datetime.now(UTC).astimezone(definition.zone),
        criteria=definition.criteria,
        ranked=bool(appraised) and missing == 0,
        missing=missing,
        check=lambda check_id: check_title(check_id, "en", names),
        criterion=lambda criterion_id: titles.get(criterion_id, criterion_id),
        judgements=judgements,
    )


def write_report(session: Session, round_id: str, folder: Path) -> tuple[Path, Path]:
    rows = report_rows(session, round_id)
    folder.mkdir(parents=True, exist_ok=True)
    html, text = folder / f"screening-{round_id}.html", folder / f"screening-{round_id}.csv"
    html.write_text(report_html(session, round_id, rows), encoding="utf-8")
    text.write_text(report_csv(rows), encoding="utf-8")
    return html, text
