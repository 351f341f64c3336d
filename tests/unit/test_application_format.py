import json
from decimal import Decimal
from pathlib import Path

import pytest

from domain.application import DocumentError, parse_document

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def errors_of(document: object) -> dict[str, str]:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(DocumentError) as caught:
        parse_document(text)
    return {e.path: e.message for e in caught.value.errors}


def test_the_three_examples_are_accepted_with_exact_amounts() -> None:
    for path in EXAMPLES.glob("*.json"):
        parse_document(path.read_text())
    ben = parse_document((EXAMPLES / "ben-asgm-complete.json").read_text())
    assert ben.amount_requested == Decimal("190000.00")
    assert ben.applicant.language == "fr"
    assert parse_document((EXAMPLES / "lso-inventory-no-form-c.json").read_text()).form_c is None


def test_decimal_amounts_are_kept_exactly() -> None:
    doc = load("ben-asgm-complete.json")
    doc["form_b"]["lines"][0]["amount"] = 0.1
    text = json.dumps(doc).replace('"amount": 0.1', '"amount": 40000.10')
    assert parse_document(text).form_b.lines[0].amount == Decimal("40000.10")


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "is not valid JSON (line 1, column 2)"),
        ("[1, 2]", "must be a JSON object"),
        ("null", "must be a JSON object"),
    ],
)
def test_what_is_not_an_application_object_is_refused_at_the_root(text: str, message: str) -> None:
    assert message in errors_of(text)["$"]


def test_every_offending_field_is_listed_by_json_path() -> None:
    doc = load("ben-asgm-complete.json")
    doc["format"] = "sip-application/2"
    doc["applicant"]["party"] = "benin"
    doc["form_b"]["lines"][1]["amount"] = -5
    doc["form_b"]["lines"][2]["amount"] = "30000"
    doc["form_b"]["total_requested"] = "a lot"
    doc["form_a"]["colour"] = "blue"
    errors = errors_of(doc)
    assert errors["$.format"] == "must be 'sip-application/1'"
    assert "alpha-3" in errors["$.applicant.party"]
    assert errors["$.form_b.lines[1].amount"] == "must not be negative"
    assert "must be a number" in errors["$.form_b.lines[2].amount"]
    assert "must be a number" in errors["$.form_b.total_requested"]
    assert "not a field of sip-application/1" in errors["$.form_a.colour"]


def test_a_five_megabyte_title_is_refused_with_its_length() -> None:
    doc = load("ben-asgm-complete.json")
    doc["form_a"]["title"] = "x" * 5_000_000
    assert errors_of(doc)["$.form_a.title"] == "is too long (5,000,000 characters; at most 200)"


def test_amounts_with_more_than_two_decimals_are_refused() -> None:
    text = json.dumps(load("ben-asgm-complete.json")).replace('"total_requested": 190000', '"total_requested": 1.005')
    assert "two decimal places" in errors_of(text)["$.form_b.total_requested"]


def test_missing_forms_are_not_intake_errors() -> None:
    doc = load("ben-asgm-complete.json")
    for form in ("form_a", "form_b", "form_c"):
        del doc[form]
    assert parse_document(json.dumps(doc)).form_a is None


def test_a_document_may_nest_64_levels_and_hold_64_digits_and_no_more() -> None:
    from domain.application import DocumentError, load_json

    assert load_json("[" * 64 + "]" * 64) is not None
    assert load_json('{"n": ' + "9" * 64 + ", " + '"d": 0.' + "1" * 63 + "}")["n"] == int("9" * 64)
    assert load_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1} == load_json('{"a": 1}'.encode("utf-16"))
    for text, path in (
        ('{"a": [' + "[" * 64 + "]" * 64 + "]}", "$.a" + "[0]" * 63),
        ('{"a": {"b": ' + "9" * 65 + "}}", "$.a.b"),
        ('{"a": [1, 2, 1.' + "5" * 64 + "]}", "$.a[2]"),
    ):
        with pytest.raises(DocumentError) as refused:
            load_json(text)
        assert [e.path for e in refused.value.errors] == [path]


def test_what_a_person_sends_is_refused_by_field_if_its_text_holds_a_nul_character() -> None:
    from pydantic import ValidationError

    from domain.committee import DecisionIn
    from domain.review import ReviewDraft

    for model, data, field in (
        (DecisionIn, {"reference": "R", "decision": "approved", "conditions": "Pay\u0000"}, "conditions"),
        (ReviewDraft, {"scores": {"feasibility": 3}, "comments_for_committee": "ok\u0000"}, "comments_for_committee"),
        (ReviewDraft, {"scores": {"feas\u0000": 3}}, "scores"),
    ):
        with pytest.raises(ValidationError) as refused:
            model.model_validate(data)
        assert [(e["loc"][0], e["msg"]) for e in refused.value.errors()] == [
            (field, "Value error, contains a NUL character (U+0000), which no text may hold")
        ]


def test_a_csv_file_with_a_nul_character_or_an_overlong_field_is_refused_naming_the_line() -> None:
    from engine.services.csvfile import csv_rows
    from engine.services.errors import InvalidInput

    for text, where in (("a,b\nx,ok\ny\x00,z\n", "f.csv:3: a"), ("a,b\n" + "x" * 200_000 + ",z\n", "f.csv:2")):
        with pytest.raises(InvalidInput) as refused:
            list(csv_rows(text, "f.csv", ["a", "b"]))
        assert [e.path for e in refused.value.errors] == [where]


def test_the_quick_bounds_check_passes_what_the_field_by_field_walk_passes_and_no_more() -> None:
    """`load_json` first decides with a quick pass that does not build paths; what it
    finds is then named by the walk that does. The two must agree on every bound."""
    from domain.application import _first_refusal, _within_bounds

    nested: object = 1
    for _ in range(64):
        nested = [nested]
    too_deep: object = {"a": nested}
    cases: list[object] = [
        load("ben-asgm-complete.json"),
        json.loads(json.dumps(load("ben-asgm-complete.json")), parse_float=Decimal),
        nested,
        too_deep,
        {"n": int("9" * 64), "m": -int("9" * 64), "d": Decimal("0." + "1" * 64)},
        {"n": int("1" + "0" * 64)},
        {"n": [1, -int("1" + "0" * 64)]},
        {"d": Decimal("1." + "5" * 64)},
        {"a": [{"b": ["ok", "not\u0000ok"]}]},
        {"a": {"key\u0000": 1}},
        {"t": True, "f": False, "z": None, "x": 1.5},
    ]
    for data in cases:
        assert _within_bounds(data) == (_first_refusal(data) is None), data


def test_an_invalid_contact_address_is_refused_naming_the_field_each_time_it_is_sent() -> None:
    """The check of an address's domain is remembered per domain, but only when it passes:
    a refused domain is refused again, with email-validator's own reason."""
    doc = load("ben-asgm-complete.json")
    for address, reason in (
        ("focal.point@exa mple.org", "The part after the @-sign contains invalid characters: SPACE."),
        ("focal.point@-example.org", "An email address cannot have a hyphen immediately after the @-sign."),
        ("focal.point@example.test", "The part after the @-sign is a special-use or reserved name"),
        ("focal..point@example.org", "An email address cannot have two periods in a row."),
    ):
        doc["applicant"]["contact"]["email"] = address
        for _ in range(2):
            with pytest.raises(DocumentError) as refused:
                parse_document(json.dumps(doc))
            [error] = refused.value.errors
            assert error.path == "$.applicant.contact.email"
            assert error.message.startswith("value is not a valid email address: " + reason), error.message


def test_a_domain_checked_once_gives_the_answer_email_validator_gives() -> None:
    from email_validator.syntax import validate_email_domain_name

    from engine.addresses import _uncached, domain_checked_once

    assert validate_email_domain_name is _uncached  # the library's own check, not ours
    for domain in ("example.org", "EXAMPLE.org", "bücher.example", "environnement.example.sn"):
        first = domain_checked_once(domain)
        assert first == _uncached(domain) == domain_checked_once(domain)
        first["domain"] = "changed.example"  # what a caller does to its answer is not remembered
        assert domain_checked_once(domain) == _uncached(domain)
    doc = load("ben-asgm-complete.json")
    doc["applicant"]["contact"]["email"] = "Focal.Point@Bücher.Example"
    assert parse_document(json.dumps(doc)).applicant.contact.email == "Focal.Point@bücher.example"
