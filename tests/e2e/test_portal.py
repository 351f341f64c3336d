"""The applicant's portal over HTTP: an application started with an e-mail address, saved
as a draft with each problem beside its field, opened again from the e-mailed link,
submitted through intake (the same application as one sent to the API), answered with
a receipt and an access code that is easy to copy; forms sent again after an
information request. And the refusals: another applicant's draft, a form without its
token, a page whose proof has expired."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from api.app import create_app
from engine.db import reading
from engine.services.setup import Runtime
from engine.tables import Application, ApplicationDraft, AuditEvent
from tests.conftest import (
    AFTER_CLOSE,
    IN_ROUND1,
    ROUND1,
    Clock,
    access_code,
    ask_for_information,
    delivered,
    draft_link,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EMAIL = "aicha.dossou@example.org"
LSO = "SIP-2018-R1-0002"
#: Forms A, B and C of a small complete application, as the page's fields send them.
FIELDS = {
    "applicant.party": "BEN",
    "applicant.executing_agency.name": "Agence béninoise pour l'environnement",
    "applicant.executing_agency.country": "BEN",
    "applicant.contact.name": "Aïcha Dossou",
    "applicant.contact.email": EMAIL,
    "applicant.language": "fr",
    "form_a.title": "Réduire le mercure dans l'orpaillage",
    "form_a.scope": "national",
    "form_a.convention_articles": "7, 18",
    "form_a.summary": "Un projet.",
    "form_a.objective": "Moins de mercure.",
    "form_a.outputs.0.id": "1",
    "form_a.outputs.0.title": "Inventaire",
    "form_a.outputs.0.activities": "Enquête\nAtelier",
    "form_a.outputs.0.indicators": "Rapport publié",
    "form_a.workplan.0.activity": "Enquête",
    "form_a.workplan.0.start_month": "1",
    "form_a.workplan.0.end_month": "6",
    "form_a.duration_months": "24",
    "form_b.lines.0.category": "personnel",
    "form_b.lines.0.output": "1",
    "form_b.lines.0.year": "1",
    "form_b.lines.0.amount": "45 000,50",
    "form_b.lines.1.category": "travel",
    "form_b.lines.1.year": "2",
    "form_b.lines.1.amount": "4,999.50",
    "form_c.signed_by": "Aïcha Dossou",
    "form_c.function": "Point focal national",
    "form_c.signed_on": "2018-07-01",
    "form_c.consultation_confirmed": "yes",
}


@pytest.fixture
def client(open_round1: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(open_round1.settings, now=Clock(IN_ROUND1))) as client:
        yield client


def start(client: TestClient, email: str = EMAIL, lang: str = "fr") -> Any:
    form = client.get(f"/apply?lang={lang}")
    assert form.status_code == 200
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', form.text).group(1)  # type: ignore[union-attr]
    return client.post("/apply/start", data={"round_id": ROUND1, "email": email, "lang": lang, "form_token": token})


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]


def test_an_application_is_started_saved_with_its_problems_beside_their_fields_and_submitted(
    client: TestClient, open_round1: Runtime
) -> None:
    started = start(client)
    assert started.status_code == 200 and started.url.path == "/apply/draft"
    assert "Votre brouillon est ouvert" in started.text
    # the link to come back is on its way, its token put in at delivery only
    assert "/apply/draft?token=" in delivered(open_round1, "draft_link", EMAIL)

    wrong = {**FIELDS, "form_b.lines.1.amount": "beaucoup", "form_a.workplan.0.end_month": "300"}
    saved = client.post("/apply/draft", data={**wrong, "csrf": csrf(started.text), "action": "save", "lang": "fr"})
    assert saved.status_code == 200
    assert "2 champs demandent votre attention" in saved.text
    # each problem beside its field, named by its place, in the page's language
    assert 'id="f-form_b-lines-1-amount-error">Indiquez un montant, par exemple 45000' in saved.text
    assert 'id="f-form_a-workplan-0-end_month-error">Indiquez un nombre de 240 au plus.' in saved.text
    assert "Ligne budgétaire 2 – Montant\u00a0: Indiquez un montant" in saved.text  # the list at the top
    assert 'value="beaucoup"' in saved.text  # nothing typed is lost
    assert "45\u202f000,50\xa0$US" in saved.text  # the totals by category and year, as French writes them

    # the e-mailed link opens the draft in another browser, as it was left
    other = TestClient(client.app)
    opened = other.get(draft_link(open_round1, EMAIL))
    assert opened.status_code == 200 and opened.url.path == "/apply/draft" and "token" not in str(opened.url)
    assert 'value="beaucoup"' in opened.text

    mended = other.post(
        "/apply/draft", data={**FIELDS, "csrf": csrf(opened.text), "action": "submit", "confirm": "yes", "lang": "fr"}
    )
    assert mended.status_code == 200, mended.text
    assert "Demande reçue" in mended.text
    reference = re.search(r'class="status">(SIP-2018-R1-\d{4})<', mended.text).group(1)  # type: ignore[union-attr]
    code = re.search(r'id="access-code">([^<]+)<', mended.text).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){4}[0-9A-HJKMNP-TV-Z]{4}", code)

    with reading(open_round1.engine) as session:
        application = session.exec(select(Application).where(Application.reference == reference)).one()
        assert application.channel == "portal" and application.language == "fr"
        assert application.form_b is not None and application.form_b["total_requested"] == "50000.00"
        assert application.form_a is not None and application.form_a["outputs"][0]["activities"] == [
            "Enquête",
            "Atelier",
        ]
        draft = session.exec(select(ApplicationDraft)).one()
        assert draft.application_id == application.id and draft.submitted_at == IN_ROUND1
    # the receipt by e-mail holds the same code; the status page takes it typed loosely
    assert code in delivered(open_round1, "receipt", EMAIL)
    typed = code.replace("-", " ").lower().replace("1", "l").replace("0", "o")
    status = client.post("/status", data={"reference": reference, "access_code": typed, "lang": "fr"})
    assert status.status_code == 200 and "Reçue" in status.text
    # the API sees the same application with the same code
    assert client.get(f"/applications/{reference}", headers={"Authorization": f"Bearer {code}"}).status_code == 200

    # submitted once: sent again, the receipt, and no second application
    again = other.post(
        "/apply/draft", data={**FIELDS, "csrf": csrf(opened.text), "action": "submit", "confirm": "yes", "lang": "fr"}
    )
    assert again.status_code == 200 and reference in again.text
    with reading(open_round1.engine) as session:
        assert len(session.exec(select(Application).where(Application.channel == "portal")).all()) == 1


def test_a_submission_not_confirmed_is_kept_as_a_draft_and_says_what_to_tick(client: TestClient) -> None:
    started = start(client, lang="es")
    answer = client.post("/apply/draft", data={**FIELDS, "csrf": csrf(started.text), "action": "submit", "lang": "es"})
    assert answer.status_code == 422
    assert "Marque la casilla" in answer.text
    reopened = client.get("/apply/draft")
    assert "Réduire le mercure" in reopened.text and "Solicitud recibida" not in reopened.text


def test_another_applicants_draft_link_opens_nothing(client: TestClient, open_round1: Runtime) -> None:
    start(client, email="first@example.org")
    link = draft_link(open_round1, "first@example.org")
    token = re.search(r"token=([\w-]+)", link).group(1)  # type: ignore[union-attr]
    stranger = TestClient(client.app)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    answer = stranger.get(f"/apply/draft?token={forged}&lang=fr", headers={"Accept": "text/html"})
    assert answer.status_code == 404
    assert "Ce lien n'ouvre aucun brouillon" in answer.text and "first@example.org" not in answer.text
    # no draft open in a browser that has no link
    assert stranger.get("/apply/draft", headers={"Accept": "text/html"}).status_code == 404
    with reading(open_round1.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "draft.open.refused")).all()
    assert len(refused) == 1  # the source's first refusal of the minute, sampled into the audit trail


def test_a_draft_form_without_its_token_is_refused_and_changes_nothing(
    client: TestClient, open_round1: Runtime
) -> None:
    start(client)
    answer = client.post(
        "/apply/draft", data={**FIELDS, "action": "save", "lang": "fr"}, headers={"Accept": "text/html"}
    )
    assert answer.status_code == 403 and "Ce formulaire n'a pas pu être accepté" in answer.text
    with reading(open_round1.engine) as session:
        draft = session.exec(select(ApplicationDraft)).one()
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "draft.save.refused")).one()
    assert "form_a" not in draft.content
    assert refused.actor == EMAIL  # the draft's holder is known: audited under their address
    # nor can a page of another site start a draft: the start form's token is this site's
    bare = client.post("/apply/start", data={"round_id": ROUND1, "email": EMAIL}, headers={"Accept": "text/html"})
    assert bare.status_code == 403


def test_no_draft_is_started_once_the_round_has_closed(open_round1: Runtime) -> None:
    clock = Clock(IN_ROUND1)
    with TestClient(create_app(open_round1.settings, now=clock)) as client:
        form = client.get("/apply?lang=en")  # opened while the round was open, sent after it closed
        token = re.search(r'name="form_token" value="([0-9a-f]+)"', form.text).group(1)  # type: ignore[union-attr]
        clock.now = AFTER_CLOSE
        assert "No round is open for applications" in client.get("/apply?lang=en").text
        answer = client.post(
            "/apply/start",
            data={"round_id": ROUND1, "email": EMAIL, "lang": "en", "form_token": token},
            headers={"Accept": "text/html"},
        )
    assert answer.status_code == 409 and "This round does not accept applications now" in answer.text


def test_forms_are_sent_again_after_an_information_request_from_the_status_page(screened: Runtime) -> None:
    ask_for_information(screened, LSO)
    with TestClient(create_app(screened.settings, now=Clock(AFTER_CLOSE + timedelta(days=1)))) as client:
        status = client.post(
            "/status", data={"reference": LSO, "access_code": access_code(screened, LSO), "lang": "fr"}
        )
        proof = re.search(r'name="proof" value="([^"]+)"', status.text).group(1)  # type: ignore[union-attr]
        opened = client.post("/apply/forms", data={"reference": LSO, "proof": proof, "lang": "fr"})
        assert opened.status_code == 200 and "Renvoyer les formulaires" in opened.text
        carried = re.search(r'name="proof" value="([^"]+)"', opened.text).group(1)  # type: ignore[union-attr]
        assert carried != proof  # the page's own proof, which the status page does not take
        assert client.post("/status", data={"reference": LSO, "access_code": carried}).status_code == 404
        fields = {k: v for k, v in FIELDS.items() if k.startswith("form_c")}
        sent = client.post(
            "/apply/forms", data={"reference": LSO, "proof": carried, "lang": "fr", "action": "send", **fields}
        )
        assert sent.status_code == 200 and "Formulaires reçus" in sent.text
        with reading(screened.engine) as session:
            application = session.exec(select(Application).where(Application.reference == LSO)).one()
            assert application.form_c is not None and application.form_c["signed_by"] == "Aïcha Dossou"
            event = session.exec(
                select(AuditEvent).where(AuditEvent.subject_id == LSO).order_by(col(AuditEvent.id).desc())
            ).first()
            assert event is not None and event.actor == "applicant"
        # the application is no longer waiting for forms: sent again, the page says so
        twice = client.post(
            "/apply/forms", data={"reference": LSO, "proof": carried, "lang": "fr", "action": "send", **fields}
        )
        assert twice.status_code == 409
        # no longer waiting for forms: the page does not open again, even with its own proof
        assert client.post("/apply/forms", data={"reference": LSO, "proof": carried}).status_code == 409


def test_the_forms_page_opens_only_with_a_proof_that_holds(screened: Runtime) -> None:
    ask_for_information(screened, LSO)
    with TestClient(create_app(screened.settings, now=Clock(AFTER_CLOSE))) as client:
        answer = client.post(
            "/apply/forms", data={"reference": LSO, "proof": "123.abc", "lang": "es"}, headers={"Accept": "text/html"}
        )
    assert answer.status_code == 404 and "Esta página ya no está abierta" in answer.text
    assert json.dumps(LSO) not in answer.text


def test_a_draft_of_many_rows_is_saved_whole(client: TestClient, open_round1: Runtime) -> None:
    """Over a thousand fields (the page sends every cell of its rows): saved, none lost."""
    started = start(client)
    lines = {
        f"form_b.lines.{i}.{name}": value
        for i in range(220)
        for name, value in (
            ("category", "travel"),
            ("year", "1"),
            ("amount", "100"),
            ("output", ""),
            ("description", ""),
        )
    }
    assert len(lines) > 1000
    saved = client.post("/apply/draft", data={**FIELDS, **lines, "csrf": csrf(started.text), "action": "save"})
    assert saved.status_code == 200
    with reading(open_round1.engine) as session:
        draft = session.exec(select(ApplicationDraft)).one()
    assert len(draft.content["form_b"]["lines"]) == 220 and draft.content["form_b"]["total_requested"] == "22000.00"


def test_a_field_named_with_a_row_number_that_is_not_one_is_left_out_rather_than_failing(client: TestClient) -> None:
    started = start(client)
    for name in ("form_a.outputs.².title", "form_a.outputs.١.title", "form_a.outputs." + "9" * 5000 + ".title"):
        answer = client.post("/apply/draft", data={name: "x", "csrf": csrf(started.text), "action": "save"})
        assert answer.status_code == 200, name


def test_switching_language_keeps_what_was_typed(client: TestClient) -> None:
    started = start(client, lang="en")
    answer = client.post(
        "/apply/draft",
        data={"form_a.title": "Typed, not saved", "csrf": csrf(started.text), "lang": "en", "switch": "es"},
    )
    assert '<html lang="es">' in answer.text and 'value="Typed, not saved"' in answer.text


def test_the_access_code_is_shown_in_the_first_hour_only_and_the_draft_can_be_closed_in_a_browser(
    open_round1: Runtime,
) -> None:
    clock = Clock(IN_ROUND1)
    with TestClient(create_app(open_round1.settings, now=clock)) as client:
        started = start(client, lang="en")
        receipt = client.post(
            "/apply/draft", data={**FIELDS, "csrf": csrf(started.text), "action": "submit", "confirm": "yes"}
        )
        assert 'id="access-code"' in receipt.text
        clock.now = IN_ROUND1 + timedelta(hours=2)
        later = client.get("/apply/draft?lang=en")
        assert later.status_code == 200 and 'id="access-code"' not in later.text
        assert "in the receipt sent by e-mail" in later.text
        closed = client.post("/apply/forget", data={"csrf": csrf(later.text), "lang": "en"})
        assert closed.url.path == "/apply" and "no longer keeps your draft open" in closed.text
        assert client.get("/apply/draft", headers={"Accept": "text/html"}).status_code == 404


def test_the_link_is_sent_again_to_the_address_however_it_is_typed(client: TestClient, open_round1: Runtime) -> None:
    start(client, email="Aicha.Dossou@Example.org")
    form = client.get("/apply")
    answer = client.post("/apply/links", data={"email": "aicha.dossou@example.org"})
    assert answer.status_code == 202 and form.status_code == 200
    with reading(open_round1.engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "draft.link_sent")).all()
    assert events == []  # not twice within the hour
    with TestClient(create_app(open_round1.settings, now=Clock(IN_ROUND1 + timedelta(hours=2)))) as later:
        assert later.post("/apply/links", data={"email": "AICHA.dossou@example.org"}).status_code == 202
    with reading(open_round1.engine) as session:
        assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "draft.link_sent")).all()) == 1


def test_forms_sent_unchanged_keep_the_total_the_secretariat_has(screened: Runtime) -> None:
    ask_for_information(screened, LSO)
    with TestClient(create_app(screened.settings, now=Clock(AFTER_CLOSE + timedelta(days=1)))) as client:
        status = client.post("/status", data={"reference": LSO, "access_code": access_code(screened, LSO)})
        proof = re.search(r'name="proof" value="([^"]+)"', status.text).group(1)  # type: ignore[union-attr]
        opened = client.post("/apply/forms", data={"reference": LSO, "proof": proof, "lang": "en"})
        with reading(screened.engine) as session:
            before = session.exec(select(Application).where(Application.reference == LSO)).one().form_b
        # the page as it opened, sent back: every field it shows, with its value
        fields = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)" type="[^"]+" value="([^"]*)"', opened.text))
        fields.update(
            re.findall(
                r'<select id="f-[^"]+" name="([^"]+)"[^>]*>(?:(?!</select>).)*?<option value="([^"]+)" selected',
                opened.text,
                re.S,
            )
        )
        carried = re.search(r'name="proof" value="([^"]+)"', opened.text).group(1)  # type: ignore[union-attr]
        sent = client.post("/apply/forms", data={**fields, "reference": LSO, "proof": carried, "action": "send"})
        assert sent.status_code == 200, sent.text
        with reading(screened.engine) as session:
            after = session.exec(select(Application).where(Application.reference == LSO)).one().form_b
        assert before is not None and after is not None
        assert after["total_requested"] == before["total_requested"] and after["lines"] == before["lines"]
        # still without form C: screened again, and incomplete
        assert "Forms received" in sent.text
        status = client.post("/status", data={"reference": LSO, "access_code": access_code(screened, LSO)})
        assert '<p class="status">Incomplete</p>' in status.text


def test_text_that_looks_like_a_placeholder_in_a_title_is_delivered_as_written(
    client: TestClient, open_round1: Runtime
) -> None:
    body = json.loads(json.dumps({"format": "sip-application/1", "round": ROUND1, **drafts_content()}))
    body["form_a"]["title"] = "Mercury [[access-code]] [[review-link]] [[draft-link]] [[bundle-link]]"
    answer = client.post(f"/rounds/{ROUND1}/applications", json=body)  # no idempotency key: no derived code
    assert answer.status_code == 201
    text = delivered(open_round1, "receipt", EMAIL)
    assert "[[access-code]] [[review-link]] [[draft-link]] [[bundle-link]]" in text


def drafts_content() -> dict[str, Any]:
    from api.application_form import content_from_form
    from engine.services.drafts import document

    return {
        k: v
        for k, v in document(ROUND1, content_from_form(FIELDS.items(), currency="USD")).items()
        if k not in ("format", "round")
    }
