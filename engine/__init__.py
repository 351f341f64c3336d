"""The SIP engine's service layer: settings, persistence, services and the CLI.

Depends on `domain/`; `api/`, `flows/` and the CLI depend on it."""
