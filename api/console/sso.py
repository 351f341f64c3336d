"""Single sign-on for the console with OpenID Connect, where the organisation has an
identity provider (`SIP_OIDC_ISSUER`, `SIP_OIDC_CLIENT_ID`, `SIP_OIDC_CLIENT_SECRET`).

The authorization code flow with PKCE: the sign-in page's button leads to the provider,
which sends the officer back to `/console/sso/callback` with a code; the engine exchanges
it for an ID token, checks the token's signature against the provider's published keys
(joserfc), its issuer, audience, expiry and nonce, and signs in the account with the
token's e-mail address, if an administrator made one (the provider says who the officer
is; the engine still decides who comes in). The state, nonce and PKCE verifier wait in a
short-lived cookie signed with the engine's key. An account with a second factor still
gives its code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from api.attempts import AttemptDep
from api.console.account import _set_session
from api.console.base import CONSOLE, console_language, console_path, render, safe_next
from api.deps import NowDep, RuntimeDep
from api.pages import PAGE_HEADERS, page_route, secure_cookies
from domain.lifecycle import Role
from engine.db import unit_of_work
from engine.services import console_sessions, staff
from engine.services.errors import NotFound, Unauthorized
from engine.services.setup import Runtime
from engine.settings import Settings

log = logging.getLogger("sip.api")
router = APIRouter()
#: The cookie that holds the state, nonce and verifier of a sign-in under way, and how long it lasts.
FLOW_COOKIE = "sip_console_sso"
FLOW_SECONDS = 600
#: How long the provider's configuration and keys are kept before being read again.
DISCOVERY_SECONDS = 3600
TIMEOUT = 10.0


class SingleSignOnFailed(Exception):
    """Why a single sign-on did not sign the officer in: `problem` names it for the page."""

    def __init__(self, problem: str, detail: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.detail = detail


#: A provider that did not answer is asked again only after this long (a page that leads to
#: it does not wait for it at every request meanwhile).
FAILED_SECONDS = 30
#: The ID token's signature algorithms the engine takes (never "none" nor a shared-secret HMAC).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    keys: KeySet
    algorithms: list[str]


_discovered: dict[str, tuple[float, Provider | SingleSignOnFailed]] = {}


def provider_of(settings: Settings, *, fresh: bool = False) -> Provider:
    """The provider's endpoints, keys and signature algorithms (its OpenID configuration,
    read once an hour; a failure is remembered for half a minute)."""
    issuer = (settings.oidc_issuer or "").rstrip("/")
    known = _discovered.get(issuer)
    if known and not fresh:
        age = time.monotonic() - known[0]
        if isinstance(known[1], Provider) and age < DISCOVERY_SECONDS:
            return known[1]
        if isinstance(known[1], SingleSignOnFailed) and age < FAILED_SECONDS:
            raise known[1]
    try:
        config = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT).raise_for_status().json()
        keys = KeySet.import_key_set(httpx.get(str(config["jwks_uri"]), timeout=TIMEOUT).raise_for_status().json())
        advertised = config.get("id_token_signing_alg_values_supported") or ["RS256"]
        found = Provider(
            str(config["issuer"]).rstrip("/"),
            str(config["authorization_endpoint"]),
            str(config["token_endpoint"]),
            str(config["jwks_uri"]),
            keys,
            [a for a in advertised if a in ALGORITHMS] or ["RS256"],
        )
        if found.issuer != issuer:
            raise ValueError(f"the provider names itself {found.issuer}, not {issuer}")
    except (httpx.HTTPError, JoseError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("the single sign-on provider %s does not answer as it should: %s", issuer, exc)
        failed = SingleSignOnFailed("unavailable")
        _discovered[issuer] = (time.monotonic(), failed)
        raise failed from None
    _discovered[issuer] = (time.monotonic(), found)
    return found


def redirect_uri(settings: Settings) -> str:
    """Where the provider sends the officer back (registered with it as the console's)."""
    return settings.public_base_url.rstrip("/") + "/console/sso/callback"


def _sign(settings: Settings, data: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    mac = hmac.new(settings.key(), b"console-sso:" + body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _unsign(settings: Settings, value: str | None, now: float) -> dict[str, Any] | None:
    if not value or "." not in value:
        return None
    body, mac = value.rsplit(".", 1)
    expected = hmac.new(settings.key(), b"console-sso:" + body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    return data if now - float(data.get("at", 0)) <= FLOW_SECONDS else None


def _enabled(rt: Runtime) -> None:
    if not rt.settings.oidc_issuer:
        raise NotFound("single sign-on is not set up for this console (SIP_OIDC_ISSUER)")


@page_route(router.get, "/sso", CONSOLE)
def start(request: Request, rt: RuntimeDep, next: str | None = None) -> Response:
    """To the identity provider, to sign in there (then back to the console)."""
    _enabled(rt)
    console = console_path(request, rt)
    settings = rt.settings
    try:
        provider = provider_of(settings)
    except SingleSignOnFailed as failed:
        return _refused(request, rt, failed, next)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect_uri(settings),
            "scope": settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    answer = RedirectResponse(
        f"{provider.authorization_endpoint}{separator}{query}", status_code=303, headers=PAGE_HEADERS
    )
    flow = {"state": state, "nonce": nonce, "verifier": verifier, "next": safe_next(next, console), "at": time.time()}
    answer.set_cookie(
        FLOW_COOKIE,
        _sign(settings, flow),
        max_age=FLOW_SECONDS,
        path=console + "/sso",
        secure=secure_cookies(request, settings),
        httponly=True,
        samesite="lax",  # sent back with the provider's redirect to the callback (a top-level GET)
    )
    return answer


@page_route(router.get, "/sso/callback", CONSOLE)
def callback(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    code: str = "",
    state: str = "",
    error: str = "",
) -> Response:
    """Back from the identity provider: the code exchanged, the ID token checked, the
    account signed in (or the sign-in page, saying why not)."""
    _enabled(rt)
    settings = rt.settings
    console = console_path(request, rt)
    flow = _unsign(settings, request.cookies.get(FLOW_COOKIE), time.time())
    try:
        if flow is None or not state or not hmac.compare_digest(state.encode(), str(flow["state"]).encode()):
            raise SingleSignOnFailed("stale")  # checked first: a link from elsewhere changes nothing
        if error:
            raise SingleSignOnFailed("provider_refused", "".join(c for c in error[:200] if c.isprintable()))
        email = _email_of(settings, code[:2000], flow)
        try:
            found = staff.sign_in_elsewhere(rt.engine, email, via=f"oidc:{settings.oidc_issuer}", at=now)
        except Unauthorized as exc:
            if exc.actor is None:
                attempt.refused(
                    rt.engine, exc, role=Role.SECRETARIAT, action="staff.sign_in", subject_type="staff",
                    subject_id="console (single sign-on)",
                )  # fmt: skip
            raise SingleSignOnFailed("no_account") from None
    except SingleSignOnFailed as failed:
        answer = _refused(request, rt, failed, flow["next"] if flow else None)
        answer.delete_cookie(FLOW_COOKIE, path=console + "/sso")
        return answer
    with unit_of_work(rt.engine) as session:
        opened = console_sessions.open_session(session, found, settings, at=now)
    target = str(flow["next"]) if flow else console + "/"
    where = target if opened.verified else console + "/second-factor?next=" + quote(target, safe="/")
    answer = RedirectResponse(where, status_code=303, headers=PAGE_HEADERS)
    _set_session(answer, request, rt, opened.token, int((opened.expires_at - now).total_seconds()))
    answer.delete_cookie(FLOW_COOKIE, path=console + "/sso")
    return answer


def _email_of(settings: Settings, code: str, flow: dict[str, Any]) -> str:
    """The code exchanged for an ID token, and the token's e-mail address once every check holds."""
    if not code:
        raise SingleSignOnFailed("stale")
    provider = provider_of(settings)
    try:
        answer = httpx.post(
            provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri(settings),
                "code_verifier": flow["verifier"],
            },
            auth=(
                settings.oidc_client_id or "",
                settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else "",
            ),
            timeout=TIMEOUT,
        )
        answer.raise_for_status()
        id_token = str(answer.json()["id_token"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise SingleSignOnFailed("unavailable", f"the token endpoint: {exc}") from None
    try:
        try:
            token = jwt.decode(id_token, provider.keys, algorithms=provider.algorithms)
        except JoseError:  # the provider may have rolled its keys: read them again, once
            provider = provider_of(settings, fresh=True)
            token = jwt.decode(id_token, provider.keys, algorithms=provider.algorithms)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": settings.oidc_client_id or ""},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": flow["nonce"]},
            email={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise SingleSignOnFailed("invalid_token", str(exc)) from None
    audiences = token.claims["aud"] if isinstance(token.claims["aud"], list) else [token.claims["aud"]]
    party = token.claims.get("azp")
    if (party is not None and party != settings.oidc_client_id) or (len(audiences) > 1 and party is None):
        raise SingleSignOnFailed("invalid_token", f"authorized party {party!r} for audiences {audiences}")
    if settings.oidc_require_verified_email and token.claims.get("email_verified") is not True:
        raise SingleSignOnFailed("unverified_email")
    if not isinstance(token.claims["email"], str):
        raise SingleSignOnFailed("invalid_token", "the e-mail claim is not text")
    return str(token.claims["email"]).strip().lower()


def _refused(request: Request, rt: Runtime, failed: SingleSignOnFailed, next_path: str | None) -> Response:
    if failed.detail:
        log.warning("single sign-on refused (%s): %s", failed.problem, failed.detail)
    console = console_path(request, rt)
    return render(
        request,
        rt,
        "sign_in.html",
        console_language(request),
        status_code=503 if failed.problem == "unavailable" else 401,
        next=safe_next(next_path, console),
        sso_problem=failed.problem,
    )
