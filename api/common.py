"""What every route shares: the error shape, and its declaration in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path
from fastapi.responses import JSONResponse

from api.schemas import ErrorOut
from domain.hints import Hint, Step


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "a secretariat API key is needed",
        403: "the API key's scope does not allow this (a read-only key changes nothing)",
        404: "not found",
        409: "the round does not accept this now, or a conflicting change",
        413: "the request is too large",
        422: "invalid input: every offending field is listed",
        429: "too many refused attempts (or link requests) from this address: wait the seconds of Retry-After",
        503: "the database or the Prefect server does not answer (the message says which, and what to do)",
    }
    answers: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorOut, "description": described[code]} for code in codes
    }
    if 401 in codes and 429 not in answers:  # a route that takes a credential limits refused ones
        answers[429] = {"model": ErrorOut, "description": described[429]}
    if 429 in answers:
        answers[429]["headers"] = {
            "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
        }
    return answers


#: Every error answer has the shape of `ErrorOut` (the handlers of api/errors.py): the
#: OpenAPI document says so for the codes a route does not name (and FastAPI's own 422
#: shape, which this API never answers, is not declared).
DEFAULT_ERROR: dict[int | str, dict[str, Any]] = {
    "default": {"model": ErrorOut, "description": "any other refusal or failure (500: the engine failed unexpectedly)"}
}


def error_json(
    code: int,
    error: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
    hints: tuple[Hint, ...] = (),
) -> JSONResponse:
    content: dict[str, Any] = {"error": error, "message": message, "errors": errors or []}
    if hints:
        content["next"] = [next_step(h) for h in hints]
    return JSONResponse(status_code=code, content=content)


#: Each step of a refusal's hints as the route that takes it (None where the API has
#: none: loading files and running the database's migrations are done by the secretariat
#: on the command line). Path parameters the hint leaves open stay in braces.
ROUTES: dict[Step, str | None] = {
    Step.LOAD_ROUND: None,
    Step.LIST_ROUNDS: "GET /rounds",
    Step.OPEN_ROUND: None,
    Step.LOAD_PARTIES: None,
    Step.LIST_PARTIES: None,
    Step.LIST_APPLICATIONS: None,
    Step.SCREEN: "POST /rounds/{round_id}/screening",
    Step.OVERRIDE_SCREENING: "POST /rounds/{round_id}/applications/{reference}/override",
    Step.CLOSE_SCREENING: "POST /rounds/{round_id}/review/close",
    Step.LOAD_REVIEWERS: "PUT /reviewers/{email}",
    Step.LIST_REVIEWERS: "GET /reviewers",
    Step.SET_REVIEWER: "PATCH /reviewers/{email}",
    Step.SHOW_ASSIGNMENT: "GET /rounds/{round_id}/review/assignment",
    Step.ASSIGN_REVIEWERS: "POST /rounds/{round_id}/review/assignment",
    Step.INVITE_REVIEWERS: "POST /rounds/{round_id}/review/invitations",
    Step.EXTEND_REVIEW: "PUT /rounds/{round_id}/review/due",
    Step.CLOSE_REVIEW: "POST /rounds/{round_id}/review/close",
    Step.LOAD_COMMITTEE: "PUT /committee/{email}/{term_start}",
    Step.LIST_COMMITTEE: "GET /committee",
    Step.SCHEDULE_MEETING: "PUT /rounds/{round_id}/meeting",
    Step.SET_FUNDS: "PUT /rounds/{round_id}/funds",
    Step.RECORD_DECISIONS: "POST /rounds/{round_id}/decisions",
    Step.LIST_DECISIONS: None,
    Step.SEND_LETTERS: "POST /rounds/{round_id}/letters",
    Step.LIST_FAILED_MESSAGES: "GET /outbox?state=failed",
    Step.MIGRATE: None,
    Step.START_FRESH: None,
    Step.NEW_KEY: None,
    Step.LIST_KEYS: None,
}


def next_step(hint: Hint) -> dict[str, str]:
    """A hint as the API answers it: the step, in words, and the route to call where there is one."""
    answer = hint.as_json()
    route = ROUTES[hint.step]
    if route is not None:
        for name in ("round_id", "reference", "email"):
            value = getattr(hint, name)
            if value is not None:
                route = route.replace("{" + name + "}", quote(value, safe="@"))
        answer["route"] = route
    return answer


#: A number in a route's address (a report's, an amendment's, a review's): a whole number
#: the database holds, so that one out of range is refused (422) rather than reaching it.
Number = Annotated[int, Path(ge=1, le=2**31 - 1)]
