"""A GMP reviewer does their part in Chromium, in Spanish: the e-mailed link signs them
in, a reload keeps them signed in, they read the application, score it, save a draft,
submit it once confirmed, and can no longer change it. The time from the link to the
submitted review is written beside the screenshots."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from engine.db import reading, unit_of_work
from engine.services import outbox
from engine.services.review.assignment import assign_reviewers
from engine.services.review.invitations import invite
from engine.services.setup import Runtime
from engine.tables import OutboxMessage
from tests.browser.conftest import SHOTS
from tests.conftest import AFTER_R4, ROUND4

BEN, LSO = "SIP-2024-R4-0001", "SIP-2024-R4-0002"
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def invitation_link(rt: Runtime, email: str, base: str) -> str:
    """The sign-in link of the reviewer's invitation, as it is delivered, on the served app."""
    with reading(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.recipient == email).order_by(OutboxMessage.id.desc())  # type: ignore[arg-type]
        ).first()
        assert message is not None
        text = outbox.materialize(session, rt.settings, message).text
    path = re.search(r"http\S+(/reviewer/sign-in\?\S+)", text).group(1)  # type: ignore[union-attr]
    return base + path


def test_a_reviewer_in_spanish_goes_from_the_link_to_a_submitted_review(
    round4: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    app = serve(AFTER_R4)
    started = time.perf_counter()
    page.goto(invitation_link(round4, "ana@example.org", app.url))
    shot(page, "1-sign-in-es")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("heading", name="Sus solicitudes")).to_be_visible()
    page.reload()  # still signed in: the cookie, not a key to keep
    expect(page.get_by_role("link", name=BEN)).to_be_visible()
    assert "Bearer" not in page.content()
    shot(page, "2-workspace-es")

    page.get_by_role("link", name=BEN).click()
    expect(page.get_by_role("heading", name="Formulario A: el proyecto")).to_be_visible()
    expect(page.get_by_text("Servicios por contrata").first).to_be_visible()  # a budget category, not its key
    shot(page, "3-application-es")
    page.get_by_role("group", name="Solidez técnica del enfoque").get_by_label("4").check()
    page.get_by_label("Comentarios para el Comité").fill("Enfoque sólido; el presupuesto es escaso.")
    page.get_by_role("button", name="Guardar como borrador").click()
    expect(page.get_by_role("status")).to_contain_text("Su borrador se ha guardado")
    expect(page.get_by_role("group", name="Solidez técnica del enfoque").get_by_label("4")).to_be_checked()

    page.get_by_role("button", name="Enviar la evaluación").click()  # not yet complete, nor confirmed
    expect(page.get_by_role("alert")).to_contain_text("Elija una puntuación en la escala de este criterio.")
    shot(page, "4-review-problems-es")
    for criterion, score in (
        ("Pertinencia para el área de la Alianza y las obligaciones del Convenio", "5"),
        ("Viabilidad de las actividades, el plan de trabajo y el presupuesto", "3"),
        ("Resultados esperados en la reducción del uso, las emisiones o las liberaciones de mercurio", "4"),
    ):
        page.get_by_role("group", name=criterion).get_by_label(score).check()
    page.get_by_label("Apoyar con cambios").check()
    page.get_by_label("Entiendo que, una vez enviada, mi evaluación ya no podrá modificarse.").check()
    page.get_by_role("button", name="Enviar la evaluación").click()
    expect(page.get_by_role("status")).to_contain_text("Su evaluación se ha enviado")
    elapsed = time.perf_counter() - started
    assert page.get_by_role("button", name="Enviar la evaluación").count() == 0  # no form any more
    expect(page.get_by_text("Enfoque sólido; el presupuesto es escaso.")).to_be_visible()
    shot(page, "5-submitted-es")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "reviewer-link-to-submitted-review.txt").write_text(
        f"A reviewer, from the e-mailed link to a submitted review in Chromium: {elapsed:.1f} s\n"
    )


def test_in_the_browser_another_reviewers_application_is_not_found_and_a_form_without_its_token_is_refused(
    round4: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    app = serve(AFTER_R4)
    page.goto(invitation_link(round4, "kofi@example.org", app.url) + "&lang=fr")  # Kofi reviews Benin's only
    page.get_by_role("button").click()
    expect(page.get_by_role("link", name=BEN)).to_be_visible()

    theirs = page.goto(f"{app.url}/reviewer/workspace/{LSO}?lang=fr")
    seen = page.locator("main").inner_text()
    shot(page, "1-not-theirs-fr")
    missing = page.goto(f"{app.url}/reviewer/workspace/SIP-2024-R4-0099?lang=fr")
    assert theirs is not None and missing is not None and theirs.status == missing.status == 404
    assert seen == page.locator("main").inner_text()  # the same page: nothing says the application exists

    page.goto(f"{app.url}/reviewer/workspace/{BEN}?lang=fr")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")  # as a forged form
    page.get_by_role("button", name="Enregistrer comme brouillon").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ce formulaire n'a pas pu être accepté")
    expect(page.get_by_text("Ouvrez à nouveau la page et envoyez le formulaire depuis celle-ci.")).to_be_visible()
    shot(page, "2-form-without-its-token-fr")
