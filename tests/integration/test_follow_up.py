"""Asking an applicant for missing items, and forms sent again, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import warnings
from datetime import date

import pytest
from sqlmodel import select

from domain.lifecycle import Status
from engine.db import unit_of_work
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.follow_up import FormsResubmitted, request_information, resubmit_forms
from engine.services.screening import screen_batch, to_screen
from engine.services.setup import Runtime
from engine.tables import Application, OutboxMessage, ScreeningRecord
from tests.conftest import AFTER_CLOSE, ROUND1, Clock, example, run

LSO = "SIP-2018-R1-0002"
FORM_C = {
    "form_c": {
        "signed_by": "Thabo Mokoena",
        "function": "National focal point",
        "signed_on": "2018-09-10",
        "consultation_confirmed": True,
    }
}


def status(rt: Runtime, reference: str) -> str:
    with unit_of_work(rt.engine) as session:
        return session.exec(select(Application.status).where(Application.reference == reference)).one()


def test_the_secretariat_asks_for_missing_items_by_a_date_in_the_applicants_language(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        due = request_information(
            session, screened.settings, ROUND1, LSO, ["Form C, signed", " "], due=None, actor="officer", at=AFTER_CLOSE
        )
    assert due == date(2018, 9, 17)  # the round's 14 response days
    assert status(screened, LSO) == "information_requested"
    with unit_of_work(screened.engine) as session:
        message = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "information_requested")).one()
    assert "Form C, signed" in message.body_text and "September 17, 2018" in message.body_text


def test_a_request_without_items_or_with_a_past_date_is_refused(screened: Runtime) -> None:
    for items, due, field in (([], None, "items"), (["x"], date(2018, 9, 1), "due")):
        with pytest.raises(InvalidInput) as caught, unit_of_work(screened.engine) as session:
            request_information(session, screened.settings, ROUND1, LSO, items, due=due, actor="o", at=AFTER_CLOSE)
        assert caught.value.errors[0].path == field
    assert status(screened, LSO) == "incomplete"


def test_forms_sent_again_are_screened_again_at_once(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        request_information(session, screened.settings, ROUND1, LSO, ["Form C"], due=None, actor="o", at=AFTER_CLOSE)
        result = resubmit_forms(
            session, screened.settings, LSO, json.dumps(FORM_C), actor="officer", role=_role(), at=AFTER_CLOSE
        )
    assert result == FormsResubmitted(LSO, Status.SCREENED, changed=True)  # Lesotho, now complete
    with unit_of_work(screened.engine) as session:
        ids = to_screen(session, ROUND1)
    summary = screen_batch(screened.engine, screened.settings, ROUND1, ids, actor="o", at=AFTER_CLOSE)
    assert (summary.screened, summary.unchanged) == (0, 1)  # only Cameroon, waiting for a person
    with unit_of_work(screened.engine) as session:
        record = session.exec(select(ScreeningRecord).join(Application).where(Application.reference == LSO)).one()
    assert record.verdict == "screened" and status(screened, LSO) == "screened"


def test_forms_cannot_be_sent_again_for_an_application_that_passed(screened: Runtime) -> None:
    with (
        pytest.raises(NotAllowed, match="cannot resubmit an application that is screened"),
        unit_of_work(screened.engine) as session,
    ):
        resubmit_forms(
            session, screened.settings, "SIP-2018-R1-0001", json.dumps(FORM_C), actor="o", role=_role(), at=AFTER_CLOSE
        )


@pytest.mark.parametrize(
    "body,path",
    [
        (b"[]", "$"),
        (b"{}", "$"),
        (b'{"form_d": {}}', "$.form_d"),
        (json.dumps({"form_b": {"total_requested": -1}}).encode(), "$.form_b.total_requested"),
    ],
)
def test_bad_forms_are_refused_by_path(screened: Runtime, body: bytes, path: str) -> None:
    with pytest.raises(InvalidInput) as caught, unit_of_work(screened.engine) as session:
        resubmit_forms(session, screened.settings, LSO, body, actor="o", role=_role(), at=AFTER_CLOSE)
    assert path in [e.path for e in caught.value.errors]
    assert status(screened, LSO) == "incomplete"


def test_an_applicant_sends_forms_again_through_the_api_with_their_token(open_round1: Runtime) -> None:
    from api.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    clock = Clock(AFTER_CLOSE.replace(month=7))
    with TestClient(create_app(open_round1.settings, now=clock)) as client:
        receipt = client.post(f"/rounds/{ROUND1}/applications", content=example("lso-inventory-no-form-c.json")).json()
        other = client.post(f"/rounds/{ROUND1}/applications", content=example("ben-asgm-complete.json")).json()
        clock.now = AFTER_CLOSE
        run(open_round1)
        headers = {"Authorization": f"Bearer {receipt['access_token']}"}
        wrong = client.put(
            f"/applications/{receipt['reference']}/forms", json=FORM_C, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 404
        answer = client.put(f"/applications/{receipt['reference']}/forms", json=FORM_C, headers=headers)
        assert answer.status_code == 200 and answer.json()["status"] == "under_review"  # complete now: screened
        assert [t["status"] for t in answer.json()["timeline"]] == [
            "received",
            "incomplete",
            "received",
            "under_review",
        ]
        theirs = client.put(
            f"/applications/{receipt['reference']}/forms",
            json=FORM_C,
            headers={"Authorization": f"Bearer {other['access_token']}"},
        )
        assert theirs.status_code == 404 and theirs.json() == wrong.json()  # another applicant's token


def _role():
    from domain.lifecycle import Role

    return Role.SECRETARIAT
