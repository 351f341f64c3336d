"""The people's pages pass axe-core's WCAG 2.1 A and AA rules (and its best practices) in
Chromium, in each language: the status page (form, a result, a wrong code), and the
reviewer's pages (sign-in, workspace, an application, its review with problems, the
new-link form). axe-core is installed by scripts/test.sh (npm) beside the virtual
environment; without it this test skips, saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.db import unit_of_work
from engine.services.committee.bundles import prepare_bundles
from engine.services.review.assignment import assign_reviewers
from engine.services.review.invitations import invite
from engine.services.setup import Runtime
from tests.browser.test_reviewer_workspace import invitation_link
from tests.conftest import (
    AFTER_CLOSE,
    AFTER_R4,
    IN_ROUND1,
    ROUND1,
    ROUND4,
    access_code,
    ask_for_information,
    bundle_link_token,
)
from tests.integration.test_opendata import decided  # noqa: F401  (the fixture)

AXE = Path(__file__).resolve().parents[2] / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
LSO = "SIP-2018-R1-0002"
CHAD = "mahamat.abakar@committee.example.org"
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def violations(page: Any) -> list[str]:
    """What axe-core finds on the page as it stands: rule, impact and the first elements."""
    page.evaluate(AXE.read_text())  # evaluated by the browser's debugger: the pages' CSP allows no inline script
    found = page.evaluate("async rules => await axe.run(document, {runOnly: rules})", RULES)["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in found]


def test_the_pages_people_open_pass_the_wcag_aa_rules_in_every_language(
    committee: Runtime, round4: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    """Each page seen is also written as a screenshot, for people to look at."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/test.sh installs it with npm)")
    screened = committee  # round 1, screened, with its committee
    ask_for_information(screened, LSO)
    with unit_of_work(committee.engine) as session:
        prepare_bundles(session, committee.settings, ROUND1, actor="officer", at=AFTER_CLOSE, pdf=False)
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    app = serve(AFTER_CLOSE)
    found: dict[str, list[str]] = {}
    for language in ("en", "fr", "es"):
        page.goto(f"{app.url}/status?lang={language}")
        found[f"status form {language}"] = violations(page)
        shot(page, f"status-form-{language}")
        page.fill("#reference", LSO)
        page.fill("#access_code", access_code(screened, LSO))
        page.locator("form button[type=submit]").click()
        found[f"status result {language}"] = violations(page)
        shot(page, f"status-result-{language}")
    page.goto(f"{app.url}/status?lang=es")
    page.fill("#reference", LSO)
    page.fill("#access_code", "wrong")
    page.locator("form button[type=submit]").click()
    found["status wrong code es"] = violations(page)
    shot(page, "status-wrong-code-es")

    page.goto(f"{app.url}/committee/bundle?token={bundle_link_token(committee, CHAD)}")
    found["committee member's page fr"] = violations(page)
    shot(page, "committee-members-page-fr")
    for language in ("en", "es"):  # the page in the other languages, as a member may choose
        page.goto(f"{app.url}/committee/bundle?token={bundle_link_token(committee, CHAD)}&lang={language}")
        found[f"committee member's page {language}"] = violations(page)
        shot(page, f"committee-members-page-{language}")
    page.goto(f"{app.url}/committee/bundle?token={bundle_link_token(committee, CHAD)}&format=html")
    found["committee member's bundle fr"] = violations(page)
    shot(page, "committee-members-bundle-fr")

    app.clock.now = AFTER_R4
    page.goto(invitation_link(round4, "ana@example.org", app.url))
    found["reviewer sign-in es"] = violations(page)
    shot(page, "reviewer-sign-in-es")
    page.locator("form button[type=submit]").click()
    found["workspace es"] = violations(page)
    shot(page, "workspace-es")
    page.locator("table a").first.click()
    found["application es"] = violations(page)
    shot(page, "application-es")
    page.locator("button[value=submit]").click()
    found["review with problems es"] = violations(page)
    shot(page, "review-with-problems-es")
    application = page.url.split("?")[0].removesuffix("/review")
    for language in ("en", "fr"):  # the reviewer's pages in the other languages, as they may choose
        page.goto(f"{app.url}/reviewer/workspace?lang={language}")
        found[f"workspace {language}"] = violations(page)
        shot(page, f"workspace-{language}")
        page.goto(f"{application}?lang={language}")
        found[f"application {language}"] = violations(page)
        shot(page, f"application-{language}")
    for language in ("en", "fr", "es"):
        page.goto(f"{app.url}/reviewer/links?lang={language}")
        found[f"new link {language}"] = violations(page)
        shot(page, f"new-link-{language}")
        page.goto(f"{app.url}/reviewer/sign-in?token=not-sent&lang={language}")  # the page a link opens
        found[f"sign-in {language}"] = violations(page)
        shot(page, f"sign-in-{language}")
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_applicants_portal_passes_the_wcag_aa_rules_in_every_language(
    open_round1: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    """Its pages in each language are also written as screenshots, for people to look at."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/test.sh installs it with npm)")
    app = serve(IN_ROUND1)
    found: dict[str, list[str]] = {}
    for language in ("en", "fr", "es"):
        page.context.clear_cookies()
        page.goto(f"{app.url}/apply?lang={language}")
        found[f"apply {language}"] = violations(page)
        shot(page, f"1-apply-{language}")
        page.fill("input[name=email]", f"someone-{language}@example.org")
        page.locator("form[action='apply/start'] button").click()
        found[f"draft {language}"] = violations(page)
        shot(page, f"2-draft-{language}")
        page.fill("input[name='form_a.duration_months']", "999")
        page.fill("input[name='form_b.lines.0.amount']", "many")
        page.locator("button[value=submit]").click()
        found[f"draft with problems {language}"] = violations(page)
        shot(page, f"3-draft-with-problems-{language}")
        page.fill("input[name='form_a.duration_months']", "24")
        page.fill("input[name='form_b.lines.0.amount']", "1000")
        page.select_option("select[name='form_b.lines.0.category']", "travel")
        page.fill("input[name='form_b.lines.0.year']", "1")
        page.select_option("select[name='applicant.party']", "BEN")
        page.fill("input[name='applicant.executing_agency.name']", "Agence")
        page.select_option("select[name='applicant.executing_agency.country']", "BEN")
        page.fill("input[name='applicant.contact.name']", "Aïcha Dossou")
        page.locator("#f-confirm").check()
        page.locator("button[value=submit]").click()
        page.locator("#access-code").wait_for(timeout=5000)
        found[f"receipt {language}"] = violations(page)
        shot(page, f"4-receipt-{language}")
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_page_to_send_forms_again_passes_the_wcag_aa_rules(
    screened: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/test.sh installs it with npm)")
    ask_for_information(screened, LSO)
    app = serve(AFTER_CLOSE)
    found: dict[str, list[str]] = {}
    page.goto(f"{app.url}/status?lang=es")
    page.fill("#reference", LSO)
    page.fill("#access_code", access_code(screened, LSO))
    page.locator("form button[type=submit]").click()
    page.locator("form.resend button").click()
    found["forms again es"] = violations(page)
    shot(page, "forms-again-es")
    for language in ("en", "fr"):  # its language switch keeps the page
        page.locator(f"nav.languages button[value={language}]").click()
        found[f"forms again {language}"] = violations(page)
        shot(page, f"forms-again-{language}")
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_secretariats_console_passes_the_wcag_aa_rules_in_every_language(
    committee: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    """Every page of the console an officer opens for round 1, in each language, with a
    refusal on the decisions page; each page is also a screenshot."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/test.sh installs it with npm)")
    from domain.staff import StaffRole
    from engine.services import staff

    with unit_of_work(committee.engine) as session:
        staff.add_staff(session, "ada@example.org", "Ada Admin", StaffRole.ADMIN, "p" * 16, actor="t", at=AFTER_CLOSE)
    app = serve(AFTER_CLOSE)
    found: dict[str, list[str]] = {}
    page.goto(f"{app.url}/console/")
    found["sign-in en"] = violations(page)
    shot(page, "console-sign-in-en")
    page.fill("#email", "ada@example.org")
    page.fill("#password", "p" * 16)
    page.locator("form button[type=submit]").click()
    pages = {
        "rounds": "/console/",
        "round": f"/console/rounds/{ROUND1}",
        "applications": f"/console/rounds/{ROUND1}/applications",
        "application": f"/console/rounds/{ROUND1}/applications/{LSO}",
        "appraisal": f"/console/rounds/{ROUND1}/appraisal",
        "scores": f"/console/rounds/{ROUND1}/appraisal/SIP-2018-R1-0001",
        "committee": f"/console/rounds/{ROUND1}/committee",
        "grants": f"/console/rounds/{ROUND1}/grants",
        "review": f"/console/rounds/{ROUND1}/review",
        "reviewers": "/console/reviewers",
        "membership": "/console/committee?on=2018-10-02",
        "keys": "/console/keys",
        "messages": "/console/outbox",
        "accounts": "/console/staff",
        "account": "/console/account",
    }
    for language in ("en", "fr", "es"):
        page.goto(f"{app.url}/console/?lang={language}")  # the choice is kept for the next pages
        for name, path in pages.items():
            page.goto(app.url + path)
            found[f"{name} {language}"] = violations(page)
            shot(page, f"console-{name}-{language}")
        page.goto(f"{app.url}/console/rounds/{ROUND1}/committee")
        page.select_option("select[name='decision_SIP-2018-R1-0001']", "approved")
        page.fill("input[name='amount_SIP-2018-R1-0001']", "999999")
        page.locator("#decisions-form button[type=submit]").click()
        found[f"decisions refused {language}"] = violations(page)
        shot(page, f"console-decisions-refused-{language}")
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_a_grants_page_with_its_reports_amendments_and_close_out_passes_the_wcag_aa_rules(
    decided: Runtime,  # noqa: F811
    serve: Any,
    page: Any,
    shot: Any,
) -> None:
    """An active grant whose first report is in, with a spending flag, and an amendment
    asked for: the page where the secretariat reviews them, in each language."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/test.sh installs it with npm)")
    from datetime import UTC, date, datetime

    from domain.lifecycle import Role
    from domain.staff import StaffRole
    from engine.services import staff
    from engine.services.grant_changes import request_amendment
    from engine.services.grant_reports import submit_report
    from tests.integration.test_grant_reports import BEN, activate, report

    activate(decided)
    now = datetime(2019, 5, 20, 9, tzinfo=UTC)
    with unit_of_work(decided.engine) as session:
        submit_report(session, BEN, 1, report({"personnel": 46000}), actor="focal", role=Role.APPLICANT, at=now)
        request_amendment(session, BEN, "extension", {"ends_on": date(2021, 2, 2)}, "The rains came early.",
                          actor="focal", role=Role.APPLICANT, at=now)  # fmt: skip
        from engine.services.report_reviews import ask_review
        from engine.services.review.register import load_reviewers
        from tests.e2e.test_report_reviews import expert

        load_reviewers(session, [expert("ines@example.org", "NOR"), expert("ole@example.org", "NOR")], source="t",
                       actor="t", at=now)  # fmt: skip
        ask_review(session, decided.settings, BEN, 1, "ines@example.org", actor="officer", at=now)
        staff.add_staff(session, "ada@example.org", "Ada Admin", StaffRole.ADMIN, "p" * 16, actor="t", at=now)
    app = serve(now)
    page.goto(f"{app.url}/console/")
    page.fill("#email", "ada@example.org")
    page.fill("#password", "p" * 16)
    page.locator("form button[type=submit]").click()
    found: dict[str, list[str]] = {}
    for language in ("en", "fr", "es"):
        page.goto(f"{app.url}/console/rounds/{ROUND1}/grants/{BEN}?lang={language}")
        found[f"grant {language}"] = violations(page)
        shot(page, f"console-grant-{language}")
    assert {name: problems for name, problems in found.items() if problems} == {}


def test_the_recipients_grant_pages_pass_the_wcag_aa_rules_in_every_language(
    decided: Runtime,  # noqa: F811
    serve: Any,
    page: Any,
    shot: Any,
) -> None:
    """The status page with its grant, the report form (with a refusal) and the page to
    ask for a change to the agreement, in each language."""
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (scripts/test.sh installs it with npm)")
    from datetime import UTC, datetime

    from tests.integration.test_grant_reports import BEN, activate

    activate(decided)
    app = serve(datetime(2019, 5, 20, 9, tzinfo=UTC))
    found: dict[str, list[str]] = {}
    for language in ("en", "fr", "es"):
        page.goto(f"{app.url}/status?lang={language}")
        page.fill("#reference", BEN)
        page.fill("#access_code", access_code(decided, BEN))
        page.locator("form button[type=submit]").click()
        found[f"status with its grant {language}"] = violations(page)
        shot(page, f"grant-status-{language}")
        page.locator("form[action='apply/grant/report'] button").click()
        page.locator("#narrative").wait_for(timeout=5000)
        found[f"report form {language}"] = violations(page)
        shot(page, f"grant-report-{language}")
        page.fill("#narrative", "x")
        page.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
        page.locator("form button[type=submit]").click()
        page.locator("#problems").wait_for(timeout=5000)
        found[f"report refused {language}"] = violations(page)
        shot(page, f"grant-report-refused-{language}")
        page.goto(f"{app.url}/status?lang={language}")
        page.fill("#reference", BEN)
        page.fill("#access_code", access_code(decided, BEN))
        page.locator("form button[type=submit]").click()
        page.locator("form[action='apply/grant/amendment'] button").click()
        page.locator("#reason").wait_for(timeout=5000)
        found[f"amendment {language}"] = violations(page)
        shot(page, f"grant-amendment-{language}")
    assert {name: problems for name, problems in found.items() if problems} == {}
