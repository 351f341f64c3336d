"""The console's pages and forms in a browser's terms (TestClient, cookies, the forms'
tokens): what each action changes, and what it refuses, saying why on the page in the
officer's language, with nothing half-written."""

from __future__ import annotations

import re
import warnings
from decimal import Decimal

from sqlmodel import func, select

from api.app import create_app
from domain.lifecycle import Status
from domain.staff import StaffRole
from engine.db import reading, unit_of_work
from engine.services import staff
from engine.services.committee.meeting import set_funds
from engine.services.setup import Runtime
from engine.tables import Application, AppraisalScore, AuditEvent, DecisionRecord, MessageState, OutboxMessage
from tests.conftest import AFTER_CLOSE, ROUND1, Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
OFFICER, READER = "ana.officer@example.org", "rui.reader@example.org"
BEN, LSO, CHE, CMR = (f"SIP-2018-R1-000{n}" for n in range(1, 5))


def signed_in(rt: Runtime, email: str = OFFICER, role: StaffRole = StaffRole.OFFICER) -> TestClient:
    with unit_of_work(rt.engine) as session:
        staff.add_staff(session, email, email.split("@")[0], role, PASSWORD, actor="setup", at=AFTER_CLOSE)
    client = TestClient(create_app(rt.settings, now=Clock(AFTER_CLOSE)), follow_redirects=False)
    answer = client.post("/console/sign-in", data={"email": email, "password": PASSWORD})
    assert answer.status_code == 303
    return client


def csrf(client: TestClient, path: str = "/console/") -> str:
    return re.search(r'name="csrf" value="(\w+)"', client.get(path).text).group(1)  # type: ignore[union-attr]


def status_of(rt: Runtime, reference: str) -> Status:
    with reading(rt.engine) as session:
        return session.exec(select(Application.status).where(Application.reference == reference)).one()


def test_an_information_request_from_the_application_page_tells_the_applicant(screened: Runtime) -> None:
    with signed_in(screened) as client:
        page = f"/console/rounds/{ROUND1}/applications/{CMR}"
        token = csrf(client, page)
        empty = client.post(page + "/information", data={"csrf": token, "items": "  \n ", "lang": "fr"})
        assert empty.status_code == 422
        assert "Indiquez ce qui manque, un élément par ligne." in empty.text  # in the officer's language
        assert status_of(screened, CMR) is Status.SUBMITTED
        bad_date = client.post(page + "/information", data={"csrf": token, "items": "Form C", "due": "soon"})
        assert bad_date.status_code == 422 and "The date for the answer is not a date." in bad_date.text
        asked = client.post(page + "/information", data={"csrf": token, "items": "Form C\nThe ratification"})
        assert asked.status_code == 303 and asked.headers["location"].endswith("?done=asked")
        assert "Information requested" in client.get(asked.headers["location"]).text
    assert status_of(screened, CMR) is Status.INFORMATION_REQUESTED
    with reading(screened.engine) as session:
        told = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "information_requested")).all()
        actors = session.exec(select(AuditEvent.actor).where(AuditEvent.subject_id == CMR)).all()
    assert len(told) == 1 and "The ratification" in told[0].body_text
    assert OFFICER in actors


def test_an_override_needs_a_reason_and_a_withdrawal_too(screened: Runtime) -> None:
    with signed_in(screened) as client:
        page = f"/console/rounds/{ROUND1}/applications/{CMR}"
        token = csrf(client, page)
        no_reason = client.post(page + "/override", data={"csrf": token, "verdict": "screened", "reason": " "})
        assert no_reason.status_code == 422 and "Give the reason." in no_reason.text
        assert status_of(screened, CMR) is Status.SUBMITTED
        done = client.post(
            page + "/override", data={"csrf": token, "verdict": "screened", "reason": "Party since 2017"}
        )
        assert done.status_code == 303
        assert status_of(screened, CMR) is Status.SCREENED
        page_text = client.get(page).text
        assert "replaced by ana.officer@example.org" in page_text and "Party since 2017" in page_text
        gone = client.post(page + "/withdraw", data={"csrf": token, "reason": "The applicant's letter of 5 Sept."})
        assert gone.status_code == 303
    assert status_of(screened, CMR) is Status.WITHDRAWN


def test_an_application_of_another_round_or_none_is_not_found(screened: Runtime) -> None:
    with signed_in(screened) as client:
        assert client.get(f"/console/rounds/sip-2019-r2/applications/{BEN}").status_code == 404
        assert client.get(f"/console/rounds/{ROUND1}/applications/SIP-2018-R1-9999").status_code == 404
        assert client.get("/console/rounds/no-such-round").status_code == 404
        token = csrf(client)
        refused = client.post(
            f"/console/rounds/sip-2019-r2/applications/{BEN}/withdraw", data={"csrf": token, "reason": "x"}
        )
        assert refused.status_code == 404
    assert status_of(screened, BEN) is Status.SCREENED


def test_the_ranking_shows_only_once_every_judgement_criterion_is_scored(screened: Runtime) -> None:
    criteria = [
        "convention_obligations",
        "country_driven",
        "logical_framework",
        "feasibility",
        "sustainability",
        "cost_effectiveness",
        "gender_mainstreaming",
        "no_gef_duplication",
    ]
    with signed_in(screened) as client:
        page = f"/console/rounds/{ROUND1}/appraisal"
        assert "No ranking yet: 8 scores are still missing." in client.get(page).text
        token = csrf(client, page)
        wrong = "reference,criterion,score,comment\n" + "".join(f"{BEN},{c},3,\n" for c in criteria[:7])
        wrong += f"{BEN},no_gef_duplication,9,\n{LSO},feasibility,2,\n"
        refused = client.post(page, data={"csrf": token}, files={"file": ("scores.csv", wrong.encode(), "text/csv")})
        assert refused.status_code == 422
        assert "scores.csv:9: score" in refused.text and "scores.csv:10: reference" in refused.text
        with reading(screened.engine) as session:
            assert session.exec(select(func.count()).select_from(AppraisalScore)).one() == 0  # none of them kept
        right = "reference,criterion,score,comment\n" + "".join(f"{BEN},{c},3,\n" for c in criteria)
        kept = client.post(page, data={"csrf": token}, files={"file": ("scores.csv", right.encode(), "text/csv")})
        assert kept.status_code == 303 and kept.headers["location"].endswith("done=sheet:8")
        ranked = client.get(page).text
        assert "No ranking yet" not in ranked and "Every judgement criterion is scored" in ranked
        assert re.search(r'<td class="number">1</td>\s*<td class="ref"><a href="[^"]+">' + BEN, ranked)


def test_the_decisions_page_refuses_what_exceeds_the_funds_and_records_nothing(committee: Runtime) -> None:
    with unit_of_work(committee.engine) as session:
        set_funds(session, ROUND1, Decimal("200000"), actor="officer", at=AFTER_CLOSE)
    with signed_in(committee) as client:
        page = f"/console/rounds/{ROUND1}/committee"
        token = csrf(client, page)
        both = {
            "csrf": token,
            "reference": [BEN, CMR],
            f"decision_{BEN}": "approved",
            f"amount_{BEN}": "150000",
            f"decision_{CMR}": "approved_with_conditions",
            f"amount_{CMR}": "100 000",
            f"conditions_{CMR}": "A co-financing letter",
        }
        refused = client.post(page + "/decisions", data=both)
        assert refused.status_code == 422
        assert "above the 200,000.00 available" in refused.text
        assert 'value="100 000"' in refused.text  # what was typed is kept
        with reading(committee.engine) as session:
            assert session.exec(select(func.count()).select_from(DecisionRecord)).one() == 0
        bad_amount = client.post(page + "/decisions", data={**both, f"amount_{CMR}": "lots", "lang": "es"})
        assert bad_amount.status_code == 422 and "No es un importe válido" in bad_amount.text
        nothing = client.post(page + "/decisions", data={"csrf": token, "reference": [BEN]})
        assert nothing.status_code == 422 and "Choose a decision for at least one application." in nothing.text
        recorded = client.post(page + "/decisions", data={**both, f"amount_{CMR}": "50000"})
        assert recorded.status_code == 303
        after = client.get(page).text
        assert "Approved with conditions" in after and "$50,000.00" in after
    assert status_of(committee, BEN) is Status.APPROVED and status_of(committee, CMR) is Status.APPROVED_WITH_CONDITIONS


def test_the_files_are_given_once_they_exist_and_the_360giving_one_is_checked(committee: Runtime) -> None:
    with signed_in(committee) as client:
        early = client.get(f"/console/rounds/{ROUND1}/downloads/grants-{ROUND1}.json")
        assert early.status_code == 409 and "This was not done" in early.text
        report = client.get(f"/console/rounds/{ROUND1}/downloads/screening-{ROUND1}.csv")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
        assert f'filename="screening-{ROUND1}.csv"' in report.headers["content-disposition"]
        assert BEN in report.text
        for name in ("passwords.txt", f"screening-{ROUND1}.exe", "..%2Fsecret_key", f"round-{ROUND1}.html"):
            assert client.get(f"/console/rounds/{ROUND1}/downloads/{name}").status_code in (404, 409), name


def test_the_outbox_previews_a_message_and_queues_a_failed_one_again(screened: Runtime) -> None:
    with unit_of_work(screened.engine) as session:
        message = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).first()  # type: ignore[arg-type]
        assert message is not None
        message.state, message.last_error = MessageState.FAILED, "550 mailbox unavailable"
        session.add(message)
        failed_id = message.id
    with signed_in(screened, READER, StaffRole.READ_ONLY) as reader:
        listing = reader.get("/console/outbox?state=failed")
        assert "550 mailbox unavailable" in listing.text and "Queue again" not in listing.text
        token = csrf(reader, "/console/outbox")
        assert reader.post("/console/outbox/retry", data={"csrf": token, "id": str(failed_id)}).status_code == 403
        preview = reader.get(f"/console/outbox/{failed_id}")
        assert preview.status_code == 200 and "[[access-code]]" in preview.text  # the secret is never shown
        html = reader.get(f"/console/outbox/{failed_id}/html")
        assert "default-src 'none'" in html.headers["content-security-policy"]
    with signed_in(screened) as officer:
        token = csrf(officer, "/console/outbox")
        again = officer.post("/console/outbox/retry", data={"csrf": token, "id": str(failed_id)})
        assert again.status_code == 303 and again.headers["location"].endswith("retried:1")
    with reading(screened.engine) as session:
        assert session.get(OutboxMessage, failed_id).state is MessageState.QUEUED  # type: ignore[union-attr]


def test_the_review_board_never_puts_a_conflicted_reviewer_on_an_application(round4: Runtime) -> None:
    from tests.conftest import AFTER_R4, ROUND4

    r4 = {"BEN": "SIP-2024-R4-0001", "LSO": "SIP-2024-R4-0002"}
    with unit_of_work(round4.engine) as session:
        staff.add_staff(session, OFFICER, "Ana Officer", StaffRole.OFFICER, PASSWORD, actor="setup", at=AFTER_R4)
    client = TestClient(create_app(round4.settings, now=Clock(AFTER_R4)), follow_redirects=False)
    with client:
        assert client.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD}).status_code == 303
        board = f"/console/rounds/{ROUND4}/review"
        page = client.get(board)
        assert page.status_code == 200 and r4["BEN"] in page.text and "Would be proposed" in page.text
        token = csrf(client, board)
        conflicted = client.post(
            board + "/reviewers", data={"csrf": token, "reference": r4["BEN"], "email": "bene@example.org"}
        )
        assert conflicted.status_code == 409 and "conflict" in conflicted.text.lower()  # the refusal says why
        added = client.post(
            board + "/reviewers", data={"csrf": token, "reference": r4["BEN"], "email": "ana@example.org"}
        )
        assert added.status_code == 303
        assert "Ana Gold – proposed" in client.get(board).text
        no_reason = client.post(
            board + "/conflicts",
            data={"csrf": token, "reference": r4["LSO"], "email": "kofi@example.org", "reason": ""},
        )
        assert no_reason.status_code == 422 and "Give the reason." in no_reason.text
        recorded = client.post(
            board + "/conflicts",
            data={
                "csrf": token,
                "reference": r4["LSO"],
                "email": "kofi@example.org",
                "reason": "Advised the applicant",
            },
        )
        assert recorded.status_code == 303

        register = client.get("/console/reviewers")
        assert "Lena Lamp" in register.text and "Mercury waste management" in register.text  # areas by their names
        off = client.post(
            "/console/reviewers/active", data={"csrf": token, "email": "lena@example.org", "active": "no"}
        )
        assert off.status_code == 303 and "takes no assignments" in client.get(off.headers["location"]).text
        sheet = "name,email,organisation,country,areas,languages,max_load\n"
        sheet += "New One,new@example.org,Org,PER,products,en,lots\n"
        refused = client.post(
            "/console/reviewers/file", data={"csrf": token}, files={"file": ("reg.csv", sheet.encode(), "text/csv")}
        )
        assert refused.status_code == 422 and "reg.csv:2" in refused.text
        assert "new@example.org" not in client.get("/console/reviewers").text
    with reading(round4.engine) as session:
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.actor == OFFICER)).all()
    assert "console.review.add.refused" in actions  # the refusal, under the officer who tried


def test_an_administrator_makes_a_key_that_is_shown_once_and_revokes_it(screened: Runtime) -> None:
    with signed_in(screened) as officer:
        token = csrf(officer, "/console/keys")
        refused = officer.post("/console/keys", data={"csrf": token, "name": "robot", "scope": "read"})
        assert refused.status_code == 403 and "Only an administrator can do this" in refused.text
    with signed_in(screened, "ada.admin@example.org", StaffRole.ADMIN) as admin:
        token = csrf(admin, "/console/keys")
        incomplete = admin.post("/console/keys", data={"csrf": token, "name": "", "scope": "everything", "days": "0"})
        assert incomplete.status_code == 422
        assert "Name the key&#39;s holder." in incomplete.text and "scope: read or full." in incomplete.text
        made = admin.post("/console/keys", data={"csrf": token, "name": "reporting-robot", "scope": "read"})
        assert made.status_code == 201
        key = re.search(r'<code class="key">([^<]+)</code>', made.text).group(1)  # type: ignore[union-attr]
        assert key not in admin.get("/console/keys").text  # shown once
        api = admin.get(f"/rounds/{ROUND1}/screening", headers={"Authorization": f"Bearer {key}"})
        assert api.status_code == 200
        gone = admin.post("/console/keys/revoke", data={"csrf": token, "which": "reporting-robot", "reason": "Retired"})
        assert gone.status_code == 303 and gone.headers["location"].endswith("revoked:1")
        assert admin.get(f"/rounds/{ROUND1}/screening", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    with reading(screened.engine) as session:
        made_by = session.exec(select(AuditEvent.actor).where(AuditEvent.action == "api_key.created")).all()
    assert made_by == ["ada.admin@example.org"]


def test_the_committee_membership_by_term_against_its_rule(screened: Runtime) -> None:
    from demo.committee import MEMBERS

    with signed_in(screened) as client:
        token = csrf(client, "/console/committee")
        assert "Nobody serves on the committee on this day." in client.get("/console/committee?on=2018-10-02").text
        loaded = client.post(
            "/console/committee/file", data={"csrf": token}, files={"file": ("c.csv", MEMBERS.encode(), "text/csv")}
        )
        assert loaded.status_code == 303 and loaded.headers["location"].endswith("loaded:10:0")
        serving = client.get("/console/committee?on=2018-10-02").text
        assert "Kwame Boateng (GHA, co-chair)" in serving and "as its rule says" in serving
        ended = client.post(
            "/console/committee",
            data={
                "csrf": token,
                "email": "kwame.boateng@committee.example.org",
                "term_start": "2018-01-01",
                "term_end": "2018-06-30",
            },
        )
        assert ended.status_code == 303 and ended.headers["location"].endswith("done=updated")
        short = client.get("/console/committee?on=2018-10-02").text
        assert "The committee differs from its rule" in short and "1 co-chair, not 2" in short
        wrong = client.post(
            "/console/committee",
            data={"csrf": token, "email": "new@committee.example.org", "term_start": "2018-01-01", "country": "ZZZ"},
        )
        assert wrong.status_code == 422 and 'value="new@committee.example.org"' in wrong.text  # typed, kept
    with reading(screened.engine) as session:
        actors = session.exec(select(AuditEvent.actor).where(AuditEvent.action == "committee.member_updated")).all()
    assert actors == [OFFICER]


def test_forms_sent_again_for_the_applicant_are_checked_then_screened_again(screened: Runtime) -> None:
    import json

    from tests.integration.test_follow_up import FORM_C

    with signed_in(screened) as client:
        page = f"/console/rounds/{ROUND1}/applications/{LSO}"
        assert "Send the forms again for the applicant" in client.get(page).text  # Lesotho is incomplete
        token = csrf(client, page)
        broken = client.post(
            page + "/forms",
            data={"csrf": token},
            files={"file": ("forms.json", b'{"form_c": {"signed_on": "yesterday"}}', "application/json")},
        )
        assert broken.status_code == 422 and "form_c.signed_on" in broken.text
        assert status_of(screened, LSO) is Status.INCOMPLETE
        sent = client.post(page + "/forms", data={"csrf": token, "text": json.dumps(FORM_C)})
        assert sent.status_code == 303 and sent.headers["location"].endswith("done=forms")
    assert status_of(screened, LSO) is Status.SCREENED


def test_a_round_file_is_loaded_whole_or_refused_naming_each_key(screened: Runtime) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "rounds" / "sip-2024-r4.toml").read_text()
    with signed_in(screened) as client:
        token = csrf(client)
        broken = text.replace('id = "sip-2024-r4"', 'id = "sip-2025-r5"').replace("amount_min", "amount_minimum", 1)
        refused = client.post("/console/rounds", data={"csrf": token, "text": broken})
        assert refused.status_code == 422 and "amount_min" in refused.text
        assert "sip-2025-r5" not in client.get("/console/").text  # nothing loaded
        loaded = client.post(
            "/console/rounds",
            data={"csrf": token},
            files={
                "file": ("r5.toml", text.replace('id = "sip-2024-r4"', 'id = "sip-2025-r5"').encode(), "text/plain")
            },
        )
        assert loaded.status_code == 303 and loaded.headers["location"].endswith("done=created:sip-2025-r5")
        assert "Round sip-2025-r5 is loaded." in client.get(loaded.headers["location"]).text
        nothing = client.post("/console/rounds", data={"csrf": token, "text": "  "})
        assert nothing.status_code == 422 and "Choose a round file (TOML) or paste its text." in nothing.text


def test_numbers_no_database_holds_are_refused_on_the_page_not_with_a_500(committee: Runtime) -> None:
    with signed_in(committee, "ada.admin@example.org", StaffRole.ADMIN) as client:
        token = csrf(client)
        assert client.get("/console/outbox/3000000000").status_code == 422
        assert client.get("/console/outbox/99999999999999999999999").status_code == 422
        retried = client.post("/console/outbox/retry", data={"csrf": token, "id": "²"})
        assert retried.status_code == 303  # not an id: every failed message (none here)
        for amount in ("1e999999", "123456789012345678", "1e-9", "²"):
            refused = client.post(f"/console/rounds/{ROUND1}/committee/funds", data={"csrf": token, "amount": amount})
            assert refused.status_code == 422, amount
            assert "This is not an amount" in refused.text
        typed = client.post(f"/console/rounds/{ROUND1}/committee/funds", data={"csrf": token, "amount": "250 000,00"})
        assert typed.status_code == 303  # as a French officer types it
        assert (
            client.post("/console/keys", data={"csrf": token, "name": "x", "scope": "read", "days": "²"}).status_code
            == 422
        )
        load = client.post("/console/reviewers", data={"csrf": token, "email": "a@example.org", "max_load": "²"})
        assert load.status_code == 422 and "The maximum load is a whole number." in load.text


def test_the_public_lists_downloaded_link_each_other_and_the_open_data(committee: Runtime) -> None:
    from tests.integration.test_opendata import decided

    decided_round = decided.__wrapped__(committee)  # type: ignore[attr-defined]
    with signed_in(decided_round) as client:
        files = f"/console/rounds/{ROUND1}/downloads/"
        french = client.get(files + f"approved-{ROUND1}.fr.html")
        assert french.status_code == 200 and '<html lang="fr">' in french.text
        assert f'href="approved-{ROUND1}.es.html"' in french.text and f'href="grants-{ROUND1}.json"' in french.text
        grants = client.get(files + f"grants-{ROUND1}.json")
        assert grants.status_code == 200 and grants.json()["grants"][0]["amountAwarded"] == 150000
        assert f'filename="grants-{ROUND1}.json"' in grants.headers["content-disposition"]


def test_a_page_whose_notice_was_edited_by_hand_still_opens(screened: Runtime) -> None:
    with signed_in(screened) as client:
        for path in (
            f"/console/rounds/{ROUND1}?started=nothing",
            "/console/reviewers?done=loaded:1",
            "/console/committee?done=loaded:x",
            "/console/?done=created",
            "/console/outbox?done=retried:",
            f"/console/rounds/{ROUND1}/appraisal?done=sheet:many",
        ):
            assert client.get(path).status_code == 200, path


def test_a_grant_is_signed_its_condition_met_and_paid_from_its_page(committee: Runtime) -> None:
    from datetime import timedelta

    from engine.tables import Grant
    from tests.integration.test_opendata import AT, decided

    rt = decided.__wrapped__(committee)  # type: ignore[attr-defined]
    with unit_of_work(rt.engine) as session:  # a second condition: each is recorded as the one chosen
        grant = session.exec(select(Grant)).one()
        grant.conditions = [*grant.conditions, {"text": "Open a project account.", "met_at": None, "evidence": None}]
        session.add(grant)
        staff.add_staff(session, OFFICER, "Ana Officer", StaffRole.OFFICER, PASSWORD, actor="setup", at=AT)
    client = TestClient(create_app(rt.settings, now=Clock(AT + timedelta(days=30))), follow_redirects=False)
    with client:
        assert client.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD}).status_code == 303
        listing = client.get(f"/console/rounds/{ROUND1}/grants")
        assert listing.status_code == 200 and BEN in listing.text and "$150,000.00" in listing.text
        page = f"/console/rounds/{ROUND1}/grants/{BEN}"
        token = csrf(client, page)
        assert "Name the district focal points." in client.get(page).text
        assert client.post(page + "/agreement", data={"csrf": token}).status_code == 303
        assert "Version 1 was sent to focal.point@example.bj" in client.get(page).text
        document = client.get(page + "/agreement")
        assert document.status_code == 200 and "Accord de subvention" in document.text  # the recipient's language
        pdf = ("signed.pdf", b"%PDF-1.7\n% signed\n", "application/pdf")
        photo = client.post(
            page + "/signatures",
            data={"csrf": token, "kind": "recipient", "signer": "Thabo Mokoena"},
            files={"file": ("photo.jpg", b"\xff\xd8 a photo", "image/jpeg")},
        )
        assert photo.status_code == 422 and "is not a PDF" in photo.text
        for kind, signer in (("recipient", "Thabo Mokoena"), ("secretariat", "Monika Stankiewicz")):
            signed = client.post(
                page + "/signatures", data={"csrf": token, "kind": kind, "signer": signer}, files={"file": pdf}
            )
            assert signed.status_code == 303, signed.text
        assert "agreement signed" in client.get(page).text
        second = client.post(page + "/conditions", data={"csrf": token, "number": "2", "evidence": "The bank's letter"})
        assert second.status_code == 303
        options = client.get(page).text.split('id="number"')[1].split("</select>")[0]
        assert options == ' name="number"><option value="1">Name the district focal points.</option>'  # its own number
        met = client.post(
            page + "/conditions", data={"csrf": token, "number": "1", "evidence": "The ministry's letter"}
        )
        assert met.status_code == 303
        active = client.get(page).text
        assert "leave $60,000.00 to pay" in active
        over = client.post(page + "/payments", data={"csrf": token, "amount": "60 000,01", "finance_ref": "FIN-1"})
        assert over.status_code == 422 and "60,000.00 the instalments released so far leave" in over.text
        paid = client.post(page + "/payments", data={"csrf": token, "amount": "60 000", "finance_ref": "FIN-1"})
        assert paid.status_code == 303
        assert "FIN-1" in client.get(page).text
        assert client.get(f"/console/rounds/sip-2019-r2/grants/{BEN}").status_code == 404
    with reading(rt.engine) as session:
        actors = session.exec(select(AuditEvent.actor).where(AuditEvent.action == "grant.paid")).all()
    assert actors == [OFFICER]


def test_a_grants_reports_amendment_and_close_out_are_recorded_from_its_page(committee: Runtime) -> None:
    from datetime import UTC, datetime

    from domain.grants import GrantState
    from engine.services.grants import grant_of, meet_condition, pay, record_signature
    from tests.integration.test_opendata import AT, decided

    rt = decided.__wrapped__(committee)  # type: ignore[attr-defined]
    signed_at = datetime(2018, 11, 2, 9, tzinfo=UTC)
    with unit_of_work(rt.engine) as session:
        for kind, signer in (("recipient", "Aïcha Dossou"), ("secretariat", "Monika Stankiewicz")):
            record_signature(
                session, BEN, kind=kind, signer=signer, signed_on=signed_at.date(), file_name="a.pdf",
                content=b"%PDF-1.7\n", actor="officer", at=signed_at,
            )  # fmt: skip
        meet_condition(session, BEN, 1, "The ministry's letter", actor="officer", at=signed_at)
        pay(session, BEN, Decimal(60000), finance_ref="FIN-1", paid_on=signed_at.date(), actor="f", at=signed_at)
        staff.add_staff(session, OFFICER, "Ana Officer", StaffRole.OFFICER, PASSWORD, actor="setup", at=AT)
    clock = Clock(datetime(2019, 5, 20, 9, tzinfo=UTC))
    client = TestClient(create_app(rt.settings, now=clock), follow_redirects=False)
    page = f"/console/rounds/{ROUND1}/grants/{BEN}"
    report = {
        "narrative": "Sites surveyed.", "progress-1-1": "32 sites", "progress-1-2": "draft", "progress-2-1": "none yet",
        "spent-personnel": "46 000", "spent-travel": "",
    }  # fmt: skip
    with client:
        assert client.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD}).status_code == 303
        token = csrf(client, page)
        shown = client.get(page).text
        assert "Progress on “Number of sites surveyed” (output 1)" in shown and 'mark-fail">overdue' not in shown
        missing = client.post(page + "/reports/1", data={"csrf": token, **report, "progress-2-1": ""})
        assert missing.status_code == 422 and "indicator 1 of output 2 has no progress reported" in missing.text
        assert client.post(page + "/reports/1", data={"csrf": token, **report}).status_code == 303
        shown = client.get(page).text
        assert "personnel: 46,000.00 spent of 40,000.00 budgeted, 15.0 % over" in shown
        assert "received, to review" in shown
        undecided = client.post(page + "/reports/1/decision", data={"csrf": token, "reasons": "Explain."})
        assert undecided.status_code == 422 and "Choose a decision." in undecided.text
        no_reason = client.post(page + "/reports/1/decision", data={"csrf": token, "decision": "revise", "reasons": ""})
        assert no_reason.status_code == 422 and "Give the reason." in no_reason.text
        back = client.post(
            page + "/reports/1/decision", data={"csrf": token, "decision": "revise", "reasons": "Explain personnel."}
        )
        assert back.status_code == 303 and "sent back for revision" in client.get(page).text
        assert client.post(page + "/reports/1", data={"csrf": token, **report}).status_code == 303
        assert client.post(page + "/reports/1/decision", data={"csrf": token, "decision": "accept"}).status_code == 303
        assert "leave $60,000.00 to pay" in client.get(page).text  # the second instalment released
        clock.now = datetime(2021, 1, 20, 9, tzinfo=UTC)  # the final report, due on 1 January, is overdue
        assert client.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD}).status_code == 303
        token = csrf(client, page)
        assert 'mark-fail">overdue' in client.get(page).text
        blank = client.post(page + "/amendments", data={"csrf": token, "kind": "extension", "reason": "Floods."})
        assert blank.status_code == 422 and "Give the new end date." in blank.text
        short = client.post(
            page + "/amendments",
            data={"csrf": token, "kind": "extension", "ends_on": "2019-04-01", "reason": "Floods."},
        )
        assert short.status_code == 422 and "the end of a period whose report is accepted" in short.text
        extended = client.post(
            page + "/amendments",
            data={"csrf": token, "kind": "extension", "ends_on": "2021-05-02", "reason": "Floods at the sites."},
        )
        assert extended.status_code == 303
        shown = client.get(page).text
        assert "no-cost extension" in shown and "May 2, 2021" in shown and "approved" in shown
        french = client.get(page + "?lang=fr").text
        assert "prolongation sans coût" in french and "2 mai 2021" in french
    with reading(rt.engine) as session:
        assert grant_of(session, BEN).state == GrantState.ACTIVE
        actions = session.exec(
            select(AuditEvent.action).where(AuditEvent.actor == OFFICER, AuditEvent.subject_type == "grant")
        ).all()
    assert {"grant.report_submitted", "grant.report_revision_asked", "grant.report_accepted",
            "grant.amendment_approved"} <= set(actions)  # fmt: skip
