"""An applicant applies online in Chromium, in French: they start an application, fill in
forms A, B and C (the budget's totals adding up as they type), save a draft, come back
to it from the e-mailed link in another browser, submit it, read the receipt and its
access code, and sign in to the status page with it. Then, asked for information, they
send form C again from the status page. And a draft link of another applicant opens
nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from engine.services.setup import Runtime
from tests.conftest import AFTER_CLOSE, IN_ROUND1, access_code, ask_for_information, delivered, draft_link

EMAIL = "aicha.dossou@example.org"
LSO = "SIP-2018-R1-0002"
#: The page, not the database, is under test here: SQLite alone.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def test_an_applicant_applies_in_french_saves_a_draft_comes_back_submits_and_follows_the_status(
    open_round1: Runtime, serve: Any, chromium: Any, page: Any, shot: Any
) -> None:
    app = serve(IN_ROUND1)
    page.goto(f"{app.url}/apply?lang=fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Déposer une demande en ligne")
    shot(page, "1-start-fr")
    page.get_by_label("Votre adresse électronique").fill(EMAIL)
    page.get_by_role("button", name="Commencer une demande").click()
    expect(page.get_by_role("status")).to_contain_text(f"Un lien vers ce brouillon a été envoyé à {EMAIL}")

    page.get_by_label("Partie requérante").select_option(label="Bénin")
    page.get_by_label("Organisme d'exécution", exact=True).fill("Agence béninoise pour l'environnement")
    page.get_by_label("Pays de l'organisme d'exécution").select_option("BEN")
    page.get_by_label("Personne de contact").fill("Aïcha Dossou")
    page.get_by_label("Langue des courriers").select_option("fr")
    page.get_by_label("Titre du projet").fill("Réduire le mercure dans l'orpaillage")
    output = page.get_by_role("group", name="Produit 1")
    output.get_by_label("Code").fill("1")
    output.get_by_label("Titre").fill("Inventaire des sites")
    output.get_by_label("Activités").fill("Enquête de terrain\nAtelier national")
    page.get_by_label("Ligne budgétaire 1 – Catégorie").select_option("personnel")
    page.get_by_label("Ligne budgétaire 1 – Année").fill("1")
    page.get_by_label("Ligne budgétaire 1 – Montant").fill("45 000,50")
    page.get_by_label("Ligne budgétaire 2 – Catégorie").select_option("travel")
    page.get_by_label("Ligne budgétaire 2 – Année").fill("2")
    page.get_by_label("Ligne budgétaire 2 – Montant").fill("4 999,50")
    totals = page.locator("#budget-totals")
    # added up as they type, as French writes amounts
    expect(totals.locator("tfoot")).to_contain_text("50\u202f000,00\xa0$US")
    page.get_by_label("Durée (mois)").fill("300")  # beyond the format's 240 months
    page.get_by_role("button", name="Enregistrer le brouillon").click()

    alert = page.locator("#problems")
    expect(alert).to_contain_text("1 champ demande votre attention")
    expect(alert).to_be_focused()
    duration = page.get_by_label("Durée (mois)")
    expect(duration).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-form_a-duration_months-error")).to_have_text("Indiquez un nombre de 240 au plus.")
    shot(page, "2-draft-with-a-problem-fr")
    duration.fill("24")
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    expect(page.get_by_role("status")).to_contain_text("Brouillon enregistré le 2 juillet 2018")

    # another browser, from the e-mailed link: the draft as it was left
    other = chromium.new_context(viewport={"width": 1000, "height": 900})
    again = other.new_page()
    again.goto(app.url + draft_link(open_round1, EMAIL))
    expect(again.get_by_label("Titre du projet")).to_have_value("Réduire le mercure dans l'orpaillage")
    expect(again.get_by_role("group", name="Produit 1").get_by_label("Activités")).to_have_value(
        "Enquête de terrain\nAtelier national"
    )
    # the amounts as French writes them, read back as typed
    expect(again.get_by_label("Ligne budgétaire 1 – Montant")).to_have_value("45\u202f000,50")
    assert "token" not in again.url
    again.get_by_label("Signée par").fill("Aïcha Dossou")
    again.get_by_label("Date de signature").fill("2018-07-01")
    again.get_by_label("La lettre confirme que des consultations nationales ont eu lieu.").select_option("yes")
    again.get_by_role("button", name="Soumettre la demande").click()
    expect(again.locator("#f-confirm-error")).to_contain_text("Cochez la case")
    again.get_by_label("Je confirme que la demande est complète et prête à être soumise.").check()
    again.get_by_role("button", name="Soumettre la demande").click()

    expect(again.get_by_role("heading", level=1)).to_have_text("Demande reçue")
    code = again.locator("#access-code").inner_text()
    assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){4}[0-9A-HJKMNP-TV-Z]{4}", code)
    reference = again.locator("td.status").inner_text()
    shot(again, "3-receipt-fr")
    assert code in delivered(open_round1, "receipt", EMAIL)

    again.get_by_role("link", name="Suivre l'état de la demande").click()
    expect(again.get_by_label("Référence")).to_have_value(reference)
    again.get_by_label("Code d'accès").fill(code.replace("-", " ").lower())
    again.get_by_role("button", name="Consulter l'état").click()
    expect(again.locator(".status")).to_have_text("Reçue")
    shot(again, "4-status-fr")
    other.close()


def test_asked_for_information_the_applicant_sends_form_c_again_from_the_status_page(
    screened: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    ask_for_information(screened, LSO)
    app = serve(AFTER_CLOSE + timedelta(days=1))
    page.goto(f"{app.url}/status?lang=fr")
    page.get_by_label("Référence").fill(LSO)
    page.get_by_label("Code d'accès").fill(access_code(screened, LSO))
    page.get_by_role("button", name="Consulter l'état").click()
    page.get_by_role("button", name="Renvoyer les formulaires").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Renvoyer les formulaires")
    shot(page, "1-forms-fr")
    page.get_by_label("Signée par").fill("Mamello Mokhothu")
    page.get_by_label("Date de signature").fill("2018-09-10")
    page.get_by_role("button", name="Envoyer les formulaires").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Formulaires reçus")
    shot(page, "2-forms-received-fr")


def test_a_draft_link_of_another_applicant_opens_nothing(
    open_round1: Runtime, serve: Any, chromium: Any, page: Any, shot: Any
) -> None:
    app = serve(IN_ROUND1)
    page.goto(f"{app.url}/apply?lang=fr")
    page.get_by_label("Votre adresse électronique").fill("first@example.org")
    page.get_by_role("button", name="Commencer une demande").click()
    page.get_by_label("Titre du projet").fill("Projet confidentiel")
    page.get_by_role("button", name="Enregistrer le brouillon").click()
    link = draft_link(open_round1, "first@example.org")

    stranger = chromium.new_context().new_page()
    stranger.goto(app.url + re.sub(r"token=[\w-]{4}", "token=abcd", link))  # a link that is not theirs
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Ce lien n'ouvre aucun brouillon de demande")
    assert "Projet confidentiel" not in stranger.content()
    shot(stranger, "refused-fr")
    stranger.goto(f"{app.url}/apply/draft?lang=fr")  # and no draft without a link
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Ce lien n'ouvre aucun brouillon de demande")
    stranger.context.close()
