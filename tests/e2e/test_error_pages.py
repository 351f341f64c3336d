"""People get their errors as pages in their language on the routes they open in a
browser (a committee member's bundle link, a reviewer's sign-in pages, the applicant's
status page), with the status code of what went wrong; an API client that asks for JSON
gets the API's JSON errors, and the API's own routes answer JSON as before."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import HTTPException, Request
from sqlmodel import select

from api.app import create_app
from api.pages import PersonPage, page_language, person_page
from engine.db import reading, unit_of_work
from engine.services import outbox
from engine.services.committee.bundles import prepare_bundles, stored_file
from engine.services.committee.meeting import declare_member_conflict
from engine.services.review.assignment import assign_reviewers
from engine.services.review.invitations import invite
from engine.services.setup import Runtime
from engine.settings import Settings
from engine.tables import CommitteeBundle, OutboxMessage
from tests.conftest import AFTER_R4, COMMITTEE_AT, ROUND1, ROUND4, Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MARTIN = "martin.gomez@committee.example.org"  # the member's language is Spanish
AFTER_LINKS_EXPIRE = datetime(2018, 11, 3, 9, tzinfo=UTC)  # a month after the meeting
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
NBSP = "\u00a0"


def _message_text(rt: Runtime, **where: str) -> str:
    with reading(rt.engine) as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id.desc())  # type: ignore[union-attr]
        for name, value in where.items():
            query = query.where(getattr(OutboxMessage, name) == value)
        message = session.exec(query).first()
        assert message is not None
        return outbox.materialize(session, rt.settings, message).text


def _error_page(answer: object) -> str:
    """The page's text, checked to be a page (not JSON, never a traceback)."""
    assert answer.headers["content-type"].startswith("text/html"), answer.headers  # type: ignore[attr-defined]
    text: str = answer.text  # type: ignore[attr-defined]
    assert text.startswith("<!doctype html>") and "<h1>" in text and "Traceback" not in text
    assert answer.headers["cache-control"] == "no-store"  # type: ignore[attr-defined]
    return text


@pytest.fixture
def clock() -> Clock:
    return Clock(COMMITTEE_AT)


@pytest.fixture
def bundled(committee: Runtime, clock: Clock) -> Iterator[tuple[TestClient, str]]:
    """Round 1's bundles prepared; the API, and Martín Gómez's link as his message gives it."""
    with unit_of_work(committee.engine) as session:
        prepare_bundles(session, committee.settings, ROUND1, actor="officer", at=COMMITTEE_AT)
    text = _message_text(committee, recipient=MARTIN)
    link = re.search(r"http://127\.0\.0\.1:8000(/committee/bundle\?token=[\w-]+)", text).group(1)  # type: ignore[union-attr]
    with TestClient(create_app(committee.settings, now=clock)) as client:
        yield client, link


def test_an_expired_bundle_link_is_a_spanish_page_with_410_for_a_spanish_speaking_member(
    bundled: tuple[TestClient, str], clock: Clock
) -> None:
    client, link = bundled
    assert client.get(link, headers=BROWSER).status_code == 200
    clock.now = AFTER_LINKS_EXPIRE
    answer = client.get(link, headers={**BROWSER, "Accept-Language": "en-GB,en;q=0.9"})  # his own language wins
    assert answer.status_code == 410
    page = _error_page(answer)
    assert '<html lang="es">' in page and "<h1>Este enlace ha caducado</h1>" in page
    assert "hasta 30 días después de la reunión del Comité" in page
    assert 'href="mailto:sip@' in page  # the secretariat, as a link
    # The same link for an API client that asks for JSON: the API's answer, same status.
    api = client.get(link, headers={"Accept": "application/json"})
    assert api.status_code == 410 and api.headers["content-type"] == "application/json"
    assert api.json()["error"] == "gone" and "expired 30 days after the meeting" in api.json()["message"]


def test_a_replaced_bundle_link_says_so_and_an_unknown_one_is_404_in_the_browsers_language(
    bundled: tuple[TestClient, str],
) -> None:
    client, link = bundled
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with unit_of_work(rt.engine) as session:  # a second version replaces the first
        declare_member_conflict(
            session, ROUND1, "SIP-2018-R1-0001", MARTIN, "advised the agency", actor="officer", at=COMMITTEE_AT
        )
    with unit_of_work(rt.engine) as session:
        prepare_bundles(session, rt.settings, ROUND1, actor="officer", at=COMMITTEE_AT)
    replaced = client.get(link)  # no Accept header (a mail client's preview, curl): a page
    assert replaced.status_code == 410
    assert "una versión más reciente de su carpeta de examen" in _error_page(replaced)
    unknown = client.get("/committee/bundle?token=forged", headers={**BROWSER, "Accept-Language": "fr-CH, fr;q=0.9"})
    assert unknown.status_code == 404
    page = _error_page(unknown)
    assert '<html lang="fr">' in page and "Ce lien n'ouvre aucun dossier d'examen" in page
    bad_format = client.get(link + "&format=docx", headers={**BROWSER, "Accept-Language": "es"})
    assert bad_format.status_code == 422
    assert "El campo «Formato de archivo» no es válido." in _error_page(bad_format)


def test_a_bundle_whose_file_cannot_be_read_is_a_generic_500_page_without_traceback(
    bundled: tuple[TestClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, link = bundled
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        bundle = session.exec(select(CommitteeBundle).where(CommitteeBundle.email == MARTIN)).one()
    path: Path = stored_file(rt.settings, bundle.path)
    path.unlink()
    path.mkdir()  # a folder where the file should be: the engine fails unexpectedly
    with TestClient(client.app, raise_server_exceptions=False) as unchecked:
        answer = unchecked.get(link + "&format=html", headers={**BROWSER, "Accept-Language": "fr"})  # the file
        api = unchecked.get(link, headers={"Accept": "application/json"})
    assert answer.status_code == 500
    page = _error_page(answer)
    assert "Une erreur s'est produite de notre côté" in page and "RuntimeError" not in page
    assert str(path) not in page
    assert api.status_code == 500 and api.json()["error"] == "internal"  # the API's 500, as before
    for unexpected in (answer, api):  # answered outside the headers' middleware, with them all the same
        assert "script-src 'self'" in unexpected.headers["content-security-policy"]
        assert unexpected.headers["x-content-type-options"] == "nosniff"
    assert "unexpected error" in caplog.text  # the traceback goes to the log only


@pytest.fixture
def invited(round4: Runtime) -> Iterator[TestClient]:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    with TestClient(create_app(round4.settings, now=Clock(AFTER_R4))) as client:
        yield client


def test_a_reviewers_used_sign_in_link_is_a_410_page_in_the_pages_language(invited: TestClient) -> None:
    rt = invited.app.state.runtime  # type: ignore[attr-defined]
    text = _message_text(rt, recipient="ana@example.org")
    url = re.search(r"http://127\.0\.0\.1:8000(/reviewer/sign-in\?\S+)", text).group(1)  # type: ignore[union-attr]
    assert "lang=es" in url
    token = re.search(r"token=([\w-]+)", url).group(1)  # type: ignore[union-attr]
    assert invited.post("/reviewer/sign-in", data={"token": token, "lang": "es"}, headers=BROWSER).status_code == 200
    used = invited.post("/reviewer/sign-in", data={"token": token, "lang": "es"}, headers=BROWSER)
    assert used.status_code == 410
    page = _error_page(used)
    assert '<html lang="es">' in page and "<h1>Este enlace de inicio de sesión ya se ha utilizado</h1>" in page
    assert 'href="links?lang=es"' in page  # what to do next: ask for a new link
    assert "POST /reviewer/links" not in page  # not the API's English hint
    # An unknown link: the page's language (the form's lang), 404.
    forged = invited.post("/reviewer/sign-in", data={"token": "forged", "lang": "fr"}, headers=BROWSER)
    assert forged.status_code == 404
    assert f"Demandez un nouveau lien de connexion{NBSP}: il sera envoyé" in _error_page(forged)
    # The API's route for the same link answers JSON, as before.
    api = invited.post("/reviewer/sessions", json={"token": token})
    assert api.status_code == 401 and api.json()["error"] == "unauthorized"


def test_a_reviewers_form_with_a_bad_address_is_a_422_page_naming_the_field(invited: TestClient) -> None:
    answer = invited.post("/reviewer/links", data={"email": "not an address", "lang": "fr"}, headers=BROWSER)
    assert answer.status_code == 422
    assert f"Le champ «{NBSP}Adresse électronique{NBSP}» n'est pas valide." in _error_page(answer)
    api = invited.post("/reviewer/links", json={"email": "not an address"})
    assert api.status_code == 422 and api.json()["errors"][0]["path"] == "$.email"


@pytest.fixture
def applicant(open_round1: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(open_round1.settings, now=Clock(datetime(2018, 8, 1, tzinfo=UTC)))) as client:
        yield client


def test_a_wrong_access_code_on_the_status_form_answers_in_the_applicants_language(applicant: TestClient) -> None:
    form = applicant.post("/status", data={"reference": "SIP-2018-R1-0007", "access_code": "guess", "lang": "fr"})
    assert form.status_code == 404 and '<html lang="fr">' in form.text
    assert "Aucune demande ne correspond" in form.text
    # Without a language chosen on the page, the browser's.
    browser = applicant.post(
        "/status", data={"reference": "SIP-2018-R1-0007", "access_code": "guess"}, headers={"Accept-Language": "es"}
    )
    assert browser.status_code == 404 and "Ninguna solicitud corresponde" in browser.text


def test_the_status_form_with_bad_input_is_a_422_page_naming_the_fields_in_words(applicant: TestClient) -> None:
    answer = applicant.post("/status", data={"reference": "x" * 61, "lang": "es"}, headers=BROWSER)
    assert answer.status_code == 422
    page = _error_page(answer)
    assert "El campo «Referencia» es demasiado largo: admite como máximo 60 caracteres." in page
    assert "Rellene el campo «Código de acceso»." in page
    assert 'href="status?lang=es"' in page
    english = applicant.get("/status", params={"reference": "x" * 61}, headers=BROWSER)
    assert english.status_code == 422
    assert "The field “Reference” is too long: it takes at most 60 characters." in _error_page(english)
    api = applicant.post("/status", data={"reference": "x" * 61}, headers={"Accept": "application/json"})
    assert api.status_code == 422 and {e["path"] for e in api.json()["errors"]} == {
        "$.body.reference",
        "$.body.access_code",
    }


def test_any_http_error_on_a_page_is_a_page_with_its_status_and_headers(applicant: TestClient) -> None:
    """What another part adds (a size limit's 413, a rate limit's 429 with Retry-After)
    renders as a page by the same handler: here 405, which FastAPI raises itself."""
    answer = applicant.delete("/status?lang=es", headers=BROWSER)
    assert answer.status_code == 405 and "GET" in answer.headers["allow"]
    assert "Esta página no se puede usar de este modo" in _error_page(answer)
    assert applicant.delete("/status", headers={"Accept": "application/json"}).json()["error"] == "method_not_allowed"


def test_the_apis_own_routes_still_answer_json_to_a_browser(applicant: TestClient) -> None:
    answer = applicant.get("/applications/SIP-2018-R1-0001", headers=BROWSER)
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    assert applicant.get("/nowhere", headers=BROWSER).json()["error"] == "not_found"


def _app_with_a_page_that_refuses(settings: Settings, status_code: int, headers: dict[str, str]) -> TestClient:
    """The API with one more page, marked as the engine's are, that answers what a limit
    added elsewhere raises (an HTTPException): the handler renders it unchanged."""
    app = create_app(settings)

    @app.post("/limited", dependencies=[PersonPage(back="status")])
    def limited() -> None:
        raise HTTPException(status_code, headers=headers)

    return TestClient(app)  # no start-up: the page needs no database


def test_a_rate_limits_429_on_a_page_says_how_long_to_wait_and_keeps_retry_after(sqlite_settings: Settings) -> None:
    client = _app_with_a_page_that_refuses(sqlite_settings, 429, {"Retry-After": "120"})
    answer = client.post("/limited?lang=fr", headers=BROWSER)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "120"
    page = _error_page(answer)
    assert "<h1>Trop de tentatives</h1>" in page and "Veuillez patienter 2 minutes, puis réessayer." in page
    api = client.post("/limited", headers={"Accept": "application/json"})
    assert api.status_code == 429 and api.json()["error"] == "too_many_requests" and api.headers["retry-after"] == "120"


def test_a_size_limits_413_on_a_page_is_a_page_in_the_browsers_language(sqlite_settings: Settings) -> None:
    client = _app_with_a_page_that_refuses(sqlite_settings, 413, {})
    answer = client.post("/limited", headers={**BROWSER, "Accept-Language": "es-AR,es;q=0.9,en;q=0.5"})
    assert answer.status_code == 413
    assert "<h1>Lo que ha enviado es demasiado grande</h1>" in _error_page(answer)


@pytest.mark.parametrize(
    ("accept", "prefer", "page"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html", True),  # a browser
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "json", True),
        ("*/*", "html", True),  # curl, a mail client's preview
        ("*/*", "json", False),  # an API client's default, on a route that answers JSON too
        ("", "html", True),
        ("application/json", "html", False),
        ("application/json, text/html;q=0.5", "html", False),
        ("text/*, application/json;q=0.9", "json", True),
        ("image/png", "html", True),  # neither: the route's own
    ],
)
def test_a_page_or_json_by_the_routes_marker_and_the_accept_header(
    sqlite_settings: Settings, accept: str, prefer: str, page: bool
) -> None:
    app = create_app(sqlite_settings)
    marked = PersonPage(prefer=prefer)  # type: ignore[arg-type]
    route = type("Route", (), {"dependencies": [marked]})()
    headers = [(b"accept", accept.encode())] if accept else []
    request = Request({"type": "http", "app": app, "headers": headers, "route": route})
    assert (person_page(request) is marked) is page


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("es-AR,es;q=0.9,en;q=0.5", "es"),
        ("de-CH, fr;q=0.8, en;q=0.7", "fr"),
        ("en-GB", "en"),
        ("pt-BR, de", "en"),  # none of the engine's: English
        ("fr;q=0, es;q=0.1", "es"),  # q=0: not acceptable
        ("*", "en"),
        ("", "en"),
    ],
)
def test_the_browsers_language_is_negotiated_among_english_french_and_spanish(header: str, language: str) -> None:
    request = Request({"type": "http", "headers": [(b"accept-language", header.encode())]})
    assert page_language(request) == language
    assert page_language(request, lang="fr") == "fr" and page_language(request, "fr", person="es") == "es"
    assert page_language(request, lang="xx") == language  # a language the engine does not write in


def test_a_database_that_does_not_answer_is_a_503_page_on_the_status_page(sqlite_settings: Settings) -> None:
    down = sqlite_settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"})
    with TestClient(create_app(down)) as client:
        answer = client.get("/status?lang=es", headers=BROWSER)
        api = client.get("/rounds", headers=BROWSER)
    assert answer.status_code == 503
    page = _error_page(answer)
    assert "<h1>El servicio no está disponible por el momento</h1>" in page and "127.0.0.1" not in page
    assert api.status_code == 503 and api.json()["error"] == "unavailable"  # the API's answer names the cause


def test_a_body_over_the_engines_limit_on_a_page_is_a_page_before_anything_reads_it(applicant: TestClient) -> None:
    """The body limit answers before any route runs (api/limits.py); on a person's page
    it still says so in their language, and an API route keeps its JSON."""
    huge = {"Content-Length": str(50_000_000), "Content-Type": "application/x-www-form-urlencoded"}
    page = applicant.post("/status", headers={**BROWSER, **huge, "Accept-Language": "fr"}, content=b"x")
    assert page.status_code == 413
    assert "<h1>Votre envoi est trop volumineux</h1>" in _error_page(page)
    api = applicant.put("/applications/SIP-2018-R1-0001/forms", headers=huge, content=b"x")
    assert api.status_code == 413 and api.json()["error"] == "too_large"


def test_an_error_page_one_level_down_finds_its_stylesheet(invited: TestClient) -> None:
    answer = invited.post("/reviewer/sign-in", data={"token": "forged", "lang": "es"}, headers=BROWSER)
    assert answer.status_code == 404
    href = re.search(r'<link rel="stylesheet" href="([^"]+)"', _error_page(answer)).group(1)  # type: ignore[union-attr]
    assert href == "../assets/page.css"
    assert invited.get("/reviewer/" + href).status_code == 200  # as the browser resolves it
    top = invited.post("/status", data={"reference": "SIP-2018-R1-0001", "access_code": "wrong"}, headers=BROWSER)
    assert 'href="assets/page.css"' in top.text
