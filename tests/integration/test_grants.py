"""After the decision: a grant for the approval, made with its letter; its agreement signed
in order with the file's hash; its conditions met; active; paid within what its instalments
released and never above the award. Each refusal changes nothing."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlmodel import func, select

from domain.grants import GrantSettings, GrantState, instalment_amounts
from engine.db import reading, unit_of_work
from engine.services.errors import Conflict, InvalidInput, NotAllowed
from engine.services.grants import grant_of, list_grants, make_grants, meet_condition, pay, record_signature
from engine.services.letters import send_decision_letters
from engine.services.setup import Runtime
from engine.tables import AuditEvent, GrantInstalment, GrantPayment, GrantSignature
from tests.conftest import ROUND1
from tests.integration.test_opendata import AT, decided  # noqa: F401  (the fixture)

BEN = "SIP-2018-R1-0001"
PDF = b"%PDF-1.7\n% a signed agreement\n"
TODAY = AT + timedelta(days=30)


def sign(rt: Runtime, kind: str, signer: str, content: bytes = PDF) -> None:
    with unit_of_work(rt.engine) as session:
        record_signature(
            session, BEN, kind=kind, signer=signer, signed_on=TODAY.date(), file_name="agreement.pdf", content=content,
            actor="officer", at=TODAY,
        )  # fmt: skip


def test_a_grant_is_made_for_the_approval_with_its_letter_and_only_once(decided: Runtime) -> None:  # noqa: F811
    with reading(decided.engine) as session:
        grants = list_grants(session, ROUND1)
        grant = grant_of(session, BEN)
        instalments = session.exec(select(GrantInstalment).where(GrantInstalment.grant_id == grant.id)).all()
    assert [(g.reference, g.state, g.award, g.paid, g.balance) for g in grants] == [
        (BEN, GrantState.AWARDED, Decimal("150000.00"), Decimal("0.00"), Decimal("150000.00"))
    ]  # Cameroon's was not approved: no grant
    assert [(i.number, i.amount, i.after) for i in instalments] == [
        (1, Decimal("60000.00"), "signature"),
        (2, Decimal("60000.00"), "first_progress_report"),
        (3, Decimal("30000.00"), "final_report"),
    ]
    assert [c["text"] for c in grant.conditions] == ["Name the district focal points."]
    assert grant.planned_start == date(2018, 10, 3) and grant.planned_end > grant.planned_start
    assert sum(Decimal(v) for years in grant.budget.values() for v in years.values()) > 0
    with unit_of_work(decided.engine) as session:
        again = send_decision_letters(session, decided.settings, ROUND1, actor="officer", at=TODAY)
        assert again.grants == 0 and make_grants(session, ROUND1, actor="officer", at=TODAY) == 0


def test_the_agreement_is_signed_in_order_by_two_people_with_a_pdf(decided: Runtime) -> None:  # noqa: F811
    for kind, signer, content, field in (
        ("secretariat", "Monika Stankiewicz", PDF, "as"),  # the recipient signs first
        ("recipient", "Thabo Mokoena", b"a photo, not a PDF", "file"),
        ("recipient", "Thabo Mokoena", PDF + b"x" * 20_000_001, "file"),
        ("witness", "Thabo Mokoena", PDF, "as"),
    ):
        with pytest.raises(InvalidInput) as refused:
            sign(decided, kind, signer, content)
        assert refused.value.errors[0].path == f"$.{field}"
    sign(decided, "recipient", "Thabo Mokoena")
    with pytest.raises(InvalidInput, match="has signed already"):
        sign(decided, "secretariat", "thabo mokoena")
    sign(decided, "secretariat", "Monika Stankiewicz")
    with reading(decided.engine) as session:
        grant = grant_of(session, BEN)
        signatures = session.exec(select(GrantSignature).order_by(GrantSignature.id)).all()  # type: ignore[arg-type]
    assert grant.state == GrantState.AGREEMENT_SIGNED  # its condition is not met yet: not active
    assert [s.kind for s in signatures] == ["recipient", "secretariat"] and len(signatures[0].sha256) == 64


def test_an_active_grant_is_paid_within_its_released_instalments_and_never_above_the_award(
    decided: Runtime,  # noqa: F811
) -> None:
    def paying(amount: str, ref: str) -> None:
        with unit_of_work(decided.engine) as session:
            pay(session, BEN, Decimal(amount), finance_ref=ref, paid_on=TODAY.date(), actor="finance", at=TODAY)

    with pytest.raises(NotAllowed, match="a grant is paid once its agreement is signed"):
        paying("60000", "FIN-1")
    sign(decided, "recipient", "Thabo Mokoena")
    sign(decided, "secretariat", "Monika Stankiewicz")
    with pytest.raises(InvalidInput), unit_of_work(decided.engine) as session:
        meet_condition(session, BEN, 1, "  ", actor="officer", at=TODAY)
    with unit_of_work(decided.engine) as session:
        line = meet_condition(session, BEN, 1, "The ministry's letter of 2 November", actor="officer", at=TODAY)
    assert line.state == GrantState.ACTIVE and line.released == Decimal("60000.00")
    with pytest.raises(InvalidInput, match="more than the 60,000.00 the instalments released so far leave"):
        paying("60000.01", "FIN-1")
    paying("60000", "FIN-1")
    with pytest.raises(Conflict, match="FIN-1"):
        paying("1", "FIN-1")
    with pytest.raises(InvalidInput, match="more than the 0.00"):
        paying("1", "FIN-2")  # the second instalment waits for the first progress report
    with reading(decided.engine) as session:
        [line] = list_grants(session, ROUND1)
        payments = session.exec(select(func.count()).select_from(GrantPayment)).one()
        paid = session.exec(select(AuditEvent).where(AuditEvent.action == "grant.paid")).all()
    assert (line.paid, line.balance, payments) == (Decimal("60000.00"), Decimal("90000.00"), 1)
    assert [e.actor for e in paid] == ["finance"]


def test_days_before_the_decision_or_after_today_are_refused_and_every_step_is_audited(
    decided: Runtime,  # noqa: F811
) -> None:
    with pytest.raises(InvalidInput, match="before the committee's decision"), unit_of_work(decided.engine) as session:
        record_signature(
            session, BEN, kind="recipient", signer="Thabo Mokoena", signed_on=date(2018, 9, 1), file_name="a.pdf",
            content=PDF, actor="officer", at=TODAY,
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="after today"), unit_of_work(decided.engine) as session:
        record_signature(
            session, BEN, kind="recipient", signer="Thabo Mokoena", signed_on=TODAY.date() + timedelta(days=2),
            file_name="a.pdf", content=PDF, actor="officer", at=TODAY,
        )  # fmt: skip
    sign(decided, "recipient", "Thabo Mokoena")
    sign(decided, "secretariat", "Monika Stankiewicz")
    with unit_of_work(decided.engine) as session:
        meet_condition(session, BEN, 1, "The ministry's letter", actor="officer", at=TODAY)
    with pytest.raises(InvalidInput, match="at most 100 characters"), unit_of_work(decided.engine) as session:
        pay(session, BEN, Decimal(1), finance_ref="F" * 101, paid_on=TODAY.date(), actor="finance", at=TODAY)
    with reading(decided.engine) as session:
        actions = session.exec(
            select(AuditEvent.action)
            .where(AuditEvent.subject_id == BEN, AuditEvent.subject_type == "grant")
            .order_by(AuditEvent.id)  # type: ignore[arg-type]
        ).all()
    assert actions == [
        "grant.awarded",
        "grant.signature_recorded",
        "grant.signature_recorded",
        "grant.sign_agreement",
        "grant.condition_met",
        "grant.activate",
        "grant.reports_scheduled",  # the agreement's period starts: its reports fall due on the round's schedule
        "grant.instalment_released",  # the first, after the signature
    ]


def test_a_grant_without_conditions_is_active_once_both_have_signed(decided: Runtime) -> None:  # noqa: F811
    with unit_of_work(decided.engine) as session:
        grant = grant_of(session, BEN)
        grant.conditions = []
        session.add(grant)
    sign(decided, "recipient", "Thabo Mokoena")
    sign(decided, "secretariat", "Monika Stankiewicz")
    with reading(decided.engine) as session:
        assert grant_of(session, BEN).state == GrantState.ACTIVE


def test_the_instalments_add_up_to_the_award_and_their_shares_to_a_hundred() -> None:
    settings = GrantSettings()
    assert instalment_amounts(Decimal("100000.01"), settings.instalments) == [
        Decimal("40000.00"),
        Decimal("40000.00"),
        Decimal("20000.01"),
    ]
    with pytest.raises(ValueError, match="add up to 90 %, not 100 %"):
        GrantSettings.model_validate(
            {"instalments": [{"share": 50, "after": "signature"}, {"share": 40, "after": "final_report"}]}
        )
    with pytest.raises(ValueError, match="decimal places"):
        GrantSettings.model_validate({"instalments": [{"share": "12.125", "after": "signature"}]})
