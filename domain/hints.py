"""What to do next after a refusal, as data.

A refusal's message says what is wrong in words; its hints name the steps that would
get past it (screen the round, invite the reviewers, load the register...) with the
round, application or person they concern. Each caller renders a step its own way:
the command line as a `sip` command, the API as the route to call, a flow run or a
message in words. Nothing in the domain or the services knows about any of them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    LOAD_ROUND = "load_round"
    LIST_ROUNDS = "list_rounds"
    OPEN_ROUND = "open_round"
    LOAD_PARTIES = "load_parties"
    LIST_PARTIES = "list_parties"
    LIST_APPLICATIONS = "list_applications"
    SCREEN = "screen"
    OVERRIDE_SCREENING = "override_screening"
    CLOSE_SCREENING = "close_screening"
    LOAD_REVIEWERS = "load_reviewers"
    LIST_REVIEWERS = "list_reviewers"
    SET_REVIEWER = "set_reviewer"
    SHOW_ASSIGNMENT = "show_assignment"
    ASSIGN_REVIEWERS = "assign_reviewers"
    INVITE_REVIEWERS = "invite_reviewers"
    EXTEND_REVIEW = "extend_review"
    CLOSE_REVIEW = "close_review"
    LOAD_COMMITTEE = "load_committee"
    LIST_COMMITTEE = "list_committee"
    SCHEDULE_MEETING = "schedule_meeting"
    SET_FUNDS = "set_funds"
    RECORD_DECISIONS = "record_decisions"
    LIST_DECISIONS = "list_decisions"
    SEND_LETTERS = "send_letters"
    LIST_FAILED_MESSAGES = "list_failed_messages"
    MIGRATE = "migrate"
    START_FRESH = "start_fresh"
    NEW_KEY = "new_key"
    LIST_KEYS = "list_keys"


#: Each step in words, for whoever renders neither a command nor a route.
WORDS: dict[Step, str] = {
    Step.LOAD_ROUND: "load the round's file",
    Step.LIST_ROUNDS: "look at the rounds",
    Step.OPEN_ROUND: "open the round",
    Step.LOAD_PARTIES: "load the register of Parties",
    Step.LIST_PARTIES: "look at the register of Parties",
    Step.LIST_APPLICATIONS: "look at the round's applications",
    Step.SCREEN: "screen the round",
    Step.OVERRIDE_SCREENING: "decide the application's screening by hand, with a reason",
    Step.CLOSE_SCREENING: "close screening",
    Step.LOAD_REVIEWERS: "load the register of reviewers",
    Step.LIST_REVIEWERS: "look at the register of reviewers",
    Step.SET_REVIEWER: "change the reviewer in the register",
    Step.SHOW_ASSIGNMENT: "look at the review's assignment",
    Step.ASSIGN_REVIEWERS: "propose reviewers",
    Step.INVITE_REVIEWERS: "invite the reviewers",
    Step.EXTEND_REVIEW: "move the review's due date",
    Step.CLOSE_REVIEW: "close the review",
    Step.LOAD_COMMITTEE: "load the committee's membership",
    Step.LIST_COMMITTEE: "look at the committee's membership",
    Step.SCHEDULE_MEETING: "set the committee's meeting",
    Step.SET_FUNDS: "set the funds available for the round",
    Step.RECORD_DECISIONS: "record the committee's decisions",
    Step.LIST_DECISIONS: "look at the decisions recorded",
    Step.SEND_LETTERS: "send the decision letters",
    Step.LIST_FAILED_MESSAGES: "look at the messages that failed",
    Step.MIGRATE: "apply the database migrations",
    Step.START_FRESH: "start again with a fresh database",
    Step.NEW_KEY: "ask the engine's administrator for a new secretariat API key",
    Step.LIST_KEYS: "look at the secretariat's API keys",
}


@dataclass(frozen=True)
class Hint:
    """One step that would get past a refusal, with what it concerns (None where it
    concerns nothing in particular, or the person chooses: a command shows a
    placeholder there). `option` names a choice the step needs, e.g. the reviewer's
    setting to change."""

    step: Step
    round_id: str | None = None
    reference: str | None = None
    email: str | None = None
    option: str | None = None

    @property
    def words(self) -> str:
        return WORDS[self.step]

    def as_json(self) -> dict[str, str]:
        concerns = {"round_id": self.round_id, "reference": self.reference, "email": self.email, "option": self.option}
        return {"step": self.step.value, "what": self.words} | {k: v for k, v in concerns.items() if v is not None}
