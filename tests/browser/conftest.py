"""Browser tests: the people's pages served on loopback by uvicorn, driven by Playwright
in Debian's Chromium (`/usr/bin/chromium`, installed by scripts/test.sh where it may).
Where there is no browser they skip, saying so. Each test writes screenshots of the
pages it saw under `test-output/screenshots/`, for people to look at."""

from __future__ import annotations

import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from engine.settings import Settings
from tests.conftest import Clock
from tests.processes import free_port

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One browser for the session (a page per test)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install chromium, as scripts/test.sh does as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev extra
        pytest.skip("no browser driver: Playwright is not installed (pip install -e '.[dev]')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                yield browser
            finally:
                browser.close()


@dataclass
class Served:
    """The engine's app served on loopback, with a clock the test sets."""

    url: str
    clock: Clock


@pytest.fixture
def serve(settings: Settings) -> Iterator[Any]:
    """`serve(now)`: the app of the test's settings served by uvicorn in a thread, at `now`."""
    servers: list[uvicorn.Server] = []

    def start(now: Any) -> Served:
        clock = Clock(now)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, now=clock), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not start on loopback within 20 s")
            time.sleep(0.02)
        servers.append(server)
        return Served(f"http://127.0.0.1:{port}", clock)

    yield start
    for server in servers:
        server.should_exit = True


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context and page."""
    context = chromium.new_context(viewport={"width": 1000, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Any:
    """Writes a full-page screenshot under test-output/screenshots/<test>/<name>.png."""
    folder = SHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)

    def take(page: Any, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
