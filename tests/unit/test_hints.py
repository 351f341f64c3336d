"""A refusal's hints (what to do next, as data) render as commands that exist on the
command line and as routes that exist in the API, for every step there is."""

from __future__ import annotations

import re
from typing import Any

import typer

from api.common import ROUTES, next_step
from cli.common import COMMANDS, command_for
from domain.hints import WORDS, Hint, Step
from engine.settings import Settings


def _commands() -> set[str]:
    """Every command path of `sip` ("rounds load", "screen", "screen override", ...)."""
    root = typer.main.get_command(__import__("cli.main", fromlist=["app"]).app)
    found: set[str] = set()

    def walk(command: Any, path: str) -> None:  # typer's own click (typer._click): a group has commands
        found.add(path.strip())
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")

    walk(root, "")
    return found


def test_every_step_has_words_a_command_and_an_answer_for_the_api() -> None:
    assert set(WORDS) == set(COMMANDS) == set(ROUTES) == set(Step)


def test_every_steps_command_is_a_command_of_sip() -> None:
    commands = _commands()
    for step in Step:
        words = command_for(Hint(step)).split()
        assert words[0] == "sip"
        named = [w for w in words[1:] if re.fullmatch(r"[a-z0-9-]+", w)]
        assert " ".join(named[:2]) in commands or named[0] in commands, step


def test_every_steps_route_is_a_route_of_the_api(tmp_path: object) -> None:
    from api.app import create_app

    app = create_app(Settings(data_dir=str(tmp_path), secret_key="k" * 32))
    routes = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    for step, route in ROUTES.items():
        if route is not None:
            method, path = route.split(" ")
            assert (method, path.split("?")[0]) in routes, step


def test_a_hint_fills_in_what_it_names_and_leaves_the_rest_as_placeholders() -> None:
    override = Hint(Step.OVERRIDE_SCREENING, round_id="sip-2018-r1", reference="SIP-2018-R1-BEN-001")
    assert command_for(override).startswith("sip screen override sip-2018-r1 SIP-2018-R1-BEN-001 --verdict ")
    assert command_for(Hint(Step.SET_REVIEWER, email="a@b.org", option="max_load")) == (
        "sip reviewers set a@b.org --max-load N"
    )
    assert command_for(Hint(Step.SET_FUNDS)) == "sip committee funds ROUND_ID AMOUNT"
    assert next_step(Hint(Step.SET_REVIEWER, email="ana+gmp@b.org")) == {
        "step": "set_reviewer",
        "what": "change the reviewer in the register",
        "email": "ana+gmp@b.org",
        "route": "PATCH /reviewers/ana%2Bgmp@b.org",
    }
    assert "route" not in next_step(Hint(Step.MIGRATE))
