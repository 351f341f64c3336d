from datetime import UTC, datetime

import pytest

from domain.lifecycle import (
    FINAL_STATUSES,
    PUBLIC_STATUS,
    TRANSITIONS,
    PublicStatus,
    Role,
    Status,
    TransitionError,
    allowed_transitions,
    plan_transition,
)

AT = datetime(2018, 9, 3, 9, tzinfo=UTC)


def test_every_internal_status_has_a_public_status() -> None:
    assert set(PUBLIC_STATUS) == set(Status)


def test_internal_review_steps_are_all_shown_as_under_review() -> None:
    for status in (Status.SCREENED, Status.GMP_REVIEW, Status.READY_FOR_COMMITTEE):
        assert PUBLIC_STATUS[status] is PublicStatus.UNDER_REVIEW


def test_the_table_alone_decides_every_status_transition_and_role() -> None:
    for status in Status:
        for name, transition in TRANSITIONS.items():
            for role in Role:
                allowed = status in transition.sources and role in transition.roles
                try:
                    record = plan_transition(status, name, actor="someone", role=role, at=AT, reason="because")
                except TransitionError:
                    assert not allowed, (status, name, role)
                else:
                    assert allowed, (status, name, role)
                    assert record.from_status is status and record.to_status is transition.target


def test_a_refused_transition_says_what_is_allowed_instead() -> None:
    with pytest.raises(TransitionError, match="allowed from submitted: mark_incomplete, mark_ineligible"):
        plan_transition(Status.SUBMITTED, "approve", actor="s", role=Role.SECRETARIAT, at=AT)


def test_an_applicant_cannot_record_a_committee_decision() -> None:
    with pytest.raises(TransitionError, match="applicant may not approve"):
        plan_transition(Status.READY_FOR_COMMITTEE, "approve", actor="a", role=Role.APPLICANT, at=AT)


@pytest.mark.parametrize(
    "name,status",
    [
        ("withdraw", Status.SUBMITTED),
        ("defer", Status.READY_FOR_COMMITTEE),
        ("approve_with_conditions", Status.READY_FOR_COMMITTEE),
    ],
)
def test_transitions_that_need_a_reason_refuse_a_blank_one(name: str, status: Status) -> None:
    with pytest.raises(TransitionError, match="needs a reason"):
        plan_transition(status, name, actor="s", role=Role.SECRETARIAT, at=AT, reason="  ")


def test_final_statuses_allow_no_transition() -> None:
    for status in FINAL_STATUSES:
        assert allowed_transitions(status) == []


def test_a_transition_time_must_carry_a_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_transition(Status.SUBMITTED, "pass_screening", actor="s", role=Role.SYSTEM, at=datetime(2018, 9, 3))
