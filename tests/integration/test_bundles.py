"""The committee's review bundles, on SQLite and PostgreSQL: one per member, the
member's own country's dossiers left out with a note, versions that say what changed,
delivery by a link whose every download is audited, and PDF where WeasyPrint is."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from engine.db import unit_of_work
from engine.services import outbox
from engine.services.committee import bundles
from engine.services.committee.bundles import open_bundle, pdf_renderer, prepare_bundles
from engine.services.committee.meeting import declare_member_conflict, set_funds
from engine.services.errors import Gone, NotAllowed, NotFound
from engine.services.setup import Runtime
from engine.tables import AuditEvent, CommitteeBundle, OutboxMessage
from tests.conftest import ROUND1, bundle_link_token, members

AT = datetime(2018, 9, 20, 9, tzinfo=UTC)
BEN, CMR = "SIP-2018-R1-0001", "SIP-2018-R1-0004"
GHANA = "kwame.boateng@committee.example.org"
PIETER = "pieter.devries@committee.example.org"
CAMEROON = "Amadou Bello,amadou.bello@committee.example.org,CMR,member,2018-01-01,2019-12-31,fr\n"


def prepare(rt: Runtime, at: datetime = AT, pdf: bool = False):
    with unit_of_work(rt.engine) as session:
        return prepare_bundles(session, rt.settings, ROUND1, actor="officer", at=at, pdf=pdf)


def bundle_of(summary, email: str):
    return next(m for m in summary.members if m.email == email)


def test_each_member_gets_a_bundle_with_the_agenda_summary_funds_and_dossiers(committee: Runtime) -> None:
    summary = prepare(committee)
    assert (summary.prepared, summary.unchanged, summary.notified) == (10, 0, 10)
    html = Path(bundle_of(summary, GHANA).path).read_text()
    for part in (
        "Agenda",
        "Summary of the applications",
        "Funds available and amounts requested",
        "Regional spread",
        'id="SIP-2018-R1-0001"',
        'id="SIP-2018-R1-0004"',
        "Form A – the project",
        "Form B – the budget",
        "Form C – the transmittal letter",
        "Screening record",
        "$300,000.00",
    ):
        assert part in html, part
    assert "Switzerland" in html and 'id="SIP-2018-R1-0003"' not in html  # in the summary; no dossier (ineligible)
    assert "Kwame Boateng" in html and "version 1" in html


def test_a_members_own_country_and_declared_conflicts_are_left_out_with_a_note(committee: Runtime) -> None:
    members(committee, "name,email,country,role,term_start,term_end,language\n" + CAMEROON)
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, GHANA, "advised the executing agency", actor="officer", at=AT)
    summary = prepare(committee)
    cameroon = bundle_of(summary, "amadou.bello@committee.example.org")
    html = Path(cameroon.path).read_text()
    assert cameroon.withheld == [CMR] and 'id="SIP-2018-R1-0004"' not in html
    # one line of the agenda, in the member's language (French), and marked in the summary
    assert f"{CMR} – Cameroun\u00a0: vous ne prenez pas part à cette décision (pays du membre)" in html
    assert 'class="own"' in html and '<html lang="fr">' in html
    assert "11 membres siègent au lieu de 10" in html  # the composition is reported (in French), not refused
    ghana = Path(bundle_of(summary, GHANA).path).read_text()
    assert f"{BEN} – Benin: you take no part in this decision (declared conflict)" in ghana
    assert 'id="SIP-2018-R1-0001"' not in ghana
    assert 'id="SIP-2018-R1-0004"' in ghana


def test_preparing_again_makes_a_new_version_only_for_a_change_and_says_what_changed(committee: Runtime) -> None:
    prepare(committee)
    again = prepare(committee)
    assert (again.prepared, again.unchanged, again.notified) == (0, 10, 0)
    with unit_of_work(committee.engine) as session:
        set_funds(session, ROUND1, Decimal("400000"), actor="officer", at=AT)
    changed = prepare(committee)
    ghana = bundle_of(changed, GHANA)
    assert (changed.prepared, ghana.version, ghana.changes) == (10, 2, ["changed: the funds available"])
    assert "What changed since version 1" in Path(ghana.path).read_text()
    with unit_of_work(committee.engine) as session:
        versions = session.exec(select(CommitteeBundle.version).where(CommitteeBundle.email == GHANA)).all()
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.key == f"bundle_ready:{ROUND1}:{GHANA}:v2")
        ).one()
    assert sorted(versions) == [1, 2] and "changed: the funds available" in message.body_text


def test_a_members_link_opens_their_bundle_and_every_download_is_audited(committee: Runtime) -> None:
    prepare(committee)
    with unit_of_work(committee.engine) as session:
        message = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == GHANA)).one()
        assert "[[bundle-link]]" in message.body_text  # the outbox never holds the token
        text = outbox.materialize(session, committee.settings, message).text
    token = re.search(r"token=([\w-]+)", text).group(1)  # type: ignore[union-attr]
    for _ in range(2):
        with unit_of_work(committee.engine) as session:
            bundle, path = open_bundle(session, committee.settings, token, at=AT)
        assert bundle.email == GHANA and path.name == f"{GHANA}.v1.html"
    with pytest.raises(NotFound), unit_of_work(committee.engine) as session:
        open_bundle(session, committee.settings, token + "x", at=AT)
    with unit_of_work(committee.engine) as session:
        downloads = session.exec(select(AuditEvent).where(AuditEvent.action == "bundle.downloaded")).all()
    assert [(d.actor, d.details["version"]) for d in downloads] == [(GHANA, 1), (GHANA, 1)]


def test_bundles_are_refused_before_screening_is_done(imported: Runtime) -> None:
    members(imported)
    with (
        pytest.raises(NotAllowed, match="the bundles are prepared once screening"),
        unit_of_work(imported.engine) as session,
    ):
        prepare_bundles(session, imported.settings, ROUND1, actor="officer", at=AT)


@pytest.mark.skipif(
    pdf_renderer() is None,
    reason="WeasyPrint (and its Pango libraries) is not installed: "
    "bundles are HTML only; `pip install -e '.[pdf]'` adds PDF",
)
def test_a_pdf_is_made_beside_each_html_bundle_where_weasyprint_is_installed(committee: Runtime) -> None:
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, GHANA, "advised the executing agency", actor="officer", at=AT)
    summary = prepare(committee, pdf=True)

    def pages(email: str) -> int:
        line = bundle_of(summary, email)
        assert Path(line.pdf or "").read_bytes()[:5] == b"%PDF-"
        return line.pdf_pages or 0

    # The dossiers' pages are laid out once and shared; Ghana's member has Benin's withheld (a line of the agenda).
    assert summary.pdf and pages(GHANA) < pages("pieter.devries@committee.example.org")
    # every page, of the member's front and of the shared dossiers, says it is confidential
    from pypdf import PdfReader

    reader = PdfReader(bundle_of(summary, GHANA).pdf or "")
    unmarked = [n for n, page in enumerate(reader.pages, 1) if "Confidential" not in page.extract_text()]
    assert len(reader.pages) > 2 and unmarked == []


def link_of(rt: Runtime, email: str, version: int) -> str:
    return bundle_link_token(rt, email, version)


def test_an_older_versions_link_no_longer_opens_once_a_new_version_went_out(committee: Runtime) -> None:
    prepare(committee)
    first = link_of(committee, GHANA, 1)
    with unit_of_work(committee.engine) as session:  # Ghana's member declares a conflict: Benin's dossier must go
        declare_member_conflict(session, ROUND1, BEN, GHANA, "advised the executing agency", actor="officer", at=AT)
    prepare(committee)
    with pytest.raises(Gone, match="version 2 replaced it"), unit_of_work(committee.engine) as session:
        open_bundle(session, committee.settings, first, at=AT)
    with unit_of_work(committee.engine) as session:
        bundle, path = open_bundle(session, committee.settings, link_of(committee, GHANA, 2), at=AT)
    assert bundle.version == 2 and 'id="SIP-2018-R1-0001"' not in path.read_text()


def test_a_link_stops_working_a_month_after_the_meeting(committee: Runtime) -> None:
    prepare(committee)
    token = link_of(committee, GHANA, 1)
    with pytest.raises(Gone, match="expired 30 days after the meeting"), unit_of_work(committee.engine) as session:
        open_bundle(session, committee.settings, token, at=datetime(2018, 11, 3, tzinfo=UTC))


def test_a_gmp_rounds_bundle_shows_the_reviews_without_the_reviewers_names(round4: Runtime) -> None:
    from datetime import date

    from domain.review import ReviewDraft
    from engine.services.committee.meeting import schedule_meeting
    from engine.services.review.access import reviewer_for, sign_in
    from engine.services.review.assignment import assign_reviewers
    from engine.services.review.invitations import invite
    from engine.services.review.work import save_review
    from engine.services.stages import send_to_committee
    from tests.conftest import AFTER_R4, ROUND4
    from tests.integration.test_review_stage import FULL, link_of

    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="o", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="o", at=AFTER_R4)
    with unit_of_work(round4.engine) as session:
        signed = sign_in(session, round4.settings, link_of(round4, "kofi@example.org"), at=AFTER_R4)
        save_review(
            session,
            reviewer_for(session, signed.session_token, at=AFTER_R4),
            "SIP-2024-R4-0001",
            ReviewDraft(**FULL),
            submit=True,
            at=AFTER_R4,
        )
        send_to_committee(session, ROUND4, actor="o", at=AFTER_R4)
        schedule_meeting(session, ROUND4, date(2024, 10, 1), None, "online", actor="o", at=AFTER_R4)
    members(
        round4,
        "name,email,country,role,term_start,term_end,language\n"
        "Ama Owusu,ama@committee.example.org,GHA,co-chair,2024-01-01,2025-12-31,en\n",
    )
    with unit_of_work(round4.engine) as session:
        summary = prepare_bundles(session, round4.settings, ROUND4, actor="o", at=AFTER_R4, pdf=False)
    html = Path(summary.members[0].path).read_text()
    assert "Global Mercury Partnership review" in html and "short of reviews" in html
    assert "Reviewer 1: Support" in html and "kofi@example.org" not in html and "Kofi Mine" not in html
    assert "<th>GMP recommendations</th>" in html


def _outline(reader: Any, items: list | None = None, depth: int = 0) -> list[tuple[int, str, int]]:
    """(depth, title, page) of each outline entry, in order."""
    found = []
    for item in reader.outline if items is None else items:
        if isinstance(item, list):
            found += _outline(reader, item, depth + 1)
        else:
            found.append((depth, item.title, reader.get_destination_page_number(item)))
    return found


def _tree(marks: list, depth: int = 0) -> list[tuple[int, str, int]]:
    found = []
    for label, (page, _, _), children, _ in marks:
        found.append((depth, label, page))
        found += _tree(children, depth + 1)
    return found


@pytest.mark.skipif(pdf_renderer() is None, reason="WeasyPrint (and its Pango libraries) is not installed")
@pytest.mark.parametrize("per_part", [1, 20], ids=["a part per dossier", "dossiers sharing a part"])
def test_a_members_pdf_is_their_html_bundle_laid_out_as_one_document_page_for_page(
    committee: Runtime, monkeypatch: pytest.MonkeyPatch, per_part: int
) -> None:
    """The PDF is joined from parts laid out apart (the member's front, the shared
    dossiers); it holds what the member's HTML bundle holds, laid out as one document:
    the same pages with the same text in the same order, the same outline, and the
    summary's links going to the first page of each dossier."""
    PdfReader = pytest.importorskip("pypdf").PdfReader  # noqa: N806 - with the `pdf` extra, as WeasyPrint
    monkeypatch.setattr(bundles, "DOSSIERS_PER_PART", per_part)
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, GHANA, "advised the executing agency", actor="officer", at=AT)
        summary = prepare_bundles(
            session, committee.settings, ROUND1, actor="officer", at=AT, pdf=True, only={GHANA, PIETER}
        )
    for email in (GHANA, PIETER):
        line = bundle_of(summary, email)
        joined = PdfReader(line.pdf or "")
        whole = pdf_renderer()(string=Path(line.path).read_text()).render()  # type: ignore[misc]
        assert line.pdf_pages == len(joined.pages) == len(whole.pages)
        with tempfile.TemporaryDirectory() as folder:
            whole.write_pdf(Path(folder) / "whole.pdf")
            one = PdfReader(Path(folder) / "whole.pdf")
            # every page stamped with the round, the version and its number among them all
            stamp = re.compile(
                r"\n?Specific International Programme – first round \(2018\) – version 1 – page (\d+) of (\d+)$"
            )
            found = [stamp.search(p.extract_text()) for p in joined.pages]
            assert [(m.group(1), m.group(2)) if m else None for m in found] == [
                (str(n), str(len(one.pages))) for n in range(1, len(one.pages) + 1)
            ]
            assert [stamp.sub("", p.extract_text()) for p in joined.pages] == [p.extract_text() for p in one.pages]
        assert _outline(joined) == _tree(whole.make_bookmark_tree())
        starts = {name: joined.get_destination_page_number(d) for name, d in joined.named_destinations.items()}
        links = [
            str(annotation.get_object()["/Dest"]) for page in joined.pages[:2] for annotation in page.get("/Annots", [])
        ]
        assert links and all(joined.pages[starts[name]].extract_text().startswith(name) for name in links)
    ghana = [" ".join(p.extract_text().split()) for p in PdfReader(bundle_of(summary, GHANA).pdf or "").pages]
    pieter = [" ".join(p.extract_text().split()) for p in PdfReader(bundle_of(summary, PIETER).pdf or "").pages]
    # Benin's dossier (withheld from Ghana's member) is one line of their agenda, not a page; Cameroon's is there.
    assert sum(t.startswith(f"{BEN} – ") for t in pieter) == 1 and not any(t.startswith(f"{BEN} – ") for t in ghana)
    assert "you take no part in this decision (declared conflict)" in ghana[0]
    assert sum(t.startswith(f"{CMR} – ") for t in ghana) == 1
    assert "".join(ghana).count("Form A – the project") == 1 and "".join(pieter).count("Form A – the project") == 2
    assert len(ghana) < len(pieter)


def test_a_dossier_withheld_from_any_member_is_laid_out_alone(committee: Runtime) -> None:
    """Pages laid out together share their fonts, images and drawings, and those go with
    any of the pages into a member's file: a dossier withheld from a member never shares
    a part with the dossiers that member receives; the others share parts, in order."""
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, GHANA, "advised the executing agency", actor="officer", at=AT)
        shared = bundles.shared_parts(session, ROUND1)
    agenda = [a.reference for a in shared.agenda]
    conflicted = {a.reference for a in shared.agenda if shared.committee.conflicts(a)}
    assert BEN in conflicted
    groups = bundles.dossier_groups(shared, 4)
    assert [ref for group in groups for ref in group] == agenda
    for group in groups:
        assert len(group) <= 4
        assert len(group) == 1 or not conflicted & set(group)
    assert [BEN] in groups


@pytest.mark.skipif(pdf_renderer() is None, reason="WeasyPrint (and its Pango libraries) is not installed")
def test_the_flows_pdfs_are_laid_out_after_the_transaction_commits(committee: Runtime) -> None:
    """The flow records the bundles in one short transaction and lays out the PDFs after
    it: the rows and messages are committed before any PDF exists, and once laid out
    each new bundle has its PDF, its pages counted in the summary."""
    later = bundles.PdfLater()
    with unit_of_work(committee.engine) as session:
        summary = prepare_bundles(
            session, committee.settings, ROUND1, actor="officer", at=AT, pdf=True, pdf_later=later
        )
    assert summary.prepared and len(later.jobs) == summary.prepared
    assert not any(Path(path).exists() for _, _, path, _ in later.jobs)
    with unit_of_work(committee.engine) as session:  # nothing holds the database while the PDFs are laid out
        assert len(session.exec(select(CommitteeBundle)).all()) == summary.prepared
    later.run()
    for line in summary.members:
        assert line.pdf and Path(line.pdf).exists() and (line.pdf_pages or 0) > 1
