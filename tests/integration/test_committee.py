"""The Steering Committee through the services, on SQLite and PostgreSQL: the
membership, the meeting and funds, the decisions and the rules they keep, and the
decision letters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import func, select

from domain.committee import DecisionIn
from engine.db import unit_of_work
from engine.services.applications import applicant_view
from engine.services.committee.decisions import parse_decisions, record_decisions
from engine.services.committee.meeting import (
    committee_of,
    declare_member_conflict,
    schedule_meeting,
    set_attendees,
    set_funds,
)
from engine.services.committee.membership import known_parties, parse_members
from engine.services.errors import InvalidInput, NotAllowed
from engine.services.letters import send_decision_letters
from engine.services.setup import Runtime
from engine.services.tokens import derive_token
from engine.tables import Application, DecisionRecord, IntakeKey, OutboxMessage, Round
from tests.conftest import ROUND1, members
from tests.queries import statements

BEN, LSO, CHE, CMR = "SIP-2018-R1-0001", "SIP-2018-R1-0002", "SIP-2018-R1-0003", "SIP-2018-R1-0004"
AT = datetime(2018, 10, 3, 15, tzinfo=UTC)
HEADER = "name,email,country,role,term_start,term_end,language\n"


def decide(rt: Runtime, *items: DecisionIn):
    with unit_of_work(rt.engine) as session:
        return record_decisions(
            session, ROUND1, [(d, f"row {i}") for i, d in enumerate(items, 1)], actor="officer", at=AT
        )


def test_the_membership_loads_and_the_round_1_committee_is_as_its_rule_wants(committee: Runtime) -> None:
    with unit_of_work(committee.engine) as session:
        meeting = committee_of(session, ROUND1)
    assert (meeting.meeting.starts_on, meeting.meeting.place) == (date(2018, 10, 2), "Oslo")  # from the round file
    assert len(meeting.members) == 10 and meeting.composition == [] and meeting.quorum == 6
    assert members(committee) == {"members": 10, "added": 0, "updated": 0}  # loading again changes nothing


def test_a_membership_file_with_errors_is_refused_whole(rt: Runtime) -> None:
    text = HEADER + (
        "A,a@example.org,GHA,chair,2018-01-01,2019-12-31,de\n"
        "B,b@example.org,XXX,member,2018-01-01,2019-12-31,en\n"
        "C,c@example.org,NOR,member,2019-12-31,2018-01-01,en\n"
        "D,d@example.org,NLD,member,2018-01-01,2019-12-31,en\n"
        "D,d@example.org,NLD,member,2018-01-01,2019-12-31,en\n"
        "E,e@example.org,EST,member,2018-01-01,2019-12-31,en\n"
        "E,e@example.org,EST,member,2019-06-01,2021-12-31,en\n"
    )
    with pytest.raises(InvalidInput) as caught, unit_of_work(rt.engine) as session:
        parse_members(text, "c.csv", known_parties(session))
    problems = {e.path: e.message for e in caught.value.errors}
    assert "c.csv:2: role" in problems and problems["c.csv:3: country"].startswith("XXX is not in the Parties")
    assert "the term ends (2018-01-01) before it starts (2019-12-31)" in problems["c.csv:4: row"]
    assert "c.csv:2: language" in problems and "already on line 5" in problems["c.csv:6: email"]
    assert problems["c.csv: e@example.org"].startswith("terms overlap")


def test_decisions_within_the_rules_are_recorded_once_and_the_round_is_decided(committee: Runtime) -> None:
    approve = DecisionIn(reference=BEN, decision="approved", amount=Decimal("150000"))
    defer = DecisionIn(reference=CMR, decision="deferred", recommendations="Confirm the date of ratification.")
    summary = decide(committee, approve, defer)
    assert (summary.recorded, summary.unchanged, summary.approved_total, summary.undecided) == (2, 0, "150000.00", [])
    again = decide(committee, approve)
    assert (again.recorded, again.unchanged) == (0, 1)
    with unit_of_work(committee.engine) as session:
        record = session.exec(select(DecisionRecord).join(Application).where(Application.reference == BEN)).one()
        assert session.get(Round, ROUND1).status == "decided"
    assert len(record.participants) == 10 and record.rule == "consensus" and record.decided_on == date(2018, 10, 3)
    with pytest.raises(InvalidInput, match="a decision is final"):
        decide(committee, DecisionIn(reference=BEN, decision="not_approved", recommendations="No."))


def test_approvals_beyond_the_funds_the_request_or_the_range_are_refused_and_nothing_recorded(
    committee: Runtime,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        decide(
            committee,
            DecisionIn(reference=BEN, decision="approved", amount=Decimal("190000")),
            DecisionIn(reference=CMR, decision="approved", amount=Decimal("190000")),
        )
    assert [e.message for e in caught.value.errors] == [
        "approvals would total 380,000.00, above the 300,000.00 available"
    ]
    with pytest.raises(InvalidInput) as caught:
        decide(
            committee,
            DecisionIn(reference=BEN, decision="approved", amount=Decimal("200000")),
            DecisionIn(reference=CMR, decision="approved", amount=Decimal("40000")),
        )
    assert [e.message for e in caught.value.errors] == [
        "200,000.00 is above the 190,000.00 requested",
        "40,000.00 is outside the round's range (50,000 to 250,000)",
    ]
    with unit_of_work(committee.engine) as session:
        assert session.exec(select(func.count()).select_from(DecisionRecord)).one() == 0


def test_a_decision_on_an_application_that_failed_screening_needs_a_reasoned_exception(committee: Runtime) -> None:
    with pytest.raises(InvalidInput, match="did not pass screening"):
        decide(committee, DecisionIn(reference=LSO, decision="approved", amount=Decimal("100000")))
    decide(
        committee,
        DecisionIn(
            reference=LSO,
            decision="approved",
            amount=Decimal("100000"),
            exception="Form C arrived on the eve of the meeting",
        ),
    )
    with unit_of_work(committee.engine) as session:
        assert session.exec(select(Application.status).where(Application.reference == LSO)).one() == "approved"


def test_no_conflicted_member_takes_part_and_the_quorum_is_kept(committee: Runtime) -> None:
    ghana = "kwame.boateng@committee.example.org"
    with unit_of_work(committee.engine) as session:
        declare_member_conflict(session, ROUND1, BEN, ghana, "advised the executing agency", actor="officer", at=AT)
    with pytest.raises(InvalidInput) as caught:
        decide(
            committee,
            DecisionIn(
                reference=BEN,
                decision="approved",
                amount=Decimal("150000"),
                participants=[ghana, "pieter.devries@committee.example.org", "someone@example.org"],
            ),
        )
    problems = [e.message for e in caught.value.errors]
    assert problems == [
        "not on the committee on the meeting date: someone@example.org",
        f"conflicted, so taking no part: {ghana} (declared conflict)",
        "3 member(s) took part; the quorum is 6",
    ]
    decide(committee, DecisionIn(reference=BEN, decision="approved", amount=Decimal("150000")))
    with unit_of_work(committee.engine) as session:
        record = session.exec(select(DecisionRecord)).one()
    assert ghana not in record.participants and len(record.participants) == 9


def test_attendance_names_only_members_and_a_thin_meeting_cannot_decide(committee: Runtime) -> None:
    with (
        pytest.raises(InvalidInput, match="not on the committee on 2018-10-02: x@example.org"),
        unit_of_work(committee.engine) as session,
    ):
        set_attendees(session, ROUND1, ["x@example.org"], actor="officer", at=AT)
    few = [
        "kwame.boateng@committee.example.org",
        "pieter.devries@committee.example.org",
        "kadri.tamm@committee.example.org",
    ]
    with unit_of_work(committee.engine) as session:
        set_attendees(session, ROUND1, few, actor="officer", at=AT)
    with pytest.raises(InvalidInput, match="3 member.s. took part; the quorum is 6"):
        decide(committee, DecisionIn(reference=BEN, decision="approved", amount=Decimal("150000")))


def test_a_decisions_sheet_is_checked_row_by_row() -> None:
    sheet = (
        "reference,decision,amount,conditions,recommendations\n"
        f'{BEN},approved,"200,000",,\n'
        f"{CMR},approved,$150000,,\n"
        f"{CMR},not_approved,,,x\n"
        f"{LSO},yes,,,\n"
        f"{CHE},approved,150000.5,,\n"
    )
    with pytest.raises(InvalidInput) as caught:
        parse_decisions(sheet, "d.csv")
    problems = {e.path: e.message for e in caught.value.errors}
    assert "without thousands separators or currency sign" in problems["d.csv:2: amount"]
    assert "without thousands separators or currency sign" in problems["d.csv:3: amount"]
    assert problems["d.csv:4: reference"].endswith("is already on line 3: one decision per application")
    assert problems["d.csv:5: decision"].startswith("'yes' is not a decision")
    assert (
        len(
            parse_decisions(
                f"reference,decision,amount,conditions,recommendations\n{BEN},approved,150000.50,,\n", "d.csv"
            )
        )
        == 1
    )


def test_an_unknown_reference_in_a_sheet_records_nothing(committee: Runtime) -> None:
    items = parse_decisions(
        "reference,decision,amount,conditions,recommendations\n"
        f"{BEN},approved,150000,,\nSIP-2018-R1-0099,not_approved,,,x\n",
        "d.csv",
    )
    with pytest.raises(InvalidInput) as caught, unit_of_work(committee.engine) as session:
        record_decisions(session, ROUND1, items, actor="officer", at=AT)
    assert caught.value.errors[0].path == "d.csv:3: reference"
    with unit_of_work(committee.engine) as session:
        assert session.exec(select(func.count()).select_from(DecisionRecord)).one() == 0


def test_letters_go_once_in_the_applicants_language_and_then_the_applicant_sees_the_decision(
    committee: Runtime,
) -> None:
    decide(
        committee,
        DecisionIn(
            reference=BEN,
            decision="approved_with_conditions",
            amount=Decimal("150000"),
            conditions="Name the district focal points.",
        ),
        DecisionIn(reference=CMR, decision="not_approved", recommendations="Give the baseline data."),
    )
    with unit_of_work(committee.engine) as session:
        key = session.exec(select(IntakeKey.key).join(Application).where(Application.reference == BEN)).one()
        token = derive_token(committee.settings.key(), ROUND1, key)  # the applicant's access code
        assert applicant_view(session, BEN, token).status.value == "under_review"  # no letter yet
        sent = send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT)
        again = send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT)
        letter = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "decision_approved_with_conditions")
        ).one()
        session.flush()
        with statements(committee.engine) as seen:  # the decision's letter is asked with the timeline
            view = applicant_view(session, BEN, token)
    assert view.status.value == "approved_with_conditions" and view.timeline[-1].status.value == view.status.value
    assert len(seen) == 2, seen
    assert (sent.queued, again.queued, again.already_sent) == (2, 0, 2)
    assert letter.language == "fr" and "150\u202f000,00\xa0$US" in letter.body_text
    assert "district focal points" in letter.body_text and "a approuvé votre projet" in letter.body_text


def test_a_letter_template_with_a_missing_variable_fails_with_its_name_and_line_and_queues_nothing(
    committee: Runtime, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "decision_not_approved.txt").write_text(
        '{% extends "_decision.txt" %}\n{% block decision %}\n{{ recommendation_text }}\n{% endblock %}\n'
    )
    decide(committee, DecisionIn(reference=CMR, decision="not_approved", recommendations="Give the baseline."))
    settings = committee.settings.model_copy(update={"templates_dir": folder})
    with (
        pytest.raises(
            NotAllowed,
            match=r"template decision_not_approved.txt line 3: 'recommendation_text' is "
            r"undefined",
        ),
        unit_of_work(committee.engine) as session,
    ):
        send_decision_letters(session, settings, ROUND1, actor="officer", at=AT)
    with unit_of_work(committee.engine) as session:
        assert (
            session.exec(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind.startswith("decision_"))
            ).one()
            == 0
        )  # type: ignore[attr-defined]


def test_the_meeting_is_scheduled_and_funds_cannot_fall_below_the_approvals(committee: Runtime) -> None:
    decide(committee, DecisionIn(reference=BEN, decision="approved", amount=Decimal("150000")))
    with unit_of_work(committee.engine) as session:
        meeting = schedule_meeting(session, ROUND1, date(2018, 10, 2), date(2018, 10, 3), "online", actor="o", at=AT)
        assert meeting.place == "online" and meeting.funds_available == Decimal("300000")
    with (
        pytest.raises(NotAllowed, match="approvals already recorded total 150,000.00"),
        unit_of_work(committee.engine) as session,
    ):
        set_funds(session, ROUND1, Decimal("100000"), actor="o", at=AT)


def test_an_error_in_an_extended_template_names_that_file_and_a_corrected_one_is_used_at_once(
    committee: Runtime, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    base = (Path(__file__).resolve().parents[2] / "notifications" / "templates" / "_decision.txt").read_text()
    (folder / "_decision.txt").write_text(base.replace("{{ programme_email }}", "{{ programme_mail }}"))
    decide(committee, DecisionIn(reference=CMR, decision="not_approved", recommendations="Give the baseline."))
    settings = committee.settings.model_copy(update={"templates_dir": folder})
    line = base.splitlines().index("{{ programme_email }}") + 1
    with (
        pytest.raises(NotAllowed, match=f"template _decision.txt line {line}: 'programme_mail' is undefined"),
        unit_of_work(committee.engine) as session,
    ):
        send_decision_letters(session, settings, ROUND1, actor="officer", at=AT)
    (folder / "_decision.txt").write_text(base.replace("Dear", "Dear colleague"))  # corrected, same process
    with unit_of_work(committee.engine) as session:
        assert send_decision_letters(session, settings, ROUND1, actor="officer", at=AT).queued == 1


def test_a_deferral_recorded_again_with_new_reasons_sends_a_new_letter(committee: Runtime) -> None:
    decide(committee, DecisionIn(reference=CMR, decision="deferred", recommendations="Confirm the ratification."))
    with unit_of_work(committee.engine) as session:
        assert send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT).queued == 1
    with unit_of_work(committee.engine) as session:
        record_decisions(
            session,
            ROUND1,
            [(DecisionIn(reference=CMR, decision="deferred", recommendations="Also send the budget in detail."), "1")],
            actor="officer",
            at=datetime(2018, 10, 4, tzinfo=UTC),
        )
        again = send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT)
    assert again.queued == 1 and again.already_sent == 0
    # Decided at a later meeting: the applicant sees the approval only once its letter is queued.
    with unit_of_work(committee.engine) as session:
        record_decisions(
            session,
            ROUND1,
            [(DecisionIn(reference=CMR, decision="approved", amount=Decimal("100000")), "1")],
            actor="officer",
            at=datetime(2019, 3, 1, tzinfo=UTC),
        )
        key = session.exec(select(IntakeKey.key).join(Application).where(Application.reference == CMR)).one()
        token = derive_token(committee.settings.key(), ROUND1, key)
        assert applicant_view(session, CMR, token).status.value == "under_review"
        send_decision_letters(session, committee.settings, ROUND1, actor="officer", at=AT)
        assert applicant_view(session, CMR, token).status.value == "approved"
