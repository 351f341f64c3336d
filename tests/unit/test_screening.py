import json
from decimal import Decimal
from pathlib import Path

import pytest

from domain.application import parse_document
from domain.screening import Outcome, Verdict, screen, weighted_score
from engine.services.parties import DEFAULT_REGISTER, read_parties_file
from engine.services.rounds import read_round_file
from rounds import ROUNDS_DIR

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
ROUND1 = read_round_file(ROUNDS_DIR / "sip-2018-r1.toml")
PARTIES = {p.iso3: p for p in read_parties_file(DEFAULT_REGISTER)}


def doc(name: str, **changes: object):
    data = json.loads((EXAMPLES / name).read_text())
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return parse_document(json.dumps(data))


def failed(result) -> dict[str, str]:
    return {c.id: c.code for c in result.failed}


def test_a_complete_application_from_an_eligible_party_is_screened() -> None:
    result = screen(doc("ben-asgm-complete.json"), ROUND1, PARTIES)
    assert result.verdict is Verdict.SCREENED and result.failed == []
    assert {c.step.value for c in result.checks} == {"completeness", "eligibility"}
    assert [r.id for r in result.appraisal if r.score is None] == [
        c.id for c in ROUND1.criteria if c.kind.value == "judgement"
    ]
    national = next(r for r in result.appraisal if r.id == "national_consultation")
    assert national.outcome is Outcome.PASS


def test_a_missing_form_c_makes_the_application_incomplete_with_each_missing_item() -> None:
    result = screen(doc("lso-inventory-no-form-c.json"), ROUND1, PARTIES)
    assert result.verdict is Verdict.INCOMPLETE
    assert failed(result) == {
        "form_c": "form_c_missing",
        "form_c_signed": "form_c_unsigned",
        "consultation_confirmed": "consultation_unconfirmed",
    }


def test_a_developed_country_asking_above_the_cap_is_ineligible_on_both_counts() -> None:
    result = screen(doc("che-products-ineligible.json"), ROUND1, PARTIES)
    assert result.verdict is Verdict.INELIGIBLE
    assert set(failed(result)) == {"economy:CHE", "amount_range"}
    amount = next(c for c in result.failed if c.id == "amount_range")
    assert amount.evidence == "form_b.total_requested = 300,000.00"
    assert "outside the round's range of 50,000 to 250,000" in amount.reason


def test_every_failed_eligibility_rule_is_listed() -> None:
    result = screen(
        doc(
            "ben-asgm-complete.json",
            form_b__total_requested=10000,
            form_b__currency="EUR",
            form_a__convention_articles=[7, 99],
            form_a__duration_months=6,
        ),
        ROUND1,
        PARTIES,
    )
    assert set(failed(result)) == {
        "amount_range",
        "budget_adds_up",
        "currency",
        "workplan_fits_duration",
        "convention_articles",
    }


def test_a_co_applicant_that_joined_after_the_deadline_is_not_eligible() -> None:
    result = screen(doc("ben-asgm-complete.json", applicant__co_applicants=["TGO", "ALB"]), ROUND1, PARTIES)
    [late] = result.failed
    assert late.id == "party:ALB" and late.params == {
        "party": "Albania",
        "party_iso2": "AL",
        "since": "2020-08-24",
        "deadline": "2018-08-31",
    }


def test_a_party_whose_date_is_unknown_needs_a_persons_judgement() -> None:
    result = screen(doc("ben-asgm-complete.json", applicant__party="CMR"), ROUND1, PARTIES)
    assert result.verdict is Verdict.NEEDS_JUDGEMENT
    assert [c.id for c in result.needing_judgement] == ["party:CMR"]


def test_round_settings_drive_the_rules() -> None:
    strict = ROUND1.model_copy(
        update={"max_applications_per_party": 1, "max_duration_months": 12, "eligible_economies": ["developing"]}
    )
    result = screen(doc("ben-asgm-complete.json"), strict, PARTIES, party_rank=2)
    assert set(failed(result)) == {"applications_per_party", "duration_within_round"}
    armenia = screen(doc("ben-asgm-complete.json", applicant__party="ARM"), strict, PARTIES)
    assert "economy:ARM" in failed(armenia)


@pytest.mark.parametrize(
    "scores,expected", [({}, Decimal("100.0")), ({"convention_obligations": 4, "country_driven": 2}, Decimal("80.0"))]
)
def test_the_weighted_score_counts_only_what_is_scored(scores: dict, expected: Decimal) -> None:
    from domain.screening import appraisal

    results = appraisal(doc("ben-asgm-complete.json"), ROUND1, scores)
    # national_consultation (weight 1) passes; convention_obligations 4/4 (weight 2); country_driven 2/4 (weight 2)
    assert weighted_score(results) == expected
