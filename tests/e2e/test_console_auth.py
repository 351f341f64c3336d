"""The secretariat's console in a browser's terms: a visit without a session leads to the
sign-in form and back; sessions that end (sign-out, idle, disabled account); the lock-out;
the second factor; every form needs its token, and a read-only account cannot act; every
sign-in and refusal audited under the officer's address."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta

import httpx
from sqlmodel import select

from api.app import create_app
from domain.staff import StaffRole
from engine.db import reading, unit_of_work
from engine.services import console_sessions, staff
from engine.services.setup import Runtime
from engine.tables import AuditEvent
from tests.conftest import IN_ROUND1, ROUND1, Clock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
OFFICER, READER, ADMIN = "ana.officer@example.org", "rui.reader@example.org", "ada.admin@example.org"


def accounts(rt: Runtime) -> None:
    with unit_of_work(rt.engine) as session:
        for email, name, role in (
            (OFFICER, "Ana Officer", StaffRole.OFFICER),
            (READER, "Rui Reader", StaffRole.READ_ONLY),
            (ADMIN, "Ada Admin", StaffRole.ADMIN),
        ):
            staff.add_staff(session, email, name, role, PASSWORD, actor="setup", at=IN_ROUND1)


def console(rt: Runtime, clock: Clock | None = None) -> TestClient:
    return TestClient(create_app(rt.settings, now=clock or Clock(IN_ROUND1)), follow_redirects=False)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, next_path: str = "/console/") -> str:
    answer = client.post("/console/sign-in", data={"email": email, "password": password, "next": next_path})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="(\w+)"', html).group(1)  # type: ignore[union-attr]


def account_page(client: TestClient) -> tuple[httpx.Response, str]:
    """The officer's account page, and the new second factor's key it offers."""
    page = client.get("/console/account")
    return page, re.search(r'name="secret" value="(\w+)"', page.text).group(1)  # type: ignore[union-attr]


def events(rt: Runtime, action: str) -> list[AuditEvent]:
    with reading(rt.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_a_visit_without_a_session_leads_to_the_sign_in_form_and_back_to_the_page(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as client:
        first = client.get(f"/console/rounds/{ROUND1}?lang=fr")
        assert first.status_code == 303
        assert first.headers["location"] == f"/console/sign-in?next=/console/rounds/{ROUND1}%3Flang%3Dfr"
        form = client.get(first.headers["location"])
        assert form.status_code == 200 and 'name="password"' in form.text
        assert f'value="/console/rounds/{ROUND1}?lang=fr"' in form.text
        assert sign_in(client, OFFICER, next_path=f"/console/rounds/{ROUND1}?lang=fr") == (
            f"/console/rounds/{ROUND1}?lang=fr"
        )
        page = client.get(f"/console/rounds/{ROUND1}?lang=fr")
        assert page.status_code == 200
        assert '<html lang="fr">' in page.text and "Ana Officer (Spécialiste de programme)" in page.text
        cookie = next(c for c in client.cookies.jar if c.name == "sip_console_session")
        assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
        dashboard = client.get("/console/")
        assert ROUND1 in dashboard.text
    assert [e.actor for e in events(open_round1, "staff.signed_in")] == [OFFICER]


def test_sign_in_goes_nowhere_but_the_console(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as client:
        for elsewhere in ("https://evil.example/", "//evil.example/console/", "/reviewer/workspace", "/console\\x"):
            assert sign_in(client, OFFICER, next_path=elsewhere) == "/console/"


def test_a_wrong_password_is_refused_alike_and_five_in_a_row_lock_the_account(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as client:
        unknown = client.post("/console/sign-in", data={"email": "nobody@example.org", "password": PASSWORD})
        assert unknown.status_code == 401
        for _ in range(5):
            wrong = client.post("/console/sign-in", data={"email": OFFICER, "password": "not the password"})
            assert wrong.status_code == 401
            assert "do not match an active account" in wrong.text
            assert wrong.text.replace(OFFICER, "").count("nobody") == 0
        right = client.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD})
        assert right.status_code == 401  # locked: the right password too, for 15 minutes
        assert "sip_console_session" not in right.headers.get("set-cookie", "")
    refused = events(open_round1, "staff.sign_in_refused")
    assert [e.reason for e in refused] == ["wrong password"] * 5 + ["locked"]
    assert {e.actor for e in refused} == {OFFICER}


def test_a_disabled_account_cannot_sign_in_and_its_open_session_ends(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as officer_browser:
        sign_in(officer_browser, OFFICER)
        assert officer_browser.get("/console/").status_code == 200
        with unit_of_work(open_round1.engine) as session:
            staff.disable_staff(session, OFFICER, actor=ADMIN, at=IN_ROUND1)
        assert officer_browser.get("/console/").status_code == 303  # back to the sign-in form
        again = officer_browser.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD})
        assert again.status_code == 401
    assert events(open_round1, "staff.sign_in_refused")[-1].reason == "disabled"


def test_a_session_ends_when_unused_for_a_while_at_its_lifetime_and_at_sign_out(open_round1: Runtime) -> None:
    accounts(open_round1)
    clock = Clock(IN_ROUND1)
    with console(open_round1, clock) as client:
        sign_in(client, OFFICER)
        for _ in range(3):  # used every 20 minutes: still open
            clock.now += timedelta(minutes=20)
            assert client.get("/console/").status_code == 200
        clock.now += timedelta(minutes=31)  # unused for longer than SIP_CONSOLE_IDLE_MINUTES
        ended = client.get("/console/")
        assert ended.status_code == 303 and "ended=1" in ended.headers["location"]
        assert "Your session has ended" in client.get(ended.headers["location"]).text

        sign_in(client, OFFICER)
        for _ in range(21):  # used all day: ends after SIP_CONSOLE_SESSION_HOURS
            clock.now += timedelta(minutes=29)
        assert client.get("/console/").status_code == 303

        sign_in(client, OFFICER)
        page = client.get("/console/")
        token = client.cookies.get("sip_console_session")
        out = client.post("/console/sign-out", data={"csrf": csrf(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/console/sign-in?out=1"
        client.cookies.set("sip_console_session", token or "", path="/console")  # the old cookie, kept by someone
        assert client.get("/console/").status_code == 303
    assert [e.actor for e in events(open_round1, "staff.signed_out")] == [OFFICER]


def test_every_form_needs_a_session_and_its_token(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as client:
        no_session = client.post(f"/console/rounds/{ROUND1}/stages/close", data={"csrf": "x"})
        assert no_session.status_code == 401
        assert "Sign in again" in no_session.text
        sign_in(client, OFFICER)
        page = client.get(f"/console/rounds/{ROUND1}")
        for sent in ({}, {"csrf": "0" * 64}):
            refused = client.post(f"/console/rounds/{ROUND1}/stages/close", data=sent)
            assert refused.status_code == 403
            assert "This form could not be accepted" in refused.text
        assert csrf(page.text)  # the page's own forms carry it
    refused_forms = [e for e in events(open_round1, "console.start.refused") if e.actor == OFFICER]
    assert len(refused_forms) == 2


def test_a_read_only_account_sees_the_pages_but_cannot_act(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as client:
        sign_in(client, READER)
        page = client.get(f"/console/rounds/{ROUND1}")
        assert page.status_code == 200 and "read-only" in page.text
        assert "Close the round" not in page.text  # no button it may not press
        refused = client.post(f"/console/rounds/{ROUND1}/stages/close", data={"csrf": csrf(page.text)})
        assert refused.status_code == 403
        assert "read-only" in refused.text
        added = client.post(
            "/console/staff",
            data={
                "csrf": csrf(page.text),
                "email": "x@example.org",
                "name": "X",
                "role": "admin",
                "password": "p" * 20,
            },
        )
        assert added.status_code == 403
    refusals = [e for e in events(open_round1, "console.start.refused") if e.actor == READER]
    assert len(refusals) == 1 and refusals[0].reason and "read-only" in refusals[0].reason


def test_only_an_administrator_adds_and_disables_accounts(open_round1: Runtime) -> None:
    accounts(open_round1)
    with console(open_round1) as officer:
        sign_in(officer, OFFICER)
        token = csrf(officer.get("/console/staff").text)
        assert "Add an account" not in officer.get("/console/staff").text
        data = {"csrf": token, "email": "new@example.org", "name": "New", "role": "officer", "password": "p" * 20}
        assert officer.post("/console/staff", data=data).status_code == 403
    with console(open_round1) as admin:
        sign_in(admin, ADMIN)
        token = csrf(admin.get("/console/staff").text)
        short = admin.post("/console/staff", data={**data, "csrf": token, "password": "short"})
        assert short.status_code == 422 and "too short" in short.text
        added = admin.post("/console/staff", data={**data, "csrf": token})
        assert added.status_code == 303
        assert admin.post("/console/staff/disable", data={"csrf": token, "email": ADMIN}).status_code == 409
        assert admin.post("/console/staff/disable", data={"csrf": token, "email": "new@example.org"}).status_code == 303
    with reading(open_round1.engine) as session:
        new = next(a for a in staff.list_staff(session) if a.email == "new@example.org")
    assert not new.active
    assert [e.actor for e in events(open_round1, "staff.added") if e.subject_id == "new@example.org"] == [ADMIN]


def test_the_second_factor_asks_for_the_apps_code_after_the_password(open_round1: Runtime) -> None:
    accounts(open_round1)
    clock = Clock(IN_ROUND1)
    with console(open_round1, clock) as client:
        sign_in(client, OFFICER)
        page, secret = account_page(client)
        wrong = client.post(
            "/console/account/second-factor", data={"csrf": csrf(page.text), "secret": secret, "code": "000000"}
        )
        assert wrong.status_code == 422 and "does not match" in wrong.text
        code = console_sessions.code_at(secret, clock.now)
        on = client.post(
            "/console/account/second-factor", data={"csrf": csrf(page.text), "secret": secret, "code": code}
        )
        assert on.status_code == 303
        client.post("/console/sign-out", data={"csrf": csrf(page.text)})

        clock.now += timedelta(minutes=2)
        assert sign_in(client, OFFICER).startswith("/console/second-factor")
        assert client.get("/console/").status_code == 303  # the password alone opens nothing
        refused = client.post("/console/second-factor", data={"code": "123456", "next": "/console/"})
        assert refused.status_code == 401 and "does not match" in refused.text
        right = client.post(
            "/console/second-factor", data={"code": console_sessions.code_at(secret, clock.now), "next": "/console/"}
        )
        assert right.status_code == 303 and right.headers["location"] == "/console/"
        assert client.get("/console/").status_code == 200

        # the same code again, in another sign-in within its 30 seconds: refused (a code works once)
        page = client.get("/console/")
        client.post("/console/sign-out", data={"csrf": csrf(page.text)})
        sign_in(client, OFFICER)
        again = client.post(
            "/console/second-factor", data={"code": console_sessions.code_at(secret, clock.now), "next": "/console/"}
        )
        assert again.status_code == 401
    assert [e.actor for e in events(open_round1, "staff.second_factor_on")] == [OFFICER]
    assert len(events(open_round1, "staff.second_factor_passed")) == 1


def test_guessing_the_second_factors_code_locks_the_account_even_between_passwords(open_round1: Runtime) -> None:
    accounts(open_round1)
    clock = Clock(IN_ROUND1)
    with console(open_round1, clock) as client:
        sign_in(client, OFFICER)
        page, secret = account_page(client)
        token = csrf(page.text)
        code = console_sessions.code_at(secret, clock.now)
        assert (
            client.post(
                "/console/account/second-factor", data={"csrf": token, "secret": secret, "code": code}
            ).status_code
            == 303
        )
        again = client.post("/console/account/second-factor", data={"csrf": token, "secret": secret, "code": code})
        assert again.status_code == 409  # a second factor is not replaced behind its owner's back
        no_code = client.post("/console/account/second-factor", data={"csrf": token, "off": "yes", "code": "000000"})
        assert no_code.status_code == 422  # nor taken away by whoever finds the session open
        client.post("/console/sign-out", data={"csrf": token})

        for _ in range(3):  # with the one above, four wrong codes, and the right password between: the count goes on
            clock.now += timedelta(minutes=1)
            sign_in(client, OFFICER)
            assert client.post("/console/second-factor", data={"code": "000000"}).status_code == 401
        sign_in(client, OFFICER)
        assert client.post("/console/second-factor", data={"code": "000000"}).status_code == 401  # the fifth
        locked = client.post("/console/sign-in", data={"email": OFFICER, "password": PASSWORD})
        assert locked.status_code == 401  # locked: the right password is refused too
    assert events(open_round1, "staff.sign_in_refused")[-1].reason == "locked"


def test_the_session_gets_a_new_token_once_the_second_factor_is_passed(open_round1: Runtime) -> None:
    accounts(open_round1)
    clock = Clock(IN_ROUND1)
    with console(open_round1, clock) as client:
        sign_in(client, OFFICER)
        page, secret = account_page(client)
        code = console_sessions.code_at(secret, clock.now)
        client.post("/console/account/second-factor", data={"csrf": csrf(page.text), "secret": secret, "code": code})
        client.post("/console/sign-out", data={"csrf": csrf(page.text)})
        clock.now += timedelta(minutes=1)
        sign_in(client, OFFICER)
        waiting = client.cookies.get("sip_console_session")
        passed = client.post("/console/second-factor", data={"code": console_sessions.code_at(secret, clock.now)})
        assert passed.status_code == 303
        assert client.cookies.get("sip_console_session") not in (None, waiting)
        assert client.get("/console/").status_code == 200
        client.cookies.set("sip_console_session", waiting or "", path="/console")
        assert client.get("/console/").status_code == 303  # the token that waited for the code opens nothing


def test_guessing_the_code_to_turn_the_second_factor_off_locks_the_account_and_its_sessions(
    open_round1: Runtime,
) -> None:
    accounts(open_round1)
    clock = Clock(IN_ROUND1)
    with console(open_round1, clock) as client:
        sign_in(client, OFFICER)
        page, secret = account_page(client)
        token = csrf(page.text)
        code = console_sessions.code_at(secret, clock.now)
        client.post("/console/account/second-factor", data={"csrf": token, "secret": secret, "code": code})
        for _ in range(5):  # someone at a session left open tries codes
            wrong = client.post("/console/account/second-factor", data={"csrf": token, "off": "yes", "code": "000001"})
            if wrong.status_code == 303:
                break
            assert wrong.status_code == 422
        assert client.get("/console/").status_code == 303  # locked: the session ends with it
    with reading(open_round1.engine) as session:
        account = next(a for a in staff.list_staff(session) if a.email == OFFICER)
    assert account.second_factor and account.locked_until is not None
