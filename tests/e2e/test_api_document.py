"""What the OpenAPI contract test found, each as a plain regression test: the `Allow`
header of a 405, inputs whose schema says what the route refuses, amounts in cents."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from api.app import create_app
from domain.application import NO_NUL, NOT_BLANK, NOT_SPECIAL_USE
from domain.money import to_cents
from engine.services.setup import Runtime
from engine.services.tokens import token_hash

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "an-officer-key-0123456789abcdef0123456789"
OFFICER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(open_round1: Runtime) -> Iterator[TestClient]:
    settings = open_round1.settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(KEY)}"})
    with TestClient(create_app(settings)) as client:
        yield client


def _component(client: TestClient, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/openapi.json").json()["components"]["schemas"][name]
    return schema


def test_a_405_names_every_method_its_path_is_served_with(client: TestClient) -> None:
    refused = client.delete("/rounds/sip-2018-r1/screening", headers=OFFICER)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, POST"
    assert client.delete("/reviewers/ana@example.org", headers=OFFICER).headers["allow"] == "PUT, PATCH"
    assert client.post("/health").headers["allow"] == "GET"


def test_the_document_says_what_the_inputs_refuse(client: TestClient) -> None:
    override = _component(client, "OverrideIn")["properties"]["reason"]
    assert override["pattern"] == NOT_BLANK and override["minLength"] == 1
    scores = _component(client, "ReviewIn")
    assert scores["properties"]["scores"]["propertyNames"] == {"pattern": NO_NUL}
    put, patch = _component(client, "ReviewerPutIn"), _component(client, "ReviewerIn")
    assert set(put["required"]) == {"name", "organisation", "country", "areas", "languages", "max_load"}
    load = patch["properties"]["max_load"]["anyOf"][0]
    assert "required" not in patch and (load["type"], load["minimum"], load["maximum"]) == ("integer", 0, 1000)
    assert _component(client, "AttendanceIn")["properties"]["attendees"]["items"]["pattern"] == NOT_SPECIAL_USE
    status_refusal = client.get("/openapi.json").json()["paths"]["/status"]["get"]["responses"]["422"]["content"]
    assert set(status_refusal) == {"text/html", "application/json"}  # a page for a browser, JSON if asked


def test_refusals_the_document_now_announces_are_still_refused(client: TestClient) -> None:
    blank = client.post(
        "/rounds/sip-2018-r1/applications/SIP-2018-R1-0001/override",
        headers=OFFICER,
        json={"verdict": "screened", "reason": "   "},
    )
    assert blank.status_code == 422 and blank.json()["errors"][0]["path"] == "$.body.reason"
    as_text = client.patch("/reviewers/ana@example.org", headers=OFFICER, json={"max_load": "3"})
    assert as_text.status_code == 422 and as_text.json()["errors"][0]["path"] == "$.body.max_load"
    whole = {"name": "Ana", "organisation": "U", "country": "PER", "areas": ["cement"], "languages": ["es"]}
    as_float = client.put("/reviewers/ana@example.org", headers=OFFICER, json={**whole, "max_load": 2.0})
    assert as_float.status_code == 200 and as_float.json()["max_load"] == 2  # JSON Schema's integer
    not_a_bool = client.patch("/reviewers/ana@example.org", headers=OFFICER, json={"active": "yes"})
    assert not_a_bool.status_code == 422
    huge = client.put("/rounds/sip-2018-r1/funds", headers=OFFICER, json={"amount": 1e300})  # was a 500
    assert huge.status_code == 422 and huge.json()["errors"][0]["path"] == "$.body.amount"
    special = client.put("/committee/someone@example.arpa/2018-01-01", headers=OFFICER, json={})
    assert special.status_code == 422 and special.json()["errors"][0]["path"] == "$.path.email"
    assert re.search(NOT_SPECIAL_USE, "someone@example.arpa") is None


def test_an_amount_is_taken_in_whole_cents_whether_a_number_or_digits() -> None:
    assert to_cents(0.5700000000000001) == Decimal("0.57")  # 57 * 0.01 in binary floating point
    assert to_cents("190000.50") == Decimal("190000.50") and to_cents(5) == Decimal("5.00")
    for refused in (0.001, 1e-7, 1e300, -1e300, "1e5", "-3", " 5", True, float("nan")):
        with pytest.raises(ValueError):
            to_cents(refused)
