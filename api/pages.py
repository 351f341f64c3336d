"""The pages people open (the applicant's status page, a reviewer's sign-in pages, a
committee member's bundle link) and their errors: a page in the person's language, with
the status code of what went wrong, where an API client gets the JSON of `api.errors`.

A route serving people says so with `dependencies=[PersonPage(...)]`; the error
handlers ask `person_page(request)` whether to answer a page."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from babel import negotiate_locale
from fastapi import Request
from fastapi.params import Depends
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from api.schemas import ErrorOut
from engine.services.committee.bundles import LINK_DAYS_AFTER_MEETING
from engine.settings import Settings
from notifications import LANGUAGES
from notifications.render import PAGES, environment

#: Refusals with words of their own on the page (a refusal's `reason`, engine.services.errors).
REASONS = frozenset(
    {
        "bundle_unknown",
        "bundle_replaced",
        "bundle_left",
        "bundle_expired",
        "bundle_missing",
        "bundle_withdrawn",
        "link_unknown",
        "link_used",
        "link_expired",
        "link_withdrawn",
        "draft_unknown",
        "draft_submitted",
        "form_token",
        "forms_expired",
        "round_closed",
        "console_session",
        "console_read_only",
        "console_admin",
    }
)
#: A reviewer's sign-in link that does not work is 401 for the API (POST /reviewer/sessions);
#: on its page it is what the link is: unknown (404), or worked and no longer does (410).
PAGE_STATUS = {"link_unknown": 404, "link_used": 410, "link_expired": 410, "link_withdrawn": 410}
#: Status codes with a page of their own; any other is the page of its class (4xx, 5xx).
STATUSES = (400, 401, 403, 404, 405, 409, 410, 413, 422, 429, 500, 503)
#: Every page a person opens: never cached (it may show what is theirs), no Referer (links carry tokens).
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The fields a person's form may send: the form is read here first, and a route's later
#: reading gets this same form, so this is every page's limit. The applicant's form sends
#: a field per cell of its rows (a thousand budget lines are five thousand fields); the
#: size of the request is bounded on its own (api/limits.py).
FORM_FIELDS = 10_000


async def _note_language(request: Request) -> None:
    """Notes the page's `lang` (in its address, or in the form it sent) for its error page,
    before the route's parameters are checked (a 422 page is in it too)."""
    lang = request.query_params.get("lang")
    if lang is None and request.headers.get("content-type", "").startswith(FORMS):
        value = (await request.form(max_fields=FORM_FIELDS)).get("lang")  # the form the route reads (read once)
        lang = value if isinstance(value, str) else None
    request.state.page_language = lang


@dataclass(frozen=True)
class PersonPage(Depends):
    """Marks a route that people open in a browser: its errors are pages in their language.

    `back`: the page to go back to (relative to the route's address, as the pages' own
    links are), if there is a sensible one. `prefer`: what a client that accepts HTML and
    JSON alike (`*/*`, or no Accept header) gets; a browser asks for HTML, and an API
    client that asks for JSON (Accept: application/json) gets the API's JSON errors."""

    dependency: Callable[..., Any] | None = _note_language
    back: str | None = None
    prefer: Literal["html", "json"] = "html"


F = TypeVar("F", bound=Callable[..., Any])


def page_route(
    method: Callable[..., Callable[[F], F]], path: str, page: PersonPage, code: int = 200
) -> Callable[[F], F]:
    """A route of the people's pages (HTML, not in the API's document), whose errors are
    pages in the person's language going back to `page`'s link."""
    return method(
        path,
        response_model=None,
        response_class=HTMLResponse,
        status_code=code,
        include_in_schema=False,
        dependencies=[page],
    )


def marker(request: Request) -> PersonPage | None:
    """The `PersonPage` marker of the route the request reached, if it has one (a request
    answered before it reached a route, e.g. an unknown address, has none)."""
    return marks(request.scope.get("route"))


def marks(route: object) -> PersonPage | None:
    """A route's `PersonPage` marker, if it serves people."""
    for dependency in getattr(route, "dependencies", ()):
        if isinstance(dependency, PersonPage):
            return dependency
    return None


def person_page(request: Request) -> PersonPage | None:
    """The route's marker when the error should be a page: a route serving people, and a
    client that does not prefer JSON (by its Accept header)."""
    page = marker(request)
    if page is None:
        return None
    accept = request.headers.get("accept") or "*/*"
    html, json = _quality(accept, "text/html"), _quality(accept, "application/json")
    if html == json == 0:
        return page if page.prefer == "html" else None
    if html > json or (html == json and page.prefer == "html"):
        return page
    return None


def _ranges(header: str) -> Iterable[tuple[str, float]]:
    """The items of an Accept or Accept-Language header, with their q-values, in order."""
    for item in header.split(","):
        value, *params = (part.strip() for part in item.split(";"))
        if not value:
            continue
        q = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(number)
                except ValueError:
                    q = 0.0
        if math.isfinite(q):
            yield value.lower(), max(0.0, min(q, 1.0))


def _quality(accept: str, media_type: str) -> float:
    """How much an Accept header wants `media_type`: the q of its most specific range."""
    kind = media_type.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for value, q in _ranges(accept):
        specificity = 2 if value == media_type else 1 if value == f"{kind}/*" else 0 if value == "*/*" else -1
        if specificity > best[0]:
            best = (specificity, q)
    return best[1]


def browser_language(request: Request) -> str | None:
    """The browser's language among the engine's, from Accept-Language (babel negotiates)."""
    header = request.headers.get("accept-language", "")
    preferred = [value for value, q in sorted(_ranges(header), key=lambda r: -r[1]) if q > 0 and value != "*"]
    return negotiate_locale(preferred, list(LANGUAGES), sep="-") if preferred else None


def page_language(request: Request, lang: str | None = None, person: str | None = None) -> str:
    """The language of a page: the person's own when known, else the page's `lang`
    parameter, else the browser's Accept-Language, else English."""
    for candidate in (person, lang):
        if candidate in LANGUAGES:
            return candidate
    return browser_language(request) or "en"


def error_page(
    request: Request,
    page: PersonPage,
    status_code: int,
    *,
    reason: str | None = None,
    language: str | None = None,
    fields: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A person's error page: what happened and what to do next, in their language."""
    noted = getattr(request.state, "page_language", None)  # None: the route's marker did not run (e.g. 405)
    lang = page_language(request, noted or request.query_params.get("lang"), language)
    reason = reason if reason in REASONS else None
    status_code = PAGE_STATUS.get(reason or "", status_code)
    case = status_code if status_code in STATUSES else 500 if status_code >= 500 else 400
    retry = (headers or {}).get("Retry-After", (headers or {}).get("retry-after", ""))
    minutes = math.ceil(int(retry) / 60) if retry.isdigit() else None
    email = request.app.state.settings.programme_email
    html = (
        environment(lang, PAGES)
        .get_template("error.html")
        .render(
            language=lang,
            case=case,
            reason=reason,
            fields=fields or [],
            minutes=max(minutes, 1) if minutes is not None else None,
            # a path from the site's root (the console's) is put under the proxy's prefix, if any
            back=site_root(request, request.app.state.settings) + page.back
            if page.back and page.back.startswith("/")
            else page.back,
            assets=page_assets(request),
            mail_link=Markup('<a href="mailto:{0}">{0}</a>').format(email),
            link_days=LINK_DAYS_AFTER_MEETING,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers={**(headers or {}), **PAGE_HEADERS})


#: The language switch of the people's pages: each language in its own name.
LANGUAGE_NAMES = (("en", "English"), ("fr", "Français"), ("es", "Español"))


def site_root(request: Request, settings: Settings) -> str:
    """Where the site starts: the proxy's prefix as uvicorn was told it (--root-path), else
    the path of the public address the e-mailed links use."""
    return str(request.scope.get("root_path") or urlsplit(settings.public_base_url).path).rstrip("/")


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether a person's cookies are sent over HTTPS only: the request came over it, or
    the public address the e-mailed links use is one."""
    return request.url.scheme == "https" or settings.public_base_url.startswith("https://")


def page_assets(request: Request) -> str:
    """The stylesheet's folder relative to the page (`assets/` at the top, `../assets/`
    one level down), so that it holds behind a proxy that serves the engine under a prefix."""
    root = request.scope.get("root_path", "")
    path = request.url.path[len(root) :] if root and request.url.path.startswith(root) else request.url.path
    return "../" * max(path.count("/") - 1, 0) + "assets/"


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The problems of a form as the error page names them: the field (its last name in
    `loc`), the kind of problem, and the limit where there is one."""
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "body", "path", "header")]
        kind = str(error.get("type", ""))
        limit = (error.get("ctx") or {}).get("max_length")
        problems.append(
            {
                "field": loc[-1] if loc else "",
                "problem": "missing" if kind == "missing" else "too_long" if kind == "string_too_long" else "invalid",
                "limit": limit,
            }
        )
    return problems


def page_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The errors of a page in the OpenAPI document: a page for a browser, JSON for an API client."""
    described: dict[int | str, str] = {
        401: "the link or code is not valid",
        404: "not found (an unknown link)",
        410: "the link worked and no longer does (expired, replaced, or its holder left)",
        422: "invalid input: every offending field is listed",
        429: "too many refused attempts from this address: wait the seconds of Retry-After",
        503: "the database does not answer (a page saying to try again later)",
        "default": "any other refusal or failure (500: the engine failed unexpectedly)",
    }
    content = {
        "text/html": {"schema": {"type": "string"}},
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorOut.__name__}"}},
    }
    keys: tuple[int | str, ...] = (*codes, "default")
    answers: dict[int | str, dict[str, Any]] = {
        code: {"description": described[code], "content": content} for code in keys
    }
    if 429 in answers:
        answers[429]["headers"] = {
            "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
        }
    return answers
