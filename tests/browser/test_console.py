"""A programme officer runs round 1 in the secretariat's console, in Chromium: signs in,
opens the round, starts screening (a Prefect run), records three scores, asks an
applicant for information, sends the round to the committee, records the meeting's funds
and the decisions (one refused for exceeding the funds, then corrected), queues the
letters and downloads the 360Giving file. Every page is a screenshot; the steps (pages
and clicks) are counted and written beside them. Then the refusals a browser meets."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from domain.staff import StaffRole
from engine.db import reading, unit_of_work
from engine.services import staff
from engine.services.setup import Runtime
from engine.tables import Application, AuditEvent, OutboxMessage
from tests.browser.conftest import SHOTS
from tests.conftest import AFTER_CLOSE, ROUND1, members

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
PASSWORD = "correct horse battery staple"
OFFICER, READER = "ana.officer@example.org", "rui.reader@example.org"
BEN, LSO, CHE, CMR = (f"SIP-2018-R1-000{n}" for n in range(1, 5))


@dataclass
class Steps:
    """What the officer did: pages opened by typing or following a link, and clicks."""

    pages: int = 0
    clicks: int = 0
    log: list[str] = field(default_factory=list)

    def went(self, what: str) -> None:
        self.pages += 1
        self.log.append(f"page: {what}")

    def clicked(self, what: str) -> None:
        self.clicks += 1
        self.log.append(f"click: {what}")


def accounts(rt: Runtime) -> None:
    with unit_of_work(rt.engine) as session:
        staff.add_staff(session, OFFICER, "Ana Officer", StaffRole.OFFICER, PASSWORD, actor="setup", at=AFTER_CLOSE)
        staff.add_staff(session, READER, "Rui Reader", StaffRole.READ_ONLY, PASSWORD, actor="setup", at=AFTER_CLOSE)


def sign_in(page: Any, base: str, email: str, steps: Steps | None = None) -> None:
    page.goto(base + "/console/")
    expect(page.get_by_role("heading", name="Sign in to the secretariat's console")).to_be_visible()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Rounds", exact=True)).to_be_visible()
    if steps:
        steps.went("the console (sign-in form)")
        steps.clicked("Sign in")


def run_finished(page: Any, flow: str) -> None:
    """Reload the round's page until the run of `flow` is completed (at most a minute)."""
    for _ in range(120):
        row = page.get_by_role("row").filter(has_text=flow).first
        if row.count() and "Completed" in row.inner_text():
            return
        time.sleep(0.5)
        page.reload()
    raise AssertionError(f"the {flow} run did not complete: {page.get_by_role('table').last.inner_text()}")


def test_an_officer_takes_round_1_from_closed_to_letters_queued_in_the_browser(
    imported: Runtime, prefect_harness: None, serve: Any, page: Any, shot: Any
) -> None:
    accounts(imported)
    members(imported)
    app = serve(AFTER_CLOSE)
    steps = Steps()
    sign_in(page, app.url, OFFICER, steps)
    shot(page, "01-dashboard")

    page.get_by_role("link", name="Specific International Programme – first round (2018)").click()
    steps.went("the round")
    expect(page.get_by_text("Closed", exact=True)).to_be_visible()
    page.get_by_role("button", name="Start screening").click()
    steps.clicked("Start screening")
    expect(page.locator("p.ok")).to_contain_text("screen-applications")
    run_finished(page, "screen-applications")
    shot(page, "02-round-screened")

    page.get_by_role("link", name="Appraisal", exact=True).click()
    steps.went("appraisal")
    expect(page.get_by_text("No ranking yet")).to_be_visible()
    page.get_by_role("link", name=BEN).click()
    steps.went(f"scores of {BEN}")
    for criterion, score in (("convention_obligations", "3"), ("country_driven", "4"), ("feasibility", "2")):
        page.locator(f"input[name=score_{criterion}][value='{score}']").check()
        steps.clicked(f"{criterion} {score}")
    page.get_by_role("button", name="Record the scores").click()
    steps.clicked("Record the scores")
    expect(page.locator("p.ok")).to_contain_text("The scores are recorded")
    expect(page.locator("input[name=score_country_driven][value='4']")).to_be_checked()
    shot(page, "03-scores")

    page.get_by_role("link", name="Applications", exact=True).click()
    steps.went("applications")
    page.get_by_label("Screening").select_option("needs_judgement")
    page.get_by_role("button", name="Filter").click()
    steps.clicked("Filter: awaiting the secretariat's decision")
    expect(page.get_by_text("1 of 4 applications shown.")).to_be_visible()
    shot(page, "04-applications-filtered")
    page.get_by_role("link", name=CMR).click()
    steps.went(CMR)
    page.get_by_label("What is missing (one item per line)").fill(
        "The depositary's notification of Cameroon's ratification"
    )
    page.get_by_role("button", name="Send the request").click()
    steps.clicked("Send the request")
    expect(page.locator("p.ok")).to_contain_text("The information request is recorded")
    expect(page.get_by_text("Information requested").first).to_be_visible()
    shot(page, "05-information-requested")

    # The answer does not come: the officer decides the application is incomplete, with a reason.
    page.get_by_label("New verdict").select_option("incomplete")
    page.get_by_label("Reason (kept in the record and the audit trail)").fill(
        "The notification did not come by the date given."
    )
    page.get_by_role("button", name="Replace the verdict").click()
    steps.clicked("Replace the verdict")
    expect(page.locator("p.ok")).to_contain_text("The verdict is replaced")

    page.get_by_role("link", name="Specific International Programme – first round (2018)").click()
    steps.went("the round")
    page.get_by_role("button", name="Send to the committee").click()
    steps.clicked("Send to the committee")
    run_finished(page, "send-to-committee")
    expect(page.get_by_text("With the committee", exact=True)).to_be_visible()

    page.get_by_role("link", name="Committee", exact=True).click()
    steps.went("the committee")
    page.get_by_label("Amount (USD)").fill("150000")
    page.get_by_role("button", name="Record the funds").click()
    steps.clicked("Record the funds")
    expect(page.locator("p.ok")).to_contain_text("The funds available are recorded")
    page.get_by_label(f"Decision on {BEN}").select_option("approved")
    page.locator(f"#amount_{BEN}").fill("190000")
    expect(page.locator("#funds-left")).to_contain_text("exceed the funds available by $40,000.00")
    shot(page, "06-decisions-entered")
    page.get_by_role("button", name="Record the decisions").click()
    steps.clicked("Record the decisions")
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("Nothing was recorded")
    expect(refusal).to_contain_text("above the 150,000.00 available")
    shot(page, "07-decision-refused")
    page.locator(f"#amount_{BEN}").fill("150000")  # what was typed is kept: only the amount changes
    steps.clicked("Amount corrected")
    page.get_by_role("button", name="Record the decisions").click()
    steps.clicked("Record the decisions")
    expect(page.locator("p.ok")).to_contain_text("The decisions are recorded")
    expect(page.get_by_text("$150,000.00").first).to_be_visible()

    page.get_by_role("button", name="Queue the decision letters").click()
    steps.clicked("Queue the decision letters")
    run_finished(page, "send-decision-letters")
    page.get_by_role("link", name="Committee", exact=True).click()
    expect(page.get_by_text("1 letter queued so far.")).to_be_visible()
    expect(page.get_by_role("button", name="Record the decisions")).to_have_count(0)  # nothing left to decide
    shot(page, "08-letters-queued")
    steps.log.append("letters queued")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="JSON").click()
    steps.clicked("360Giving JSON")
    package = json.loads(download_info.value.path().read_text(encoding="utf-8"))
    assert [g["amountAwarded"] for g in package["grants"]] == [150000]

    page.get_by_role("link", name="See them in the messages").click()
    expect(page.get_by_role("link", name=re.compile("decision|Décision|decisión", re.I)).first).to_be_visible()
    shot(page, "09-outbox")

    with reading(imported.engine) as session:
        statuses = dict(session.exec(select(Application.reference, Application.status)).all())
        by_officer = session.exec(select(AuditEvent.action).where(AuditEvent.actor == OFFICER)).all()
        letters = session.exec(select(OutboxMessage).where(OutboxMessage.kind.startswith("decision"))).all()  # type: ignore[attr-defined]
    assert statuses[BEN] == "approved" and statuses[CMR] == "incomplete"
    assert len(letters) == 1 and letters[0].round_id == ROUND1
    for action in ("application.scored", "staff.signed_in", "stage.requested", "committee.funds_set"):
        assert action in by_officer, action  # every action under the officer's own address
    (SHOTS / "console-steps.txt").write_text(
        f"round 1 from closed to letters queued in the console: {steps.pages} pages, {steps.clicks} clicks\n"
        + "\n".join(steps.log)
        + "\n",
        encoding="utf-8",
    )


def test_the_console_in_french_and_a_read_only_officer_who_cannot_act(
    imported: Runtime, serve: Any, page: Any, shot: Any
) -> None:
    accounts(imported)
    app = serve(AFTER_CLOSE)
    sign_in(page, app.url, READER)
    page.get_by_role("link", name="Français").click()
    expect(page.get_by_role("heading", name="Cycles")).to_be_visible()
    expect(page.get_by_text("Votre compte est en lecture seule")).to_be_visible()
    page.get_by_role("link", name=re.compile("premier cycle|first round")).click()
    expect(page.get_by_role("button", name="Lancer l'examen préalable")).to_have_count(0)  # nothing to press
    shot(page, "1-round-read-only-fr")
    page.get_by_role("link", name="Demandes", exact=True).click()
    page.get_by_role("link", name=LSO).click()
    expect(page.get_by_role("heading", name=re.compile("Formulaire A"))).to_be_visible()
    shot(page, "2-application-read-only-fr")
    page.get_by_role("link", name="Español").click()
    expect(page.get_by_text("Su cuenta es de solo lectura", exact=False)).to_be_visible()
    shot(page, "3-application-read-only-es")
