"""A GMP expert reviews a grant's technical report: the review stage's rules apply (not
the Party's country, not the executing agency's organisation, within their load); the
expert signs in with the link of their message, in their language, reads the report in
their workspace and gives an opinion once; the secretariat reads it on the grant's page."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from api.app import create_app
from domain.lifecycle import Role
from domain.review import Reviewer
from engine.db import reading, unit_of_work
from engine.services import outbox
from engine.services.errors import Conflict, InvalidInput, NotAllowed
from engine.services.grant_reports import submit_report
from engine.services.grants import grant_of
from engine.services.report_reviews import ask_review, reviews_of
from engine.services.review.access import request_link
from engine.services.review.register import load_reviewers
from engine.services.setup import Runtime
from engine.tables import AuditEvent, OutboxMessage
from tests.conftest import Clock
from tests.integration.test_grant_reports import BEN, active, report  # noqa: F401  (the fixture)
from tests.integration.test_opendata import decided  # noqa: F401  (the fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2019, 5, 20, 9, tzinfo=UTC)


def expert(email: str, country: str, organisation: str = "University of Oslo", load: int = 3) -> Reviewer:
    return Reviewer(
        name=email.split("@")[0].title(), email=email, organisation=organisation, country=country,
        areas=("artisanal_gold_mining",), languages=("fr", "en"), max_load=load,
    )  # fmt: skip


def test_an_expert_reviews_a_report_under_the_review_stages_rules_and_gives_an_opinion_once(
    active: Runtime,  # noqa: F811
) -> None:
    with unit_of_work(active.engine) as session:
        load_reviewers(
            session,
            [
                expert("ines@example.org", "NOR"),
                expert("kossi@example.bj", "BEN"),  # the Party's own country
                expert("marie@example.org", "FRA", "Ministère du Cadre de Vie et du Développement Durable"),
                expert("busy@example.org", "NOR", load=0),
            ],
            source="test", actor="officer", at=NOW,
        )  # fmt: skip
        with pytest.raises(NotAllowed, match="while the secretariat weighs it"):
            ask_review(session, active.settings, BEN, 1, "ines@example.org", actor="officer", at=NOW)
        submit_report(session, BEN, 1, report(), actor="focal", role=Role.APPLICANT, at=NOW)
        for email, said in (
            ("kossi@example.bj", "the Party is their country"),
            ("marie@example.org", "the executing agency is their organisation"),
            ("busy@example.org", "0 reviews open, the most the register gives them"),
            ("nobody@example.org", "is not in the register"),
        ):
            with pytest.raises(InvalidInput, match=said):
                ask_review(session, active.settings, BEN, 1, email, actor="officer", at=NOW)
        asked = ask_review(session, active.settings, BEN, 1, "Ines@example.org", actor="officer", at=NOW)
        assert request_link(session, active.settings, "ines@example.org", at=NOW)  # a new link when hers is spent
        assert (asked.reviewer, asked.state, str(asked.due_on)) == ("ines@example.org", "invited", "2019-06-03")
        with pytest.raises(Conflict, match="already"):
            ask_review(session, active.settings, BEN, 1, "ines@example.org", actor="officer", at=NOW)
        message = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "report_review_invitation").order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).first()
        assert message is not None
        text = outbox.materialize(session, active.settings, message).text
    assert message.language == "fr" and "rapport d'avancement n°\u00a01" in text
    path = re.search(r"http\S+(/reviewer/sign-in\?\S+)", text).group(1)  # type: ignore[union-attr]
    with TestClient(create_app(active.settings, now=Clock(NOW))) as client:
        page = client.get(path)
        token = re.search(r'name="token" value="([\w-]+)"', page.text).group(1)  # type: ignore[union-attr]
        workspace = client.post("/reviewer/sign-in", data={"token": token}).text
        assert "Rapports de projets à examiner" in workspace and "32 sites surveyed" in workspace
        review_id = re.search(r'action="[^"]*/reports/(\d+)"', workspace).group(1)  # type: ignore[union-attr]
        csrf = re.search(r'name="csrf" value="(\w+)"', workspace).group(1)  # type: ignore[union-attr]
        form = {"csrf": csrf, "lang": "fr", "recommendation": "revise"}
        empty = client.post(f"/reviewer/workspace/reports/{review_id}", data={**form, "opinion": " "})
        assert empty.status_code == 422 and "Choisissez une recommandation et donnez vos raisons." in empty.text
        given = client.post(
            f"/reviewer/workspace/reports/{review_id}",
            data={**form, "opinion": "The inventory draft should be annexed."},
            follow_redirects=False,
        )
        assert given.status_code == 303
        again = client.post(f"/reviewer/workspace/reports/{review_id}", data={**form, "opinion": "Again."})
        assert again.status_code == 409
    with reading(active.engine) as session:
        lines = reviews_of(session, grant_of(session, BEN))
        actors = session.exec(select(AuditEvent.actor).where(AuditEvent.action == "grant.report_review_given")).all()
    assert [(r.reviewer, r.state, r.recommendation, r.opinion) for r in lines] == [
        ("ines@example.org", "submitted", "revise", "The inventory draft should be annexed.")
    ]
    assert actors == ["ines@example.org"]


def test_an_expert_with_a_declared_conflict_is_not_asked_and_an_opinion_after_the_decision_is_not_taken(
    active: Runtime,  # noqa: F811
) -> None:
    from engine.services.grant_reports import accept_report
    from engine.services.report_reviews import give_opinion
    from engine.services.review.assignment import record_conflict
    from engine.tables import ReviewerRecord

    with unit_of_work(active.engine) as session:
        load_reviewers(session, [expert("ines@example.org", "NOR"), expert("ole@example.org", "NOR")], source="t",
                       actor="officer", at=NOW)  # fmt: skip
        record_conflict(session, "sip-2018-r1", BEN, "ole@example.org", reason="His brother works for the agency.",
                        actor="officer", role=Role.SECRETARIAT, at=NOW)  # fmt: skip
        submit_report(session, BEN, 1, report(), actor="focal", role=Role.APPLICANT, at=NOW)
        with pytest.raises(InvalidInput, match="they declared a conflict of interest"):
            ask_review(session, active.settings, BEN, 1, "ole@example.org", actor="officer", at=NOW)
        asked = ask_review(session, active.settings, BEN, 1, "ines@example.org", actor="officer", at=NOW)
        accept_report(session, BEN, 1, note=None, actor="officer", at=NOW)
        ines = session.exec(select(ReviewerRecord).where(ReviewerRecord.email == "ines@example.org")).one()
        with pytest.raises(Conflict, match="decided on report 1 of SIP-2018-R1-0001 before your opinion came"):
            give_opinion(session, ines, asked.id, "accept", "Fine.", at=NOW)
