"""`sip staff add|list|disable`: an account added with its password from standard input,
listed, and disabled, as an administrator does it at the terminal."""

from __future__ import annotations

from typer.testing import CliRunner

from cli import app
from engine.settings import Settings
from tests.tables import printed_row

runner = CliRunner()


def test_an_account_is_added_listed_and_disabled_on_the_command_line(sqlite_settings: Settings) -> None:
    added = runner.invoke(
        app,
        ["staff", "add", "amina.diallo@un.example.org", "--name", "Amina Diallo", "--role", "read-only",
         "--password-stdin", "--by", "admin"],
        input="mercury free artisanal gold\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "account amina.diallo@un.example.org added for Amina Diallo (role read-only)" in added.stdout
    weak = runner.invoke(
        app, ["staff", "add", "kofi@un.example.org", "--name", "Kofi", "--password-stdin"], input="short\n"
    )
    assert weak.exit_code != 0 and "at least 12 characters" in weak.stderr
    listed = runner.invoke(app, ["staff", "list"])
    printed_row(listed.stdout, "amina.diallo@un.example.org", "Amina Diallo", "read-only", "active")
    disabled = runner.invoke(app, ["staff", "disable", "amina.diallo@un.example.org", "--by", "admin"])
    assert disabled.exit_code == 0 and "can no longer sign in" in disabled.stdout
    printed_row(runner.invoke(app, ["staff", "list"]).stdout, "amina.diallo@un.example.org", "disabled")
