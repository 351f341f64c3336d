"""A grant's report as a page's form holds it: the narrative (`narrative`), a progress
for each indicator of form A's outputs (`progress-<place of the output>-<n>`: an output's
id is the applicant's text, and two may share one) and the spending per budget category
(`spent-<category>`). The recipient's report page and the console's share it."""

from __future__ import annotations

from typing import Any

from api.application_form import read_amount
from domain.application import BUDGET_CATEGORIES
from domain.money import to_cents


def fields_of(content: dict[str, Any], outputs: list[dict[str, Any]]) -> dict[str, str]:
    """A report as stored, as the form's fields hold it (its indicators by their output's
    place in form A)."""
    places = {str(o.get("id")): place for place, o in reversed(list(enumerate(outputs, 1)))}
    entered = {"narrative": str(content.get("narrative") or "")}
    for line in content.get("indicators") or []:
        place = places.get(str(line.get("output")))
        if place is not None:
            entered[f"progress-{place}-{line.get('indicator')}"] = str(line.get("progress") or "")
    for category, amount in (content.get("spending") or {}).items():
        entered[f"spent-{category}"] = str(amount)
    return entered


def report_from_fields(
    entered: dict[str, str], outputs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The report as the form sends it, and its problems in the page's words: the
    narrative, each indicator's progress, each amount. The fields are named by the
    output's place in form A (its id may be any text), then the indicator's number."""
    problems: list[dict[str, Any]] = []
    if not entered.get("narrative", "").strip():
        problems.append({"field": "narrative", "kind": "missing"})
    indicators = []
    for place, output in enumerate(outputs, 1):
        for number, _ in enumerate(output.get("indicators") or [], 1):
            name = f"progress-{place}-{number}"
            text = entered.get(name, "").strip()
            if not text:
                problems.append({"field": name, "kind": "missing"})
            indicators.append({"output": str(output.get("id")), "indicator": number, "progress": text[:5000]})
    spending: dict[str, Any] = {}
    for category in BUDGET_CATEGORIES:
        text = entered.get(f"spent-{category}", "").strip()
        if text:
            amount = read_amount(text)
            try:
                spending[category] = to_cents(amount)
            except ValueError:
                problems.append({"field": f"spent-{category}", "kind": "amount"})
    data = {"narrative": entered.get("narrative", "").strip()[:20_000], "indicators": indicators, "spending": spending}
    return problems, data
