"""Screening reasons in the applicant's words and language: one sentence per reason
code of `domain.screening`, with its amounts and dates formatted for the language."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.lists import format_list
from babel.numbers import format_currency

from notifications.render import N_, Nn_, party_name, translations

REASONS = {
    "form_a_missing": N_("Form A (project application) is missing."),
    "form_b_missing": N_("Form B (budget) is missing."),
    "form_c_missing": N_("Form C (the transmittal letter signed by the national focal point) is missing."),
    "form_c_unsigned": N_("Form C is not signed and dated by the national focal point."),
    "consultation_unconfirmed": N_("Form C does not confirm that national consultations took place."),
    "logframe_incomplete": N_(
        "The logical framework is missing, or one of its outputs has no activities or indicators."
    ),
    "workplan_missing": N_("The workplan is missing."),
    "budget_lines_missing": N_("The budget (form B) has no lines."),
    "not_a_party": N_("%(party)s is not a Party to the Convention according to the register of Parties."),
    "party_date_unknown": N_(
        "The date %(party)s became a Party to the Convention is not known: the secretariat checks it against the "
        "depositary's records."
    ),
    "not_party_on_deadline": N_(
        "%(party)s became a Party to the Convention on %(since)s, after the round's deadline (%(deadline)s)."
    ),
    "economy_not_eligible": N_(
        "This round funds %(economies)s; according to the register of Parties, %(party)s is not one of them."
    ),
    "duration_missing": N_("Form A does not give the project's duration."),
    "amount_missing": N_("Form B does not give the amount requested."),
    "amount_out_of_range": N_(
        "The amount requested (%(amount)s) is outside the round's range of %(minimum)s to %(maximum)s."
    ),
    "budget_does_not_add_up": N_("The budget lines add up to %(total)s, not to the %(amount)s requested."),
    "wrong_currency": N_("The amounts are in %(currency)s; the round takes applications in %(expected)s."),
    "workplan_exceeds_duration": N_(
        "The workplan runs to month %(last_month)s, beyond the project's declared duration of %(duration)s months."
    ),
    "duration_too_long": N_(
        "The project's duration (%(duration)s months) exceeds the round's maximum of %(maximum)s months."
    ),
    "articles_missing": N_("The application does not name the articles of the Convention the project implements."),
    "articles_invalid": N_("The application names articles that are not in the Convention: %(articles)s."),
}
#: Reasons whose words change with a number: (singular, plural, the parameter that counts).
PLURAL_REASONS = {
    "too_many_applications": (
        *Nn_(
            "The round takes at most %(limit)s application per Party; this is the Party's application number %(rank)s.",
            "The round takes at most %(limit)s applications per Party; this is the Party's application number "
            "%(rank)s.",
        ),
        "limit",
    ),
}
ECONOMIES = {
    "developing": N_("developing countries"),
    "transition": N_("countries with economies in transition"),
    "developed": N_("developed countries"),
}
_MONEY = {"amount", "minimum", "maximum", "total"}
_DATES = {"since", "deadline"}


def reason_text(code: str, params: dict[str, Any], language: str, currency: str = "USD") -> str:
    """The sentence for one reason, in `language` (English if it has no catalogue)."""
    catalog = translations(language)
    values: dict[str, Any] = {}
    for name, value in params.items():
        if name == "economies":
            values[name] = format_list([catalog.gettext(ECONOMIES[e]) for e in value], locale=language)
        elif name in _MONEY:
            values[name] = format_currency(Decimal(value), currency, locale=language)
        elif name in _DATES:
            values[name] = format_date(date.fromisoformat(value), format="long", locale=language)
        elif name == "party_iso2":
            continue
        else:
            values[name] = value
    if "party_iso2" in params and "party" in values:  # named in the reader's language
        values["party"] = party_name(params["party_iso2"], values["party"], language)
    if code in PLURAL_REASONS:
        singular, plural, counted = PLURAL_REASONS[code]
        return catalog.ngettext(singular, plural, int(params[counted])) % values
    return catalog.gettext(REASONS[code]) % values
