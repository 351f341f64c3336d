"""The pure domain of the SIP engine: no database, web framework or orchestrator here."""
