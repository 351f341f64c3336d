"""A committee member's link opens their page, in their language: the meeting, the
agenda with what they take no part in, and the bundle to read or download; a program
that sends the token as a header still gets the bundle itself."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from api.app import create_app
from engine.db import reading, unit_of_work
from engine.services.committee.bundles import prepare_bundles
from engine.services.committee.meeting import declare_member_conflict
from engine.services.setup import Runtime
from tests.conftest import ROUND1, Clock, bundle_link_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CHAD = "mahamat.abakar@committee.example.org"  # writes in French
BEN = "SIP-2018-R1-0001"
PREPARED = datetime(2018, 9, 20, 9, tzinfo=UTC)
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def client(committee: Runtime) -> Iterator[TestClient]:
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, CHAD, "advised the agency", actor="officer", at=PREPARED)
        prepare_bundles(session, committee.settings, ROUND1, actor="officer", at=PREPARED, pdf=False)
    with TestClient(create_app(committee.settings, now=Clock(datetime(2018, 10, 1, 9, tzinfo=UTC)))) as client:
        yield client


def token_of(client: TestClient, email: str) -> str:
    return bundle_link_token(client.app.state.runtime, email)  # type: ignore[attr-defined]


def test_the_link_opens_the_members_page_in_their_language_with_the_agenda_and_the_bundle(client: TestClient) -> None:
    token = token_of(client, CHAD)
    page = client.get("/committee/bundle", params={"token": token}, headers=BROWSER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert '<html lang="fr">' in html and "Confidentiel – réservé aux membres du Comité directeur" in html
    assert "Votre dossier d'examen" in html and "du 2 octobre 2018 au 3 octobre 2018, Oslo" in html
    assert "Bénin" in html and "Cameroun" in html  # the Parties in French
    assert re.search(r"190\u202f000,00\u00a0\$US", html)
    # what the member takes no part in is marked, and said once
    assert "Vous ne prenez pas part à la décision sur 1 demande" in html
    row = re.search(rf"<tr><td class=\"ref\">{BEN}</td>.*?</tr>", html).group(0)  # type: ignore[union-attr]
    assert "aucune (conflit d'intérêts)" in row
    assert f'href="bundle?token={token}&amp;format=html"' in html and "format=pdf" not in html  # no PDF was made
    bundle = client.get("/committee/bundle", params={"token": token, "format": "html"})
    assert bundle.status_code == 200 and BEN in bundle.text and '<section class="cover">' in bundle.text
    spanish = client.get("/committee/bundle", params={"token": token, "lang": "es"}, headers=BROWSER).text
    assert "Su carpeta de examen" in spanish and "Benín" in spanish


def test_a_program_gets_the_bundle_itself_by_header_or_by_the_links_address(client: TestClient) -> None:
    token = token_of(client, CHAD)
    page = client.get("/committee/bundle", params={"token": token}, headers=BROWSER)
    by_header = client.get("/committee/bundle", headers={"Authorization": f"Bearer {token}", **BROWSER})
    by_address = client.get("/committee/bundle", params={"token": token})  # a client that asks for anything
    for bundle in (by_header, by_address):
        assert bundle.status_code == 200 and bundle.text != page.text
        assert '<section class="cover">' in bundle.text and "<h1" in bundle.text  # the bundle's own document


def test_opening_the_page_records_no_download_and_a_forged_link_is_refused(client: TestClient) -> None:
    from engine.tables import AuditEvent

    token = token_of(client, CHAD)
    client.get("/committee/bundle", params={"token": token}, headers=BROWSER)
    client.get("/committee/bundle", params={"token": token, "format": "html"})
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        downloads = session.exec(select(AuditEvent).where(AuditEvent.action == "bundle.downloaded")).all()
    assert [e.details["format"] for e in downloads if e.details] == ["html"]
    forged = client.get("/committee/bundle", params={"token": "forged"}, headers={"Accept": "text/html"})
    assert forged.status_code == 404 and "<h1>" in forged.text


def test_the_page_shows_the_agenda_of_the_bundle_the_member_has_until_a_new_version(
    client: TestClient, committee: Runtime
) -> None:
    """A conflict declared after the bundle was prepared changes nothing on the page (the
    member's bundle still holds that dossier) until the next version is prepared."""
    cmr = "SIP-2018-R1-0004"
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, cmr, CHAD, "a relative at the agency", actor="officer", at=PREPARED)
    html = client.get("/committee/bundle", params={"token": token_of(client, CHAD)}, headers=BROWSER).text
    assert "Vous ne prenez pas part à la décision sur 1 demande" in html  # Benin only, as in the bundle
    assert "aucune" not in re.search(rf'<tr><td class="ref">{cmr}</td>.*?</tr>', html).group(0)  # type: ignore[union-attr]
