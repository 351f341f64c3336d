"""Prefect flows: each stage of a round, calling the same services as the CLI and API.

Defaults for Prefect on this kind of machine are set before Prefect is imported:
no analytics (there is no network), and a start-up timeout long enough for the
ephemeral server on a fresh 2-core machine."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_UI_ENABLED", "false")
