"""Ending access at once, on SQLite and PostgreSQL: a committee member who leaves the
committee (their term ended early, one by one or from the membership file) loses their
bundle links, so does a member whose access the secretariat withdraws (a new version of
their bundle brings a new link); a deactivated reviewer's links and sessions end, and a
downgrade of the migration keeps revoked credentials dead."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlmodel import col, select

from demo.committee import MEMBERS
from engine import migrate
from engine.db import reading, unit_of_work
from engine.services.committee.bundles import WITHDRAWN_LINK, open_bundle, prepare_bundles
from engine.services.committee.membership import set_member
from engine.services.errors import Gone, InvalidInput, NotFound, Unauthorized
from engine.services.review.access import reviewer_for, sign_in
from engine.services.review.register import set_reviewer
from engine.services.revocation import revoke_person
from engine.services.setup import Runtime
from engine.tables import AuditEvent, CommitteeBundle, OutboxMessage, ReviewerRecord, ReviewerToken
from tests.conftest import AFTER_R4, ROUND1, ROUND4, bundle_link_token

PREPARED = datetime(2018, 9, 20, 9, tzinfo=UTC)
AFTER_MEETING = datetime(2018, 10, 10, 9, tzinfo=UTC)  # the meeting was on 2-3 October: links still work
GHANA = "kwame.boateng@committee.example.org"
OTHER = "pieter.devries@committee.example.org"


def prepare(rt: Runtime, at: datetime = PREPARED) -> None:
    with unit_of_work(rt.engine) as session:
        prepare_bundles(session, rt.settings, ROUND1, actor="officer", at=at, pdf=False)


def token_of(rt: Runtime, email: str, version: int = 1) -> str:
    return bundle_link_token(rt, email, version)


def opens(rt: Runtime, token: str, at: datetime = AFTER_MEETING) -> bool:
    try:
        with unit_of_work(rt.engine) as session:
            open_bundle(session, rt.settings, token, at=at)
    except (NotFound, Gone):
        return False
    return True


def revocations(rt: Runtime) -> list[AuditEvent]:
    with reading(rt.engine) as session:
        return list(
            session.exec(
                select(AuditEvent).where(AuditEvent.action == "access.revoked").order_by(col(AuditEvent.id))
            ).all()
        )


def test_a_member_who_leaves_the_committee_after_the_meeting_loses_their_bundle_link_at_once(
    committee: Runtime,
) -> None:
    prepare(committee)
    ghana, other = token_of(committee, GHANA), token_of(committee, OTHER)
    assert opens(committee, ghana)
    with unit_of_work(committee.engine) as session:
        set_member(session, GHANA, date(2018, 1, 1), {"term_end": date(2018, 10, 10)}, actor="amina", at=AFTER_MEETING)
    with pytest.raises(Gone, match="withdrawn"), unit_of_work(committee.engine) as session:
        open_bundle(session, committee.settings, ghana, at=AFTER_MEETING)
    assert opens(committee, other)  # only theirs
    [event] = revocations(committee)
    assert (event.actor, event.subject_id, event.details) == (
        "amina",
        GHANA,
        {"cause": "left the committee", "sessions": 0, "links": 0, "bundle_links": 1},
    )


def test_a_term_ended_from_the_membership_file_ends_the_links_too(committee: Runtime) -> None:
    prepare(committee)
    ghana = token_of(committee, GHANA)
    shorter = MEMBERS.replace(
        f"{GHANA},GHA,co-chair,2018-01-01,2019-12-31", f"{GHANA},GHA,co-chair,2018-01-01,2018-10-09"
    )
    assert shorter != MEMBERS
    with unit_of_work(committee.engine) as session:
        from engine.services.committee.membership import known_parties, load_members, parse_members

        load_members(
            session,
            parse_members(shorter, "c.csv", known_parties(session)),
            source="c.csv",
            actor="amina",
            at=AFTER_MEETING,
        )
    assert not opens(committee, ghana)
    assert [e.subject_id for e in revocations(committee)] == [GHANA]


def test_a_term_shortened_to_a_later_day_leaves_the_links_working_until_then(committee: Runtime) -> None:
    prepare(committee)
    ghana = token_of(committee, GHANA)
    with unit_of_work(committee.engine) as session:
        set_member(session, GHANA, date(2018, 1, 1), {"term_end": date(2018, 12, 31)}, actor="amina", at=AFTER_MEETING)
    assert opens(committee, ghana) and revocations(committee) == []


def test_the_secretariat_withdraws_a_members_links_and_preparing_again_gives_a_new_one(committee: Runtime) -> None:
    prepare(committee)
    ghana = token_of(committee, GHANA)
    with pytest.raises(InvalidInput), unit_of_work(committee.engine) as session:
        revoke_person(session, GHANA, reason=" ", actor="amina", at=PREPARED)
    with pytest.raises(NotFound), unit_of_work(committee.engine) as session:
        revoke_person(session, "nobody@example.org", reason="x", actor="amina", at=PREPARED)
    with unit_of_work(committee.engine) as session:
        revoked = revoke_person(session, GHANA, reason="e-mail account compromised", actor="amina", at=PREPARED)
    assert (revoked.sessions, revoked.links, revoked.bundle_links) == (0, 0, 1)
    assert not opens(committee, ghana, at=PREPARED)
    prepare(committee, at=PREPARED + timedelta(hours=1))  # only Ghana's member gets a new version
    with reading(committee.engine) as session:
        versions = session.exec(select(CommitteeBundle.email, CommitteeBundle.version, CommitteeBundle.changes)).all()
    assert [(v, c) for e, v, c in versions if e == GHANA] == [(1, []), (2, [WITHDRAWN_LINK])]
    assert {v for e, v, _ in versions if e != GHANA} == {1}
    assert opens(committee, token_of(committee, GHANA, 2), at=PREPARED)
    [event] = revocations(committee)
    assert (event.actor, event.reason) == ("amina", "e-mail account compromised")


def _reviewer_with_link_and_session(rt: Runtime) -> tuple[str, str]:
    """Kofi (of round 4's register) with a session open and an unused link: their tokens."""
    from engine.services.review.messages import issue_link
    from engine.services.tokens import derive_link_token

    with unit_of_work(rt.engine) as session:
        kofi = session.exec(select(ReviewerRecord).where(ReviewerRecord.email == "kofi@example.org")).one()
        issue_link(session, rt.settings, kofi, "key-1", AFTER_R4)
        issue_link(session, rt.settings, kofi, "key-2", AFTER_R4)
    with reading(rt.engine) as session:
        nonces = [t.nonce for t in session.exec(select(ReviewerToken).order_by(ReviewerToken.id)).all()]  # type: ignore[arg-type]
    first, second = (derive_link_token(rt.settings.key(), n or "") for n in nonces)
    with unit_of_work(rt.engine) as session:
        signed = sign_in(session, rt.settings, first, at=AFTER_R4)
    return signed.session_token, second


def test_deactivating_a_reviewer_ends_their_session_and_links(round4: Runtime) -> None:
    session_token, link_token = _reviewer_with_link_and_session(round4)
    with unit_of_work(round4.engine) as session:
        set_reviewer(session, "kofi@example.org", {}, active=False, actor="amina", at=AFTER_R4)
    with pytest.raises(Unauthorized, match="closed"), reading(round4.engine) as session:
        reviewer_for(session, session_token, at=AFTER_R4)
    with pytest.raises(Unauthorized, match="withdrawn"), unit_of_work(round4.engine) as session:
        sign_in(session, round4.settings, link_token, at=AFTER_R4)
    with reading(round4.engine) as session:
        tokens = session.exec(select(ReviewerToken).order_by(ReviewerToken.id)).all()  # type: ignore[arg-type]
    # the link used to sign in stays as it was (used); the other link and the session are revoked
    assert [(t.purpose, t.used_at is not None, t.revoked_at is not None) for t in tokens] == [
        ("link", True, False),
        ("link", False, True),
        ("session", False, True),
    ]
    [event] = revocations(round4)
    assert event.details == {"cause": "deactivated", "sessions": 1, "links": 1, "bundle_links": 0}


def test_downgrading_the_migration_keeps_revoked_credentials_ended(round4: Runtime) -> None:
    session_token, link_token = _reviewer_with_link_and_session(round4)
    with unit_of_work(round4.engine) as session:
        revoke_person(session, "kofi@example.org", reason="test", actor="amina", at=AFTER_R4 + timedelta(minutes=5))
    config = migrate.alembic_config(round4.engine)
    with round4.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")  # before the revocation columns
        conn.commit()
    with round4.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT purpose, used_at, expires_at FROM reviewer_token ORDER BY id")).all()
    # Without the column, the revoked session and the unused link have expired when they were revoked.
    assert [r[0] for r in rows] == ["link", "link", "session"]
    assert all(str(r[2]).startswith("2024-08-05 09:05") for r in rows if r[0] == "session" or r[1] is None)
    migrate.upgrade(round4.engine)


def test_a_deactivated_reviewer_is_not_reminded_and_gets_no_new_link(round4: Runtime) -> None:
    from engine.services.review.access import request_link
    from engine.services.review.assignment import assign_reviewers
    from engine.services.review.invitations import invite
    from engine.services.review.reminders import review_day

    with unit_of_work(round4.engine) as session:
        assign_reviewers(session, ROUND4, actor="officer", at=AFTER_R4)
        invite(session, round4.settings, ROUND4, actor="officer", at=AFTER_R4)
        set_reviewer(session, "lena@example.org", {}, active=False, actor="amina", at=AFTER_R4)
    remind_at = datetime(2024, 8, 23, 9, tzinfo=UTC)  # three days before the reviews are due
    with unit_of_work(round4.engine) as session:
        day = review_day(session, round4.settings, ROUND4, at=remind_at)
        assert not request_link(session, round4.settings, "lena@example.org", at=remind_at)
        reminded = session.exec(select(OutboxMessage.recipient).where(OutboxMessage.kind == "review_reminder")).all()
    assert day.step == "remind" and sorted(reminded) == ["ana@example.org", "kofi@example.org"]
