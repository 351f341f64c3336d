"""The SIP engine's service layer: settings, persistence, services and the CLI.

Depends on `domain/`; `api/`, `flows/` and the CLI depend on it."""

from engine import addresses as _addresses  # noqa: F401  (an e-mail address's domain is checked once per domain)
