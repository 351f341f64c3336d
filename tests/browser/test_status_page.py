"""An applicant reads their status page in Chromium: what the status means, what the
secretariat needs and by when, in their language, and the same application after they
switch language; a wrong code gets the form again, saying so."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from engine.services.setup import Runtime
from tests.conftest import AFTER_CLOSE, access_code, ask_for_information

LSO = "SIP-2018-R1-0002"
#: The page, not the database, is under test here: SQLite alone.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def test_an_applicant_reads_in_french_what_is_needed_and_by_when_then_switches_to_spanish(
    screened: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    ask_for_information(screened, LSO)
    app = serve(AFTER_CLOSE)
    page.goto(f"{app.url}/status?lang=fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("État de la demande")
    shot(page, "1-form-fr")
    page.get_by_label("Référence").fill(LSO)
    page.get_by_label("Code d'accès").fill(access_code(screened, LSO))
    page.get_by_role("button", name="Consulter l'état").click()

    expect(page.locator(".status")).to_have_text("Informations demandées")
    expect(page.get_by_text("Le secrétariat a besoin d'informations complémentaires")).to_be_visible()
    expect(page.get_by_role("heading", name="Ce dont le secrétariat a besoin")).to_be_visible()
    expect(page.get_by_role("listitem")).to_have_text(["Form C, signed by the national focal point", "The workplan"])
    expect(page.get_by_text("Veuillez les envoyer au plus tard le 28 septembre 2018.")).to_be_visible()
    assert "access_code" not in page.url and "reference" not in page.url  # nothing of the code in the address
    shot(page, "2-information-requested-fr")

    page.get_by_role("button", name="Español").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator(".status")).to_have_text("Información solicitada")
    expect(page.get_by_text("Envíelos a más tardar el 28 de septiembre de 2018.")).to_be_visible()
    expect(page.get_by_role("cell", name=LSO)).to_be_visible()  # the same application
    shot(page, "3-information-requested-es")


def test_a_wrong_code_gets_the_form_again_saying_so_in_the_pages_language(
    screened: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    app = serve(AFTER_CLOSE)
    page.goto(f"{app.url}/status?lang=es")
    page.get_by_label("Referencia").fill(LSO)
    page.get_by_label("Código de acceso").fill("guess")
    page.get_by_role("button").click()
    expect(page.get_by_role("alert")).to_contain_text("Ninguna solicitud corresponde")
    expect(page.get_by_label("Referencia")).to_have_value(LSO)
    assert page.locator(".status").count() == 0
    shot(page, "wrong-code-es")
