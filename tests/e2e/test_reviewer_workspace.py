"""The reviewer's workspace in a browser's terms (pages, forms, a cookie): signed in by
the link once and kept signed in by an HttpOnly cookie; the application with human
labels; the review saved as a draft and submitted once confirmed; decline and conflict;
sign-out. The refusals: a form without its CSRF token, another reviewer's application,
a submitted review sent again, no session."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest

from api.app import create_app
from engine.db import unit_of_work
from engine.services.review.assignment import assign_reviewers
from engine.services.review.invitations import invite
from engine.services.setup import Runtime
from tests.conftest import AFTER_R4, ROUND4, Clock
from tests.e2e.test_review_api import link

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BEN, LSO = "SIP-2024-R4-0001", "SIP-2024-R4-0002"
COOKIE = "sip_reviewer_session"
SCORES = {"technical_soundness": 4, "area_relevance": 5, "feasibility": 3, "expected_results": 4}


@pytest.fixture
def invited(round4: Runtime) -> Iterator[Runtime]:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    yield round4


def browser(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt.settings, now=Clock(AFTER_R4)))


def sign_in(client: TestClient, email: str, lang: str = "en") -> str:
    """Follows the e-mailed link and presses its button, as a browser does; the workspace's HTML."""
    url = link(client, email)
    page = client.get(url[url.index("/reviewer") :])
    token = re.search(r'name="token" value="([\w-]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/reviewer/sign-in", data={"token": token, "lang": lang})
    assert answer.status_code == 200, answer.text
    return answer.text


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="(\w+)"', html).group(1)  # type: ignore[union-attr]


def test_the_link_signs_in_once_and_a_cookie_keeps_the_reviewer_signed_in(invited: Runtime) -> None:
    with browser(invited) as client:
        url = link(client, "kofi@example.org")
        token = re.search(r"token=([\w-]+)", url).group(1)  # type: ignore[union-attr]
        answer = client.post("/reviewer/sign-in", data={"token": token}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "workspace"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Path=/reviewer" in cookie and "Max-Age=" in cookie
        session = client.cookies[COOKIE]
        for _ in range(2):  # a reload, the next day's visit: still signed in, and the key never shown
            page = client.get("/reviewer/workspace")
            assert page.status_code == 200 and BEN in page.text and session not in page.text
            assert "curl" not in page.text and "Bearer" not in page.text
        client.cookies.clear()
        gone = client.get("/reviewer/workspace", headers={"Accept": "text/html"})
        assert gone.status_code == 401 and 'href="links' in gone.text  # asks for a new link


def test_the_application_reads_with_human_labels_and_amounts_in_the_reviewers_language(invited: Runtime) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org")
        page = client.get(f"/reviewer/workspace/{BEN}?lang=fr").text
    assert "Formulaire A" in page and "Priorité nationale" in page and "national_priority" not in page
    assert "Services contractuels" in page and "contractual_services" not in page
    assert re.search(r"45\u202f000,00\u00a0\$US", page)  # a budget line, as French writes it
    assert "Solidité technique de l&#39;approche" in page  # the technical criteria in French
    assert "Soutenir avec des modifications" in page


def test_a_draft_is_saved_then_the_review_is_submitted_once_confirmed_and_no_longer_changes(
    invited: Runtime,
) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org", "es")
        page = client.get(f"/reviewer/workspace/{BEN}?lang=es").text
        form = {"csrf": csrf(page), "lang": "es", "score_feasibility": "2", "comments_for_committee": "Budget thin."}
        draft = client.post(f"/reviewer/workspace/{BEN}/review", data={**form, "action": "save"})
        assert draft.status_code == 200 and draft.url.query == b"saved=draft&lang=es"
        assert "Su borrador se ha guardado" in draft.text and "Budget thin." in draft.text
        assert re.search(r'name="score_feasibility" value="2" checked', draft.text)

        incomplete = client.post(
            f"/reviewer/workspace/{BEN}/review", data={**form, "action": "submit", "confirm": "yes"}
        )
        assert incomplete.status_code == 422 and 'role="alert"' in incomplete.text
        assert "Elija una puntuación en la escala de este criterio." in incomplete.text
        assert 'id="error-scores-technical_soundness"' in incomplete.text and "Budget thin." in incomplete.text

        full = {
            **form,
            **{f"score_{k}": str(v) for k, v in SCORES.items()},
            "recommendation": "support_with_changes",
            "action": "submit",
        }
        unconfirmed = client.post(f"/reviewer/workspace/{BEN}/review", data=full)
        assert unconfirmed.status_code == 422 and "Marque la casilla" in unconfirmed.text
        submitted = client.post(f"/reviewer/workspace/{BEN}/review", data={**full, "confirm": "yes"})
        assert submitted.status_code == 200 and "Su evaluación se ha enviado" in submitted.text
        assert 'name="score_' not in submitted.text  # read-only now
        again = client.post(f"/reviewer/workspace/{BEN}/review", data={**full, "confirm": "yes"})
        assert again.status_code == 409 and "<h1>" in again.text  # a page, in Spanish, not a traceback
        mine = client.get("/reviewer/workspace?lang=es").text
        assert "Evaluaciones enviadas: 1 de 1." in mine


def test_a_form_without_its_csrf_token_or_with_another_sessions_is_refused(invited: Runtime) -> None:
    with browser(invited) as ana, browser(invited) as kofi:
        sign_in(ana, "ana@example.org")
        kofi_page = sign_in(kofi, "kofi@example.org")
        theirs = csrf(kofi.get(f"/reviewer/workspace/{BEN}").text)
        assert csrf(kofi_page) == theirs  # one token per session
        for token in ("", theirs):
            refused = ana.post(
                f"/reviewer/workspace/{BEN}/review", data={"csrf": token, "score_feasibility": "2", "action": "save"}
            )
            assert refused.status_code == 403
        page = ana.get(f"/reviewer/workspace/{BEN}").text
        assert 'value="2" checked' not in page and not re.search(r'name="score_\w+" value="\d" checked', page)


def test_another_reviewers_application_answers_as_one_that_does_not_exist(invited: Runtime) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org")  # Kofi reviews Benin's application only
        theirs = client.get(f"/reviewer/workspace/{LSO}", headers={"Accept": "text/html"})
        missing = client.get("/reviewer/workspace/SIP-2024-R4-0099", headers={"Accept": "text/html"})
        assert theirs.status_code == missing.status_code == 404
        assert theirs.text.replace(LSO, "?") == missing.text.replace("SIP-2024-R4-0099", "?")
        page = client.get(f"/reviewer/workspace/{BEN}").text
        refused = client.post(f"/reviewer/workspace/{LSO}/review", data={"csrf": csrf(page), "action": "save"})
        assert refused.status_code == 404


def test_declining_with_a_reason_takes_the_application_off_the_list(invited: Runtime) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org", "fr")
        page = client.get(f"/reviewer/workspace/{BEN}?lang=fr").text
        left = client.post(
            f"/reviewer/workspace/{BEN}/leave",
            data={"csrf": csrf(page), "why": "conflict", "reason": "I advised the agency in 2023.", "lang": "fr"},
        )
        assert left.status_code == 200 and left.url.path == "/reviewer/workspace"
        assert "Votre conflit d'intérêts est enregistré" in left.text and BEN not in left.text
        assert client.post("/reviewer/sign-out", data={"lang": "fr"}).status_code == 403  # no CSRF token
        out = client.post("/reviewer/sign-out", data={"lang": "fr", "csrf": csrf(left.text)})
        assert out.status_code == 200 and COOKIE not in client.cookies
        assert client.get("/reviewer/workspace", headers={"Accept": "text/html"}).status_code == 401


@pytest.mark.parametrize("bad", ["--1", "²", "abc", "3.5", "9" * 5000])
def test_a_score_that_is_not_a_whole_number_is_refused_beside_its_field_and_keeps_the_saved_draft(
    invited: Runtime, bad: str
) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org")
        page = client.get(f"/reviewer/workspace/{BEN}").text
        form = {"csrf": csrf(page), "action": "save"}
        assert (
            client.post(f"/reviewer/workspace/{BEN}/review", data={**form, "score_feasibility": "2"}).status_code == 200
        )
        answer = client.post(f"/reviewer/workspace/{BEN}/review", data={**form, "score_feasibility": bad})
        assert answer.status_code == 422 and 'id="error-scores-feasibility"' in answer.text
        again = client.get(f"/reviewer/workspace/{BEN}").text
        assert 'name="score_feasibility" value="2" checked' in again  # the draft saved before is still there


def test_a_forms_token_that_is_not_text_of_ours_is_refused_not_a_crash(invited: Runtime) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org")
        answer = client.post(f"/reviewer/workspace/{BEN}/review", data={"csrf": "é", "action": "save"})
        assert answer.status_code == 403


def test_a_form_sent_after_the_session_ended_asks_for_a_new_link_and_sign_out_clears_the_cookie(
    invited: Runtime,
) -> None:
    with browser(invited) as client:
        sign_in(client, "kofi@example.org")
        page = client.get(f"/reviewer/workspace/{BEN}").text
        clock: Clock = client.app.state.clock  # type: ignore[attr-defined]
        clock.now = AFTER_R4 + timedelta(days=30)  # long after the session's end (the cookie is still sent)
        late = client.post(
            f"/reviewer/workspace/{BEN}/review",
            data={"csrf": csrf(page), "action": "save"},
            headers={"Accept": "text/html"},
        )
        assert late.status_code == 401 and 'href="../../links' in late.text  # ask for a new link, not "forbidden"
        out = client.post("/reviewer/sign-out", data={"csrf": csrf(page)}, headers={"Accept": "text/html"})
        assert out.status_code == 401 and COOKIE not in client.cookies  # the stale cookie goes
