"""`sip`: the command line of the SIP engine, thin over the same services the API and
the flows call. One module per group of commands; `cli.common` holds what they share."""

from cli.main import app, main

__all__ = ["app", "main"]
