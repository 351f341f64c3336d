"""Intake through the one service behind the API and the import, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from domain.hints import Step
from domain.lifecycle import PublicStatus
from engine.db import unit_of_work
from engine.services.errors import Conflict, InvalidInput, NotAccepting, NotFound
from engine.services.intake import import_batch, submit_application
from engine.services.outbox import materialize
from engine.services.rounds import definition_of, get_round
from engine.services.setup import Runtime
from engine.services.tokens import token_matches
from engine.tables import Application, AuditEvent, IntakeKey, OutboxMessage, StatusChange
from notifications import ACCESS_CODE_PLACEHOLDER
from tests.conftest import IN_ROUND1, ROUND1, changed, example

BEN = example("ben-asgm-complete.json")
TABLES = (Application, StatusChange, AuditEvent, IntakeKey, OutboxMessage)


def counts(rt: Runtime) -> dict[str, int]:
    with unit_of_work(rt.engine) as session:
        return {t.__tablename__: session.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def test_a_submission_is_stored_with_its_history_audit_and_receipt_in_one_go(open_round1: Runtime) -> None:
    rt = open_round1
    before = counts(rt)
    receipt = submit_application(rt.engine, rt.settings, ROUND1, BEN, now=IN_ROUND1)
    assert receipt.reference == "SIP-2018-R1-0001" and receipt.status is PublicStatus.RECEIVED
    # an access code of 100 bits that can be copied from paper: groups of Crockford's base 32
    assert receipt.created and re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){4}[0-9A-HJKMNP-TV-Z]{4}", receipt.access_token)
    after = counts(rt)
    assert {k: after[k] - before[k] for k in after} == {
        "application": 1,
        "status_change": 1,
        "audit_event": 1,
        "intake_key": 0,
        "outbox": 1,
    }
    with unit_of_work(rt.engine) as session:
        application = session.exec(select(Application)).one()
        assert application.form_b["total_requested"] == "190000.00"
        assert application.access_token_hash != receipt.access_token  # only the hash is stored
        assert receipt.access_token not in json.dumps(application.model_dump(mode="json"))
        message = session.exec(select(OutboxMessage)).one()
        assert (message.kind, message.language, message.recipient) == ("receipt", "fr", "focal.point@example.bj")
        assert "SIP-2018-R1-0001" in message.body_text and "demande reçue" in message.subject
        assert receipt.access_token not in message.body_text  # an API submitter got it in the answer


def test_references_follow_each_other_within_a_round(open_round1: Runtime) -> None:
    rt = open_round1
    refs = [submit_application(rt.engine, rt.settings, ROUND1, BEN, now=IN_ROUND1).reference for _ in range(3)]
    assert refs == ["SIP-2018-R1-0001", "SIP-2018-R1-0002", "SIP-2018-R1-0003"]


def test_a_retry_with_the_same_idempotency_key_returns_the_first_receipt(open_round1: Runtime) -> None:
    rt = open_round1
    first = submit_application(rt.engine, rt.settings, ROUND1, BEN, idempotency_key="k-1", now=IN_ROUND1)
    before = counts(rt)
    again = submit_application(
        rt.engine, rt.settings, ROUND1, BEN, idempotency_key="k-1", now=IN_ROUND1 + timedelta(minutes=5)
    )
    assert counts(rt) == before
    assert (again.reference, again.access_token, again.created) == (first.reference, first.access_token, False)


def test_the_same_idempotency_key_with_other_content_is_a_conflict(open_round1: Runtime) -> None:
    rt = open_round1
    submit_application(rt.engine, rt.settings, ROUND1, BEN, idempotency_key="k-1", now=IN_ROUND1)
    before = counts(rt)
    other = changed(BEN, form_a__title="Another project")
    with pytest.raises(Conflict, match="already used for application SIP-2018-R1-0001"):
        submit_application(rt.engine, rt.settings, ROUND1, other, idempotency_key="k-1", now=IN_ROUND1)
    assert counts(rt) == before


def test_an_unknown_party_is_refused_with_its_path_and_nothing_is_written(open_round1: Runtime) -> None:
    rt = open_round1
    before = counts(rt)
    body = changed(BEN, applicant__party="XYZ", applicant__co_applicants=["TGO", "QQQ"])
    with pytest.raises(InvalidInput) as caught:
        submit_application(rt.engine, rt.settings, ROUND1, body, now=IN_ROUND1)
    paths = {e.path: e.message for e in caught.value.errors}
    assert set(paths) == {"$.applicant.party", "$.applicant.co_applicants[1]"}
    assert "not in the Parties register" in paths["$.applicant.party"]
    assert counts(rt) == before


@pytest.mark.parametrize(
    "body,path",
    [
        (b"not json at all", "$"),
        (b'["an", "array"]', "$"),
        (changed(BEN, format="sip-application/0"), "$.format"),
        (changed(BEN, form_b__total_requested=-1), "$.form_b.total_requested"),
        (changed(BEN, form_b__total_requested="190000"), "$.form_b.total_requested"),
        (changed(BEN, form_a__title="x" * 5_000_000), "$.form_a.title"),
        (changed(BEN, round="sip-2019-r2"), "$.round"),
        (changed(BEN, received_at="2018-07-01T10:00:00+02:00"), "$.received_at"),
    ],
)
def test_bad_input_is_refused_by_path_and_leaves_the_database_as_it_was(
    open_round1: Runtime, body: bytes, path: str
) -> None:
    rt = open_round1
    before = counts(rt)
    with pytest.raises(InvalidInput) as caught:
        submit_application(rt.engine, rt.settings, ROUND1, body, now=IN_ROUND1)
    assert path in [e.path for e in caught.value.errors]
    assert counts(rt) == before


def test_an_unknown_round_is_not_found(open_round1: Runtime) -> None:
    with pytest.raises(NotFound, match="no round 'sip-1999-r9'.*once its file is loaded") as refused:
        submit_application(open_round1.engine, open_round1.settings, "sip-1999-r9", BEN, now=IN_ROUND1)
    assert [h.step for h in refused.value.hints] == [Step.LIST_ROUNDS, Step.LOAD_ROUND]


def test_one_second_before_the_deadline_is_accepted_and_one_second_after_is_refused(open_round1: Runtime) -> None:
    rt = open_round1
    with unit_of_work(rt.engine) as session:
        closes_at = definition_of(get_round(session, ROUND1)).closes_at
    assert submit_application(rt.engine, rt.settings, ROUND1, BEN, now=closes_at - timedelta(seconds=1)).created
    before = counts(rt)
    with pytest.raises(NotAccepting, match=r"closed for applications at 2018-08-31 23:59:59 CEST"):
        submit_application(rt.engine, rt.settings, ROUND1, BEN, now=closes_at + timedelta(seconds=1))
    assert counts(rt) == before


def test_one_second_before_the_round_opens_is_refused(rt: Runtime) -> None:
    with pytest.raises(NotAccepting, match="not open yet; it opens at 2018-06-05 00:00:00 CEST"):
        submit_application(rt.engine, rt.settings, ROUND1, BEN, now=datetime(2018, 6, 4, 21, 59, 59, tzinfo=UTC))


def _late_time() -> datetime:
    return datetime(2018, 9, 20, 10, tzinfo=UTC)


def test_an_import_is_back_dated_to_its_receipt_time_and_mails_the_access_code(open_round1: Runtime) -> None:
    rt = open_round1
    body = changed(BEN, received_at="2018-08-24T15:40:00+01:00")
    [item] = import_batch(rt.engine, rt.settings, ROUND1, [("ben.json", body)], actor="secretariat", now=_late_time())
    assert item.ok and item.created
    with unit_of_work(rt.engine) as session:
        application = session.exec(select(Application)).one()
        assert application.submitted_at == datetime(2018, 8, 24, 14, 40, tzinfo=UTC)
        assert application.channel == "import"
        message = session.exec(select(OutboxMessage)).one()
        assert ACCESS_CODE_PLACEHOLDER in message.body_text  # the outbox never holds the code itself...
        sent = materialize(session, rt.settings, message)  # ...the relay puts it in
        [code] = [line.strip() for line in sent.text.splitlines() if line.startswith("    ")]
        assert token_matches(code, application.access_token_hash) and code in sent.html


def test_an_import_received_after_the_deadline_is_refused(open_round1: Runtime) -> None:
    rt = open_round1
    body = changed(BEN, received_at="2018-09-01T00:00:00+02:00")
    [item] = import_batch(rt.engine, rt.settings, ROUND1, [("late.json", body)], actor="s", now=_late_time())
    assert not item.ok and item.errors[0].path == "$.received_at" and "outside the round" in item.errors[0].message


def test_a_batch_of_100_with_3_bad_files_imports_97_and_reports_3(open_round1: Runtime) -> None:
    rt = open_round1
    good = [
        (f"{i:03d}.json", changed(BEN, received_at="2018-08-01T10:00:00+02:00", form_a__title=f"Project {i}"))
        for i in range(97)
    ]
    bad = [
        ("bad-json.json", b"{"),
        ("bad-party.json", changed(BEN, received_at="2018-08-01T10:00:00+02:00", applicant__party="ZZZ")),
        ("bad-amount.json", changed(BEN, received_at="2018-08-01T10:00:00+02:00", form_b__total_requested=-3)),
    ]
    results = import_batch(rt.engine, rt.settings, ROUND1, good[:50] + bad + good[50:], actor="s", now=_late_time())
    assert sum(r.ok for r in results) == 97
    refused = {r.name: [e.path for e in r.errors] for r in results if not r.ok}
    assert refused == {
        "bad-json.json": ["$"],
        "bad-party.json": ["$.applicant.party"],
        "bad-amount.json": ["$.form_b.total_requested"],
    }
    assert counts(rt)["application"] == 97
    again = import_batch(rt.engine, rt.settings, ROUND1, good, actor="s", now=_late_time())
    assert all(r.ok and not r.created for r in again) and counts(rt)["application"] == 97


def test_two_concurrent_submissions_with_one_idempotency_key_make_one_application(open_round1: Runtime) -> None:
    import threading

    rt = open_round1
    barrier = threading.Barrier(4)
    receipts, failures = [], []

    def submit() -> None:
        barrier.wait()
        try:
            receipts.append(
                submit_application(rt.engine, rt.settings, ROUND1, BEN, idempotency_key="same", now=IN_ROUND1)
            )
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert len({r.reference for r in receipts}) == 1 and sum(r.created for r in receipts) == 1
    assert len({r.access_token for r in receipts}) == 1
    assert counts(rt)["application"] == 1 and counts(rt)["outbox"] == 1


def test_round_and_register_errors_are_listed_with_the_format_errors(open_round1: Runtime) -> None:
    body = changed(
        BEN, format="nope", round="sip-2019-r2", applicant__party="QQQ", received_at="2018-07-01T10:00:00+02:00"
    )
    with pytest.raises(InvalidInput) as caught:
        submit_application(open_round1.engine, open_round1.settings, ROUND1, body, now=IN_ROUND1)
    assert {e.path for e in caught.value.errors} == {"$.format", "$.round", "$.applicant.party", "$.received_at"}


def test_a_round_whose_date_came_but_that_was_not_opened_says_so(rt: Runtime) -> None:
    with pytest.raises(NotAccepting, match="has not been opened by the secretariat yet"):
        submit_application(rt.engine, rt.settings, ROUND1, BEN, now=IN_ROUND1)


def test_an_import_outside_the_round_is_reported_with_the_format_errors(open_round1: Runtime) -> None:
    body = changed(BEN, received_at="2018-09-01T00:00:00+02:00", form_b__total_requested=-1)
    [item] = import_batch(
        open_round1.engine, open_round1.settings, ROUND1, [("x.json", body)], actor="s", now=_late_time()
    )
    assert {e.path for e in item.errors} == {"$.received_at", "$.form_b.total_requested"}


def test_a_retry_after_the_deadline_still_gets_its_first_receipt(open_round1: Runtime) -> None:
    rt = open_round1
    with unit_of_work(rt.engine) as session:
        closes_at = definition_of(get_round(session, ROUND1)).closes_at
    first = submit_application(rt.engine, rt.settings, ROUND1, BEN, idempotency_key="late", now=closes_at)
    again = submit_application(
        rt.engine, rt.settings, ROUND1, BEN, idempotency_key="late", now=closes_at + timedelta(seconds=2)
    )
    assert (again.reference, again.access_token, again.created) == (first.reference, first.access_token, False)


def test_an_applicant_cannot_name_an_imports_key_to_get_its_access_code(open_round1: Runtime) -> None:
    from engine.services.intake import import_key

    rt = open_round1
    body = changed(BEN, received_at="2018-08-01T10:00:00+02:00")
    [item] = import_batch(rt.engine, rt.settings, ROUND1, [("a.json", body)], actor="s", now=IN_ROUND1)
    api_body = changed(BEN)
    receipt = submit_application(
        rt.engine, rt.settings, ROUND1, api_body, idempotency_key=import_key(body), now=IN_ROUND1
    )
    assert receipt.created and receipt.reference != item.reference


def test_receipts_of_a_batch_in_three_languages_are_those_rendered_one_by_one(open_round1: Runtime) -> None:
    """The receipts of a batch are rendered together per language (`render_many`): each is
    the receipt `render` gives for its application alone, in its place in the outbox."""
    from engine.services.intake import status_page_url
    from engine.services.parties import party_names
    from notifications import render

    rt = open_round1
    at = "2018-08-01T10:00:00+02:00"
    bodies = [
        changed(
            BEN,
            received_at=at,
            applicant__language=("en", "fr", "es")[i % 3],
            applicant__contact__name=f"Aïcha <Dossou> & {{{i}}}",
            form_a__title=f"Mercury & <gold> {i}",
        )
        for i in range(7)
    ]
    bodies.append(changed(BEN, received_at=at, applicant__language="es", form_a=None))  # no title: "—"
    results = import_batch(
        rt.engine, rt.settings, ROUND1, [(f"{i}.json", b) for i, b in enumerate(bodies)], actor="s", now=_late_time()
    )
    assert all(r.ok and r.created for r in results)
    with unit_of_work(rt.engine) as session:
        definition = definition_of(get_round(session, ROUND1))
        names = party_names(session)
        rows = session.exec(
            select(OutboxMessage, Application)
            .join(Application, Application.id == OutboxMessage.application_id)  # type: ignore[arg-type]
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).all()
        assert [a.reference for _, a in rows] == [r.reference for r in results]
        for message, application in rows:
            language = application.language
            alone = render(
                "receipt",
                language,
                dict(
                    language=language,
                    contact_name=application.applicant["contact"]["name"],
                    reference=application.reference,
                    round_title=definition.title_in(language),
                    title=application.title,
                    party_name=names.name(application.party, language),
                    submitted_at=application.submitted_at,
                    timezone=definition.timezone,
                    status="received",
                    access_token=ACCESS_CODE_PLACEHOLDER,
                    status_url=status_page_url(rt.settings, application.reference, language),
                    programme_email=rt.settings.programme_email,
                ),
            )
            assert (message.subject, message.body_text, message.body_html, message.language) == (
                alone.subject,
                alone.text,
                alone.html,
                alone.language,
            )
    assert {m.language for m, _ in rows} == {"en", "fr", "es"}
