"""A hypothesis state machine over the real transition service (SQLite): no
sequence of commands reaches a transition the table does not allow, and a replayed
command changes nothing."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func
from sqlmodel import select

from domain.lifecycle import TRANSITIONS, Role, Status
from engine.db import dispose_all, get_engine, unit_of_work
from engine.services.applications import transition
from engine.services.errors import NotAllowed
from engine.services.intake import submit_application
from engine.services.rounds import open_round
from engine.settings import Settings
from engine.tables import Application, AuditEvent, StatusChange
from tests.conftest import IN_ROUND1, ROUND1, SECRET, example

TEMPLATE: Path | None = None


class Lifecycle(RuleBasedStateMachine):
    keys = Bundle("keys")

    @initialize()
    def start(self) -> None:
        assert TEMPLATE is not None
        self.folder = Path(tempfile.mkdtemp())
        shutil.copy(TEMPLATE, self.folder / "sip.db")
        self.settings = Settings(SIP_DATA_DIR=self.folder, SIP_SECRET_KEY=SECRET)
        self.engine = get_engine(self.settings.url)
        with unit_of_work(self.engine) as session:
            open_round(session, ROUND1, actor="s", at=datetime(2018, 6, 5, 9, tzinfo=UTC))
        self.ref = submit_application(
            self.engine, self.settings, ROUND1, example("ben-asgm-complete.json"), now=IN_ROUND1
        ).reference
        self.model = Status.SUBMITTED  # what the table says the status must be
        self.applied: dict[str, tuple[str, Status]] = {}  # key -> (transition, status after)
        self.clock = datetime(2018, 9, 1, tzinfo=UTC)

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            dispose_all()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _counts(self) -> tuple[int, int]:
        with unit_of_work(self.engine) as session:
            return (
                session.exec(select(func.count()).select_from(StatusChange)).one(),
                session.exec(select(func.count()).select_from(AuditEvent)).one(),
            )

    @rule(
        target=keys,
        name=st.sampled_from(sorted(TRANSITIONS)),
        role=st.sampled_from(list(Role)),
        key=st.text(alphabet="abcdef", min_size=1, max_size=3),
        reason=st.none() | st.sampled_from(["", "  ", "a reason"]),
    )
    def command(self, name: str, role: Role, key: str, reason: str | None) -> str:
        self.clock += timedelta(hours=1)
        before = self._counts()
        spec = TRANSITIONS[name]
        replay = key in self.applied
        has_reason = bool(reason and reason.strip())
        allowed = (
            not replay and self.model in spec.sources and role in spec.roles and (has_reason or not spec.needs_reason)
        )
        try:
            with unit_of_work(self.engine) as session:
                result = transition(
                    session, self.ref, name, key=key, actor="prop", role=role, at=self.clock, reason=reason
                )
        except NotAllowed:
            assert not allowed, f"{name} by {role} from {self.model} should be allowed"
            assert self._counts() == before
            return key
        except Exception as exc:  # a key reused for another transition
            assert replay and self.applied[key][0] != name, exc
            assert self._counts() == before
            return key
        if replay:
            assert self.applied[key][0] == name and not result.changed
            assert self._counts() == before
        else:
            assert allowed, f"{name} by {role} from {self.model} was let through"
            assert result.changed and result.status is spec.target
            self.model = spec.target
            self.applied[key] = (name, spec.target)
            assert self._counts() == (before[0] + 1, before[1] + 1)
        return key

    @rule(key=keys)
    def replay(self, key: str) -> None:
        if key not in self.applied:
            return
        name, _ = self.applied[key]
        before = self._counts()
        with unit_of_work(self.engine) as session:
            result = transition(
                session, self.ref, name, key=key, actor="prop", role=Role.SECRETARIAT, at=self.clock, reason="again"
            )
        assert not result.changed and self._counts() == before

    @invariant()
    def stored_status_matches_the_table(self) -> None:
        if hasattr(self, "engine"):
            with unit_of_work(self.engine) as session:
                assert Status(session.exec(select(Application.status)).one()) is self.model


@pytest.fixture
def template(sqlite_template: Path) -> Path:
    global TEMPLATE
    TEMPLATE = sqlite_template
    return sqlite_template


def test_no_command_sequence_escapes_the_transition_table(template: Path) -> None:
    run = Lifecycle.TestCase()
    run.settings = settings(
        max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    run.runTest()
