"""Secretariat screening, in the guidelines' order: completeness, eligibility, then
appraisal against the round's criteria. Pure: every rule comes from the round
definition and the Parties register given to it, and the same inputs always give the
same result.

Each check says what it looked at (evidence) and why it passed or failed, as a reason
code with parameters; the English sentence here is for the secretariat, and the
applicant's notification words the same code in their language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from domain.application import ApplicationDocument
from domain.parties import Party
from domain.rounds import CriterionKind, RoundDefinition

#: Articles of the Minamata Convention on Mercury (1 to 35).
CONVENTION_ARTICLES = range(1, 36)
#: Bump when the checks change, so that a re-run screens again with the new rules.
RULES_VERSION = 1


class Step(StrEnum):
    COMPLETENESS = "completeness"
    ELIGIBILITY = "eligibility"
    APPRAISAL = "appraisal"


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    JUDGEMENT = "needs_judgement"


class Verdict(StrEnum):
    """Where screening leaves an application."""

    INCOMPLETE = "incomplete"
    INELIGIBLE = "ineligible"
    SCREENED = "screened"  # complete and eligible: on to appraisal and review
    NEEDS_JUDGEMENT = "needs_judgement"  # a person must decide an eligibility question first


@dataclass(frozen=True)
class Check:
    id: str
    step: Step
    outcome: Outcome
    evidence: str  # the field or number looked at
    reason: str  # plain English, for the secretariat
    code: str  # reason code, worded for the applicant in their language
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CriterionResult:
    id: str
    title: str
    kind: CriterionKind
    weight: Decimal
    outcome: Outcome | None  # for checks; None for a judgement not yet scored
    score: Decimal | None  # 0..1 share of the criterion's weight; None while not scored


@dataclass(frozen=True)
class ScreeningResult:
    verdict: Verdict
    checks: list[Check]
    appraisal: list[CriterionResult]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.FAIL]

    @property
    def needing_judgement(self) -> list[Check]:
        return [c for c in self.checks if c.outcome is Outcome.JUDGEMENT]


def _check(
    id: str, step: Step, ok: bool | None, evidence: str, passed: str, failed: str, code: str, **params: Any
) -> Check:
    if ok is None:
        return Check(id, step, Outcome.JUDGEMENT, evidence, failed, code, params)
    return Check(
        id,
        step,
        Outcome.PASS if ok else Outcome.FAIL,
        evidence,
        passed if ok else failed,
        "ok" if ok else code,
        params if not ok else {},
    )


def _filled(value: str | None) -> bool:
    return bool(value and value.strip())


def _logical_framework_complete(doc: ApplicationDocument) -> bool:
    outputs = doc.form_a.outputs if doc.form_a else []
    return bool(outputs) and all(o.activities and o.indicators for o in outputs)


def completeness(doc: ApplicationDocument, definition: RoundDefinition) -> list[Check]:
    a, b, c = doc.form_a, doc.form_b, doc.form_c
    s = Step.COMPLETENESS
    outputs = a.outputs if a else []
    checks = {
        "form_a": _check(
            "form_a",
            s,
            a is not None,
            "form_a",
            "form A (project application) is present",
            "form A (project application) is missing",
            "form_a_missing",
        ),
        "form_b": _check(
            "form_b",
            s,
            b is not None,
            "form_b",
            "form B (budget) is present",
            "form B (budget) is missing",
            "form_b_missing",
        ),
        "form_c": _check(
            "form_c",
            s,
            c is not None,
            "form_c",
            "form C (transmittal letter) is present",
            "form C (transmittal letter signed by the national focal point) is missing",
            "form_c_missing",
        ),
        "form_c_signed": _check(
            "form_c_signed",
            s,
            c is not None and _filled(c.signed_by) and c.signed_on is not None,
            "form_c.signed_by, form_c.signed_on",
            "form C is signed and dated",
            "form C is not signed and dated by the national focal point",
            "form_c_unsigned",
        ),
        "consultation_confirmed": _check(
            "consultation_confirmed",
            s,
            c is not None and c.consultation_confirmed is True,
            "form_c.consultation_confirmed",
            "form C confirms that national consultations took place",
            "form C does not confirm that national consultations took place",
            "consultation_unconfirmed",
        ),
        "logical_framework": _check(
            "logical_framework",
            s,
            _logical_framework_complete(doc),
            f"form_a.outputs ({len(outputs)} outputs)",
            "the logical framework has outputs, each with activities and indicators",
            "the logical framework is missing or has outputs without activities or indicators",
            "logframe_incomplete",
        ),
        "workplan": _check(
            "workplan",
            s,
            bool(a and a.workplan),
            "form_a.workplan",
            "the workplan is present",
            "the workplan is missing",
            "workplan_missing",
        ),
        "budget_lines": _check(
            "budget_lines",
            s,
            bool(b and b.lines),
            "form_b.lines",
            "the budget has lines",
            "the budget has no lines",
            "budget_lines_missing",
        ),
    }
    return [checks[name] for name in definition.completeness_checks]


def eligibility(
    doc: ApplicationDocument, definition: RoundDefinition, parties: Mapping[str, Party], party_rank: int
) -> list[Check]:
    """`party_rank`: this application's place (1, 2, ...) among its Party's applications
    in the round, by time of receipt."""
    return [
        *_party_checks(doc, definition, parties),
        *_amount_checks(doc, definition),
        *_duration_checks(doc, definition),
        *_article_checks(doc),
        *_per_party_checks(doc, definition, party_rank),
    ]


def _party_checks(doc: ApplicationDocument, definition: RoundDefinition, parties: Mapping[str, Party]) -> list[Check]:
    """The applicant and each co-applicant: a Party on the round's deadline, of an eligible economy."""
    s = Step.ELIGIBILITY
    checks: list[Check] = []
    deadline: date = definition.closes_at.astimezone(definition.zone).date()
    codes = [("applicant.party", doc.applicant.party)]
    codes += [(f"applicant.co_applicants[{i}]", code) for i, code in enumerate(doc.applicant.co_applicants)]
    for where, code in codes:
        party = parties.get(code)
        since = party.party_since if party else None
        name = party.name if party else code
        if party is None:
            checks.append(
                _check(
                    f"party:{code}",
                    s,
                    False,
                    where,
                    "",
                    f"{code} is not in the Parties register",
                    "not_a_party",
                    party=code,
                )
            )
        elif since is None:
            checks.append(
                _check(
                    f"party:{code}",
                    s,
                    None,
                    f"{where} ({name}), party_since",
                    "",
                    f"the date {name} became a Party is not known: a person must check it "
                    f"against the depositary's records",
                    "party_date_unknown",
                    party=name,
                    party_iso2=party.iso2,
                )
            )
        else:
            checks.append(
                _check(
                    f"party:{code}",
                    s,
                    since <= deadline,
                    f"{where} ({name}): party since {since}",
                    f"{name} was a Party on the deadline ({deadline})",
                    f"{name} became a Party on {since}, after the deadline ({deadline})",
                    "not_party_on_deadline",
                    party=name,
                    party_iso2=party.iso2,
                    since=since.isoformat(),
                    deadline=deadline.isoformat(),
                )
            )
        if party is not None:
            allowed = definition.eligible_economies
            checks.append(
                _check(
                    f"economy:{code}",
                    s,
                    party.economy in allowed,
                    f"{where} ({name}): {party.economy}",
                    f"{name} is a {party.economy} country, eligible in this round",
                    f"{name} is a {party.economy} country; this round funds {' and '.join(allowed)} countries",
                    "economy_not_eligible",
                    party=name,
                    party_iso2=party.iso2,
                    economies=list(allowed),
                )
            )
    return checks


def _amount_checks(doc: ApplicationDocument, definition: RoundDefinition) -> list[Check]:
    """The amount requested: given, within the round's range, the sum of the budget lines, in the round's currency."""
    s = Step.ELIGIBILITY
    checks: list[Check] = []
    amount = doc.amount_requested
    if amount is None:
        checks.append(
            _check(
                "amount_range",
                s,
                False,
                "form_b.total_requested",
                "",
                "the amount requested is not given",
                "amount_missing",
            )
        )
    else:
        checks.append(
            _check(
                "amount_range",
                s,
                definition.amount_min <= amount <= definition.amount_max,
                f"form_b.total_requested = {amount:,.2f}",
                f"the amount requested ({amount:,.2f}) is within "
                f"{definition.amount_min:,.0f}-{definition.amount_max:,.0f}",
                f"the amount requested ({amount:,.2f} {definition.currency}) is outside the round's range of "
                f"{definition.amount_min:,.0f} to {definition.amount_max:,.0f}",
                "amount_out_of_range",
                amount=f"{amount:.2f}",
                minimum=f"{definition.amount_min:.2f}",
                maximum=f"{definition.amount_max:.2f}",
                currency=definition.currency,
            )
        )
    if doc.form_b is not None and doc.form_b.lines and amount is not None:
        total = sum((line.amount for line in doc.form_b.lines), Decimal(0))
        checks.append(
            _check(
                "budget_adds_up",
                s,
                total == amount,
                f"sum of form_b.lines = {total:,.2f}; total_requested = {amount:,.2f}",
                "the budget lines add up to the total requested",
                f"the budget lines add up to {total:,.2f}, not to the {amount:,.2f} requested",
                "budget_does_not_add_up",
                total=f"{total:.2f}",
                amount=f"{amount:.2f}",
            )
        )
    if doc.form_b is not None:
        checks.append(
            _check(
                "currency",
                s,
                doc.form_b.currency == definition.currency,
                f"form_b.currency = {doc.form_b.currency}",
                f"amounts are in {definition.currency}",
                f"amounts are in {doc.form_b.currency}, not in {definition.currency}",
                "wrong_currency",
                currency=doc.form_b.currency,
                expected=definition.currency,
            )
        )
    return checks


def _duration_checks(doc: ApplicationDocument, definition: RoundDefinition) -> list[Check]:
    """The project's duration: declared, the workplan within it, within the round's maximum."""
    s = Step.ELIGIBILITY
    checks: list[Check] = []
    a = doc.form_a
    if a is not None and a.duration_months is None:
        checks.append(
            _check(
                "duration_declared",
                s,
                False,
                "form_a.duration_months",
                "",
                "the project's duration is not declared",
                "duration_missing",
            )
        )
    if a is not None and a.duration_months is not None:
        last_month = max((item.end_month for item in a.workplan), default=0)
        checks.append(
            _check(
                "workplan_fits_duration",
                s,
                last_month <= a.duration_months and all(item.start_month <= item.end_month for item in a.workplan),
                f"form_a.workplan ends in month {last_month}; duration_months = {a.duration_months}",
                "the workplan fits the declared duration",
                f"the workplan runs to month {last_month}, beyond the declared {a.duration_months} months "
                "(or an activity ends before it starts)",
                "workplan_exceeds_duration",
                last_month=last_month,
                duration=a.duration_months,
            )
        )
        if definition.max_duration_months is not None:
            checks.append(
                _check(
                    "duration_within_round",
                    s,
                    a.duration_months <= definition.max_duration_months,
                    f"form_a.duration_months = {a.duration_months}",
                    f"the duration is within the round's {definition.max_duration_months} months",
                    f"the duration ({a.duration_months} months) exceeds the round's maximum of "
                    f"{definition.max_duration_months} months",
                    "duration_too_long",
                    duration=a.duration_months,
                    maximum=definition.max_duration_months,
                )
            )
    return checks


def _article_checks(doc: ApplicationDocument) -> list[Check]:
    """The articles of the Convention the project names."""
    s = Step.ELIGIBILITY
    checks: list[Check] = []
    a = doc.form_a
    if a is not None:
        unknown = sorted({n for n in a.convention_articles if n not in CONVENTION_ARTICLES})
        checks.append(
            _check(
                "convention_articles",
                s,
                bool(a.convention_articles) and not unknown,
                f"form_a.convention_articles = {a.convention_articles}",
                "the project names articles of the Convention",
                "the project names no article of the Convention"
                if not a.convention_articles
                else f"articles {', '.join(map(str, unknown))} are not articles of the Convention",
                "articles_invalid" if unknown else "articles_missing",
                **({"articles": ", ".join(map(str, unknown))} if unknown else {}),
            )
        )
    return checks


def _per_party_checks(doc: ApplicationDocument, definition: RoundDefinition, party_rank: int) -> list[Check]:
    """Within the round's limit of applications per Party."""
    s = Step.ELIGIBILITY
    checks: list[Check] = []
    if definition.max_applications_per_party is not None:
        limit = definition.max_applications_per_party
        checks.append(
            _check(
                "applications_per_party",
                s,
                party_rank <= limit,
                f"application {party_rank} of {doc.applicant.party} in this round",
                f"within the round's limit of {limit} application(s) per Party",
                f"this is application {party_rank} of the Party in this round; the round takes at most {limit}",
                "too_many_applications",
                rank=party_rank,
                limit=limit,
            )
        )
    return checks


_RULES: dict[str, Callable[[ApplicationDocument], bool]] = {
    "consultation_confirmed": lambda d: bool(d.form_c and d.form_c.consultation_confirmed),
    "logical_framework_complete": _logical_framework_complete,
    "gender_addressed": lambda d: bool(d.form_a and _filled(d.form_a.gender)),
    "co_financing_declared": lambda d: bool(d.form_b and d.form_b.co_financing),
    "related_projects_declared": lambda d: bool(d.form_a and _filled(d.form_a.related_projects)),
}


def appraisal(
    doc: ApplicationDocument, definition: RoundDefinition, scores: Mapping[str, int] | None = None
) -> list[CriterionResult]:
    """The round's criteria: checks evaluated here, judgements from `scores` (a
    person's score on the criterion's scale) or pending."""
    scores = scores or {}
    results = []
    for criterion in definition.criteria:
        if criterion.kind is CriterionKind.CHECK:
            ok = _RULES[criterion.rule](doc)  # type: ignore[index]
            results.append(
                CriterionResult(
                    criterion.id,
                    criterion.title,
                    criterion.kind,
                    criterion.weight,
                    Outcome.PASS if ok else Outcome.FAIL,
                    Decimal(1 if ok else 0),
                )
            )
        else:
            value = scores.get(criterion.id)
            share = None
            if value is not None:
                low, high = min(criterion.scale or [0]), max(criterion.scale or [0])
                share = Decimal(value - low) / Decimal(high - low) if high > low else Decimal(1)
            results.append(
                CriterionResult(criterion.id, criterion.title, criterion.kind, criterion.weight, None, share)
            )
    return results


def weighted_score(results: list[CriterionResult]) -> Decimal | None:
    """0-100, over the criteria scored so far (None if none is)."""
    scored = [r for r in results if r.score is not None]
    weight = sum((r.weight for r in scored), Decimal(0))
    if not scored or weight == 0:
        return None
    total = sum(((r.score or Decimal(0)) * r.weight for r in scored), Decimal(0))
    return (total / weight * 100).quantize(Decimal("0.1"))


def screen(
    doc: ApplicationDocument, definition: RoundDefinition, parties: Mapping[str, Party], party_rank: int = 1
) -> ScreeningResult:
    """Completeness, then eligibility, then appraisal. Every failed rule is listed,
    not just the first; eligibility is judged only for a complete application."""
    checks = completeness(doc, definition)
    if any(c.outcome is Outcome.FAIL for c in checks):
        return ScreeningResult(Verdict.INCOMPLETE, checks, [])
    checks += eligibility(doc, definition, parties, party_rank)
    if any(c.outcome is Outcome.FAIL for c in checks):
        return ScreeningResult(Verdict.INELIGIBLE, checks, [])
    results = appraisal(doc, definition)
    if any(c.outcome is Outcome.JUDGEMENT for c in checks):
        return ScreeningResult(Verdict.NEEDS_JUDGEMENT, checks, results)
    return ScreeningResult(Verdict.SCREENED, checks, results)
