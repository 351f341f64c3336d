"""The words people read for the application format's fields and codes (forms A, B and C,
budget categories, scopes, a review's recommendation and state), in their language:
pages and bundles show these, never the format's internal keys."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_currency

from notifications.render import N_, Nn_, _pick, translations

FORM_A = {
    "title": N_("Project title"),
    "scope": N_("Scope"),
    "convention_articles": N_("Articles of the Convention the project implements"),
    "summary": N_("Summary"),
    "objective": N_("Objective"),
    "national_priority": N_("National priority"),
    "outputs": N_("Outputs"),
    "workplan": N_("Workplan"),
    "duration_months": N_("Duration (months)"),
    "gender": N_("Gender considerations"),
    "consultation": N_("National consultation"),
    "sustainability": N_("Sustainability"),
    "related_projects": N_("Related projects"),
}
OUTPUT = {
    "id": N_("Output"),
    "title": N_("Title"),
    "activities": N_("Activities"),
    "indicators": N_("Indicators"),
}
WORKPLAN = {"activity": N_("Activity"), "start_month": N_("From month"), "end_month": N_("To month")}
FORM_B = {
    "currency": N_("Currency"),
    "lines": N_("Budget lines"),
    "total_requested": N_("Total requested"),
    "co_financing": N_("Co-financing"),
}
BUDGET_LINE = {
    "category": N_("Category"),
    "output": N_("Output"),
    "year": N_("Year"),
    "amount": N_("Amount"),
    "description": N_("Description"),
}
CO_FINANCING = {"source": N_("Source"), "kind": N_("Kind"), "amount": N_("Amount")}
CODES = {
    # budget categories (form B)
    "personnel": N_("Personnel"),
    "contractual_services": N_("Contractual services"),
    "travel": N_("Travel"),
    "meetings_training": N_("Meetings and training"),
    "equipment_supplies": N_("Equipment and supplies"),
    "communication": N_("Communication"),
    "monitoring_evaluation": N_("Monitoring and evaluation"),
    "project_management": N_("Project management"),
    # scope (form A)
    "national": N_("national"),
    "regional": N_("regional"),
    "inter-regional": N_("inter-regional"),
    # co-financing
    "cash": N_("cash"),
    "in-kind": N_("in kind"),
    # a reviewer's recommendation
    "support": N_("Support"),
    "support_with_changes": N_("Support with changes"),
    "do_not_support": N_("Do not support"),
    # a review, an assignment
    "draft": N_("draft saved"),
    "submitted": N_("submitted"),
    "invited": N_("to review"),
    "declined": N_("declined"),
    "conflicted": N_("conflict of interest declared"),
}
#: The secretariat's console: an application's status as the secretariat sees it.
APPLICATION_STATUS = {
    "submitted": N_("Submitted"),
    "information_requested": N_("Information requested"),
    "incomplete": N_("Incomplete"),
    "ineligible": N_("Ineligible"),
    "screened": N_("Screened"),
    "gmp_review": N_("In GMP review"),
    "ready_for_committee": N_("Ready for the committee"),
    "approved": N_("Approved"),
    "approved_with_conditions": N_("Approved with conditions"),
    "not_approved": N_("Not approved"),
    "deferred": N_("Deferred"),
    "withdrawn": N_("Withdrawn"),
}
#: A round's status.
ROUND_STATUS = {
    "draft": N_("Not yet open"),
    "open": N_("Open"),
    "closed": N_("Closed"),
    "screening": N_("Screening"),
    "review": N_("GMP review"),
    "committee": N_("With the committee"),
    "decided": N_("Decided"),
    "archived": N_("Archived"),
}
#: The stages the console starts, as its buttons say them.
STAGE_ACTIONS = {
    "open": N_("Open the round"),
    "close": N_("Close the round"),
    "screening": N_("Start screening"),
    "assignment": N_("Propose GMP reviewers"),
    "invitations": N_("Invite the reviewers"),
    "committee": N_("Send to the committee"),
    "bundles": N_("Prepare the committee's bundles"),
    "letters": N_("Queue the decision letters"),
}
#: What the console's own forms refuse (a refusal's field message is one of these keys).
CONSOLE_PROBLEMS = {
    "items_missing": N_("Say what is missing, one item per line."),
    "due_not_date": N_("The date for the answer is not a date."),
    "verdict_missing": N_("Choose the new verdict."),
    "reason_missing": N_("Give the reason."),
    "forms_missing": N_("Choose the forms' file (JSON with form A, B or C) or paste it; it may be at most 2 MB."),
    "not_date": N_("This is not a date."),
    "not_amount": N_("This is not an amount (for example 250000 or 250000.00)."),
    "first_day_missing": N_("Give the first day of the meeting."),
    "no_decision": N_("Choose a decision for at least one application."),
    "no_score": N_("Choose a score for at least one criterion."),
    "sheet_missing": N_("Choose the scoring sheet (CSV, at most 5 MB)."),
    "round_file_missing": N_("Choose a round file (TOML) or paste its text."),
    "round_file_too_large": N_("The round file is larger than a round file can be (200 KB)."),
    "role_missing": N_("Choose a role: officer, read-only or administrator."),
    "own_account": N_("You cannot disable your own account: ask another administrator."),
    "email_missing": N_("Give the reviewer's e-mail address."),
    "not_number": N_("The maximum load is a whole number."),
    "register_missing": N_("Choose the register's CSV file."),
    "key_name_missing": N_("Name the key's holder."),
    "scope_missing": N_("Choose the key's scope: read or full."),
    "days_out_of_range": N_("The days a key works are a whole number from 1 to 3650."),
    "member_email_missing": N_("Give the member's e-mail address."),
    "members_missing": N_("Choose the membership's CSV file."),
    "code_mismatch": N_("The code does not match: type the six digits your app shows now for this account."),
    "decision_missing": N_("Choose a decision."),
    "end_missing": N_("Give the new end date."),
    "nul": N_("This text holds a NUL character, which no text may hold: type it again."),
}
#: The Global Mercury Partnership's areas, as a reviewer's expertise and an application's subject.
AREAS = {
    "artisanal_gold_mining": N_("Artisanal and small-scale gold mining"),
    "chlor_alkali": N_("Mercury reduction in the chlor-alkali sector"),
    "air_transport_fate_research": N_("Mercury air transport and fate research"),
    "products": N_("Mercury-added products"),
    "coal_combustion": N_("Mercury control from coal combustion"),
    "waste_management": N_("Mercury waste management"),
    "supply_storage": N_("Mercury supply and storage"),
    "cement": N_("Mercury releases from the cement industry"),
}
#: A reviewer's assignment, as the secretariat follows it.
ASSIGNMENT_STATES = {
    "proposed": N_("proposed"),
    "invited": N_("invited"),
    "declined": N_("declined"),
    "conflicted": N_("conflict of interest"),
    "removed": N_("taken off"),
    "submitted": N_("review submitted"),
}
#: An API key's scope.
KEY_SCOPES = {"read": N_("read only"), "full": N_("read and change")}
#: An API key's state.
KEY_STATES = {
    "active": N_("in use"),
    "expired": N_("expired"),
    "revoked": N_("revoked"),
    "from settings": N_("from the settings (SIP_SECRETARIAT_KEYS)"),
}
#: A grant's state (domain/grants.py).
GRANT_STATES = {
    "awarded": N_("awarded"),
    "agreement_sent": N_("agreement sent"),
    "agreement_signed": N_("agreement signed"),
    "active": N_("in progress"),
    "suspended": N_("suspended"),
    "closing": N_("closing"),
    "closed": N_("closed"),
    "cancelled": N_("cancelled"),
}
#: A grant's report: its kind and state, and what keeps a grant from closing.
REPORT_KINDS = {"progress": N_("progress report"), "final": N_("final report")}
REPORT_STATES = {
    "due": N_("awaited"),
    "submitted": N_("received, to review"),
    "revision_requested": N_("sent back for revision"),
    "accepted": N_("accepted"),
}
AMENDMENT_KINDS = {
    "extension": N_("no-cost extension"),
    "reallocation": N_("budget reallocation"),
    "contact": N_("new contact person"),
    "agency": N_("new executing agency"),
}
AMENDMENT_STATES = {"requested": N_("awaiting a decision"), "approved": N_("approved"), "refused": N_("refused")}
CLOSE_PROBLEMS = {
    "final_report": N_("The final report is not accepted yet."),
    "payments": N_("Part of the released instalments, spent by the project, is not paid yet."),
    "balance": N_("Part of the unspent balance is neither returned nor written off."),
    "lessons": N_("The lessons learnt are not recorded yet."),
}
#: What releases an instalment.
MILESTONES = {
    "signature": N_("the agreement signed (and the conditions met)"),
    "first_progress_report": N_("the first progress report accepted"),
    "final_report": N_("the final report accepted"),
}
#: A message's state in the outbox.
MESSAGE_STATES = {"queued": N_("queued"), "sent": N_("sent"), "failed": N_("failed")}
#: A staff account's role.
STAFF_ROLES = {
    "officer": N_("Officer"),
    "read-only": N_("Read-only"),
    "admin": N_("Administrator"),
}
#: The applicant portal's fields outside forms A and B (`api.application_form` names them).
APPLICANT = {
    "applicant.party": N_("Applicant Party"),
    "applicant.co_applicants": N_("Co-applicant Parties (regional projects)"),
    "applicant.executing_agency.name": N_("Executing agency"),
    "applicant.executing_agency.address": N_("Address of the executing agency"),
    "applicant.executing_agency.country": N_("Country of the executing agency"),
    "applicant.contact.name": N_("Contact person"),
    "applicant.contact.function": N_("Function"),
    "applicant.contact.email": N_("E-mail address"),
    "applicant.contact.phone": N_("Telephone"),
    "applicant.language": N_("Language of the letters"),
    "form_c.signed_by": N_("Signed by"),
    "form_c.function": N_("Function of the signatory"),
    "form_c.signed_on": N_("Date of signature"),
    "form_c.consultation_confirmed": N_("National consultations took place"),
    "confirm": N_("Confirmation"),
}
#: A field of a row: its list's words, with the row's number.
ROW = {
    "form_a.outputs": N_("Output %(number)s – %(field)s"),
    "form_a.workplan": N_("Workplan, row %(number)s – %(field)s"),
    "form_b.lines": N_("Budget line %(number)s – %(field)s"),
    "form_b.co_financing": N_("Co-financing %(number)s – %(field)s"),
}
OUTPUT_CODE = N_("Code")
_ROW_FIELDS = {
    "form_a.outputs": OUTPUT,
    "form_a.workplan": WORKPLAN,
    "form_b.lines": BUDGET_LINE,
    "form_b.co_financing": CO_FINANCING,
}


def field_label(name: str, language: str) -> str:
    """The words for a field of the applicant's form (`form_b.lines.2.amount` is "Budget
    line 3 – Amount"), for the list of problems at the top of the page."""
    gettext = translations(_pick(language)).gettext
    parts = name.split(".")
    if name in APPLICANT:
        return gettext(APPLICANT[name])
    if len(parts) == 2 and parts[0] == "form_a":
        return label(FORM_A, parts[1], language)
    if len(parts) == 4 and parts[2].isascii() and parts[2].isdigit() and f"{parts[0]}.{parts[1]}" in ROW:
        listing = f"{parts[0]}.{parts[1]}"
        # an output's own number or code is its "Code", as the form calls it
        words = (
            OUTPUT_CODE if name.endswith(".id") and listing == "form_a.outputs" else _ROW_FIELDS[listing].get(parts[3])
        )
        field = gettext(words) if words else parts[3]
        return gettext(ROW[listing]) % {"number": int(parts[2]) + 1, "field": field}
    return name


#: What a reviewer's page says beside a field of the review that needs their attention.
REVIEW_PROBLEMS = {
    "scores": N_("Choose a score on this criterion's scale."),
    "recommendation": N_("Choose your recommendation."),
    "comments_for_committee": N_("Tell the committee the reasons for your scores."),
    "confirm": N_("Tick the box to confirm that your review is final."),
}


#: A screening verdict, as the committee's bundle says it.
VERDICTS = {
    "screened": N_("passed screening"),
    "needs_judgement": N_("awaiting the secretariat's decision"),
    "incomplete": N_("incomplete"),
    "ineligible": N_("not eligible"),
    "not screened": N_("not screened"),
}
#: A check's outcome, and the step of screening it belongs to.
OUTCOMES = {"pass": N_("met"), "fail": N_("not met"), "needs_judgement": N_("to be decided")}
STEPS = {"completeness": N_("Completeness"), "eligibility": N_("Eligibility"), "appraisal": N_("Appraisal")}
#: Why a member takes no part in a decision (`domain.committee`).
WITHHELD = {"own country": N_("own country"), "declared conflict": N_("declared conflict")}
#: A member's role on the committee.
ROLES = {"member": N_("member"), "co-chair": N_("co-chair")}
#: The United Nations regions, as the engine's reports name them in English.
REGIONS = (
    N_("Africa"),
    N_("Asia-Pacific"),
    N_("Central and Eastern Europe"),
    N_("Latin America and the Caribbean"),
    N_("Western European and Others"),
    N_("No region"),
)
#: The same, as a table (`label(REGION_NAMES, name, language)`).
REGION_NAMES = {name: name for name in REGIONS}
#: How the committee of the meeting's day differs from its rule (`domain.committee.CompositionGap`).
GAPS = {
    "members": Nn_("%(count)s member serves, not %(expected)s", "%(count)s members serve, not %(expected)s"),
    "region": Nn_(
        "%(count)s member from %(region)s, not %(expected)s", "%(count)s members from %(region)s, not %(expected)s"
    ),
    "co_chairs": Nn_("%(count)s co-chair, not %(expected)s", "%(count)s co-chairs, not %(expected)s"),
}


def gap_words(kind: str, count: int, expected: int, region: str, language: str) -> str:
    """A gap in the committee's composition, in the reader's words (`region`: its name in English)."""
    catalog = translations(_pick(language))
    singular, plural = GAPS[kind]
    return catalog.ngettext(singular, plural, count) % {
        "count": count,
        "expected": expected,
        "region": catalog.gettext(region) if region else "",
    }


#: The checks of screening (`domain.screening`), by their ids; a Party's checks carry its code.
CHECKS = {
    "form_a": N_("Form A (project application)"),
    "form_b": N_("Form B (budget)"),
    "form_c": N_("Form C (transmittal letter)"),
    "form_c_signed": N_("Form C signed and dated"),
    "consultation_confirmed": N_("National consultations confirmed"),
    "logical_framework": N_("Logical framework"),
    "workplan": N_("Workplan"),
    "budget_lines": N_("Budget lines"),
    "amount_range": N_("Amount within the round's range"),
    "budget_adds_up": N_("Budget lines add up to the amount requested"),
    "currency": N_("Currency"),
    "duration_declared": N_("Duration given"),
    "workplan_fits_duration": N_("Workplan within the duration"),
    "duration_within_round": N_("Duration within the round's maximum"),
    "convention_articles": N_("Articles of the Convention"),
    "applications_per_party": N_("Applications per Party"),
    "party": N_("%(party)s: a Party to the Convention"),
    "economy": N_("%(party)s: an economy the round funds"),
}


def check_title(check: str, language: str, names: Any) -> str:
    """A screening check's title in the reader's words (`party:BEN` names Benin)."""
    kind, _, party = check.partition(":")
    words = CHECKS.get(kind)
    if words is None:
        return check
    text = translations(_pick(language)).gettext(words)
    return text % {"party": names.name(party, language)} if party else text


def label(table: dict[str, str], key: str, language: str) -> str:
    """The reader's word for `key` of `table` (the key itself where the table has none)."""
    words = table.get(key)
    return translations(_pick(language)).gettext(words) if words else key


def code(value: str, language: str) -> str:
    """The reader's word for a code of the format (a budget category, a scope...)."""
    return label(CODES, value, language)


def money(value: Any, currency: str, language: str) -> str:
    """An amount as the reader writes it ("45 000,00 $US"); as given where it is not one."""
    try:
        return format_currency(Decimal(str(value)), currency, locale=_pick(language))
    except (InvalidOperation, ValueError):
        return str(value)
