"""The life of an application: statuses, allowed transitions, who may trigger them,
and what the applicant is shown.

Pure: no I/O. The service layer loads the current status, asks `plan_transition`
whether a command is allowed, and persists the result together with its history
row and audit event in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    """Internal status of an application (what the secretariat sees)."""

    SUBMITTED = "submitted"
    INFORMATION_REQUESTED = "information_requested"
    INCOMPLETE = "incomplete"
    INELIGIBLE = "ineligible"
    SCREENED = "screened"
    GMP_REVIEW = "gmp_review"
    READY_FOR_COMMITTEE = "ready_for_committee"
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    NOT_APPROVED = "not_approved"
    DEFERRED = "deferred"
    WITHDRAWN = "withdrawn"


class PublicStatus(StrEnum):
    """What the applicant sees. Internal steps between screening and the decision
    are all shown as `under_review`."""

    RECEIVED = "received"
    INFORMATION_REQUESTED = "information_requested"
    INCOMPLETE = "incomplete"
    NOT_ELIGIBLE = "not_eligible"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    APPROVED_WITH_CONDITIONS = "approved_with_conditions"
    NOT_APPROVED = "not_approved"
    DEFERRED = "deferred"
    WITHDRAWN = "withdrawn"


PUBLIC_STATUS: dict[Status, PublicStatus] = {
    Status.SUBMITTED: PublicStatus.RECEIVED,
    Status.INFORMATION_REQUESTED: PublicStatus.INFORMATION_REQUESTED,
    Status.INCOMPLETE: PublicStatus.INCOMPLETE,
    Status.INELIGIBLE: PublicStatus.NOT_ELIGIBLE,
    Status.SCREENED: PublicStatus.UNDER_REVIEW,
    Status.GMP_REVIEW: PublicStatus.UNDER_REVIEW,
    Status.READY_FOR_COMMITTEE: PublicStatus.UNDER_REVIEW,
    Status.APPROVED: PublicStatus.APPROVED,
    Status.APPROVED_WITH_CONDITIONS: PublicStatus.APPROVED_WITH_CONDITIONS,
    Status.NOT_APPROVED: PublicStatus.NOT_APPROVED,
    Status.DEFERRED: PublicStatus.DEFERRED,
    Status.WITHDRAWN: PublicStatus.WITHDRAWN,
}


#: The committee's decisions: the applicant sees one once its letter is on its way.
DECISIONS = frozenset({Status.APPROVED, Status.APPROVED_WITH_CONDITIONS, Status.NOT_APPROVED, Status.DEFERRED})


def public_status(status: Status, *, letter_sent: bool) -> PublicStatus:
    """What the applicant sees: a decision shows only once the decision letter has gone
    out (until then the application is still `under_review`)."""
    if status in DECISIONS and not letter_sent:
        return PublicStatus.UNDER_REVIEW
    return PUBLIC_STATUS[status]


class Role(StrEnum):
    """Who triggers a transition. `system` is the engine itself (a flow)."""

    APPLICANT = "applicant"
    SECRETARIAT = "secretariat"
    REVIEWER = "reviewer"
    COMMITTEE = "committee"
    SYSTEM = "system"


FINAL_STATUSES = frozenset(
    {
        Status.APPROVED,
        Status.APPROVED_WITH_CONDITIONS,
        Status.NOT_APPROVED,
        Status.WITHDRAWN,
    }
)


#: Applications that passed screening, and so are appraised and ranked.
APPRAISED_STATUSES = frozenset({Status.SCREENED, Status.GMP_REVIEW, Status.READY_FOR_COMMITTEE})


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[Status]
    target: Status
    roles: frozenset[Role]
    needs_reason: bool = False
    description: str = ""


def _t(
    name: str,
    sources: set[Status],
    target: Status,
    roles: set[Role],
    *,
    needs_reason: bool = False,
    description: str = "",
) -> Transition:
    return Transition(name, frozenset(sources), target, frozenset(roles), needs_reason, description)


_SCREENERS = {Role.SECRETARIAT, Role.SYSTEM}
_WITHDRAWABLE = set(Status) - FINAL_STATUSES - {Status.INELIGIBLE}

#: The transition table. Nothing outside it can happen to an application.
TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        _t(
            "mark_incomplete",
            {Status.SUBMITTED, Status.INFORMATION_REQUESTED},
            Status.INCOMPLETE,
            _SCREENERS,
            description="completeness check failed, or the items asked for did not come",
        ),
        _t(
            "mark_ineligible",
            {Status.SUBMITTED, Status.SCREENED},
            Status.INELIGIBLE,
            _SCREENERS,
            description="eligibility screening failed",
        ),
        _t(
            "pass_screening",
            {Status.SUBMITTED},
            Status.SCREENED,
            _SCREENERS,
            description="complete and eligible; appraised",
        ),
        _t(
            "request_information",
            {Status.SUBMITTED, Status.INCOMPLETE},
            Status.INFORMATION_REQUESTED,
            {Role.SECRETARIAT},
            needs_reason=True,
            description="the applicant is asked for missing items, by a date",
        ),
        _t(
            "resubmit",
            {Status.INCOMPLETE, Status.INFORMATION_REQUESTED},
            Status.SUBMITTED,
            {Role.APPLICANT, Role.SECRETARIAT},
            description="missing items supplied; to be screened again",
        ),
        _t(
            "reinstate",
            {Status.INCOMPLETE, Status.INELIGIBLE},
            Status.SCREENED,
            {Role.SECRETARIAT},
            needs_reason=True,
            description="the secretariat overrides an automatic screening outcome",
        ),
        _t(
            "start_gmp_review",
            {Status.SCREENED},
            Status.GMP_REVIEW,
            _SCREENERS,
            description="sent to Global Mercury Partnership reviewers",
        ),
        _t(
            "send_to_committee",
            {Status.SCREENED, Status.GMP_REVIEW, Status.DEFERRED},
            Status.READY_FOR_COMMITTEE,
            _SCREENERS,
            description="on the Steering Committee's agenda",
        ),
        # The committee decides; the secretariat records the decision on its behalf.
        _t("approve", {Status.READY_FOR_COMMITTEE}, Status.APPROVED, {Role.SECRETARIAT, Role.COMMITTEE}),
        _t(
            "approve_with_conditions",
            {Status.READY_FOR_COMMITTEE},
            Status.APPROVED_WITH_CONDITIONS,
            {Role.SECRETARIAT, Role.COMMITTEE},
            needs_reason=True,
        ),
        _t("not_approve", {Status.READY_FOR_COMMITTEE}, Status.NOT_APPROVED, {Role.SECRETARIAT, Role.COMMITTEE}),
        _t(
            "defer",
            {Status.READY_FOR_COMMITTEE},
            Status.DEFERRED,
            {Role.SECRETARIAT, Role.COMMITTEE},
            needs_reason=True,
        ),
        _t("withdraw", _WITHDRAWABLE, Status.WITHDRAWN, {Role.APPLICANT, Role.SECRETARIAT}, needs_reason=True),
    )
}


class TransitionError(Exception):
    """A command the transition table does not allow. The message says why and what
    is allowed instead."""


@dataclass(frozen=True)
class TransitionRecord:
    """What a successful transition changes: persisted as a status-history row and an
    audit event in the same transaction as the status itself."""

    transition: str
    from_status: Status | None
    to_status: Status
    actor: str
    role: Role
    reason: str | None
    at: datetime


def allowed_transitions(status: Status, role: Role | None = None) -> list[str]:
    return sorted(t.name for t in TRANSITIONS.values() if status in t.sources and (role is None or role in t.roles))


def plan_transition(
    current: Status, name: str, *, actor: str, role: Role, at: datetime, reason: str | None = None
) -> TransitionRecord:
    """Check a proposed transition against the table and return what it records.

    Raises `TransitionError` (never changes anything) when the transition is unknown,
    not allowed from `current`, not allowed for `role`, or lacks a required reason.
    """
    transition = TRANSITIONS.get(name)
    if transition is None:
        raise TransitionError(f"unknown transition {name!r}; known: {', '.join(sorted(TRANSITIONS))}")
    if current not in transition.sources:
        options = ", ".join(allowed_transitions(current)) or "none (final status)"
        raise TransitionError(
            f"cannot {name} an application that is {current.value}; allowed from {current.value}: {options}"
        )
    if role not in transition.roles:
        who = ", ".join(sorted(r.value for r in transition.roles))
        raise TransitionError(f"{role.value} may not {name}; only {who} may")
    if transition.needs_reason and not (reason and reason.strip()):
        raise TransitionError(f"{name} needs a reason")
    if at.tzinfo is None:
        raise ValueError("transition time must be timezone-aware")
    return TransitionRecord(name, current, transition.target, actor, role, reason, at)


def initial_record(*, actor: str, role: Role, at: datetime) -> TransitionRecord:
    """The first history entry of every application: its submission."""
    return TransitionRecord("submit", None, Status.SUBMITTED, actor, role, None, at)
