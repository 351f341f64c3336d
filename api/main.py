"""The ASGI application, configured from the environment (or a `.env` file), for a
process manager: `uvicorn api.main:app --workers 4`, or gunicorn with uvicorn's
worker class. `sip serve --workers N` runs the same.

Where the database is migrated as a step of its own (SIP_MIGRATE_ON_START=false), the
workers only check that its schema is current."""

from __future__ import annotations

from pydantic import ValidationError

from api.app import create_app
from engine.settings import get_settings

try:
    _settings = get_settings()
except ValidationError as exc:  # say which setting is wrong, not a traceback of the loader
    problems = "; ".join(
        f"{e['loc'][0] if e['loc'] else 'settings'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
    )
    raise SystemExit(f"the settings are not valid ({problems}); correct them in the environment or .env") from None

app = create_app(_settings)
