"""The applicant's portal: apply online to an open round, in English, French or Spanish.

An applicant starts an application with their e-mail address; the draft's link is sent
there, and a cookie keeps the draft open in this browser. The form is forms A, B and C
of `sip-application/1`; saving keeps it as it is, and each problem intake would find
is shown beside its field. Submitting takes it in through intake like an application
sent to the API (the same checks and receipt), then shows the receipt with the access
code. After an information request or an *incomplete* finding, the status page leads to
a form to send the forms again (`follow_up.resubmit_forms`, as the API's PUT does).

Every form carries a token that a page of another site cannot know: the draft's forms,
one derived from the draft's own token; the start form, one derived from a cookie this
site set; the forms sent again, the proof that the access code was given."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import TypeAdapter, ValidationError
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from api.application_form import ROWS, budget_of, content_from_form, problem_of, read_amount, value_at
from api.attempts import Attempt, AttemptDep, link_request
from api.deps import NowDep, RuntimeDep
from api.grant_report_form import fields_of, report_from_fields
from api.pages import (
    FORM_FIELDS,
    LANGUAGE_NAMES,
    PAGE_HEADERS,
    PersonPage,
    page_assets,
    page_language,
    page_route,
    secure_cookies,
    site_root,
)
from domain.application import BUDGET_CATEGORIES, DocumentError, Email, FieldError, load_json, validate_document
from domain.lifecycle import PublicStatus, Role
from domain.money import to_cents
from engine.db import reading, unit_of_work
from engine.services import applications as app_service
from engine.services import drafts, follow_up
from engine.services.errors import Conflict, Forbidden, InvalidInput, NotAccepting, NotAllowed, NotFound
from engine.services.parties import party_names
from engine.services.rounds import definition_of, get_round
from engine.services.setup import Runtime
from engine.services.tokens import status_proof, status_proof_until
from notifications import LANGUAGES, labels
from notifications.render import PAGES, environment

router = APIRouter(prefix="/apply", tags=["applicant portal"], include_in_schema=False)
#: The draft open in this browser (HttpOnly; SameSite=Lax; Secure over HTTPS; path /apply).
COOKIE = "sip_draft"
#: The start form's own cookie, for its form token.
START_COOKIE = "sip_apply"
START_PAGE = PersonPage(back="../apply")
TOP_PAGE = PersonPage(back="apply")
#: How long the forms page holds without the access code again (the proof it carries).
FORMS_SECONDS = 12 * 3600
FORMS_PROOF = "forms-page"
#: The statuses after which the applicant sends forms again.
RESEND = frozenset({PublicStatus.INCOMPLETE, PublicStatus.INFORMATION_REQUESTED})
#: How many empty rows each list of the form shows below its filled ones (one more on request).
SPARE = {"form_a.outputs": 1, "form_a.workplan": 2, "form_b.lines": 3, "form_b.co_financing": 1}


def _cookie(answer: Response, request: Request, rt: Runtime, name: str, value: str, seconds: int) -> None:
    answer.set_cookie(
        name,
        value,
        max_age=max(seconds, 0),
        path=site_root(request, rt.settings) + "/apply",
        secure=secure_cookies(request, rt.settings),
        httponly=True,
        samesite="lax",
    )


def _mac(rt: Runtime, purpose: str, value: str) -> str:
    return hmac.new(rt.settings.key(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def _check(rt: Runtime, purpose: str, value: str, given: str, actor: str | None = None) -> None:
    """A form must carry the token of its page; `actor`: whose refusal it is, where known."""
    if not value or not hmac.compare_digest(given.encode(), _mac(rt, purpose, value).encode()):
        raise Forbidden(
            "this form was not sent from the application page (or the page is too old): open the page again "
            "and send it from there",
            reason="form_token",
            actor=actor,
        )


def _render(request: Request, rt: Runtime, template: str, language: str, *, code: int = 200, **context: Any) -> Any:
    root = site_root(request, rt.settings)
    with reading(rt.engine) as session:
        names = party_names(session)
    parties = sorted(((c, names.name(c, language)) for c in names.codes()), key=lambda p: p[1].casefold())
    currency = context.get("currency", "USD")
    if "doc" in context:  # the application's form
        doc, problems = context["doc"], context.get("problems", [])
        first: dict[str, dict[str, Any]] = {}
        for p in problems:
            first.setdefault(p["field"], p)
        context.update(
            value=lambda name: value_at(doc, name, language),
            problem=first.get,
            budget=budget_of(doc),
        )
    html = (
        environment(language, PAGES)
        .get_template(template)
        .render(
            language=language,
            languages=LANGUAGE_NAMES,
            root=root,
            parties=parties,
            categories=BUDGET_CATEGORIES,
            code=lambda value: labels.code(value, language),
            label=lambda table, key: labels.label(getattr(labels, table), key, language),
            field_label=lambda name: labels.field_label(name, language),
            money=lambda amount: labels.money(amount, currency, language),
            assets=page_assets(request),
            programme_email=rt.settings.programme_email,
            **context,
        )
    )
    return HTMLResponse(html, status_code=code, headers=PAGE_HEADERS)


# --- starting: the open rounds, and a new draft --------------------------------------------------


@page_route(router.get, "", TOP_PAGE)
def start_page(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    lang: str | None = Query(None, max_length=5),
    forgotten: str | None = Query(None, max_length=2),
) -> Any:
    """The rounds open for applications, each with a form to start an application."""
    language = page_language(request, lang)
    seed = request.cookies.get(START_COOKIE) or secrets.token_urlsafe(24)
    rounds = drafts.open_rounds(rt.engine, now)
    answer = _render(
        request,
        rt,
        "apply_start.html",
        language,
        rounds=[(round_id, d.title_in(language), d.closes_at, d.timezone) for round_id, d in rounds],
        form_token=_mac(rt, "apply-start", seed),
        link_sent=False,
        forgotten=bool(forgotten),
    )
    _cookie(answer, request, rt, START_COOKIE, seed, 24 * 3600)
    return answer


@page_route(router.post, "/start", START_PAGE, status.HTTP_303_SEE_OTHER)
def start(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    round_id: Annotated[str, Form(min_length=1, max_length=40)],
    email: Annotated[str, Form(min_length=1, max_length=320)],
    form_token: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
    _limit: None = Depends(link_request),
) -> Any:
    """Start a draft: its link goes to `email`, and this browser keeps it open. Each sends
    a message, so a source may start only so many (SIP_RATE_LIMIT_LINK_REQUESTS)."""
    language = page_language(request, lang)
    with attempt.refusals(rt.engine, role=Role.APPLICANT, action="draft.start", subject_type="draft", subject_id="-"):
        _check(rt, "apply-start", request.cookies.get(START_COOKIE, ""), form_token)
    address = _email(email.strip())
    try:
        started = drafts.start_in(rt.engine, rt.settings, round_id, address, language, at=now)
    except NotAccepting as exc:
        raise NotAccepting(exc.message, reason="round_closed") from None
    answer = RedirectResponse("draft?started=1", status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)
    _keep_draft(answer, request, rt, started.token, started.closes_at, now)
    return answer


def _keep_draft(
    answer: Response, request: Request, rt: Runtime, token: str, closes_at: datetime, now: datetime
) -> None:
    """The cookie that keeps a draft open in this browser: until a day after its round
    closes (a draft cannot be submitted after that; its link opens it again)."""
    seconds = int((closes_at - now).total_seconds()) + 24 * 3600
    _cookie(answer, request, rt, COOKIE, token, max(seconds, 3600))


_ADDRESS: TypeAdapter[str] = TypeAdapter(Email)


def _email(value: str) -> str:
    try:
        return str(_ADDRESS.validate_python(value))
    except ValidationError:
        raise InvalidInput(
            "the e-mail address is not valid",
            [FieldError(path="$.email", message="is not a valid e-mail address", kind="email")],
        ) from None


@page_route(router.post, "/links", START_PAGE, status.HTTP_202_ACCEPTED)
async def new_links(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    email: Annotated[str, Form(min_length=1, max_length=320)],
    lang: Annotated[str | None, Form(max_length=5)] = None,
    _limit: None = Depends(link_request),
) -> Any:
    """Send the links of this address's drafts again. The page says the same whether or not
    the address has any (it would otherwise tell a stranger who is applying)."""
    language = page_language(request, lang)
    address = _email(email.strip())

    def send() -> None:
        with unit_of_work(rt.engine) as session:
            drafts.send_links(session, rt.settings, address, at=now)

    await run_in_threadpool(send)
    return _render(
        request, rt, "apply_start.html", language, code=202, rounds=None, link_sent=True, form_token="", forgotten=False
    )


# --- the draft ----------------------------------------------------------------------------------


@page_route(router.get, "/draft", START_PAGE)
def draft_page(
    request: Request,
    rt: RuntimeDep,
    now: NowDep,
    attempt: AttemptDep,
    token: str | None = Query(None, max_length=200),
    lang: str | None = Query(None, max_length=5),
    started: str | None = Query(None, max_length=2),
    saved: str | None = Query(None, max_length=2),
) -> Any:
    """The draft: its form, or its receipt once submitted. The e-mailed link (`?token=`)
    opens it in this browser, then the page is shown at its address without the token."""
    if token:
        draft = _open(rt, attempt, token, now)
        where = "draft" + (f"?lang={lang}" if lang in LANGUAGES else "")
        answer: Any = RedirectResponse(where, status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)
        _keep_draft(answer, request, rt, token, draft.definition.closes_at, now)
        return answer
    held = request.cookies.get(COOKIE)
    draft = _open(rt, attempt, held, now)
    language = page_language(request, lang, None if lang else draft.language)
    return _draft_page(request, rt, draft, language, notice="started" if started else "saved" if saved else None)


def _open(rt: Runtime, attempt: Attempt, token: str | None, now: datetime) -> drafts.Draft:
    """The draft of this link or cookie; any other is refused alike (404), counted and sampled."""
    with (
        attempt.refusals(rt.engine, role=Role.APPLICANT, action="draft.open", subject_type="draft", subject_id="link"),
        reading(rt.engine) as session,
    ):
        return drafts.open_draft(session, rt.settings, token, at=now)


def _rows(content: dict[str, Any], listing: str, more: str | None) -> int:
    form, key = listing.split(".")
    filled = len((content.get(form) or {}).get(key) or [])
    return min(filled + SPARE[listing] + (1 if more == listing else 0), ROWS[listing])


def _draft_page(
    request: Request,
    rt: Runtime,
    draft: drafts.Draft,
    language: str,
    *,
    problems: list[dict[str, Any]] | None = None,
    content: dict[str, Any] | None = None,
    notice: str | None = None,
    more: str | None = None,
    code: int = 200,
) -> Any:
    csrf = _mac(rt, "draft-form", request.cookies.get(COOKIE, ""))
    if draft.submitted_at is not None:
        return _render(
            request,
            rt,
            "apply_receipt.html",
            language,
            draft=draft,
            title=draft.definition.title_in(language),
            csrf=csrf,
        )
    content = content if content is not None else draft.content
    return _render(
        request,
        rt,
        "apply_form.html",
        language,
        code=code,
        mode="draft",
        draft=draft,
        title=draft.definition.title_in(language),
        currency=draft.definition.currency,
        doc=content,
        rows={listing: _rows(content, listing, more) for listing in ROWS},
        problems=problems or [],
        notice=notice,
        csrf=csrf,
        hidden={},
        action="draft",
    )


@page_route(router.post, "/draft", START_PAGE, status.HTTP_303_SEE_OTHER)
async def draft_form(request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep) -> Any:
    """Save the draft (`action=save`; `more=<list>` for another row; `switch=<language>`
    for the page in another language), or submit it (`action=submit`, with `confirm=yes`):
    a submission intake refuses comes back with each problem beside its field, and
    nothing is lost."""
    form = await request.form(max_fields=FORM_FIELDS)
    field = _field(form)
    held = request.cookies.get(COOKIE)
    draft = await run_in_threadpool(_open, rt, attempt, held, now)
    lang = _chosen(field)
    language = page_language(request, lang or None, None if lang else draft.language)
    with attempt.refusals(
        rt.engine, role=Role.APPLICANT, action="draft.save", subject_type="draft", subject_id=str(draft.id)
    ):
        _check(rt, "draft-form", held or "", field("csrf"), actor=draft.email)
    content = content_from_form(form.multi_items(), currency=draft.definition.currency)  # type: ignore[arg-type]
    action, more = field("action"), field("more")
    if draft.submitted_at is not None:  # sent again after it was submitted: its receipt
        return RedirectResponse(_again("draft", lang), status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)

    def save() -> None:
        with unit_of_work(rt.engine) as session:
            drafts.save(session, held, content, at=now)

    await run_in_threadpool(save)  # kept as it is, whatever comes next
    if action != "submit":
        problems = _problems_of(draft.round_id, content)
        return _draft_page(
            request, rt, await run_in_threadpool(_open, rt, attempt, held, now), language,
            problems=problems, notice="saved", more=more if more in ROWS else None,
        )  # fmt: skip
    if not draft.accepting:  # the round closed while the page was open: the page says so
        return _draft_page(request, rt, draft, language, content=content, code=409)
    if field("confirm") != "yes":
        problems = [*_problems_of(draft.round_id, content), {"field": "confirm", "kind": "confirm", "limit": None}]
        return _draft_page(request, rt, draft, language, problems=problems, content=content, code=422)
    try:
        await run_in_threadpool(drafts.submit, rt.engine, rt.settings, held, content, at=now)
    except InvalidInput as exc:
        problems = [problem_of(e) for e in exc.errors]
        return _draft_page(request, rt, draft, language, problems=problems, content=content, code=422)
    except NotAccepting:  # it closed in between
        draft = await run_in_threadpool(_open, rt, attempt, held, now)
        return _draft_page(request, rt, draft, language, content=content, code=409)
    except Conflict:  # submitted from another page of the same draft in between: its receipt
        pass
    return RedirectResponse(_again("draft", lang), status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)


@page_route(router.post, "/forget", START_PAGE, status.HTTP_303_SEE_OTHER)
def forget(
    request: Request,
    rt: RuntimeDep,
    attempt: AttemptDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str | None, Form(max_length=5)] = None,
) -> Any:
    """This browser no longer keeps the draft open (on a shared computer, say); its link
    still opens it."""
    with attempt.refusals(rt.engine, role=Role.APPLICANT, action="draft.forget", subject_type="draft", subject_id="-"):
        _check(rt, "draft-form", request.cookies.get(COOKIE, ""), csrf)
    where = "../apply?forgotten=1" + (f"&lang={lang}" if lang in LANGUAGES else "")
    answer = RedirectResponse(where, status_code=status.HTTP_303_SEE_OTHER, headers=PAGE_HEADERS)
    answer.delete_cookie(
        COOKIE,
        path=site_root(request, rt.settings) + "/apply",
        secure=secure_cookies(request, rt.settings),
        httponly=True,
        samesite="lax",
    )
    return answer


def _chosen(field: Callable[[str], str]) -> str:
    """The language the page's form asks for: a language button's, else the page's own."""
    for name in ("switch", "lang"):
        if field(name) in LANGUAGES:
            return field(name)
    return ""


def _again(where: str, lang: str) -> str:
    return where + (f"?lang={lang}" if lang in LANGUAGES else "")


def _field(form: FormData) -> Any:
    def value(name: str) -> str:
        found = form.get(name)
        return found.strip() if isinstance(found, str) else ""

    return value


def _problems_of(round_id: str, content: dict[str, Any]) -> list[dict[str, Any]]:
    """What intake would refuse in the draft now (shown on saving, so that it can be mended
    before submitting); a draft is kept whatever it holds."""
    try:
        validate_document(load_json(json.dumps(drafts.document(round_id, content))))
    except DocumentError as exc:
        return [problem_of(e) for e in exc.errors]
    return []


# --- sending forms again after an information request or an incomplete finding -------------------

FORMS_PAGE = PersonPage(back="../status")


@page_route(router.post, "/forms", FORMS_PAGE)
async def forms_again(request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep) -> Any:
    """Forms A, B and C of an application, to send again: opened from its status page
    (with its proof that the access code was given), then sent (`action=send`, with this
    page's own proof, which holds 12 hours from the page's opening and is not renewed)."""
    form = await request.form(max_fields=FORM_FIELDS)
    field = _field(form)
    reference, proof, lang = field("reference"), field("proof"), _chosen(field)
    language = page_language(request, lang or None)
    key, instant = rt.settings.key(), int(now.timestamp())
    # this page's own proof (sent from it), or the status page's (the page being opened)
    until = status_proof_until(key, reference, proof, instant, FORMS_PROOF) if reference else None
    opening = until is None and reference and status_proof_until(key, reference, proof, instant) is not None
    if opening:
        until = instant + FORMS_SECONDS
    found = await run_in_threadpool(_stored_forms, rt, reference, until is not None)
    if found is None:
        with attempt.refusals(
            rt.engine, role=Role.APPLICANT, action="application.forms_page", subject_type="application",
            subject_id=reference[:100] or "-",
        ):  # fmt: skip
            raise NotFound(
                "this page is no longer open (it holds for 12 hours): open the status page again with your "
                "reference and access code",
                reason="forms_expired",
            )
    assert until is not None
    view, stored, currency = found
    carried = status_proof(key, view.reference, until, FORMS_PROOF)
    if view.status not in RESEND:  # sent already, or taken further: the page is closed
        return _render(request, rt, "apply_sent.html", language, code=409, sent=False, view=view)
    if opening:
        return _forms_page(request, rt, language, view, stored, carried, currency)
    entered = content_from_form(form.multi_items(), currency=currency)  # type: ignore[arg-type]
    content = _kept_total({k: v for k, v in entered.items() if k != "applicant"}, stored)
    more = field("more")
    if field("action") != "send":  # another row, or another language: the page again, as entered
        return _forms_page(request, rt, language, view, content, carried, currency, more=more if more in ROWS else None)
    body = json.dumps({k: v for k, v in drafts.document("", content).items() if k.startswith("form_")})

    def send() -> None:
        with unit_of_work(rt.engine) as session:
            follow_up.resubmit_forms(
                session, rt.settings, view.reference, body, actor="applicant", role=Role.APPLICANT, at=now
            )

    try:
        await run_in_threadpool(send)
    except InvalidInput as exc:
        problems = [problem_of(e) for e in exc.errors]
        return _forms_page(request, rt, language, view, content, carried, currency, problems=problems, code=422)
    except NotAllowed:  # its status changed since the page opened
        return _render(request, rt, "apply_sent.html", language, code=409, sent=False, view=view)
    return _render(request, rt, "apply_sent.html", language, sent=True, view=view)


def _kept_total(content: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The budget's total as the secretariat has it where its lines are sent unchanged (a
    total that does not add up is for screening to find, not for this page to mend)."""
    budget, before = content.get("form_b"), stored.get("form_b")
    if budget and before and "total_requested" in before and budget.get("lines") == _lines(before):
        content["form_b"] = {**budget, "total_requested": before["total_requested"]}
    return content


def _lines(budget: dict[str, Any]) -> list[dict[str, Any]]:
    """A budget's lines as the form reads them back (what it leaves out, left out)."""
    return [{k: v for k, v in line.items() if v not in (None, "")} for line in budget.get("lines") or []]


def _stored_forms(
    rt: Runtime, reference: str, proven: bool
) -> tuple[app_service.ApplicantView, dict[str, Any], str] | None:
    """The application's public view, its forms as stored and its round's currency; None
    without a proof that holds."""
    if not proven:
        return None
    with reading(rt.engine) as session:
        view = app_service.applicant_on(session.connection(), reference, None, proven=True)
        if view is None:
            return None
        application = app_service.get_application(session, reference)
        forms = {k: getattr(application, k) for k in ("form_a", "form_b", "form_c") if getattr(application, k)}
        return view, forms, definition_of(get_round(session, view.round_id)).currency


def _forms_page(
    request: Request,
    rt: Runtime,
    language: str,
    view: app_service.ApplicantView,
    content: dict[str, Any],
    proof: str,
    currency: str,
    *,
    problems: list[dict[str, Any]] | None = None,
    more: str | None = None,
    code: int = 200,
) -> Any:
    return _render(
        request,
        rt,
        "apply_form.html",
        language,
        code=code,
        mode="forms",
        draft=None,
        view=view,
        title=view.title,
        currency=currency,
        doc=content,
        rows={listing: _rows(content, listing, more) for listing in ROWS},
        problems=problems or [],
        notice=None,
        csrf="",
        hidden={"reference": view.reference, "proof": proof},
        action="forms",
        resend=view.status in RESEND,
    )


# --- the grant: its reports and amendments, from the status page ---------------------------------

GRANT_PAGE = PersonPage(back="../../status")
#: The proof a grant page carries (12 hours from its opening, as the forms page's).
GRANT_PROOF = "grant-page"


def _grant_page_proof(rt: Runtime, reference: str, proof: str, now: datetime) -> tuple[int | None, bool]:
    """Until when the page holds (its own proof, or the status page's when it is being
    opened), and whether it is being opened."""
    key, instant = rt.settings.key(), int(now.timestamp())
    until = status_proof_until(key, reference, proof, instant, GRANT_PROOF) if reference else None
    opening = until is None and bool(reference) and status_proof_until(key, reference, proof, instant) is not None
    return (instant + FORMS_SECONDS if opening else until), opening


def _grant_of_applicant(rt: Runtime, reference: str, now: datetime) -> dict[str, Any] | None:
    """What the recipient's grant pages show: the grant, its reports, form A's outputs and
    its budget; None where the application has no grant."""
    from engine.services import grant_reports
    from engine.services import grants as grant_service
    from engine.tables import Grant

    with reading(rt.engine) as session:
        grant = session.exec(select(Grant).where(Grant.reference == reference)).first()
        if grant is None:
            return None
        application = app_service.get_application(session, reference)
        return {
            "grant": grant,
            "line": grant_service.line_of(session, grant),
            "reports": grant_service.reports_of(session, grant),
            "outputs": (application.form_a or {}).get("outputs") or [],
            "budget": grant_reports.budget_of(grant),
            "currency": definition_of(get_round(session, grant.round_id)).currency,
            "title": application.title,
            "today": grant_service.local_day(session, grant, now),
        }


def _expired(rt: Runtime, attempt: Attempt, reference: str) -> NoReturn:
    with attempt.refusals(
        rt.engine, role=Role.APPLICANT, action="grant.page", subject_type="grant", subject_id=reference[:100] or "-"
    ):
        raise NotFound(
            "this page is no longer open (it holds for 12 hours): open the status page again with your "
            "reference and access code",
            reason="forms_expired",
        )


@dataclass(frozen=True)
class _GrantPage:
    reference: str
    language: str
    found: dict[str, Any]
    opening: bool
    proof: str  # the page's own, carried by its form


async def _grant_page(request: Request, rt: Runtime, now: datetime, attempt: Attempt, field: Any) -> _GrantPage:
    """A grant page's request: its reference and language, the grant, whether the page is
    being opened (from the status page's proof), and the proof its form carries; a proof
    that does not hold, or an application without a grant, opens nothing."""
    reference, lang = field("reference"), _chosen(field)
    until, opening = _grant_page_proof(rt, reference, field("proof"), now)
    if until is None:
        _expired(rt, attempt, reference)
    found = await run_in_threadpool(_grant_of_applicant, rt, reference, now)
    if found is None:
        _expired(rt, attempt, reference)
    proof = status_proof(rt.settings.key(), reference, until, GRANT_PROOF)
    return _GrantPage(reference, page_language(request, lang or None), found, opening, proof)


@page_route(router.post, "/grant/report", GRANT_PAGE)
async def grant_report(request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep) -> Any:
    """The recipient's report: opened from the status page (with its proof), built from
    form A's outputs and indicators and form B's budget categories, then sent
    (`action=send`) for the secretariat to review."""
    from engine.services import grant_reports

    form = await request.form(max_fields=FORM_FIELDS)
    field = _field(form)
    page = await _grant_page(request, rt, now, attempt, field)
    reference, language, found, opening = page.reference, page.language, page.found, page.opening
    awaited = [
        r for r in found["reports"] if r.state in ("due", "revision_requested") and r.period_end <= found["today"]
    ]
    report = awaited[0] if awaited else None
    # a report sent back opens with what was sent, to revise rather than type again
    kept = fields_of(report.content, found["outputs"]) if report and report.content else {}
    context = dict(found, reference=reference, proof=page.proof, report=report, entered=kept, problems=[])
    if opening or field("action") != "send":
        return _render(request, rt, "grant_report.html", language, **context)
    if report is None or field("number") != str(report.number):  # sent already (twice, or from an old page)
        return _render(request, rt, "grant_sent.html", language, code=409, sent="already", reference=reference,
                       number=field("number"))  # fmt: skip
    entered = {name: field(name) for name in form if name.startswith(("progress-", "spent-", "narrative"))}
    problems, data = report_from_fields(entered, found["outputs"])
    problems += [{"field": name, "kind": "nul"} for name, value in entered.items() if "\x00" in value]
    if not problems:

        def send() -> None:
            with unit_of_work(rt.engine) as session:
                grant_reports.submit_report(
                    session,
                    reference,
                    report.number,
                    data,
                    actor="applicant",
                    role=Role.APPLICANT,
                    at=now,
                    settings=rt.settings,
                )

        try:
            await run_in_threadpool(send)
        except (InvalidInput, NotAllowed) as exc:
            problems = [{"field": "", "kind": "engine", "message": exc.message}]
    if problems:
        return _render(request, rt, "grant_report.html", language, code=422, **{**context, "entered": entered,
                                                                                 "problems": problems})  # fmt: skip
    return _render(request, rt, "grant_sent.html", language, sent="report", reference=reference, number=report.number)


@page_route(router.post, "/grant/amendment", GRANT_PAGE)
async def grant_amendment(request: Request, rt: RuntimeDep, now: NowDep, attempt: AttemptDep) -> Any:
    """The recipient asks for an amendment (a no-cost extension, a budget reallocation, a
    new contact person or executing agency), with its reason, for the secretariat to decide."""
    from engine.services import grant_changes

    form = await request.form(max_fields=FORM_FIELDS)
    field = _field(form)
    page = await _grant_page(request, rt, now, attempt, field)
    reference, language, found, opening = page.reference, page.language, page.found, page.opening
    entered = {n: field(n) for n in ("kind", "ends_on", "contact_name", "contact_email", "contact_language",
                                      "executing_agency", "reason")}  # fmt: skip
    # the budget's fields open with the budget as it is
    budget = {c: field(f"budget-{c}") for c in BUDGET_CATEGORIES} if "kind" in form else {
        c: f"{a:.2f}" for c, a in found["budget"].items()
    }  # fmt: skip
    entered.update({f"budget-{c}": v for c, v in budget.items()})
    context = dict(found, reference=reference, proof=page.proof, entered=entered, problems=[])
    if opening or field("action") != "send":
        return _render(request, rt, "grant_amendment.html", language, **context)
    problems: list[dict[str, Any]] = []
    kind = entered["kind"] if entered["kind"] in ("extension", "reallocation", "contact", "agency") else ""
    change: dict[str, Any] = {}
    if not kind:
        problems.append({"field": "kind", "kind": "missing"})
    elif kind == "extension":
        try:
            change = {"ends_on": date.fromisoformat(entered["ends_on"])}
        except ValueError:
            problems.append({"field": "ends_on", "kind": "date"})
    elif kind == "reallocation":
        amounts: dict[str, Any] = {}
        for category, text in budget.items():
            if text.strip():
                try:
                    amounts[category] = to_cents(read_amount(text))
                except ValueError:
                    problems.append({"field": f"budget-{category}", "kind": "amount"})
        change = {"budget": amounts}
    elif kind == "contact":
        if not entered["contact_name"].strip():
            problems.append({"field": "contact_name", "kind": "missing"})
        try:
            email = _ADDRESS.validate_python(entered["contact_email"])
        except ValidationError:
            problems.append({"field": "contact_email", "kind": "email"})
            email = ""
        chosen = entered["contact_language"] if entered["contact_language"] in LANGUAGES else language
        change = {"contact": {"name": entered["contact_name"], "email": email, "language": chosen}}
    else:
        if not entered["executing_agency"].strip():
            problems.append({"field": "executing_agency", "kind": "missing"})
        change = {"executing_agency": entered["executing_agency"]}
    if not entered["reason"].strip():
        problems.append({"field": "reason", "kind": "missing"})
    problems += [{"field": name, "kind": "nul"} for name, value in entered.items() if "\x00" in value]
    if not problems:

        def send() -> None:
            with unit_of_work(rt.engine) as session:
                grant_changes.request_amendment(
                    session, reference, kind, change, entered["reason"][:5000], actor="applicant",
                    role=Role.APPLICANT, at=now, settings=rt.settings,
                )  # fmt: skip

        try:
            await run_in_threadpool(send)
        except InvalidInput as exc:  # the end date, said in the page's words; anything else as the engine said it
            dated = [e for e in exc.errors if e.path == "$.ends_on"]
            budgeted = [e for e in exc.errors if e.path.startswith("$.budget")]
            problems = (
                [{"field": "ends_on", "kind": "end"}]
                if dated
                else [{"field": "", "kind": "budget"}]
                if budgeted
                else [{"field": "", "kind": "engine", "message": exc.message}]
            )
        except Conflict:  # the same change, asked for twice (a page sent again)
            problems = [{"field": "", "kind": "pending"}]
        except NotAllowed as exc:
            problems = [{"field": "", "kind": "engine", "message": exc.message}]
    if problems:
        return _render(request, rt, "grant_amendment.html", language, code=422, **{**context, "problems": problems})
    return _render(request, rt, "grant_sent.html", language, sent="amendment", reference=reference, number=None)
