"""What a service refuses: a message that says what is wrong, the fields concerned,
and the steps that would get past it as data (`domain.hints`). The API maps each to
an HTTP status and the steps to routes; the CLI prints the message and the steps as
commands, and exits non-zero."""

from __future__ import annotations

from domain.application import FieldError
from domain.hints import Hint


class ServiceError(Exception):
    code = "error"
    http_status = 400
    #: Set once the refusal is in the audit trail, so that it is recorded once.
    audited = False

    def __init__(
        self,
        message: str,
        errors: list[FieldError] | None = None,
        *,
        hints: tuple[Hint, ...] = (),
        reason: str | None = None,
        language: str | None = None,
        actor: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.hints = hints
        #: What a person's error page says, in their words (e.g. "bundle_expired"); the
        #: page of the status code otherwise.
        self.reason = reason
        #: The language of the person the refusal is for, when their link identified them.
        self.language = language
        #: Whom the refused credential belongs to, where it named someone (a used or
        #: expired link, an ended session): their refusal is audited under their name,
        #: not sampled as an unknown caller's.
        self.actor = actor


class NotFound(ServiceError):
    code = "not_found"
    http_status = 404


class Unauthorized(ServiceError):
    """A missing, unknown, expired or used credential."""

    code = "unauthorized"
    http_status = 401


class Forbidden(ServiceError):
    """A known caller whose credential does not allow this (e.g. a read-only API key)."""

    code = "forbidden"
    http_status = 403


class Gone(ServiceError):
    """A link that worked and no longer does (expired, replaced, or its holder left)."""

    code = "gone"
    http_status = 410


class InvalidInput(ServiceError):
    """Input that names fields: every offending one is listed in `errors`."""

    code = "invalid"
    http_status = 422


class NotAccepting(ServiceError):
    """The round does not accept this now (closed, not yet open, in screening...)."""

    code = "round_not_accepting"
    http_status = 409


class Conflict(ServiceError):
    """Someone else changed it first, or a key was reused for something else."""

    code = "conflict"
    http_status = 409


class NotAllowed(ServiceError):
    """The state machine (of an application or a round) does not allow this."""

    code = "not_allowed"
    http_status = 409


class Unavailable(ServiceError):
    """The database does not answer, or its schema is not the one this engine needs."""

    code = "unavailable"
    http_status = 503
