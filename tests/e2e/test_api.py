"""The HTTP API, through a real ASGI client on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import datetime

import pytest

from api.app import create_app
from engine.services.setup import Runtime
from engine.settings import Settings
from tests.conftest import IN_ROUND1, ROUND1, Clock, example

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BEN = example("ben-asgm-complete.json")
LSO = example("lso-inventory-no-form-c.json")
URL = f"/rounds/{ROUND1}/applications"


@pytest.fixture
def clock() -> Clock:
    return Clock(IN_ROUND1)


@pytest.fixture
def client(open_round1: Runtime, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(open_round1.settings, now=clock)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_submission_answers_201_with_reference_status_and_a_token_once(client: TestClient) -> None:
    response = client.post(URL, content=BEN)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"reference", "status", "round", "submitted_at", "access_token"}
    assert (body["reference"], body["status"], body["round"]) == ("SIP-2018-R1-0001", "received", ROUND1)
    assert response.headers["location"] == "/applications/SIP-2018-R1-0001"


def test_the_applicant_sees_public_status_and_timeline_and_nothing_internal(client: TestClient) -> None:
    receipt = client.post(URL, content=BEN).json()
    response = client.get(f"/applications/{receipt['reference']}", headers=bearer(receipt["access_token"]))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"reference", "status", "round", "round_title", "title", "submitted_at", "timeline"}
    assert body["status"] == "received" and body["timeline"] == [{"status": "received", "at": body["submitted_at"]}]
    assert '"submitted"' not in json.dumps(body)  # the internal status name is not shown


def test_wrong_missing_or_someone_elses_token_all_get_the_same_404(client: TestClient) -> None:
    mine = client.post(URL, content=BEN).json()
    theirs = client.post(URL, content=LSO).json()
    answers = [
        client.get(f"/applications/{theirs['reference']}", headers=bearer(mine["access_token"])),
        client.get(f"/applications/{theirs['reference']}", headers=bearer("not-a-token")),
        client.get(f"/applications/{theirs['reference']}"),
        client.get("/applications/SIP-2018-R1-0999", headers=bearer(mine["access_token"])),
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1


def test_a_retry_with_the_same_idempotency_key_returns_the_first_result(client: TestClient) -> None:
    first = client.post(URL, content=BEN, headers={"Idempotency-Key": "retry-1"})
    again = client.post(URL, content=BEN, headers={"Idempotency-Key": "retry-1"})
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers and first.headers["location"] == again.headers["location"]
    other = client.post(URL, content=LSO, headers={"Idempotency-Key": "retry-1"})
    assert other.status_code == 409 and "different content" in other.json()["message"]


def test_invalid_applications_get_one_422_listing_every_field(client: TestClient) -> None:
    doc = json.loads(BEN)
    doc["applicant"]["party"] = "XXX"
    doc["form_b"]["total_requested"] = -10
    doc["status"] = "approved"
    response = client.post(URL, content=json.dumps(doc))
    assert response.status_code == 422
    paths = {e["path"] for e in response.json()["errors"]}
    assert paths == {"$.applicant.party", "$.form_b.total_requested", "$.status"}
    assert client.get("/rounds").status_code == 200


@pytest.mark.parametrize("body", [b"{", b"42", b""])
def test_what_is_not_a_json_object_gets_422_at_the_root(client: TestClient, body: bytes) -> None:
    response = client.post(URL, content=body)
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "$"


def test_a_three_megabyte_application_is_refused_with_413_by_intakes_own_limit(client: TestClient) -> None:
    doc = json.loads(BEN)
    doc["form_a"]["title"] = "x" * 3_000_000  # over 4 MB, the limit of every request answers (tests/e2e/test_limits.py)
    response = client.post(URL, content=json.dumps(doc))
    assert response.status_code == 413 and "at most 2.0 MB" in response.json()["message"]


def test_a_closed_round_refuses_submissions_with_409(client: TestClient, clock: Clock) -> None:
    clock.now = datetime.fromisoformat("2018-09-01T00:00:00+02:00")
    response = client.post(URL, content=BEN)
    assert response.status_code == 409 and response.json()["error"] == "round_not_accepting"
    assert "closed for applications at 2018-08-31 23:59:59 CEST" in response.json()["message"]


def test_an_unknown_round_is_404(client: TestClient) -> None:
    response = client.post("/rounds/sip-1999-r1/applications", content=BEN)
    assert response.status_code == 404 and "sip-2018-r1" in response.json()["message"]


def test_rounds_are_listed_with_dates_and_whether_they_accept_applications(client: TestClient, clock: Clock) -> None:
    rounds = {r["id"]: r for r in client.get("/rounds").json()}
    assert list(rounds) == ["sip-2018-r1", "sip-2019-r2", "sip-2020-r3", "sip-2024-r4"]
    assert rounds[ROUND1]["accepts_applications"] is True and rounds[ROUND1]["status"] == "open"
    assert rounds["sip-2024-r4"]["stages"] == ["screening", "gmp_review", "committee"]
    clock.now = datetime.fromisoformat("2018-09-01T00:00:00+02:00")
    after = client.get(f"/rounds/{ROUND1}").json()
    assert (after["status"], after["accepts_applications"]) == ("closed", False)


def test_the_openapi_document_declares_the_error_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    submit = spec["paths"]["/rounds/{round_id}/applications"]["post"]
    assert {"201", "404", "409", "413", "422"} <= set(submit["responses"])
    assert submit["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApplicationDocument")
    assert "404" in spec["paths"]["/applications/{reference}"]["get"]["responses"]
    assert "FormB" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_the_status_page_shows_the_status_to_whoever_has_the_access_code(client: TestClient) -> None:
    receipt = client.post(URL, content=BEN).json()
    form = client.get(f"/status?reference={receipt['reference']}&lang=fr")
    assert form.status_code == 200 and "Code d'accès" in form.text and receipt["reference"] in form.text
    page = client.post(
        "/status", data={"reference": receipt["reference"], "access_code": receipt["access_token"], "lang": "fr"}
    )
    assert page.status_code == 200 and "reçue" in page.text and "Réduction de l&#39;utilisation" in page.text
    assert receipt["access_token"] not in page.text and page.headers["cache-control"] == "no-store"


def test_the_status_page_answers_a_wrong_code_and_an_unknown_reference_alike(client: TestClient) -> None:
    receipt = client.post(URL, content=BEN).json()
    wrong = client.post("/status", data={"reference": receipt["reference"], "access_code": "guess", "lang": "es"})
    unknown = client.post("/status", data={"reference": "SIP-2018-R1-0999", "access_code": "guess", "lang": "es"})
    assert wrong.status_code == unknown.status_code == 404
    assert "Ninguna solicitud corresponde" in wrong.text
    assert wrong.text.replace(receipt["reference"], "X") == unknown.text.replace("SIP-2018-R1-0999", "X")


def test_every_operation_declares_the_model_of_its_answer_and_errors_have_one_shape(sqlite_settings: Settings) -> None:
    """Each operation of /openapi.json names the model of its success answer (or answers a
    page or a file), and every error answer it declares is an ErrorOut (not FastAPI's own
    422 shape, which the API never answers)."""
    spec = TestClient(create_app(sqlite_settings)).get("/openapi.json").json()  # no start-up: no database needed
    schemas = spec["components"]["schemas"]
    error = {"$ref": "#/components/schemas/ErrorOut"}
    problems, operations = [], 0
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            operations += 1
            where = f"{method.upper()} {path}"
            answers = operation["responses"]
            successes = {code: answer.get("content", {}) for code, answer in answers.items() if code.startswith("2")}
            if len(successes) != 1:
                problems.append(f"{where}: success answers {sorted(successes)}")
            for code, content in successes.items():
                if not content:
                    problems.append(f"{where}: {code} declares no content")
                elif "application/json" in content:
                    schema = content["application/json"].get("schema", {})
                    ref = schema.get("$ref") or (
                        schema.get("items", {}).get("$ref") if schema.get("type") == "array" else None
                    )
                    if ref is None or ref.rsplit("/", 1)[-1] not in schemas:
                        problems.append(f"{where}: {code} answers JSON without a model: {schema}")
                elif not set(content) <= {"text/html", "application/pdf"}:
                    problems.append(f"{where}: {code} answers {sorted(content)}")
            for code, answer in answers.items():
                json_error = answer.get("content", {}).get("application/json")
                if not code.startswith("2") and json_error is not None and json_error.get("schema") != error:
                    problems.append(f"{where}: {code} is not an ErrorOut: {json_error}")
            if "default" not in answers:
                problems.append(f"{where}: no default (error) answer")
    assert problems == []
    assert operations >= 47 and "HTTPValidationError" not in schemas
    grants = schemas["GrantOut"]["properties"]
    assert {"amountAwarded", "recipientOrganization", "plannedDates"} <= set(grants)  # 360Giving's own names


HOSTILE = {
    "100,000 levels in the body": ("[" * 100_000 + "]" * 100_000, "$[0][0]", "nests deeper than 64 levels"),
    "5,000 levels in one field": (
        '{"form_a": {"title": "x", "objective": ' + "[" * 5_000 + "]" * 5_000 + "}}",
        "$.form_a.objective[0]",
        "nests deeper than 64 levels",
    ),
    "a 5,000-digit integer": (
        '{"form_b": {"total_requested": ' + "9" * 5_000 + "}}",
        "$.form_b.total_requested",
        "has a number of more than 64 digits",
    ),
}


@pytest.mark.parametrize("hostile", HOSTILE, ids=list(HOSTILE))
def test_hostile_json_is_refused_with_422_naming_where_on_every_route_that_reads_json(
    client: TestClient, hostile: str
) -> None:
    body, path, message = HOSTILE[hostile]
    receipt = client.post(URL, content=BEN).json()
    forms = f"/applications/{receipt['reference']}/forms"
    answers = {
        "intake": client.post(URL, content=body),
        "forms sent again": client.put(forms, content=body, headers=bearer(receipt["access_token"])),
        "a reviewer's new link": client.post(
            "/reviewer/links", content=body, headers={"Content-Type": "application/json"}
        ),
    }
    for route, answer in answers.items():
        assert answer.status_code == 422, (route, answer.text[:200])
        (error,) = answer.json()["errors"]
        assert error["path"].startswith(path) and error["message"] == message, route
    # Nothing stored: the one application sent before, as it was.
    view = client.get(f"/applications/{receipt['reference']}", headers=bearer(receipt["access_token"])).json()
    assert view["reference"] == "SIP-2018-R1-0001" and [t["status"] for t in view["timeline"]] == ["received"]
    assert client.post(URL, content=LSO).json()["reference"] == "SIP-2018-R1-0002"


def test_a_nul_character_in_what_an_applicant_sends_is_refused_naming_the_field_on_both_databases(
    client: TestClient,
) -> None:
    document = json.loads(BEN)
    document["form_a"]["title"] = "Mercury\u0000 reduction"
    refused = client.post(URL, content=json.dumps(document))
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"path": "$.form_a.title", "message": "contains a NUL character (U+0000), which no text may hold"}
    ]
    receipt = client.post(URL, content=BEN).json()  # nothing was stored: this is the first
    assert receipt["reference"] == "SIP-2018-R1-0001"
    forms = client.put(
        f"/applications/{receipt['reference']}/forms",
        content=json.dumps({"form_c": {"signatory": {"name": "A\u0000"}}}),
        headers=bearer(receipt["access_token"]),
    )
    assert forms.status_code == 422 and forms.json()["errors"][0]["path"] == "$.form_c.signatory.name"
