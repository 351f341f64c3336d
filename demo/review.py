"""The demo's second part: round 4 (2024), the first round whose applications the
Global Mercury Partnership's experts reviewed, from opening to the committee's
agenda. The round, its dates and the Parties are real; the applications, the
reviewers and their reviews are INVENTED for the demonstration.

The reviewers are simulated through the same services the reviewers' API calls: each
signs in with the link of their e-mail, reads and reviews. One declines and one
declares a conflict of interest (the secretariat reassigns both places), one review
never comes (the secretariat hears it is overdue, then closes the stage: that
application goes to the committee marked as short of reviews), and two reviewers
disagree strongly on one application."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from demo.applications import DemoApplication, document
from domain.review import ReviewDraft
from domain.rounds import RoundStatus
from engine.db import reading, unit_of_work
from engine.services import outbox
from engine.services.review import access, state, views, work
from engine.services.review.assignment import assignment_view
from engine.services.review.register import load_reviewers, parse_reviewers
from engine.services.rounds import definition_of, get_round
from engine.services.setup import Runtime
from engine.tables import OutboxMessage

ROUND4 = "sip-2024-r4"

APPLICATIONS = [
    DemoApplication(
        "bol-asgm",
        "BOL",
        "es",
        "Ministerio de Medio Ambiente y Agua",
        "Marcela Quispe",
        "mmaya.example.bo",
        "Minería aurífera artesanal sin mercurio en el norte de La Paz",
        (7,),
        "artisanal and small-scale gold mining",
        210000,
        "2024-07-25T15:00:00-04:00",
    ),
    DemoApplication(
        "bfa-asgm",
        "BFA",
        "fr",
        "Ministère de l'Environnement, de l'Eau et de l'Assainissement",
        "Salif Kaboré",
        "environnement.example.bf",
        "Techniques sans mercure pour les orpailleurs du Sahel",
        (7, 18),
        "artisanal and small-scale gold mining",
        180000,
        "2024-07-30T10:00:00+00:00",
    ),
    DemoApplication(
        "chn-coal",
        "CHN",
        "en",
        "Ministry of Ecology and Environment",
        "Zhang Min",
        "mee.example.cn",
        "Mercury emissions from coal-fired industrial boilers",
        (8,),
        "emissions from coal combustion",
        240000,
        "2024-07-29T09:00:00+08:00",
    ),
    DemoApplication(
        "cub-products",
        "CUB",
        "es",
        "Ministerio de Ciencia, Tecnología y Medio Ambiente",
        "Yanet Pérez",
        "citma.example.cu",
        "Sustitución de termómetros con mercurio en hospitales",
        (4,),
        "mercury-added products in health care",
        120000,
        "2024-07-22T11:00:00-04:00",
    ),
    DemoApplication(
        "bwa-lamps",
        "BWA",
        "en",
        "Department of Waste Management and Pollution Control",
        "Kagiso Molefe",
        "dwmpc.example.bw",
        "Collection and safe management of mercury-containing lamps",
        (11,),
        "mercury-containing lamps and their wastes",
        150000,
        "2024-07-26T14:00:00+02:00",
    ),
    DemoApplication(
        "arm-monitoring",
        "ARM",
        "en",
        "Ministry of Environment",
        "Anahit Sargsyan",
        "env.example.am",
        "A national laboratory for monitoring mercury in air and fish",
        (19,),
        "monitoring capacity",
        200000,
        "2024-07-31T16:00:00+04:00",
    ),
    DemoApplication(
        "dom-storage",
        "DOM",
        "es",
        "Ministerio de Medio Ambiente y Recursos Naturales",
        "Rafael Jiménez",
        "ambiente.example.do",
        "Almacenamiento provisional ambientalmente racional del mercurio",
        (3, 10),
        "interim storage of mercury",
        170000,
        "2024-07-24T12:00:00-04:00",
    ),
    DemoApplication(
        "slv-dental",
        "SLV",
        "es",
        "Ministerio de Salud de El Salvador",
        "Gabriela Flores",
        "salud.example.sv",
        "Reducción gradual del uso de la amalgama dental",
        (4,),
        "dental amalgam phase-down",
        90000,
        "2024-07-23T09:30:00-06:00",
    ),
]

#: The register the secretariat loads (`sip reviewers load`), with the columns the engine takes.
REVIEWERS = """\
name,email,organisation,country,areas,languages,max_load
Ana Torres,ana.torres@example.org,Ministerio de Medio Ambiente y Agua,PER,artisanal_gold_mining;waste_management,es;en,3
Moussa Traoré,moussa.traore@example.org,Université Joseph Ki-Zerbo,BFA,artisanal_gold_mining,fr;en,3
Kofi Asante,kofi.asante@example.org,University of Mines and Technology,GHA,artisanal_gold_mining;supply_storage,en,3
Élise Martin,elise.martin@example.org,Bureau de recherches géologiques,FRA,artisanal_gold_mining;products,fr;en,3
Li Wei,li.wei@example.org,Tsinghua University,CHN,coal_combustion;air_transport_fate_research,en,3
Ingrid Berg,ingrid.berg@example.org,Norwegian Institute for Air Research,NOR,\
air_transport_fate_research;coal_combustion;cement,en,3
Hans Müller,hans.mueller@example.org,Umweltbundesamt,DEU,air_transport_fate_research;coal_combustion,en;fr,3
Carmen Ruiz,carmen.ruiz@example.org,Centro de Estudios Ambientales,ESP,products;waste_management,es,3
Tom Baker,tom.baker@example.org,Mercury Policy Project,GBR,products;supply_storage,en,3
Sofia Costa,sofia.costa@example.org,Centro de Tecnologia Mineral,BRA,supply_storage;chlor_alkali,es;en,3
Amina Yusuf,amina.yusuf@example.org,Kenya Bureau of Standards,KEN,waste_management;products,en,3
Ravi Kumar,ravi.kumar@example.org,Central Pollution Control Board,IND,cement;coal_combustion;waste_management,en,3
"""

#: The dates of the simulation: screening three days after the close; invitations a week later.
SCREENING_AFTER = timedelta(days=3)
INVITED_AFTER = timedelta(days=12)

#: How good each (invented) application is, on the scale 1-5, and what most reviewers recommend.
QUALITY = {"BOL": 4, "BFA": 3, "CHN": 4, "CUB": 4, "BWA": 3, "ARM": 4, "DOM": 3, "SLV": 2}


def write_files(folder: Path) -> tuple[list[Path], Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, app in enumerate(APPLICATIONS, start=1):
        path = folder / f"{number:02d}-{app.slug}.json"
        path.write_text(json.dumps(document(app, ROUND4), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    register = folder / "gmp-reviewers.csv"
    register.write_text(REVIEWERS, encoding="utf-8")
    return paths, register


def _review(party: str, email: str, *, against: bool = False) -> ReviewDraft:
    """A reviewer's (invented) review: the application's quality, or one point more."""
    wobble = int(hashlib.sha256(f"{party}{email}".encode()).hexdigest(), 16)
    base = 1 if against else QUALITY[party]
    scores = {
        c: max(1, min(5, base + (wobble >> i) % 2))
        for i, c in enumerate(("technical_soundness", "area_relevance", "feasibility", "expected_results"))
    }
    if against:
        scores["feasibility"] = 1
    mean = sum(scores.values()) / len(scores)
    recommendation = "do_not_support" if mean < 2.5 else "support_with_changes" if mean < 3.75 else "support"
    return ReviewDraft(
        scores=scores,
        recommendation=recommendation,
        comments_for_committee=(
            "The approach is sound and the budget realistic."
            if mean >= 3.75
            else "Feasible if the workplan is tightened."
            if mean >= 2.5
            else "The expected results are not demonstrated by the workplan."
        ),
        comments_for_applicant="Add indicators that measure the reduction of mercury use.",
    )


class _Reviewers:
    """The simulated reviewers: each signs in with the latest link e-mailed to them (a
    new link, a new session) and keeps the session for the few weeks the simulation
    spans (real sessions last `SIP_REVIEWER_SESSION_HOURS`)."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.settings = rt.settings.model_copy(update={"reviewer_session_hours": 24 * 60})
        self.sessions: dict[str, tuple[int, str]] = {}  # e-mail -> (message id, session token)

    def act(self, email: str, at: Any, fn: Callable[..., Any], *args: Any) -> Any:
        with reading(self.rt.engine) as session:
            message = session.exec(
                select(OutboxMessage).where(OutboxMessage.recipient == email).order_by(col(OutboxMessage.id).desc())
            ).first()
            assert message is not None and message.id is not None
            known = self.sessions.get(email)
            if known is None or known[0] != message.id:
                link = outbox.materialize(session, self.settings, message).text
                token = re.search(r"token=([\w-]+)", link).group(1)  # type: ignore[union-attr]
                with unit_of_work(self.rt.engine) as writing:
                    signed = access.sign_in(writing, self.settings, token, at=at)
                self.sessions[email] = known = (message.id, signed.session_token)
        with unit_of_work(self.rt.engine) as session:
            return fn(session, access.reviewer_for(session, known[1], at=at), *args)


def run_review_demo(rt: Runtime, echo: Callable[[str], None]) -> int:
    """Round 4 from opening to the committee's agenda, with GMP review. Returns the
    number of files refused at import (0 expected)."""
    from flows.intake import import_applications_flow
    from flows.opening import close_round_flow, open_round_flow
    from flows.review import (
        assign_gmp_reviewers_flow,
        invite_gmp_reviewers_flow,
        review_day_flow,
        send_to_committee_flow,
    )
    from flows.screening import screen_applications_flow

    settings = rt.settings
    with reading(rt.engine) as session:
        row = get_round(session, ROUND4)
        definition = definition_of(row)
    status = RoundStatus(row.status)
    folder = settings.data_dir / "demo" / ROUND4
    files, register = write_files(folder)
    echo("")
    echo(f"Round {ROUND4} ({definition.title}): with the Global Mercury Partnership's technical review")
    echo(f"  {len(files)} demo applications and a register of 12 invented reviewers written to {folder}")
    if status in (RoundStatus.COMMITTEE, RoundStatus.DECIDED, RoundStatus.ARCHIVED):
        echo("  (reviewed in an earlier run; nothing to do again)")
        _print_summary(rt, echo)
        return 0
    if status is RoundStatus.REVIEW:
        echo("  an earlier run stopped during the review; run `sip demo --fresh` to start again")
        return 1
    with unit_of_work(rt.engine) as session:
        load_reviewers(
            session,
            parse_reviewers(REVIEWERS, str(register)),
            source=str(register),
            actor="secretariat",
            at=definition.closes_at,
        )
    open_round_flow(round_id=ROUND4, at=definition.opens_at)
    summary = import_applications_flow(round_id=ROUND4, paths=[str(folder)])
    close_round_flow(round_id=ROUND4, at=definition.closes_at + timedelta(seconds=1))
    screened = screen_applications_flow(round_id=ROUND4, at=definition.closes_at + SCREENING_AFTER)
    echo(f"     opened, {summary.imported} imported, closed; screen-applications: {screened.screened} screened")

    invited_at = definition.closes_at + INVITED_AFTER
    placements = assign_gmp_reviewers_flow(round_id=ROUND4, at=invited_at - timedelta(days=1))
    conflicted = sum(1 for p in placements for r in p.reasons if "conflict of interest" in r)
    echo(
        f"     assign-gmp-reviewers: {sum(len(p.reviewers) for p in placements)} places filled by area and "
        f"load; {conflicted} reviewer(s) left out for a conflict of interest (own country or organisation)"
    )
    invited = invite_gmp_reviewers_flow(round_id=ROUND4, at=invited_at)
    echo(
        f"     invite-gmp-reviewers: {invited.reviewers} invitations, each in the reviewer's language with a "
        f"one-time sign-in link; reviews due {invited.due_on}"
    )

    with reading(rt.engine) as session:
        lines = {line.party: line for line in assignment_view(session, ROUND4)}
    reviewers = _Reviewers(rt)
    day = invited_at + timedelta(days=3)
    declining = lines["ARM"].reviewers[0].email
    conflicting = lines["CUB"].reviewers[0].email
    late = lines["DOM"].reviewers[-1].email
    reviewers.act(
        declining,
        day,
        lambda s, r: work.decline(
            s, settings, r, lines["ARM"].reference, "On mission during the review period", at=day
        ),
    )
    reviewers.act(
        conflicting,
        day,
        lambda s, r: work.declare_conflict(
            s, settings, r, lines["CUB"].reference, "I advised the ministry on its thermometer inventory", at=day
        ),
    )
    echo(
        f"     {declining} declined {lines['ARM'].reference}; {conflicting} declared a conflict of interest with "
        f"{lines['CUB'].reference} (the secretariat is told of both)"
    )
    submitted = _submit_all(
        reviewers, lines, skip={(declining, "ARM"), (conflicting, "CUB"), (late, "DOM")}, day=day + timedelta(days=2)
    )

    again = invited_at + timedelta(days=6)
    placements = assign_gmp_reviewers_flow(round_id=ROUND4, at=again)
    invited = invite_gmp_reviewers_flow(round_id=ROUND4, at=again)
    echo(f"     the secretariat reassigns: {invited.invited} new invitation(s) for the two open places")
    with reading(rt.engine) as session:
        lines = {line.party: line for line in assignment_view(session, ROUND4)}
    submitted += _submit_all(reviewers, lines, skip={(late, "DOM")}, day=again + timedelta(days=2))
    echo(
        f"     {submitted} reviews submitted through the reviewers' service; {late} has not reviewed "
        f"{lines['DOM'].reference}"
    )

    with reading(rt.engine) as session:
        stage = state.stage_of(session, ROUND4)
    assert stage is not None
    due = state.deadline(stage, definition)
    for when in (due - timedelta(days=2), due + timedelta(hours=12)):
        for result in review_day_flow(at=when):
            echo(
                f"     review-day {when.date()}: {result.reminders} reminder(s)"
                + (", overdue notice to the secretariat" if result.overdue_notice else "")
            )
    closed = send_to_committee_flow(
        round_id=ROUND4, reason="the committee's documents are due", at=due + timedelta(days=2)
    )
    echo(
        f"     send-to-committee: {closed.sent} applications on the committee's agenda; short of reviews: "
        f"{', '.join(closed.short) or 'none'}"
    )
    _print_summary(rt, echo)
    return summary.failed


def _submit_all(reviewers: _Reviewers, lines: dict[str, Any], *, skip: set[tuple[str, str]], day: Any) -> int:
    """Every invited reviewer submits, except those in `skip`; the second reviewer of
    China's application disagrees with the first."""
    done = 0
    for party, line in lines.items():
        invited = [r for r in line.reviewers if r.state == "invited"]
        for reviewer in invited:
            if (reviewer.email, party) in skip:
                continue
            against = (
                party == "CHN"
                and reviewer.email == sorted(r.email for r in line.reviewers if r.state in ("invited", "submitted"))[-1]
            )
            draft = _review(party, reviewer.email, against=against)
            reviewers.act(
                reviewer.email,
                day,
                lambda s, r, ref=line.reference, d=draft: work.save_review(s, r, ref, d, submit=True, at=day),
            )
            done += 1
    return done


def _print_summary(rt: Runtime, echo: Callable[[str], None]) -> None:
    with reading(rt.engine) as session:
        view = views.review_stage_view(session, ROUND4)
        kinds: dict[str, int] = {}
        for kind in session.exec(select(OutboxMessage.kind).where(OutboxMessage.round_id == ROUND4)).all():
            kinds[kind] = kinds.get(kind, 0) + 1
    echo("")
    echo(f"  {'application':<18} {'Party':<5} {'reviews':>7}  {'recommendations':<42} flags")
    for app in view.applications:
        recs = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in app.recommendations.items() if n) or "-"
        flags = " ".join(f for f, on in (("short of reviews", app.short), ("disagreement", app.disagreement)) if on)
        echo(
            f"  {app.reference:<18} {app.party:<5} {app.reviews_submitted:>3} of {app.reviews_asked}"
            f"  {recs:<42} {flags}"
        )
    echo(f"  messages queued for round 4: {', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}")
