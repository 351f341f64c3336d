"""What every route shares: the error shape, and its declaration in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from api.schemas import ErrorOut


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "a secretariat API key is needed",
        404: "not found",
        409: "the round does not accept this now, or a conflicting change",
        413: "the request is too large",
        422: "invalid input: every offending field is listed",
        503: "the database or the Prefect server does not answer (the message says which, and what to do)",
    }
    return {code: {"model": ErrorOut, "description": described[code]} for code in codes}


#: Every error answer has the shape of `ErrorOut` (the handlers of api/errors.py): the
#: OpenAPI document says so for the codes a route does not name (and FastAPI's own 422
#: shape, which this API never answers, is not declared).
DEFAULT_ERROR: dict[int | str, dict[str, Any]] = {
    "default": {"model": ErrorOut, "description": "any other refusal or failure (500: the engine failed unexpectedly)"}
}


def error_json(code: int, error: str, message: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse(status_code=code, content={"error": error, "message": message, "errors": errors or []})
