"""`sip keys`: the secretariat's API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import (
    fail,
)

keys_app = typer.Typer(no_args_is_help=True, help="The secretariat's API keys.")


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="Whose key (kept in the audit trail), e.g. amina.diallo")],
) -> None:
    """Make an API key for a secretariat officer. The key is shown once; the settings keep only its hash."""
    import re
    import secrets

    from engine.services.tokens import token_hash

    if not re.fullmatch(r"[\w.@-]{1,100}", name):
        fail("the name may hold letters, digits and . _ - @ only")
    key = secrets.token_urlsafe(32)
    typer.echo(f"API key for {name} (give it to them; it is not shown again):\n  {key}")
    typer.echo(f"Add to SIP_SECRETARIAT_KEYS (comma-separated) where the API runs:\n  {name}:{token_hash(key)}")
