"""A committee member opens the link of their message in Chromium: their page in French,
the agenda with what they take no part in, the bundle in the browser, and its PDF
downloaded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect

from engine.db import unit_of_work
from engine.services.committee.bundles import prepare_bundles
from engine.services.committee.meeting import declare_member_conflict
from engine.services.setup import Runtime
from tests.browser.conftest import SHOTS
from tests.conftest import ROUND1, bundle_link_token
from tests.e2e.test_committee_bundle_page import BEN, CHAD, PREPARED

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def test_a_member_opens_their_page_in_french_reads_the_bundle_and_downloads_its_pdf(
    committee: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    pytest.importorskip("weasyprint", reason="the PDF bundles need WeasyPrint (the pdf extra)")
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, CHAD, "advised the agency", actor="officer", at=PREPARED)
        prepare_bundles(session, committee.settings, ROUND1, actor="officer", at=PREPARED, pdf=True)
    app = serve(datetime(2018, 10, 1, 9, tzinfo=UTC))
    page.goto(f"{app.url}/committee/bundle?token={bundle_link_token(committee, CHAD)}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Votre dossier d'examen")
    expect(page.get_by_text("Confidentiel – réservé aux membres du Comité directeur")).to_be_visible()
    expect(page.get_by_role("row", name=BEN)).to_contain_text("aucune (conflit d'intérêts)")
    shot(page, "1-bundle-page-fr")

    with page.expect_download() as downloading:
        page.get_by_role("link", name="Le télécharger en PDF").click()
    pdf = downloading.value
    saved = SHOTS / "bundle.pdf"
    pdf.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF") and pdf.suggested_filename.endswith(".pdf")

    page.get_by_role("link", name="Le lire dans le navigateur (HTML)").click()
    expect(page.locator("h1").first).to_be_visible()
    assert "bundle" in page.url and "format=html" in page.url
    shot(page, "2-bundle-html")
