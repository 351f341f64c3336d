"""The GMP review stage of round 4, through the services, on SQLite and PostgreSQL:
invitations with one-time sign-in links, what a reviewer may see and do, reminders
and the overdue notice, the close (never blocked by a missing review), and the
aggregation the committee reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select

from domain.hints import Hint, Step
from domain.lifecycle import Status
from domain.review import Recommendation, ReviewDraft
from engine.db import unit_of_work
from engine.services import outbox
from engine.services.errors import InvalidInput, NotAllowed, NotFound, Unauthorized
from engine.services.review.access import reviewer_for, sign_in
from engine.services.review.assignment import (
    add_reviewer,
    assign_reviewers,
    assignment_view,
    record_conflict,
    remove_reviewer,
)
from engine.services.review.invitations import extend, invite
from engine.services.review.reminders import review_day
from engine.services.review.views import review_summaries
from engine.services.review.work import OtherReview, declare_conflict, decline, dossier, my_assignments, save_review
from engine.services.setup import Runtime
from engine.services.stages import send_to_committee
from engine.tables import Application, AuditEvent, OutboxMessage, ReviewAssignment, Round
from tests.conftest import AFTER_R4, ROUND4

BEN, LSO = "SIP-2024-R4-0001", "SIP-2024-R4-0002"
DUE = date(2024, 8, 26)  # 21 days after the invitations
FULL = dict(
    scores={"technical_soundness": 4, "area_relevance": 5, "feasibility": 3, "expected_results": 4},
    recommendation="support",
    comments_for_committee="Sound inventory; realistic budget.",
    comments_for_applicant="Add a monitoring indicator.",
)


Act = Callable[..., Any]


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=AFTER_R4.tzinfo)


@pytest.fixture
def invited(round4: Runtime) -> Runtime:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
    return round4


def link_of(rt: Runtime, email: str, kind: str = "review_invitation") -> str:
    """The sign-in token of the latest message of `kind` to `email`, as delivered."""
    with unit_of_work(rt.engine) as session:
        message = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.recipient == email, OutboxMessage.kind == kind)
            .order_by(OutboxMessage.id.desc())
        ).first()  # type: ignore[union-attr]
        assert message is not None and "[[review-link]]" in message.body_text  # the outbox never holds it
        text = outbox.materialize(session, rt.settings, message).text
    return re.search(r"token=([\w-]+)", text).group(1)  # type: ignore[union-attr]


@pytest.fixture
def act(invited: Runtime) -> Callable[..., Any]:
    """Call a reviewer's service as the reviewer, signed in once with their invitation's
    link (sessions here last the whole stage)."""
    invited.settings.reviewer_session_hours = 24 * 30
    tokens: dict[str, str] = {}

    def call(email: str, fn: Callable[..., Any], *args: Any, when: datetime = AFTER_R4, **kwargs: Any) -> Any:
        if email not in tokens:
            with unit_of_work(invited.engine) as session:
                tokens[email] = sign_in(session, invited.settings, link_of(invited, email), at=AFTER_R4).session_token
        with unit_of_work(invited.engine) as session:
            return fn(session, reviewer_for(session, tokens[email], at=when), *args, **kwargs)

    return call


def test_invitations_open_the_stage_once_per_reviewer_in_their_language(invited: Runtime) -> None:
    with unit_of_work(invited.engine) as session:
        messages = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "review_invitation")).all()
        assert {m.recipient: m.language for m in messages} == {
            "ana@example.org": "es",
            "kofi@example.org": "en",
            "lena@example.org": "en",
        }
        ana = next(m for m in messages if m.recipient == "ana@example.org")
        assert BEN in ana.body_text and LSO in ana.body_text and "26 de agosto de 2024" in ana.body_text
        statuses = session.exec(select(Application.status).where(Application.round_id == ROUND4)).all()
        assert set(statuses) == {Status.GMP_REVIEW.value}
        assert session.get(Round, ROUND4).status == "review"
        assert set(session.exec(select(ReviewAssignment.state)).all()) == {"invited"}
        again = invite(session, invited.settings, ROUND4, actor="officer", at=AFTER_R4 + timedelta(hours=1))
    assert (again.invited, again.reviewers, again.moved_to_review, again.due_on) == (0, 0, 0, DUE.isoformat())


def test_invitations_need_proposed_reviewers_and_a_due_date_after_today(round4: Runtime) -> None:
    with (
        pytest.raises(NotAllowed, match="no reviewers are proposed") as refused,
        unit_of_work(round4.engine) as session,
    ):
        invite(session, round4.settings, ROUND4, actor="o", at=AFTER_R4)
    assert refused.value.hints == (Hint(Step.ASSIGN_REVIEWERS, round_id=ROUND4),)
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="o", at=AFTER_R4)
    with pytest.raises(InvalidInput, match="must be after today"), unit_of_work(round4.engine) as session:
        invite(session, round4.settings, ROUND4, actor="o", at=AFTER_R4, due=AFTER_R4.date())
    with unit_of_work(round4.engine) as session:  # nothing was half-written
        assert set(session.exec(select(ReviewAssignment.state)).all()) == {"proposed"}


def test_a_sign_in_link_works_once_and_not_after_it_expires(invited: Runtime) -> None:
    link = link_of(invited, "kofi@example.org")
    with unit_of_work(invited.engine) as session:
        signed = sign_in(session, invited.settings, link, at=AFTER_R4)
        assert reviewer_for(session, signed.session_token, at=AFTER_R4).email == "kofi@example.org"
    with pytest.raises(Unauthorized, match="already used"), unit_of_work(invited.engine) as session:
        sign_in(session, invited.settings, link, at=AFTER_R4)
    lena = link_of(invited, "lena@example.org")
    with pytest.raises(Unauthorized, match="expired"), unit_of_work(invited.engine) as session:
        sign_in(session, invited.settings, lena, at=AFTER_R4 + timedelta(days=31))
    with pytest.raises(Unauthorized, match="not valid"), unit_of_work(invited.engine) as session:
        sign_in(session, invited.settings, lena + "x", at=AFTER_R4)
    with pytest.raises(Unauthorized, match="session ended"), unit_of_work(invited.engine) as session:
        reviewer_for(session, signed.session_token, at=AFTER_R4 + timedelta(hours=13))


def test_a_reviewer_sees_only_their_applications_and_never_a_conflicted_one(invited: Runtime, act: Act) -> None:
    assert [a.reference for a in act("kofi@example.org", my_assignments)] == [BEN]
    with pytest.raises(NotFound) as unassigned:
        act("kofi@example.org", dossier, LSO)
    with pytest.raises(NotFound) as missing:
        act("kofi@example.org", dossier, "SIP-2024-R4-9999")
    assert unassigned.value.message.replace(LSO, "X") == missing.value.message.replace("SIP-2024-R4-9999", "X")
    # The secretariat learns of a conflict after the invitation: the application leaves the list.
    with unit_of_work(invited.engine) as session:
        record_conflict(
            session,
            ROUND4,
            BEN,
            "kofi@example.org",
            reason="advised the agency in 2023",
            actor="officer",
            role="secretariat",
            at=AFTER_R4,
        )
    assert act("kofi@example.org", my_assignments) == []
    with pytest.raises(NotFound):
        act("kofi@example.org", dossier, BEN)


def test_a_draft_is_replaced_until_submitted_and_then_refused(invited: Runtime, act: Act) -> None:
    saved = act("kofi@example.org", save_review, BEN, ReviewDraft(scores={"feasibility": 2}), submit=False, at=AFTER_R4)
    assert saved.state == "draft"
    again = act("kofi@example.org", save_review, BEN, ReviewDraft(scores={"feasibility": 4}), submit=False, at=AFTER_R4)
    assert again.scores == {"feasibility": 4}
    with pytest.raises(InvalidInput) as incomplete:
        act("kofi@example.org", save_review, BEN, ReviewDraft(scores={"feasibility": 4}), submit=True, at=AFTER_R4)
    assert {e.path for e in incomplete.value.errors} == {
        "$.scores.technical_soundness",
        "$.scores.area_relevance",
        "$.scores.expected_results",
        "$.recommendation",
        "$.comments_for_committee",
    }
    act("kofi@example.org", save_review, BEN, ReviewDraft(**FULL), submit=True, at=AFTER_R4)
    with pytest.raises(NotAllowed, match="submitted your review"):
        act("kofi@example.org", save_review, BEN, ReviewDraft(**FULL), submit=False, at=AFTER_R4)
    own = act("kofi@example.org", dossier, BEN).review
    assert own is not None and own.scores == FULL["scores"]


def test_a_score_off_the_scale_or_an_unknown_criterion_is_refused_and_nothing_saved(invited: Runtime, act: Act) -> None:
    with pytest.raises(InvalidInput) as caught:
        act(
            "kofi@example.org",
            save_review,
            BEN,
            ReviewDraft(scores={"feasibility": 9, "beauty": 3}),
            submit=False,
            at=AFTER_R4,
        )
    problems = {e.path: e.message for e in caught.value.errors}
    assert problems["$.scores.feasibility"] == "9 is not on the scale 1, 2, 3, 4, 5"
    assert problems["$.scores.beauty"].startswith("is not a technical criterion of this round")
    assert act("kofi@example.org", dossier, BEN).review is None


def test_other_reviewers_scores_are_hidden_until_the_reviewers_own_is_submitted(invited: Runtime, act: Act) -> None:
    act("kofi@example.org", save_review, BEN, ReviewDraft(**FULL), submit=True, at=AFTER_R4)
    before = act("ana@example.org", dossier, BEN)
    assert before.other_reviews == []
    act(
        "ana@example.org",
        save_review,
        BEN,
        ReviewDraft(**{**FULL, "recommendation": "do_not_support"}),
        submit=True,
        at=AFTER_R4,
    )
    after = act("ana@example.org", dossier, BEN)
    assert after.other_reviews == [
        OtherReview(
            reviewer="Reviewer 1",
            scores=FULL["scores"],
            recommendation=Recommendation.SUPPORT,
            comments_for_committee=FULL["comments_for_committee"],
        )
    ]


def test_a_decline_tells_the_secretariat_and_the_place_is_filled_by_someone_else(invited: Runtime, act: Act) -> None:
    act("kofi@example.org", lambda s, r: decline(s, invited.settings, r, BEN, "on mission until October", at=AFTER_R4))
    with unit_of_work(invited.engine) as session:
        notice = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "secretariat_notice")).one()
        assert "kofi@example.org declined to review" in notice.subject and "on mission" in notice.body_text
        placements = {p.reference: p for p in assign_reviewers(session, ROUND4, actor="o", at=AFTER_R4)}
    assert "kofi@example.org not chosen: declined the invitation" in placements[BEN].reasons
    assert placements[BEN].unfilled == 1  # Bénédicte (Benin) and Paul (the agency) are conflicted: nobody else
    with unit_of_work(invited.engine) as session:
        lena_added = add_reviewer(session, ROUND4, BEN, "lena@example.org", actor="o", at=AFTER_R4)
        summary = invite(session, invited.settings, ROUND4, actor="o", at=AFTER_R4)
    assert lena_added == "added" and (summary.invited, summary.reviewers) == (1, 1)


def test_adding_by_hand_refuses_a_conflicted_reviewer_and_one_at_their_maximum_load(round4: Runtime) -> None:
    with (
        pytest.raises(NotAllowed, match=r"conflict of interest with SIP-2024-R4-0001 \(country\)"),
        unit_of_work(round4.engine) as session,
    ):
        add_reviewer(session, ROUND4, BEN, "bene@example.org", actor="o", at=AFTER_R4)
    with unit_of_work(round4.engine) as session:
        session.exec(select(Round)).all()
        from engine.services.review.register import set_reviewer

        set_reviewer(session, "lena@example.org", {"max_load": 1}, actor="o", at=AFTER_R4)
        assert add_reviewer(session, ROUND4, LSO, "lena@example.org", actor="o", at=AFTER_R4) == "added"
    with pytest.raises(NotAllowed, match="maximum"), unit_of_work(round4.engine) as session:
        add_reviewer(session, ROUND4, BEN, "lena@example.org", actor="o", at=AFTER_R4)


def test_a_reviewer_taken_off_is_not_proposed_again(round4: Runtime) -> None:
    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="o", at=AFTER_R4)
        remove_reviewer(
            session, ROUND4, LSO, "lena@example.org", reason="works for the ministry now", actor="o", at=AFTER_R4
        )
        lines = {line.reference: line for line in assignment_view(session, ROUND4)}
    lso = lines[LSO]
    assert sorted((r.email, r.state) for r in lso.reviewers) == [
        ("ana@example.org", "proposed"),
        ("lena@example.org", "removed"),
    ]
    assert lso.open_places == 1 and lso.proposals == []
    assert "lena@example.org not chosen: taken off this application by the secretariat" in lso.reasons


def test_a_reviewer_declaring_a_conflict_is_recorded_with_its_source(invited: Runtime, act: Act) -> None:
    act(
        "ana@example.org",
        lambda s, r: declare_conflict(s, invited.settings, r, LSO, "my brother leads the project", at=AFTER_R4),
    )
    with unit_of_work(invited.engine) as session:
        lines = {line.reference: line for line in assignment_view(session, ROUND4)}
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "conflict.declared")).one()
    assert ("ana@example.org", "conflicted") in [(r.email, r.state) for r in lines[LSO].reviewers]
    assert event.details == {"reviewer": "ana@example.org", "source": "reviewer"}
    assert "ana@example.org not chosen: conflict of interest (declared)" in lines[LSO].reasons


def test_reminders_go_once_before_the_due_date_and_the_secretariat_hears_of_overdue_reviews(
    invited: Runtime, act: Act
) -> None:
    act("kofi@example.org", save_review, BEN, ReviewDraft(**FULL), submit=True, at=AFTER_R4)
    with unit_of_work(invited.engine) as session:
        assert review_day(session, invited.settings, ROUND4, at=at(DUE - timedelta(days=4))).reminders == 0
        first = review_day(session, invited.settings, ROUND4, at=at(DUE - timedelta(days=3)))
        second = review_day(session, invited.settings, ROUND4, at=at(DUE - timedelta(days=2)))
        overdue = review_day(session, invited.settings, ROUND4, at=at(DUE + timedelta(days=1)))
        again = review_day(session, invited.settings, ROUND4, at=at(DUE + timedelta(days=1), 15))
        reminders = session.exec(select(OutboxMessage.recipient).where(OutboxMessage.kind == "review_reminder")).all()
    assert (first.step, first.outstanding, first.reminders) == ("remind", 3, 2)  # Ana (2 applications) and Lena
    assert second.reminders == 0 and sorted(reminders) == ["ana@example.org", "lena@example.org"]
    assert overdue.overdue_notice and not again.overdue_notice and not overdue.closed
    # A reminder carries a new sign-in link of its own.
    with unit_of_work(invited.engine) as session:
        assert (
            sign_in(
                session, invited.settings, link_of(invited, "lena@example.org", "review_reminder"), at=at(DUE)
            ).email
            == "lena@example.org"
        )


def test_the_stage_closes_by_itself_at_the_deadline_once_every_review_is_in(invited: Runtime, act: Act) -> None:
    for email, ref in (
        ("kofi@example.org", BEN),
        ("ana@example.org", BEN),
        ("ana@example.org", LSO),
        ("lena@example.org", LSO),
    ):
        act(email, save_review, ref, ReviewDraft(**FULL), submit=True, at=AFTER_R4)
    with unit_of_work(invited.engine) as session:
        assert not review_day(session, invited.settings, ROUND4, at=at(DUE)).closed  # all in, but not yet due
        assert review_day(session, invited.settings, ROUND4, at=at(DUE + timedelta(days=1))).closed
        assert session.get(Round, ROUND4).status == "committee"


def test_closing_is_never_blocked_by_a_missing_review_and_marks_the_application(invited: Runtime, act: Act) -> None:
    act("kofi@example.org", save_review, BEN, ReviewDraft(**FULL), submit=True, at=AFTER_R4)
    with unit_of_work(invited.engine) as session:
        closed = send_to_committee(session, ROUND4, actor="officer", at=at(DUE + timedelta(days=2)))
        assert (
            session.exec(
                select(func.count())
                .select_from(Application)
                .where(Application.status == Status.READY_FOR_COMMITTEE.value)
            ).one()
            == 2
        )
        again = send_to_committee(session, ROUND4, actor="officer", at=at(DUE + timedelta(days=2)))
        summaries = {s.reference: s for s in review_summaries(session, ROUND4)}
    assert closed.sent == 2 and sorted(closed.short) == [BEN, LSO] and not again.changed
    assert summaries[BEN].summary.submitted == 1 and summaries[BEN].summary.short
    with pytest.raises(NotAllowed, match="closed on"):  # a review after the close
        act("ana@example.org", save_review, BEN, ReviewDraft(**FULL), submit=True, at=at(DUE))


def test_the_summary_gives_mean_spread_and_flags_strong_disagreement(invited: Runtime, act: Act) -> None:
    act("kofi@example.org", save_review, BEN, ReviewDraft(**FULL), submit=True, at=AFTER_R4)
    act(
        "ana@example.org",
        save_review,
        BEN,
        ReviewDraft(**{**FULL, "scores": {**FULL["scores"], "feasibility": 1}, "recommendation": "do_not_support"}),
        submit=True,
        at=AFTER_R4,
    )
    with unit_of_work(invited.engine) as session:
        ben = next(s for s in review_summaries(session, ROUND4) if s.reference == BEN)
    feasibility = next(c for c in ben.summary.criteria if c.id == "feasibility")
    assert (sorted(feasibility.scores), str(feasibility.mean), feasibility.spread) == ([1, 3], "2.0", 2)
    assert ben.summary.disagreement and ben.summary.recommendations == {
        "support": 1,
        "support_with_changes": 0,
        "do_not_support": 1,
    }
    assert "recommendations differ: some support, some do not" in ben.summary.why


def test_the_due_date_can_move_and_reminders_follow_it(invited: Runtime) -> None:
    with unit_of_work(invited.engine) as session:
        extend(session, ROUND4, DUE + timedelta(days=7), actor="officer", at=AFTER_R4)
        assert review_day(session, invited.settings, ROUND4, at=at(DUE - timedelta(days=3))).reminders == 0
        assert review_day(session, invited.settings, ROUND4, at=at(DUE + timedelta(days=4))).reminders == 3


def test_a_round_without_gmp_review_goes_from_screening_to_the_committee(screened: Runtime) -> None:
    from tests.conftest import ROUND1

    with pytest.raises(NotAllowed, match="not finished: SIP-2018-R1-0004"), unit_of_work(screened.engine) as session:
        send_to_committee(session, ROUND1, actor="officer", at=AFTER_R4)  # Cameroon awaits a person's judgement
    with unit_of_work(screened.engine) as session:
        from engine.services.appraisal import override

        override(
            session,
            screened.settings,
            ROUND1,
            "SIP-2018-R1-0004",
            "screened",
            reason="Party since 2017",
            actor="officer",
            at=AFTER_R4,
        )
        summary = send_to_committee(session, ROUND1, actor="officer", at=AFTER_R4)
        assert session.get(Round, ROUND1).status == "committee"
    assert summary.sent == 2 and summary.short == []


def test_a_link_used_twice_at_the_same_moment_opens_one_session(invited: Runtime, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): two sign-ins cannot interleave")
    from sqlalchemy import event

    link = link_of(invited, "kofi@example.org")
    opened = []
    with pytest.raises(Unauthorized, match="already used"), unit_of_work(invited.engine) as a_session:
        connection = a_session.connection()

        @event.listens_for(connection, "before_cursor_execute")
        def b_signs_in_first(_conn, _cursor, statement: str, *_: object) -> None:
            if statement.startswith("UPDATE reviewer_token") and not opened:
                with unit_of_work(invited.engine) as b_session:  # after A read the link as unused
                    opened.append(sign_in(b_session, invited.settings, link, at=AFTER_R4))

        sign_in(a_session, invited.settings, link, at=AFTER_R4)
    with unit_of_work(invited.engine) as session:
        from engine.tables import ReviewerToken

        assert (
            len(opened) == 1
            and len(session.exec(select(ReviewerToken).where(ReviewerToken.purpose == "session")).all()) == 1
        )


def test_two_submissions_at_the_same_moment_keep_the_first_and_refuse_the_second(
    invited: Runtime, act: Act, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): two submissions cannot interleave")
    from sqlalchemy import event

    act("kofi@example.org", dossier, BEN)  # signed in
    first = ReviewDraft(**FULL)
    second = ReviewDraft(**{**FULL, "recommendation": "do_not_support"})
    with pytest.raises(NotAllowed, match="you submitted your review"):

        def racing(session, reviewer):
            @event.listens_for(session.connection(), "before_cursor_execute")
            def the_other_submits_first(_conn, _cursor, statement: str, *_: object) -> None:
                if "FOR UPDATE" in statement and not racing.done:  # after this one read the assignment
                    racing.done = True
                    act("kofi@example.org", save_review, BEN, first, submit=True, at=AFTER_R4)

            return save_review(session, reviewer, BEN, second, submit=True, at=AFTER_R4)

        racing.done = False
        act("kofi@example.org", racing)
    review = act("kofi@example.org", dossier, BEN).review
    assert review is not None and review.state == "submitted" and review.recommendation == "support"
    with unit_of_work(invited.engine) as session:
        assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "assignment.submit")).all()) == 1


def test_a_reviewer_restored_after_declining_is_invited_again(invited: Runtime, act: Act) -> None:
    act("kofi@example.org", lambda s, r: decline(s, invited.settings, r, BEN, "busy", at=AFTER_R4))
    later = AFTER_R4 + timedelta(days=2)
    with unit_of_work(invited.engine) as session:
        assert add_reviewer(session, ROUND4, BEN, "kofi@example.org", actor="o", at=later) == "restored"
        again = invite(session, invited.settings, ROUND4, actor="o", at=later)
    assert (again.invited, again.reviewers) == (1, 1)
    with unit_of_work(invited.engine) as session:  # the new invitation's own link works
        assert (
            sign_in(session, invited.settings, link_of(invited, "kofi@example.org"), at=later).email
            == "kofi@example.org"
        )


def test_a_reviewer_whose_country_changes_comes_off_the_applications_now_conflicted(invited: Runtime) -> None:
    from engine.services.review.register import set_reviewer

    with unit_of_work(invited.engine) as session:
        set_reviewer(session, "lena@example.org", {"country": "LSO"}, actor="officer", at=AFTER_R4)
        lines = {line.reference: line for line in assignment_view(session, ROUND4)}
    lena = next(r for r in lines[LSO].reviewers if r.email == "lena@example.org")
    assert lena.state == "conflicted" and "(country) since the register changed" in lena.note
    with unit_of_work(invited.engine) as session:
        assert review_day(session, invited.settings, ROUND4, at=at(DUE - timedelta(days=3))).outstanding == 3


def test_a_conflict_cannot_be_declared_once_the_stage_closed(invited: Runtime, act: Act) -> None:
    act("ana@example.org", dossier, BEN)  # signed in before the close
    with unit_of_work(invited.engine) as session:
        send_to_committee(session, ROUND4, actor="officer", at=AFTER_R4)
    with pytest.raises(NotAllowed, match="closed on"):
        act("ana@example.org", lambda s, r: declare_conflict(s, invited.settings, r, BEN, "late", at=AFTER_R4))


def test_the_review_cannot_close_while_an_application_still_waits_for_screening(rt: Runtime) -> None:
    from engine.services.appraisal import override
    from engine.services.follow_up import request_information
    from engine.services.intake import import_batch
    from engine.services.review.register import load_reviewers, parse_reviewers
    from engine.services.rounds import open_round
    from engine.services.screening import screen_batch, start_screening, to_screen
    from tests.conftest import REGISTER, changed, example

    with unit_of_work(rt.engine) as session:
        open_round(session, ROUND4, actor="s", at=AFTER_R4 - timedelta(days=100))
    files = [
        (name, changed(example(name), round=ROUND4, received_at="2024-07-01T10:00:00+02:00"))
        for name in ("ben-asgm-complete.json", "lso-inventory-no-form-c.json")
    ]
    assert all(r.ok for r in import_batch(rt.engine, rt.settings, ROUND4, files, actor="s", now=AFTER_R4))
    with unit_of_work(rt.engine) as session:
        start_screening(session, ROUND4, actor="s", at=AFTER_R4)
        ids = to_screen(session, ROUND4)
    screen_batch(rt.engine, rt.settings, ROUND4, ids, actor="s", at=AFTER_R4)
    lso = "SIP-2024-R4-0002"
    with unit_of_work(rt.engine) as session:
        request_information(session, rt.settings, ROUND4, lso, ["Form C, signed"], due=None, actor="o", at=AFTER_R4)
        load_reviewers(session, parse_reviewers(REGISTER, "r.csv"), source="r.csv", actor="s", at=AFTER_R4)
        assign_reviewers(session, ROUND4, actor="o", at=AFTER_R4)
        invite(session, rt.settings, ROUND4, actor="o", at=AFTER_R4)
    with pytest.raises(NotAllowed, match=f"{lso} still wait"), unit_of_work(rt.engine) as session:
        send_to_committee(session, ROUND4, actor="officer", at=AFTER_R4)
    with unit_of_work(rt.engine) as session:  # the items never came: the secretariat decides
        override(
            session,
            rt.settings,
            ROUND4,
            lso,
            "incomplete",
            reason="no answer by the date",
            actor="o",
            at=AFTER_R4 + timedelta(days=20),
        )
        closed = send_to_committee(session, ROUND4, actor="officer", at=AFTER_R4 + timedelta(days=21))
    assert closed.sent == 1 and closed.short == [BEN]
