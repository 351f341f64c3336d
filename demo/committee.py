"""The demo's Steering Committee for round 1 (2018): the real composition of the
2018-2019 committee by country (two members from each UN region; co-chairs from
Ghana and the Netherlands), with INVENTED names, e-mail addresses and terms; and the
committee's decisions, which reproduce the real outcome of round 1: five approvals,
for Argentina, Armenia, Benin, Iran (Islamic Republic of) and Lesotho. The amounts,
conditions and recommendations are invented, and so are the funds available."""

from __future__ import annotations

from decimal import Decimal

#: `sip committee load` takes this file (columns as the engine expects them).
MEMBERS = """\
name,email,country,role,term_start,term_end,language
Kwame Boateng,kwame.boateng@committee.example.org,GHA,co-chair,2018-01-01,2019-12-31,en
Mahamat Abakar,mahamat.abakar@committee.example.org,TCD,member,2018-01-01,2019-12-31,fr
Somchai Srisuk,somchai.srisuk@committee.example.org,THA,member,2018-01-01,2019-12-31,en
Dilani Perera,dilani.perera@committee.example.org,LKA,member,2018-01-01,2019-12-31,en
Kadri Tamm,kadri.tamm@committee.example.org,EST,member,2018-01-01,2019-12-31,en
Anna Hakobyan,anna.hakobyan@committee.example.org,ARM,member,2018-01-01,2019-12-31,en
Martín Gómez,martin.gomez@committee.example.org,ARG,member,2018-01-01,2019-12-31,es
Ana Souza,ana.souza@committee.example.org,BRA,member,2018-01-01,2019-12-31,es
Pieter de Vries,pieter.devries@committee.example.org,NLD,co-chair,2018-01-01,2019-12-31,en
Ingrid Hansen,ingrid.hansen@committee.example.org,NOR,member,2018-01-01,2019-12-31,en
"""

#: The funds available for round 1's approvals: an illustrative figure (the real one is not public).
FUNDS = Decimal("1000000")

#: Decisions by the demo application's slug: (decision, amount, conditions, recommendations).
DECISIONS: dict[str, tuple[str, int | None, str | None, str | None]] = {
    "arg-asgm": ("approved", 240000, None, None),
    "arm-products": ("approved", 180000, None, None),
    "ben-asgm": (
        "approved_with_conditions",
        190000,
        "Name the focal points of the three mining districts before the first payment.",
        None,
    ),
    "irn-chloralkali": ("approved", 200000, None, None),
    "lso-inventory": ("approved", 120000, None, None),
    "irn-emissions": (
        "not_approved",
        None,
        None,
        "Only one project per Party could be funded in this round; submit it again in round 2 with "
        "the monitoring sites named.",
    ),
    "ecu-asgm": (
        "not_approved",
        None,
        None,
        "Strengthen the logical framework: each output needs an indicator with a baseline and a target.",
    ),
    "per-waste": (
        "not_approved",
        None,
        None,
        "Show how the hospitals' waste will be stored once collected, and who pays for its disposal.",
    ),
    "gha-asgm": (
        "not_approved",
        None,
        None,
        "The national action plan is under way with GEF funding: propose work that complements it.",
    ),
    "mdg-dental": (
        "not_approved",
        None,
        None,
        "Add a plan to train dentists in alternatives, and the ministry of health as a partner.",
    ),
    "sen-health": (
        "not_approved",
        None,
        None,
        "Tie the public health strategy to specific obligations of the Convention (article 16).",
    ),
    "mng-coal": (
        "not_approved",
        None,
        None,
        "Give the emission measurements the project builds on, and the boilers it will cover.",
    ),
    "lka-products": ("not_approved", None, None, "Include the customs administration, since the creams are imported."),
    "jam-waste": (
        "not_approved",
        None,
        None,
        "Show the storage site's permits and the plan for final disposal of the lamps.",
    ),
    "tgo-lab": (
        "deferred",
        None,
        None,
        "The committee asks for the laboratory's accreditation plan and equipment quotes before deciding.",
    ),
}
