from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from notifications.compiled_i18n import CompiledTranslations

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
#: The applicant-facing web pages share the catalogue with the messages.
PAGES = HERE.parent / "api" / "templates"
LOCALES = HERE / "locale"
LANGUAGES = ("en", "fr", "es")
#: Stands for a secret (an applicant's access code) in a queued message; the relay
#: puts the secret in at delivery, so the outbox never holds it.
ACCESS_CODE_PLACEHOLDER = "[[access-code]]"
#: Stands for a reviewer's sign-in link token in a queued message (put in at delivery).
REVIEW_LINK_PLACEHOLDER = "[[review-link]]"
#: Stands for a committee member's bundle download token in a queued message.
BUNDLE_LINK_PLACEHOLDER = "[[bundle-link]]"
FALLBACK = "en"


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    language: str


class RenderError(Exception):
    """A template could not be rendered (e.g. a missing variable): nothing is queued."""


@lru_cache
def translations(language: str) -> NullTranslations:
    po = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if language == FALLBACK or not po.exists():
        return NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


@lru_cache
def environment(language: str, folder: Path = TEMPLATES, overrides: Path | None = None) -> Environment:
    """The Jinja2 environment of one language (templates of `folder`; a template of the
    same name in `overrides`, the secretariat's own folder, takes precedence)."""
    env = Environment(
        loader=FileSystemLoader([overrides, folder] if overrides else folder),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        extensions=[CompiledTranslations],
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # The engine's own templates are read once per process; the secretariat's edited
        # ones are checked for changes, so a corrected template is used at the next run.
        auto_reload=overrides is not None,
    )
    catalog = translations(language)
    env.compiled_translations = catalog  # type: ignore[attr-defined]
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]

    @lru_cache(maxsize=4096)  # a message formats the same instant in its text and HTML parts
    def when(value: datetime, zone: str = "Europe/Zurich") -> str:
        return format_datetime(value, format="long", tzinfo=ZoneInfo(zone), locale=language)

    def day(value: Any) -> str:
        return format_date(value, format="long", locale=language)

    def usd(value: Decimal) -> str:
        return format_currency(value, "USD", locale=language)

    env.filters.update(when=when, day=day, usd=usd)
    env.globals["status_label"] = lambda code: status_label(code, language)
    return env


def _pick(language: str) -> str:
    return language if language in LANGUAGES else FALLBACK


def render(kind: str, language: str, context: dict[str, Any], *, overrides: Path | None = None) -> RenderedMessage:
    """Render `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` in `language`
    (English when the language has no catalogue); `overrides`: the secretariat's folder
    of edited templates, if any."""
    language = _pick(language)
    env = environment(language, TEMPLATES, overrides)
    parts = []
    for ext in ("subject.txt", "txt", "html"):
        name = f"{kind}.{ext}"
        try:
            parts.append(env.get_template(name).render(**context))
        except TemplateError as exc:
            raise RenderError(f"template {_where(exc, name)}: {exc}; nothing was queued") from exc
    subject, text, html = parts
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return RenderedMessage(subject=" ".join(subject.split()), text=text, html=html, language=language)


def N_(message: str) -> str:
    """Marks a string for the catalogue; translated where it is used."""
    return message


def _where(exc: BaseException, name: str) -> str:
    """The template file and line an error happened on: the innermost template frame,
    which may be a template `name` extends (Jinja2 rewrites the traceback so that its
    frames point into the template files)."""
    where, line = name, getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".txt", ".html")):
            where, line = Path(filename).name, tb.tb_lineno
        tb = tb.tb_next
    return f"{where} line {line}" if line else where


_STATUS_LABELS = {
    "received": N_("received"),
    "information_requested": N_("information requested"),
    "incomplete": N_("incomplete"),
    "not_eligible": N_("not eligible"),
    "under_review": N_("under review"),
    "approved": N_("approved"),
    "approved_with_conditions": N_("approved with conditions"),
    "not_approved": N_("not approved"),
    "deferred": N_("deferred"),
    "withdrawn": N_("withdrawn"),
}


def status_label(code: str, language: str) -> str:
    """The applicant-facing name of a public status, in `language`."""
    return translations(_pick(language)).gettext(_STATUS_LABELS[code])
