"""The demo's applications to round 1 (2018): 19 applications from 18 Parties, as the
real round received. The Parties, the round and its dates are real; the contents of
the applications are INVENTED for the demonstration (the real ones are not public).

Among them: complete ones, two incomplete (a missing form C, an empty logical
framework), two ineligible (a developed-country Party; an amount above the cap),
correspondence in English, French and Spanish, and one Party with two applications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROUND = "sip-2018-r1"


@dataclass(frozen=True)
class DemoApplication:
    slug: str
    party: str
    language: str
    agency: str
    contact: str
    email_domain: str
    title: str
    articles: tuple[int, ...]
    theme: str
    amount: int
    received: str  # date-time with offset, inside the round
    flaw: str | None = None  # "no_form_c" | "no_logframe"


APPLICATIONS = [
    DemoApplication(
        "arg-asgm",
        "ARG",
        "es",
        "Secretaría de Ambiente y Desarrollo Sustentable",
        "Lucía Fernández",
        "ambiente.example.ar",
        "Fortalecimiento de capacidades para la ratificación y aplicación: inventario de emisiones de mercurio",
        (8, 9, 21),
        "emission inventory",
        240000,
        "2018-08-28T16:20:00-03:00",
    ),
    DemoApplication(
        "arm-products",
        "ARM",
        "en",
        "Ministry of Nature Protection",
        "Armen Petrosyan",
        "nature.example.am",
        "Phase-out of mercury-added products in the health sector",
        (4, 16),
        "mercury-added products in health care",
        180000,
        "2018-08-30T11:05:00+04:00",
    ),
    DemoApplication(
        "ben-asgm",
        "BEN",
        "fr",
        "Ministère du Cadre de Vie et du Développement Durable",
        "Aïcha Dossou",
        "cadredevie.example.bj",
        "Réduction de l'utilisation du mercure dans l'orpaillage artisanal au nord du Bénin",
        (7, 18),
        "artisanal and small-scale gold mining",
        190000,
        "2018-08-24T15:40:00+01:00",
    ),
    DemoApplication(
        "irn-chloralkali",
        "IRN",
        "en",
        "Department of Environment",
        "Maryam Rahimi",
        "doe.example.ir",
        "Strengthening the legal framework for mercury storage and waste",
        (10, 11),
        "interim storage and mercury wastes",
        200000,
        "2018-08-29T09:30:00+04:30",
    ),
    DemoApplication(
        "irn-emissions",
        "IRN",
        "en",
        "Department of Environment",
        "Maryam Rahimi",
        "doe.example.ir",
        "Monitoring mercury emissions from non-ferrous metal smelting",
        (8, 19),
        "emissions from non-ferrous smelting",
        150000,
        "2018-08-30T10:15:00+04:30",
    ),
    DemoApplication(
        "lso-inventory",
        "LSO",
        "en",
        "Department of Environment",
        "Thabo Mokoena",
        "environment.example.ls",
        "Mercury-added products inventory and legal gap analysis",
        (4, 11, 21),
        "mercury-added products and their wastes",
        120000,
        "2018-08-27T14:00:00+02:00",
    ),
    DemoApplication(
        "ecu-asgm",
        "ECU",
        "es",
        "Ministerio del Ambiente",
        "Diego Andrade",
        "ambiente.example.ec",
        "Minería aurífera artesanal sin mercurio en la provincia de Zamora Chinchipe",
        (7,),
        "artisanal and small-scale gold mining",
        230000,
        "2018-08-31T10:45:00-05:00",
    ),
    DemoApplication(
        "per-waste",
        "PER",
        "es",
        "Ministerio del Ambiente",
        "Rosa Quispe",
        "minam.example.pe",
        "Gestión ambientalmente racional de desechos con mercurio en hospitales",
        (11,),
        "mercury wastes from health care",
        160000,
        "2018-08-22T12:10:00-05:00",
    ),
    DemoApplication(
        "gha-asgm",
        "GHA",
        "en",
        "Environmental Protection Agency",
        "Kwame Mensah",
        "epa.example.gh",
        "National action plan on artisanal and small-scale gold mining",
        (7,),
        "artisanal and small-scale gold mining",
        245000,
        "2018-08-31T18:30:00+00:00",
    ),
    DemoApplication(
        "mdg-dental",
        "MDG",
        "fr",
        "Ministère de l'Environnement et du Développement Durable",
        "Hery Rakotomalala",
        "environnement.example.mg",
        "Réduction progressive de l'amalgame dentaire",
        (4,),
        "dental amalgam phase-down",
        95000,
        "2018-08-17T10:00:00+03:00",
    ),
    DemoApplication(
        "sen-health",
        "SEN",
        "fr",
        "Direction de l'Environnement et des Établissements Classés",
        "Fatou Ndiaye",
        "environnement.example.sn",
        "Stratégie de santé publique sur le mercure (article 16)",
        (16,),
        "public health strategy",
        110000,
        "2018-08-29T16:00:00+00:00",
    ),
    DemoApplication(
        "bfa-asgm",
        "BFA",
        "fr",
        "Ministère de l'Environnement, de l'Économie Verte et du Changement Climatique",
        "Issa Ouédraogo",
        "environnement.example.bf",
        "Sensibilisation des orpailleurs aux dangers du mercure",
        (7, 18),
        "artisanal and small-scale gold mining",
        85000,
        "2018-08-30T15:20:00+00:00",
        flaw="no_form_c",
    ),
    DemoApplication(
        "mng-coal",
        "MNG",
        "en",
        "Ministry of Environment and Tourism",
        "Bat-Erdene Ganbold",
        "met.example.mn",
        "Mercury emissions from coal-fired heat-only boilers",
        (8,),
        "emissions from coal combustion",
        175000,
        "2018-08-28T13:00:00+08:00",
    ),
    DemoApplication(
        "lka-products",
        "LKA",
        "en",
        "Ministry of Mahaweli Development and Environment",
        "Nimal Perera",
        "environment.example.lk",
        "Control of mercury-added skin-lightening creams",
        (4, 18),
        "mercury-added cosmetics",
        70000,
        "2018-08-26T11:30:00+05:30",
    ),
    DemoApplication(
        "zmb-asgm",
        "ZMB",
        "en",
        "Ministry of Water Development, Sanitation and Environmental Protection",
        "Mwila Banda",
        "mwdsep.example.zm",
        "Baseline of mercury use in small-scale gold mining in Rufunsa",
        (7,),
        "artisanal and small-scale gold mining",
        140000,
        "2018-08-31T20:00:00+02:00",
        flaw="no_logframe",
    ),
    DemoApplication(
        "jam-waste",
        "JAM",
        "en",
        "National Environment and Planning Agency",
        "Andrea Campbell",
        "nepa.example.jm",
        "Collection of mercury-containing lamps and their safe storage",
        (10, 11),
        "mercury-containing lamps and their wastes",
        90000,
        "2018-08-23T09:00:00-05:00",
    ),
    DemoApplication(
        "che-products",
        "CHE",
        "fr",
        "Office fédéral de l'environnement",
        "Lukas Meier",
        "bafu.example.ch",
        "Substitution des produits contenant du mercure",
        (4,),
        "mercury-added products",
        300000,
        "2018-08-30T17:00:00+02:00",
    ),
    DemoApplication(
        "nga-cement",
        "NGA",
        "en",
        "Federal Ministry of Environment",
        "Chinedu Okafor",
        "environment.example.ng",
        "Mercury releases from cement production and contaminated sites",
        (8, 9, 12),
        "releases from cement production",
        320000,
        "2018-08-31T21:00:00+01:00",
    ),
    DemoApplication(
        "tgo-lab",
        "TGO",
        "fr",
        "Ministère de l'Environnement et des Ressources Forestières",
        "Komi Agbeko",
        "environnement.example.tg",
        "Renforcement du laboratoire national d'analyse du mercure",
        (19, 21),
        "monitoring capacity",
        130000,
        "2018-08-25T10:45:00+00:00",
    ),
]

_SPLIT = (
    (0.25, "personnel"),
    (0.30, "contractual_services"),
    (0.20, "meetings_training"),
    (0.10, "equipment_supplies"),
    (0.05, "travel"),
    (0.05, "monitoring_evaluation"),
)


def _budget(amount: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    spent = 0
    for share, category in _SPLIT:
        value = int(amount * share)
        lines.append(
            {
                "category": category,
                "output": "1" if len(lines) < 3 else "2",
                "year": 1 if len(lines) % 2 == 0 else 2,
                "amount": value,
            }
        )
        spent += value
    lines.append({"category": "project_management", "year": 2, "amount": amount - spent})
    return lines


def document(app: DemoApplication, round_id: str = ROUND) -> dict[str, Any]:
    """The application as the `sip-application/1` document the Party would send."""
    email = f"focal.point@{app.email_domain}"
    outputs = (
        []
        if app.flaw == "no_logframe"
        else [
            {
                "id": "1",
                "title": f"Baseline and assessment of {app.theme}",
                "activities": ["Data collection and site visits", "Assessment report"],
                "indicators": ["Assessment report validated by the national committee"],
            },
            {
                "id": "2",
                "title": "Capacity built among national stakeholders",
                "activities": ["Training workshops", "Guidance material"],
                "indicators": ["Number of people trained, of whom women", "Guidance published"],
            },
        ]
    )
    workplan = (
        []
        if app.flaw == "no_logframe"
        else [
            {"activity": "1.1", "start_month": 1, "end_month": 8},
            {"activity": "1.2", "start_month": 6, "end_month": 12},
            {"activity": "2.1", "start_month": 10, "end_month": 20},
            {"activity": "2.2", "start_month": 18, "end_month": 24},
        ]
    )
    doc: dict[str, Any] = {
        "format": "sip-application/1",
        "round": round_id,
        "received_at": app.received,
        "applicant": {
            "party": app.party,
            "co_applicants": [],
            "executing_agency": {"name": app.agency, "country": app.party},
            "contact": {"name": app.contact, "function": "National focal point, Minamata Convention", "email": email},
            "language": app.language,
        },
        "form_a": {
            "title": app.title,
            "scope": "national",
            "convention_articles": list(app.articles),
            "summary": f"A national project on {app.theme}, implementing articles "
            f"{', '.join(str(a) for a in app.articles)} of the Convention.",
            "objective": f"Build the institutional capacity the Party needs on {app.theme}.",
            "national_priority": "Named as a priority in the Party's Minamata Initial Assessment.",
            "outputs": outputs,
            "workplan": workplan,
            "duration_months": 24,
            "gender": "Women are among the groups most exposed; activities set participation targets for women.",
            "consultation": "Ministries of environment, health and finance, industry and civil society.",
            "sustainability": "Results are taken up in national regulations and the ministry's budget.",
            "related_projects": "No GEF-funded project covers this work in the country.",
        },
        "form_b": {"currency": "USD", "lines": _budget(app.amount), "total_requested": app.amount},
    }
    if app.flaw != "no_form_c":
        doc["form_c"] = {
            "signed_by": app.contact,
            "function": "National focal point",
            "signed_on": app.received[:10],
            "consultation_confirmed": True,
        }
    return doc
