"""The applicant's status page says what the status means and what comes next, with the
details that go with it (the grant and its conditions, the committee's recommendations,
the items asked for and their due date, what is missing), in the applicant's language,
and keeps the application on screen when they switch language."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from api.app import create_app
from domain.committee import DecisionIn
from engine.db import unit_of_work
from engine.services.committee.decisions import record_decisions
from engine.services.letters import send_decision_letters
from engine.services.setup import Runtime
from tests.conftest import (
    AFTER_CLOSE,
    COMMITTEE_AT,
    IN_ROUND1,
    ROUND1,
    Clock,
    access_code,
    ask_for_information,
    example,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BEN, LSO, CHE, CMR = "SIP-2018-R1-0001", "SIP-2018-R1-0002", "SIP-2018-R1-0003", "SIP-2018-R1-0004"


def page(client: TestClient, reference: str, code: str, **extra: str) -> str:
    headers = {"Accept-Language": extra.pop("accept_language")} if "accept_language" in extra else {}
    answer = client.post("/status", data={"reference": reference, "access_code": code, **extra}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.text


@pytest.fixture
def client(open_round1: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(open_round1.settings, now=Clock(IN_ROUND1))) as client:
        yield client


def test_an_approval_shows_its_grant_and_conditions_and_a_refusal_its_recommendations_once_the_letters_go(
    committee: Runtime,
) -> None:
    with unit_of_work(committee.engine) as session:
        record_decisions(
            session,
            ROUND1,
            [
                (
                    DecisionIn(
                        reference=BEN,
                        decision="approved_with_conditions",
                        amount=Decimal("150000"),
                        conditions="Name the district focal points.",
                    ),
                    "row 1",
                ),
                (
                    DecisionIn(reference=CMR, decision="not_approved", recommendations="Give the baseline data."),
                    "row 2",
                ),
            ],
            actor="officer",
            at=COMMITTEE_AT,
        )
    with TestClient(create_app(committee.settings, now=Clock(COMMITTEE_AT))) as client:
        before = page(client, BEN, access_code(committee, BEN), lang="fr")
        # no decision shows before its letter is on its way
        assert "en cours d&#39;examen" in before and "150" not in before and "focal points" not in before
        with unit_of_work(committee.engine) as session:
            send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=COMMITTEE_AT)
        french = page(client, BEN, access_code(committee, BEN), lang="fr")
        assert "Le Comité directeur a approuvé votre projet aux conditions ci-dessous." in french
        assert "Subvention approuvée\u00a0: 150\u202f000,00\u00a0$US" in french
        assert "Conditions de la subvention" in french and "Name the district focal points." in french
        spanish = page(client, CMR, access_code(committee, CMR), lang="es")
        assert "El Comité Directivo no aprobó su solicitud en esta ronda." in spanish
        assert "Recomendaciones del Comité" in spanish and "Give the baseline data." in spanish
        assert "Subvención" not in spanish


def test_an_incomplete_and_an_ineligible_application_say_what_screening_found_in_the_readers_language(
    screened: Runtime,
) -> None:
    with TestClient(create_app(screened.settings, now=Clock(AFTER_CLOSE))) as client:
        incomplete = page(client, LSO, access_code(screened, LSO), lang="fr")
        assert "Votre demande est incomplète" in incomplete and "Éléments manquants" in incomplete
        assert "Le formulaire C (lettre de transmission signée par le point focal national) est manquant." in (
            incomplete.replace("&#39;", "'")
        )
        ineligible = page(client, CHE, access_code(screened, CHE), lang="es")
        assert "Su solicitud no puede considerarse en esta ronda" in ineligible and "Motivos" in ineligible
        assert "Suiza" in ineligible  # the Party named in Spanish


def test_an_information_request_lists_its_items_and_the_day_they_are_due(screened: Runtime) -> None:
    ask_for_information(screened, LSO)
    with TestClient(create_app(screened.settings, now=Clock(AFTER_CLOSE))) as client:
        spanish = page(client, LSO, access_code(screened, LSO), lang="es")
    assert "La secretaría necesita más información" in spanish and "Lo que necesita la secretaría" in spanish
    assert "<li>Form C, signed by the national focal point</li>" in spanish and "<li>The workplan</li>" in spanish
    assert "Envíelos a más tardar el 28 de septiembre de 2018." in spanish


def test_switching_language_keeps_the_application_on_screen_and_the_code_out_of_the_address(
    client: TestClient,
) -> None:
    receipt = client.post(f"/rounds/{ROUND1}/applications", content=example("ben-asgm-complete.json")).json()
    english = page(client, receipt["reference"], receipt["access_token"], accept_language="fr;q=0.4, en")
    assert "The secretariat has received your application." in english
    switch = re.search(r'<form method="post" action="status" class="languages".*?</form>', english, re.S)
    assert switch is not None
    form = switch.group(0)
    assert f'name="reference" value="{receipt["reference"]}"' in form and 'name="lang" value="es"' in form
    assert receipt["access_token"] not in english  # the code is never written into the page...
    proof = re.search(r'name="access_code" value="([\w.]+)"', form).group(1)  # type: ignore[union-attr]
    # ... the buttons send in its place a proof that it was given: the browser sends the form with the language chosen
    answer = client.post("/status", data={"reference": receipt["reference"], "access_code": proof, "lang": "es"})
    spanish = answer.text
    assert answer.status_code == 200 and "La secretaría ha recibido su solicitud." in spanish
    assert receipt["reference"] in spanish and receipt["access_token"] not in spanish
    assert not re.search(r"\d\d:\d\d:\d\d", spanish)  # times to the minute


def test_a_proof_opens_only_its_own_application_and_only_for_half_an_hour(client: TestClient) -> None:
    first = client.post(f"/rounds/{ROUND1}/applications", content=example("ben-asgm-complete.json")).json()
    second = client.post(
        f"/rounds/{ROUND1}/applications", content=example("ben-asgm-complete.json"), headers={"Idempotency-Key": "2"}
    ).json()
    html = page(client, first["reference"], first["access_token"], lang="fr")
    proof = re.search(r'name="access_code" value="([\w.]+)"', html).group(1)  # type: ignore[union-attr]
    other = client.post("/status", data={"reference": second["reference"], "access_code": proof, "lang": "fr"})
    forged = client.post(
        "/status", data={"reference": first["reference"], "access_code": "9999999999.00", "lang": "fr"}
    )
    assert other.status_code == forged.status_code == 404 and "Aucune demande ne correspond" in other.text
    clock: Clock = client.app.state.clock  # type: ignore[attr-defined]
    clock.now += timedelta(minutes=20)
    followed = page(client, first["reference"], proof, lang="es")
    renewed = re.search(r'name="access_code" value="([\w.]+)"', followed).group(1)  # type: ignore[union-attr]
    assert renewed == proof  # following it does not make it last longer
    clock.now += timedelta(minutes=11)
    late = client.post("/status", data={"reference": first["reference"], "access_code": proof, "lang": "fr"})
    assert late.status_code == 404
    for odd in ("².x", "9999999999.é", "1." + "0" * 64, "12345678901234567890." + "a" * 64):
        answer = client.post("/status", data={"reference": first["reference"], "access_code": odd, "lang": "fr"})
        assert answer.status_code == 404  # the form again, never a crash


def test_the_page_is_in_the_browsers_language_unless_one_is_chosen(client: TestClient) -> None:
    receipt = client.post(f"/rounds/{ROUND1}/applications", content=example("ben-asgm-complete.json")).json()
    reference, code = receipt["reference"], receipt["access_token"]
    assert "Le secrétariat a bien reçu votre demande." in page(client, reference, code, accept_language="fr-CH, en")
    assert "The secretariat has received" in page(client, reference, code, lang="en", accept_language="fr")
