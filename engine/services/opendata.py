"""After the committee's decisions: the round report (HTML and CSV: applications,
approvals and amounts by region, LDC and SIDS), the public list of approved projects,
and the awarded grants in the 360Giving Data Standard, validated against its official
schema before it is written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from sqlmodel import Session, col, select

from domain.committee import APPROVALS, Decision
from domain.hints import Hint, Step
from domain.lifecycle import Status
from domain.rounds import RoundStatus
from engine.services.applications import decision_letter_sent
from engine.services.csvfile import csv_text
from engine.services.errors import NotAllowed
from engine.services.report import REGIONS, TEMPLATES, documents
from engine.services.rounds import definition_of, get_round
from engine.settings import Settings
from engine.tables import Application, DecisionRecord, PartyRecord
from notifications.render import environment, party_name

SCHEMAS = Path(__file__).resolve().parent.parent / "data" / "360giving"


@dataclass(frozen=True)
class Line:
    reference: str
    party: str
    party_name: str
    iso2: str
    region: str
    ldc: bool
    sids: bool
    title: str | None
    requested: Decimal | None
    status: Status
    decision: Decision | None
    amount: Decimal | None
    conditions: str | None
    decided_on: str | None


def _decided(session: Session, round_id: str) -> str:
    row = get_round(session, round_id)
    if RoundStatus(row.status) not in (RoundStatus.DECIDED, RoundStatus.ARCHIVED):
        raise NotAllowed(
            f"round {round_id} is {row.status}; the report and the open data follow the committee's "
            "decisions on every application on its agenda",
            hints=(Hint(Step.LIST_DECISIONS, round_id=round_id),),
        )
    return row.status


def _announced(session: Session, round_id: str) -> set[str]:
    """The approvals the applicants have been told of (their letter is queued): only
    these are published."""
    return {
        a.reference
        for a in session.exec(
            select(Application)
            .join(DecisionRecord)
            .where(Application.round_id == round_id, col(DecisionRecord.decision).in_(APPROVALS))
        ).all()
        if decision_letter_sent(session, a)
    }


def lines(session: Session, round_id: str) -> list[Line]:
    found = session.exec(
        select(Application, DecisionRecord, PartyRecord)
        .join(DecisionRecord, col(DecisionRecord.application_id) == Application.id, isouter=True)
        .join(PartyRecord, col(PartyRecord.iso3) == Application.party, isouter=True)
        .where(Application.round_id == round_id)
        .order_by(Application.reference)
    ).all()
    return [
        Line(
            a.reference,
            a.party,
            p.name if p else a.party,
            p.iso2 if p else "",
            REGIONS.get(p.un_regional_group if p else None, "No region"),
            bool(p and p.ldc),
            bool(p and p.sids),
            a.title,
            a.amount_requested,
            a.status,
            d.decision if d else None,
            d.amount if d else None,
            d.conditions if d else None,
            d.decided_on.isoformat() if d else None,
        )
        for a, d, p in found
    ]


def _summary(rows: list[Line]) -> list[dict[str, Any]]:
    groups = [(region, [r for r in rows if r.region == region]) for region in REGIONS.values()]
    groups += [("LDC", [r for r in rows if r.ldc]), ("SIDS", [r for r in rows if r.sids]), ("All", rows)]
    return [
        dict(
            group=name,
            applications=len(members),
            requested=sum((r.requested or Decimal(0) for r in members), Decimal(0)),
            approved=sum(1 for r in members if r.decision in APPROVALS),
            awarded=sum((r.amount or Decimal(0) for r in members if r.decision in APPROVALS), Decimal(0)),
        )
        for name, members in groups
        if members
    ]


def write_round_report(
    session: Session, round_id: str, folder: Path, settings: Settings | None = None
) -> tuple[Path, ...]:
    """The round report (HTML, CSV), the public list of approved projects (HTML in English,
    French and Spanish, and CSV) and, with `settings`, the grants as 360Giving open data
    (JSON, once it validates and every approved applicant has been told), which the
    public list links to."""
    _decided(session, round_id)
    definition = definition_of(get_round(session, round_id))
    rows = lines(session, round_id)
    announced = _announced(session, round_id)
    approved = [r for r in rows if r.decision in APPROVALS and r.reference in announced]
    folder.mkdir(parents=True, exist_ok=True)
    env = documents()
    now = datetime.now(UTC).astimezone(definition.zone)
    generated = now.strftime("%Y-%m-%d %H:%M %Z")
    report = folder / f"round-{round_id}.html"
    report.write_text(
        env.get_template("round_report.html").render(
            definition=definition, rows=rows, summary=_summary(rows), generated=generated
        ),
        encoding="utf-8",
    )
    report_csv = folder / f"round-{round_id}.csv"
    report_csv.write_text(
        _csv(
            rows,
            [
                "reference",
                "party",
                "party_name",
                "region",
                "ldc",
                "sids",
                "title",
                "requested",
                "status",
                "decision",
                "amount",
                "conditions",
                "decided_on",
            ],
        ),
        encoding="utf-8",
    )
    grants = folder / f"grants-{round_id}.json"
    open_data: Path | None = None
    if settings is not None and not _untold(session, round_id, announced):
        open_data, _ = export_360giving(session, settings, round_id, grants)  # refused, saying why, if invalid
    else:  # not every approved applicant told yet: the open data waits (an older file of it goes)
        grants.unlink(missing_ok=True)
    versions = [(lc, name, public_list_name(round_id, lc)) for lc, name in PUBLIC_LANGUAGES]
    public_lists = []
    for language, _name, file_name in versions:
        path = folder / file_name
        path.write_text(
            environment(language, TEMPLATES)
            .get_template("approved_projects.html")
            .render(
                language=language,
                versions=versions,
                definition=definition,
                rows=approved,
                total=sum((r.amount or Decimal(0) for r in approved), Decimal(0)),
                party=lambda r, lang=language: party_name(r.iso2, r.party_name, lang),
                decided=lambda r: date.fromisoformat(r.decided_on),
                open_data=open_data.name if open_data else None,
                generated=format_date(now.date(), format="long", locale=language),
            ),
            encoding="utf-8",
        )
        public_lists.append(path)
    public_csv = folder / f"approved-{round_id}.csv"
    public_csv.write_text(
        _csv(approved, ["reference", "party_name", "region", "title", "amount", "decided_on"]), encoding="utf-8"
    )
    extra = (open_data,) if open_data else ()
    return (report, report_csv, public_lists[0], public_csv, *public_lists[1:], *extra)


#: The public list's languages, each named in itself.
PUBLIC_LANGUAGES = (("en", "English"), ("fr", "Français"), ("es", "Español"))


def _untold(session: Session, round_id: str, announced: set[str]) -> list[str]:
    """The approvals whose applicants have not been sent their letter yet."""
    approved = session.exec(
        select(Application.reference)
        .join(DecisionRecord)
        .where(Application.round_id == round_id, col(DecisionRecord.decision).in_(APPROVALS))
    ).all()
    return sorted(set(approved) - announced)


def public_list_name(round_id: str, language: str) -> str:
    """The public list's file: `approved-<round>.html` in English, `.fr.html`, `.es.html`."""
    return f"approved-{round_id}.html" if language == "en" else f"approved-{round_id}.{language}.html"


def _csv(rows: list[Line], columns: list[str]) -> str:
    return csv_text(columns, ([getattr(row, c) for c in columns] for row in rows))


# --- 360Giving ------------------------------------------------------------------------------


def grant_id(settings: Settings, reference: str) -> str:
    return f"{settings.grant_id_prefix}-{reference}"


def grants_package(session: Session, settings: Settings, round_id: str) -> dict[str, Any]:
    """The round's awarded grants as a 360Giving data package."""
    _decided(session, round_id)
    definition = definition_of(get_round(session, round_id))
    announced = _announced(session, round_id)
    untold = _untold(session, round_id, announced)
    if untold:
        raise NotAllowed(
            f"the applicants of {', '.join(untold)} have not been sent their letters; the open data "
            "follows the letters",
            hints=(Hint(Step.SEND_LETTERS, round_id=round_id),),
        )
    funder = {"id": settings.funder_org_id, "name": settings.funder_name}
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    grants = []
    for application, decision, party in session.exec(
        select(Application, DecisionRecord, PartyRecord)
        .join(DecisionRecord)
        .join(PartyRecord, col(PartyRecord.iso3) == Application.party, isouter=True)
        .where(Application.round_id == round_id, col(DecisionRecord.decision).in_(APPROVALS))
        .order_by(Application.reference)
    ).all():
        form_a = application.form_a or {}
        name = party.name if party else application.party
        grant: dict[str, Any] = {
            "id": grant_id(settings, application.reference),
            "title": application.title or application.reference,
            "description": form_a.get("summary") or form_a.get("objective") or application.title or "",
            "currency": definition.currency,
            "amountAppliedFor": float(application.amount_requested or 0),
            "amountAwarded": float(decision.amount or 0),
            "awardDate": decision.decided_on.isoformat(),
            "recipientOrganization": [
                {
                    "id": f"{settings.grant_id_prefix}-PARTY-{application.party}",
                    "name": f"Government of {name}",
                    "description": "Party to the Minamata Convention on Mercury; executing agency: "
                    + application.applicant.get("executing_agency", {}).get("name", "not given"),
                    **({"addressCountry": name} if party else {}),
                }
            ],
            "fundingOrganization": [funder],
            "grantProgramme": [{"code": definition.id, "title": definition.title}],
            "fromOpenCall": "Yes",
            "dateModified": now,
        }
        if party:
            grant["beneficiaryLocation"] = [{"name": name, "countryCode": party.iso2}]
        if form_a.get("duration_months"):
            grant["plannedDates"] = [{"duration": form_a["duration_months"]}]
        grants.append(grant)
    if not grants:
        raise NotAllowed(f"round {round_id} has no approved grant to publish")
    return {
        "version": "1.4",
        "title": f"Grants awarded: {definition.title}",
        "description": "Grants of the Specific International Programme to support capacity-building and "
        "technical assistance of the Minamata Convention on Mercury",
        "modified": now,
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "publisher": {"name": settings.funder_name, "identifier": settings.funder_org_id},
        "grants": grants,
    }


@lru_cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - only the export needs it
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    package = json.loads((SCHEMAS / "360-giving-package-schema.json").read_text(encoding="utf-8"))
    grant = DRAFT202012.create_resource(json.loads((SCHEMAS / "360-giving-schema.json").read_text(encoding="utf-8")))
    # The package schema refers to the grant schema by address: resolve it here, never over the network.
    registry = Registry().with_resources(
        [(package["properties"]["grants"]["items"]["$ref"], grant), (grant.contents["$id"], grant)]
    )
    return Draft202012Validator(package, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validation_errors(package: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(package)'}: {e.message}"
        for e in _validator().iter_errors(package)
    ]


def export_360giving(session: Session, settings: Settings, round_id: str, output: Path) -> tuple[Path, int]:
    """Write the round's grants as a 360Giving JSON package, once it validates."""
    package = grants_package(session, settings, round_id)
    errors = validation_errors(package)
    if errors:
        raise NotAllowed(
            "the 360Giving package does not validate against the standard's schema, so it was not "
            "written: " + "; ".join(errors[:5])
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return output, len(package["grants"])
