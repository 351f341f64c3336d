"""The applicant portal's form read into a `sip-application/1` document as a person types
it, and shown again as their language writes it."""

from __future__ import annotations

import pytest

from api.application_form import content_from_form, field_of, read_amount, value_at


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("45000", "45000.00"),
        ("45 000,50", "45000.50"),
        ("45\u202f000,50", "45000.50"),
        ("4.999,50", "4999.50"),
        ("4,999.50", "4999.50"),
        ("1,000", "1000.00"),
        ("1.5", "1.50"),
        ("US$ 12,000", "12000.00"),
        ("0,5", "0.50"),
        ("0.125", "0.125"),  # not an amount (a leading zero does not group thousands): left for intake to refuse
        ("-5", "-5"),
        ("beaucoup", "beaucoup"),
    ],
)
def test_an_amount_is_read_as_the_pages_languages_write_it(typed: str, read: str) -> None:
    assert read_amount(typed) == read


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_an_amount_shown_in_a_language_reads_back_the_same(language: str) -> None:
    content = content_from_form([("form_b.lines.0.amount", "1234567.5"), ("form_b.lines.0.year", "1")], currency="USD")
    shown = value_at(content, "form_b.lines.0.amount", language)
    again = content_from_form([("form_b.lines.0.amount", shown), ("form_b.lines.0.year", "1")], currency="USD")
    assert again == content and again["form_b"]["lines"][0]["amount"] == "1234567.50"


def test_empty_rows_are_left_out_and_rows_numbered_in_order() -> None:
    content = content_from_form(
        [
            ("form_a.outputs.3.title", "Third"),
            ("form_a.outputs.0.title", "First"),
            ("form_a.outputs.1.title", " "),
            ("form_a.outputs.0.activities", "One\n\n Two "),
            ("form_c.consultation_confirmed", "no"),
            ("unknown.field", "x"),
        ],
        currency="USD",
    )
    assert content == {
        "form_a": {"outputs": [{"title": "First", "activities": ["One", "Two"]}, {"title": "Third"}]},
        "form_c": {"consultation_confirmed": False},
    }


def test_a_problem_is_shown_beside_its_field() -> None:
    assert field_of("$.form_a.outputs[0].activities[2]") == "form_a.outputs.0.activities"
    assert field_of("$.applicant.executing_agency") == "applicant.executing_agency.name"
    assert field_of("$.form_b.lines[12].amount") == "form_b.lines.12.amount"
    assert field_of("$") == ""
