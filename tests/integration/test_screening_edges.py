"""Edge cases found in review, each once a real bug (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from engine.db import unit_of_work
from engine.services.appraisal import override, parse_score_sheet, record_scores
from engine.services.errors import InvalidInput
from engine.services.follow_up import request_information, resubmit_forms
from engine.services.intake import import_batch
from engine.services.screening import screen_batch, screening_counts, to_screen
from engine.services.setup import Runtime
from engine.tables import Application, OutboxMessage, ScreeningRecord
from tests.conftest import AFTER_CLOSE, ROUND1, received, run

LSO, CHE = "SIP-2018-R1-0002", "SIP-2018-R1-0003"


def _role():
    from domain.lifecycle import Role

    return Role.SECRETARIAT


def status(rt: Runtime, reference: str) -> str:
    with unit_of_work(rt.engine) as session:
        return session.exec(select(Application.status).where(Application.reference == reference)).one()


def test_forms_sent_again_unchanged_are_still_screened_again(screened: Runtime) -> None:
    lso = json.loads(received("lso-inventory-no-form-c.json"))
    with unit_of_work(screened.engine) as session:
        request_information(session, screened.settings, ROUND1, LSO, ["Form C"], due=None, actor="o", at=AFTER_CLOSE)
        resubmit_forms(
            session,
            screened.settings,
            LSO,
            json.dumps({"form_a": lso["form_a"]}),
            actor="o",
            role=_role(),
            at=AFTER_CLOSE,
        )
    assert status(screened, LSO) == "incomplete"  # screened again, still without form C: not stuck as received


def test_an_application_with_a_very_long_list_of_failures_is_screened_on_every_database(open_round1: Runtime) -> None:
    developed = [
        "AUT",
        "BEL",
        "DNK",
        "FIN",
        "FRA",
        "DEU",
        "IRL",
        "ITA",
        "LUX",
        "NLD",
        "NOR",
        "PRT",
        "ESP",
        "SWE",
        "CHE",
        "GBR",
        "USA",
        "CAN",
        "JPN",
        "AUS",
        "MCO",
        "LIE",
        "ISL",
        "MLT",
        "CYP",
        "GRC",
        "KOR",
    ]
    body = received("ben-asgm-complete.json", applicant__co_applicants=developed)
    import_batch(open_round1.engine, open_round1.settings, ROUND1, [("long.json", body)], actor="s", now=AFTER_CLOSE)
    [summary] = run(open_round1)
    assert summary.verdicts == {"ineligible": 1}


def test_bounded_inputs_are_refused_with_the_field_not_a_database_error(screened: Runtime) -> None:
    with pytest.raises(InvalidInput) as caught, unit_of_work(screened.engine) as session:
        request_information(session, screened.settings, ROUND1, LSO, ["x" * 301], due=None, actor="o", at=AFTER_CLOSE)
    assert caught.value.errors[0].path == "items[0]"
    sheet = (
        "reference,criterion,score,comment\n"
        f"SIP-2018-R1-0001,feasibility,3,{'c' * 4001}\n"
        "SIP-2018-R1-0001,sustainability,--1,\nSIP-2018-R1-0001,cost_effectiveness,²,\n"
    )
    with pytest.raises(InvalidInput) as caught, unit_of_work(screened.engine) as session:
        record_scores(session, ROUND1, parse_score_sheet(sheet, "s.csv"), actor="o", at=AFTER_CLOSE)
    assert {e.path for e in caught.value.errors} == {"s.csv:2: comment", "s.csv:3: score", "s.csv:4: score"}


def test_screening_again_clears_an_override_and_counts_follow_overrides(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        override(
            session,
            screened.settings,
            ROUND1,
            LSO,
            "screened",
            reason="form C came by e-mail",
            actor="o",
            at=AFTER_CLOSE,
        )
        assert screening_counts(session, ROUND1)["screened"] == 2  # Benin, and Lesotho by a person's decision
        override(
            session,
            screened.settings,
            ROUND1,
            LSO,
            "ineligible",
            reason="second thoughts",
            actor="o",
            at=AFTER_CLOSE.replace(hour=10),
        )
    with unit_of_work(screened.engine) as session:
        notices = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind == "screening_incomplete", OutboxMessage.recipient.contains("example.ls")
            )
        ).all()
        ineligible = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind == "screening_ineligible", OutboxMessage.recipient.contains("example.ls")
            )
        ).all()
    assert len(notices) == 1 and len(ineligible) == 1
    # A person judged Cameroon's application incomplete; its forms come back and it is screened again:
    # the person's decision was about the earlier forms, so it no longer stands.
    cmr = "SIP-2018-R1-0004"
    with unit_of_work(screened.engine) as session:
        override(
            session,
            screened.settings,
            ROUND1,
            cmr,
            "incomplete",
            reason="form C is a photocopy",
            actor="o",
            at=AFTER_CLOSE,
        )
    doc = json.loads(received("ben-asgm-complete.json", applicant__party="CMR"))
    with unit_of_work(screened.engine) as session:
        resubmit_forms(
            session,
            screened.settings,
            cmr,
            json.dumps({"form_c": doc["form_c"]}),
            actor="o",
            role=_role(),
            at=AFTER_CLOSE,
        )
        record = session.exec(select(ScreeningRecord).join(Application).where(Application.reference == cmr)).one()
        assert record.override is None and record.verdict == "needs_judgement"
        assert screening_counts(session, ROUND1)["needs_judgement"] == 1


def test_a_missing_duration_fails_eligibility(open_round1: Runtime) -> None:
    doc = json.loads(received("ben-asgm-complete.json"))
    del doc["form_a"]["duration_months"]
    import_batch(
        open_round1.engine,
        open_round1.settings,
        ROUND1,
        [("d.json", json.dumps(doc).encode())],
        actor="s",
        now=AFTER_CLOSE,
    )
    run(open_round1)
    with unit_of_work(open_round1.engine) as session:
        record = session.exec(select(ScreeningRecord)).one()
    assert record.verdict == "ineligible"
    assert [c["code"] for c in record.checks if c["outcome"] == "fail"] == ["duration_missing"]


def test_the_economy_reason_names_the_economies_the_round_funds() -> None:
    from notifications.reasons import reason_text

    assert reason_text("economy_not_eligible", {"party": "Armenia", "economies": ["developing"]}, "en") == (
        "This round funds developing countries; according to the register of Parties, Armenia is not one of them."
    )
    assert "pays en développement et pays à économie en transition" in reason_text(
        "economy_not_eligible", {"party": "Suisse", "economies": ["developing", "transition"]}, "fr"
    )


def test_screening_an_empty_batch_changes_nothing(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        ids = to_screen(session, ROUND1)
    assert screen_batch(screened.engine, screened.settings, ROUND1, [], actor="o", at=AFTER_CLOSE).screened == 0
    assert len(ids) == 1
