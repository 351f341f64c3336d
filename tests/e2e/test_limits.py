"""One limit on every request body (api/limits.py), checked before any route, parser or
authentication reads it; the security headers (api/headers.py); the documentation pages
served with their assets from the engine (api/docs.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from api.app import create_app
from api.headers import POLICY, REDOC_POLICY
from engine.db import reading
from engine.services.setup import Runtime
from engine.services.tokens import token_hash
from engine.settings import Settings
from engine.tables import AuditEvent, DecisionRecord, ReviewerRecord, ReviewerToken
from tests.conftest import IN_ROUND1, ROUND1, Clock, example
from tests.streaming import stream_body

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LIMIT = 4_000_000  # SIP_MAX_BODY_BYTES' default: twice intake's SIP_MAX_REQUEST_BYTES
#: The four routes that read a whole body before answering 401 (or 413) to a caller without a key or token.
UNAUTHENTICATED = [
    ("POST", f"/rounds/{ROUND1}/decisions"),
    ("PUT", "/reviewers/someone@example.org"),
    ("POST", "/reviewer/sessions"),
    ("PUT", "/applications/SIP-2018-0001/forms"),
]


@pytest.fixture
def client(sqlite_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings)) as client:
        yield client


def stored(client: TestClient) -> tuple[int, ...]:
    """Rows of what the four routes would write (and of the audit trail)."""
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with reading(rt.engine) as session:
        return tuple(
            session.exec(select(func.count()).select_from(table)).one()
            for table in (AuditEvent, DecisionRecord, ReviewerRecord, ReviewerToken)
        )


def refused_for_size(response: httpx.Response) -> bool:
    body = response.json()
    return (
        response.status_code == 413
        and body["error"] == "too_large"
        and "4.0 MB" in body["message"]
        and "SIP_MAX_BODY_BYTES" in body["message"]
    )


def test_the_default_limit_is_twice_intakes_and_never_below_it(sqlite_settings: Settings) -> None:
    assert sqlite_settings.body_limit == LIMIT == 2 * sqlite_settings.max_request_bytes
    assert Settings(SIP_MAX_REQUEST_BYTES=3_000_000).body_limit == 6_000_000
    assert Settings(SIP_MAX_BODY_BYTES=20_000_000).body_limit == 20_000_000
    with pytest.raises(ValueError, match="SIP_MAX_BODY_BYTES .* is below SIP_MAX_REQUEST_BYTES"):
        Settings(SIP_MAX_BODY_BYTES=1_000_000, SIP_MAX_REQUEST_BYTES=2_000_000)


@pytest.mark.parametrize(("method", "path"), UNAUTHENTICATED)
def test_a_body_declared_over_the_limit_is_refused_413_before_authentication_and_nothing_is_stored(
    client: TestClient, method: str, path: str
) -> None:
    before = stored(client)
    response = client.request(method, path, content=b"x" * (LIMIT + 1))
    assert refused_for_size(response)
    assert stored(client) == before  # no audit row of a refused caller: the route never ran


@pytest.mark.parametrize(("method", "path"), UNAUTHENTICATED)
def test_a_chunked_body_is_refused_413_once_the_limit_is_passed_and_read_no_further(
    sqlite_settings: Settings, method: str, path: str
) -> None:
    pulled = 0
    chunk = b"x" * 1_000_000

    async def body() -> AsyncIterator[bytes]:  # 150 MB, made as it is read, without Content-Length
        nonlocal pulled
        for _ in range(150):
            pulled += 1
            yield chunk

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(sqlite_settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://engine") as http:
            return await http.request(method, path, content=body())

    response = asyncio.run(send())
    assert "content-length" not in response.request.headers
    if path.endswith("/forms"):  # the route reads forms as they stream in, up to intake's own, smaller limit
        assert response.status_code == 413 and "an application is at most 2.0 MB" in response.json()["message"]
        assert pulled <= 2_000_000 // len(chunk) + 2
    else:
        assert refused_for_size(response)
        assert pulled <= LIMIT // len(chunk) + 2  # the body stopped being read when it passed the limit


def test_requests_under_the_limit_are_answered_by_their_routes(sqlite_settings: Settings) -> None:
    key = "an-officer-key-0123456789abcdef0123456789"
    settings = sqlite_settings.model_copy(update={"secretariat_keys": f"amina.diallo:{token_hash(key)}"})
    reviewer = {
        "name": "Ivan Cement",
        "organisation": "Cement Institute",
        "country": "ARM",
        "areas": ["cement"],
        "languages": ["en"],
        "max_load": 4,
    }
    with TestClient(create_app(settings)) as client:
        # nearly 4 MB of JSON (mostly spaces): under the limit, read, parsed and stored as usual
        padded = json.dumps(reviewer).encode() + b" " * 3_900_000
        officer = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        added = client.put("/reviewers/ivan@example.org", headers=officer, content=padded)
        assert added.status_code == 200 and added.json()["outcome"] == "added"
        assert client.put("/reviewers/ivan@example.org", content=padded).status_code == 401
        assert client.post("/reviewer/sessions", json={"token": "not-a-link"}).status_code == 401


@pytest.fixture
def intake_client(open_round1: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(open_round1.settings, now=Clock(IN_ROUND1))) as client:
        yield client


def test_intake_keeps_its_own_limit_under_the_global_one(intake_client: TestClient) -> None:
    url = f"/rounds/{ROUND1}/applications"
    assert intake_client.post(url, content=example("ben-asgm-complete.json")).status_code == 201
    doc = json.loads(example("ben-asgm-complete.json"))
    doc["form_a"]["title"] = "x" * 2_500_000
    own = intake_client.post(url, content=json.dumps(doc))
    assert own.status_code == 413 and "an application is at most 2.0 MB" in own.json()["message"]
    doc["form_a"]["title"] = "x" * 5_000_000
    assert refused_for_size(intake_client.post(url, content=json.dumps(doc)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_served_api_answers_413_to_a_150_megabyte_body_before_it_is_sent(sqlite_settings: Settings) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "SIP_DATA_DIR": str(sqlite_settings.data_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        for method, path in UNAUTHENTICATED:
            declared = stream_body(port, method, path, size=150_000_000, declare_length=True)
            chunked = stream_body(port, method, path, size=150_000_000, declare_length=False)
            assert declared.status == 413 and b"SIP_MAX_BODY_BYTES" in declared.answer, declared
            assert chunked.status == 413 and b'"too_large"' in chunked.answer, chunked  # forms: intake's limit
            # answered while the client was still sending: what it sent is the socket buffers' worth
            # (Content-Length) or the limit and the buffers (chunked), never the 150 MB
            assert declared.bytes_sent < 20_000_000 and chunked.bytes_sent < LIMIT + 20_000_000, (declared, chunked)
    finally:
        server.terminate()
        server.wait(10)


# --- security headers ---------------------------------------------------------------------


def test_html_pages_carry_a_policy_without_inline_script_and_no_hsts_over_http(client: TestClient) -> None:
    for path in ("/status", "/reviewer/sign-in?token=abc", "/reviewer/links"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == POLICY
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in page.headers
        assert "<script" not in page.text and "<style" not in page.text and "style=" not in page.text
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)">', page.text).group(1)  # type: ignore[union-attr]
        css = client.get(httpx.URL(f"http://testserver{path}").join(stylesheet))
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    policy = dict(part.strip().split(" ", 1) for part in POLICY.split(";"))
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"


def test_json_answers_and_refusals_carry_the_headers_too(client: TestClient) -> None:
    for response in (client.get("/rounds"), client.get("/applications/X"), client.post("/reviewer/sessions")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == POLICY


def test_hsts_is_sent_when_the_request_came_over_https(sqlite_settings: Settings) -> None:
    with TestClient(create_app(sqlite_settings), base_url="https://sip.example.org") as client:
        page = client.get("/status")
    assert page.status_code == 200 and page.headers["strict-transport-security"] == "max-age=31536000"


# --- documentation pages ----------------------------------------------------------------------


def test_the_documentation_pages_load_nothing_from_another_host_and_run_no_inline_script(client: TestClient) -> None:
    for path, scripts, policy in (
        ("/docs", ["docs/assets/swagger-ui-bundle.js", "assets/swagger-init.js"], POLICY),
        ("/redoc", ["docs/assets/redoc.standalone.js"], REDOC_POLICY),  # ReDoc writes <style> elements
    ):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-security-policy"] == policy
        assert "://" not in page.text and "cdn" not in page.text.lower()
        assert re.findall(r'<script src="([^"]+)"></script>', page.text) == scripts
        assert "<script>" not in page.text  # every script is a file
        for script in scripts:
            served = client.get(f"/{script}")
            assert served.status_code == 200 and "javascript" in served.headers["content-type"]
            assert len(served.content) > 100 or script.endswith("init.js")
    css = client.get("/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "script-src 'self';" in REDOC_POLICY  # ReDoc's page allows no inline script either
    assert client.get("/openapi.json").status_code == 200
