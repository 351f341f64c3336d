"""Single sign-on to the console with OpenID Connect, against a real provider served on
loopback (discovery, an authorization endpoint that has signed the person in, a token
endpoint that checks the client and PKCE and signs an RS256 ID token, the keys): the
officer comes back signed in to the page they asked for; a person without an account, a
disabled account, a forged state, a token for another client or with another nonce, an
unconfirmed address and a provider that does not answer are refused, saying why."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr
from sqlmodel import select

from api.app import create_app
from domain.staff import StaffRole
from engine.db import reading, unit_of_work
from engine.services import staff
from engine.services.setup import Runtime
from engine.tables import AuditEvent
from tests.conftest import IN_ROUND1, ROUND1, Clock
from tests.processes import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLIENT_ID, CLIENT_SECRET = "sip-console", "a-client-secret-of-the-console"
OFFICER = "ana.officer@example.org"


@dataclass
class Provider:
    """An OpenID Connect provider on loopback, where `person` has signed in."""

    url: str
    person: dict[str, Any] = field(default_factory=lambda: {"email": OFFICER, "email_verified": True})
    tamper: dict[str, Any] = field(default_factory=dict)  # claims to put in the next ID token instead
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: Any = None  # what /jwks answers instead of the provider's keys


@pytest.fixture
def provider() -> Iterator[Provider]:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
    port = free_port()
    found = Provider(f"http://127.0.0.1:{port}")
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def configuration() -> dict[str, str]:
        return {
            "issuer": found.url,
            "authorization_endpoint": f"{found.url}/authorize",
            "token_endpoint": f"{found.url}/token",
            "jwks_uri": f"{found.url}/jwks",
        }

    @app.get("/jwks")
    def keys() -> Any:
        return KeySet([key]).as_dict(private=False) if found.keys is None else found.keys

    @app.get("/authorize")
    def authorize(request: Request) -> RedirectResponse:
        asked = request.query_params
        assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID
        assert asked["code_challenge_method"] == "S256" and "openid" in asked["scope"].split()
        code = f"code-{len(found.codes)}"
        found.codes[code] = {"nonce": asked["nonce"], "challenge": asked["code_challenge"], "to": asked["redirect_uri"]}
        return RedirectResponse(f"{asked['redirect_uri']}?{urlencode({'code': code, 'state': asked['state']})}", 303)

    @app.post("/token")
    def token(
        request: Request,
        code: str = Form(),
        code_verifier: str = Form(),
        redirect_uri: str = Form(),
        grant_type: str = Form(),
    ) -> JSONResponse:
        given = found.codes.pop(code, None)
        if given is None or grant_type != "authorization_code" or redirect_uri != given["to"]:
            return JSONResponse({"error": "invalid_grant"}, 400)
        if create_s256_code_challenge(code_verifier) != given["challenge"]:  # PKCE
            return JSONResponse({"error": "invalid_grant"}, 400)
        if httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)._auth_header != request.headers.get("authorization"):
            return JSONResponse({"error": "invalid_client"}, 401)
        now = int(time.time())
        claims = {"iss": found.url, "aud": CLIENT_ID, "sub": "u-1", "iat": now, "exp": now + 300}
        claims.update({"nonce": given["nonce"], **found.person, **found.tamper})
        claims = {name: value for name, value in claims.items() if value is not None}  # None: the claim left out
        signed = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return JSONResponse({"access_token": "at", "token_type": "Bearer", "id_token": signed})

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the provider did not start"
        time.sleep(0.02)
    yield found
    server.should_exit = True


def console_with(rt: Runtime, issuer: str) -> TestClient:
    settings = rt.settings.model_copy(
        update={"oidc_issuer": issuer, "oidc_client_id": CLIENT_ID, "oidc_client_secret": SecretStr(CLIENT_SECRET)}
    )
    return TestClient(create_app(settings, now=Clock(IN_ROUND1)), follow_redirects=False)


def through_the_provider(client: TestClient, next_path: str = "/console/") -> httpx.Response:
    """The button of the sign-in page, the provider (who knows the person), and back."""
    start = client.get(f"/console/sso?next={next_path}")
    assert start.status_code == 303, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 303
    back = urlsplit(at_provider.headers["location"])
    assert back.path == "/console/sso/callback"
    return client.get(f"{back.path}?{back.query}")


def account(rt: Runtime, active: bool = True) -> None:
    with unit_of_work(rt.engine) as session:
        staff.add_staff(session, OFFICER, "Ana Officer", StaffRole.OFFICER, "p" * 16, actor="setup", at=IN_ROUND1)
        if not active:
            staff.disable_staff(session, OFFICER, actor="setup", at=IN_ROUND1)


def test_an_officer_signs_in_through_the_organisations_provider(open_round1: Runtime, provider: Provider) -> None:
    account(open_round1)
    with console_with(open_round1, provider.url) as client:
        form = client.get("/console/sign-in")
        assert "Sign in with single sign-on" in form.text  # the button, named in the page's language
        back = through_the_provider(client, f"/console/rounds/{ROUND1}")
        assert back.status_code == 303 and back.headers["location"] == f"/console/rounds/{ROUND1}"
        page = client.get(f"/console/rounds/{ROUND1}")
        assert page.status_code == 200 and "Ana Officer" in page.text
    with reading(open_round1.engine) as session:
        signed = session.exec(select(AuditEvent).where(AuditEvent.action == "staff.signed_in")).one()
    assert signed.actor == OFFICER and signed.details == {"via": f"oidc:{provider.url}"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_what_single_sign_on_refuses_it_says(open_round1: Runtime, provider: Provider) -> None:
    with console_with(open_round1, provider.url) as client:
        nobody = through_the_provider(client)  # known to the provider, no account here
        assert nobody.status_code == 401 and "no active account for your address" in nobody.text
        assert "sip_console_session" not in nobody.headers.get("set-cookie", "")

        account(open_round1, active=False)
        disabled = through_the_provider(client)
        assert disabled.status_code == 401 and "no active account for your address" in disabled.text

        start = client.get("/console/sso")
        at_provider = httpx.get(start.headers["location"], follow_redirects=False)
        back = urlsplit(at_provider.headers["location"])
        code = parse_qs(back.query)["code"][0]
        forged = client.get(f"{back.path}?code={code}&state=forged")
        assert forged.status_code == 401 and "took too long, or was started in another window" in forged.text

        for tampered in (
            {"aud": "another-client"},
            {"nonce": "replayed"},
            {"iss": "https://evil.example"},
            {"aud": [CLIENT_ID, "another-client"]},  # several audiences and no authorized party
            {"azp": "another-client"},
            {"sub": None},
        ):
            provider.tamper = tampered
            refused = through_the_provider(client)
            assert refused.status_code == 401 and "Single sign-on did not sign you in" in refused.text, tampered
        for unconfirmed in (False, "false", None):
            provider.tamper = {"email_verified": unconfirmed}
            unverified = through_the_provider(client)
            assert unverified.status_code == 401 and "has not confirmed your e-mail address" in unverified.text
    with console_with(open_round1, f"http://127.0.0.1:{free_port()}") as client:  # nobody there
        down = client.get("/console/sso")
        assert down.status_code == 503 and "does not answer at the moment" in down.text
    with reading(open_round1.engine) as session:
        refusals = session.exec(select(AuditEvent).where(AuditEvent.action == "staff.sign_in_refused")).all()
    assert [(e.actor, e.reason) for e in refusals] == [(OFFICER, "disabled")]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_account_with_a_second_factor_still_gives_its_code(open_round1: Runtime, provider: Provider) -> None:
    from engine.services import console_sessions

    account(open_round1)
    secret = console_sessions.new_secret()
    with unit_of_work(open_round1.engine) as session:
        console_sessions.turn_on_second_factor(
            session, OFFICER, secret, console_sessions.code_at(secret, IN_ROUND1), open_round1.settings, at=IN_ROUND1
        )
    with console_with(open_round1, provider.url) as client:
        back = through_the_provider(client)
        assert back.status_code == 303 and back.headers["location"].startswith("/console/second-factor")
        assert client.get("/console/").status_code == 303  # not before the code


def test_single_sign_on_half_set_up_is_refused_at_start_naming_what_is_missing() -> None:
    from pydantic import ValidationError

    from engine.settings import Settings
    from tests.conftest import SECRET

    with pytest.raises(ValidationError, match="SIP_OIDC_CLIENT_ID and SIP_OIDC_CLIENT_SECRET"):
        Settings(SIP_SECRET_KEY=SECRET, SIP_OIDC_ISSUER="https://login.example.org")
    with pytest.raises(ValidationError, match="must be an https:// address"):
        Settings(
            SIP_SECRET_KEY=SECRET,
            SIP_OIDC_ISSUER="http://login.example.org",
            SIP_OIDC_CLIENT_ID="c",
            SIP_OIDC_CLIENT_SECRET="s",
        )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_a_provider_publishes_wrongly_are_a_page_not_a_500(open_round1: Runtime, provider: Provider) -> None:
    from api.console import sso

    account(open_round1)
    for published in ({}, [], {"keys": None}, {"keys": [{"kty": "RSA"}]}):
        sso._discovered.clear()
        provider.keys = published
        with console_with(open_round1, provider.url) as client:
            answer = client.get("/console/sso")
            assert answer.status_code == 503 and "does not answer at the moment" in answer.text, published
