"""No secret reaches a log line. The links people are sent carry a token in their
address (a committee member's bundle link works for 30 days, a reviewer's sign-in link
once), and the server's access log writes every address it serves: the token's value
is replaced there before the line is written."""

from __future__ import annotations

import logging
import re

#: A query parameter that carries a secret, and its value.
SECRET_PARAMETER = re.compile(r"(?<=[?&])(token|access_code|key|code|state)=[^&\s\"]*")


class RedactSecrets(logging.Filter):
    """Replaces the value of every secret query parameter in a record's arguments (the
    access log passes the path with its query string as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                SECRET_PARAMETER.sub(r"\1=[redacted]", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = SECRET_PARAMETER.sub(r"\1=[redacted]", record.msg)
        return True


def redact_access_log() -> None:
    """Put the filter on the server's access log (once, however many apps are made)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())
