"""`sip keys new|list|revoke` with the API that checks the keys: a key made on the
command line opens the API (as far as its scope goes), its last use shows in the
list, and once revoked it is refused at the next request."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from typer.testing import CliRunner

from api.app import create_app
from cli import app
from engine.services.tokens import token_hash
from engine.settings import Settings, get_settings
from tests.tables import printed_row

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

runner = CliRunner()
OLD_KEY = "an-officer-key-0123456789abcdef0123456789"


def sip(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def settings(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An installation that still has a key in SIP_SECRETARIAT_KEYS."""
    monkeypatch.setenv("SIP_SECRETARIAT_KEYS", f"old.officer:{token_hash(OLD_KEY)}")
    get_settings.cache_clear()
    return get_settings()


def test_a_key_made_on_the_command_line_works_shows_its_last_use_and_stops_at_once_when_revoked(
    settings: Settings,
) -> None:
    code, out, err = sip("keys", "new", "amina.diallo", "--scope", "read", "--expires-in", "30")
    assert code == 0, err
    assert "API key 1 for amina.diallo (scope read, expires " in out and "it is not shown again" in out
    key = re.search(r"^  (sip_\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
    code, out, _ = sip("keys", "list")
    assert code == 0
    printed_row(out, "amina.diallo", key[:12] + "…", "read", "never", "active")
    printed_row(out, "old.officer", "-", "full", "-", "never", "not tracked", "from settings")

    with TestClient(create_app(settings)) as client:
        assert client.get("/reviewers", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        refused = client.put("/reviewers/ana@gmp.example.org", headers={"Authorization": f"Bearer {key}"}, json={})
        assert refused.status_code == 403 and "scope full" in refused.json()["message"]
        code, out, _ = sip("keys", "list", "--json")
        [made, old] = json.loads(out)
        assert made["last_used_at"] is not None and made["state"] == "active" and made["scope"] == "read"
        assert key not in out and old == {
            "id": None,
            "name": "old.officer",
            "prefix": None,
            "scope": "full",
            "state": "from settings",
            "created_at": None,
            "expires_at": None,
            "last_used_at": None,
            "revoked_at": None,
            "revoked_by": None,
            "reason": None,
        }

        code, out, err = sip("keys", "revoke", "amina.diallo", "--reason", "left the unit")
        assert code == 0, err
        assert out.strip() == f"revoked key 1 of amina.diallo ({key[:12]}…, scope read)"
        answer = client.get("/reviewers", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 401 and "was revoked on" in answer.json()["message"]
        assert client.get("/reviewers", headers={"Authorization": f"Bearer {OLD_KEY}"}).status_code == 200
    code, out, _ = sip("keys", "list")
    printed_row(out, "amina.diallo", "read", "revoked")


def test_the_keys_commands_refuse_what_they_cannot_do_and_say_what_to_do(settings: Settings) -> None:
    for args, said in (
        (("keys", "new", "amina diallo"), "the name may hold letters, digits and . _ - @ only"),
        (("keys", "new", "amina", "--expires-in", "3", "--expires", "2099-01-01"), "not both"),
        (("keys", "new", "amina", "--expires", "2020-01-01"), "the key would expire at once"),
        (("keys", "new", "amina", "--expires", "31/12/2030"), "is not a date; write it as YYYY-MM-DD"),
        (("keys", "new", "amina", "--expires", "2999-01-01"), "a key works for 3650 days at most"),
        (("keys", "revoke", "7"), "no API key 7\n  next: sip keys list"),
        (("keys", "revoke", "nobody"), "'nobody' has no API key to revoke"),
        (("keys", "revoke", "old.officer"), "kept in the setting SIP_SECRETARIAT_KEYS"),
    ):
        code, out, err = sip(*args)
        assert code != 0 and said in err, (args, out, err)
    assert sip("keys", "new", "amina", "--scope", "admin")[0] == 2  # not a scope
    code, out, _ = sip("keys", "list", "--json")
    assert [k["name"] for k in json.loads(out)] == ["old.officer"]  # nothing was made


def test_a_key_lasts_the_days_of_the_setting_unless_told_otherwise(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    monkeypatch.setenv("SIP_SECRETARIAT_KEY_DAYS", "90")
    get_settings.cache_clear()
    made = [json.loads(sip("keys", "new", "amina", *extra, "--json")[1]) for extra in ((), ("--expires", "2030-06-01"))]
    lasts = datetime.fromisoformat(made[0]["expires_at"]) - datetime.fromisoformat(made[0]["created_at"])
    assert lasts == timedelta(days=90) and made[0]["scope"] == "full" and made[0]["key"].startswith("sip_")
    assert datetime.fromisoformat(made[1]["expires_at"]) == datetime(2030, 6, 1, tzinfo=UTC)
