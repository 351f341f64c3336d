from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateError, nodes, select_autoescape
from jinja2.visitor import NodeTransformer

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
#: Where the token of a grant agreement's link goes in its message (put in at delivery).
AGREEMENT_LINK_PLACEHOLDER = "[[agreement-link]]"
#: Stands for the token of an applicant's link to their draft application.
DRAFT_LINK_PLACEHOLDER = "[[draft-link]]"
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

    # A day and a time to the minute, in the language's own order, and the zone by its name
    # (one style in every language, where CLDR's long format has seconds and writes the
    # zone "+0200" in English and French but "CEST" in Spanish).
    locale = Locale.parse(language)
    minute = locale.datetime_formats["long"].format(
        locale.time_formats["short"].pattern, locale.date_formats["long"].pattern
    )

    @lru_cache(maxsize=4096)  # a message formats the same instant in its text and HTML parts
    def when(value: datetime, zone: str = "Europe/Zurich") -> str:
        # the engine's times are aware; one without its zone is taken as UTC, as the database keeps them
        local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(ZoneInfo(zone))
        zone_name = get_timezone_name(local, "long", locale=language)
        return f"{first_of_month(format_datetime(local, minute, locale=language), local.day, language)} ({zone_name})"

    def day(value: Any) -> str:
        return first_of_month(format_date(value, format="long", locale=language), value.day, language)

    def usd(value: Decimal) -> str:
        return format_currency(value, "USD", locale=language)

    env.filters.update(when=when, day=day, usd=usd)
    env.globals["status_label"] = lambda code: status_label(code, language)
    # also as a filter: a `{% trans %}` variable bound to a call is taken for its plural count
    env.filters["status_label"] = env.globals["status_label"]
    return env


def first_of_month(written: str, day: int, language: str) -> str:
    """French writes the first day of a month as an ordinal: "1er octobre 2024" (CLDR's
    long format has "1 octobre")."""
    return re.sub(r"^1(?= )", "1er", written) if language == "fr" and day == 1 else written


def _pick(language: str) -> str:
    return language if language in LANGUAGES else FALLBACK


_PARTS = ("subject.txt", "txt", "html")


def render(kind: str, language: str, context: dict[str, Any], *, overrides: Path | None = None) -> RenderedMessage:
    """Render `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` in `language`
    (English when the language has no catalogue); `overrides`: the secretariat's folder
    of edited templates, if any."""
    language = _pick(language)
    env = environment(language, TEMPLATES, overrides)
    parts = []
    for ext in _PARTS:
        name = f"{kind}.{ext}"
        try:
            parts.append(env.get_template(name).render(**context))
        except TemplateError as exc:
            raise RenderError(f"template {_where(exc, name)}: {exc}; nothing was queued") from exc
    return _message(parts, language)


def _message(parts: list[str], language: str) -> RenderedMessage:
    subject, text, html = parts
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    # One line; the no-break spaces of the language's punctuation stay (str.split would take them for spaces).
    subject = re.sub(r"[^\S\u00a0\u202f]+", " ", subject).strip(" ")
    return RenderedMessage(subject=subject, text=text, html=html, language=language)


# --- the same message to many recipients ------------------------------------------------

#: Marks, in a message rendered once for many recipients, where each recipient's own
#: values go; random per process, so that no text sent in can be taken for one.
_MARK = f"\x1f{secrets.token_hex(8)}"
_SLOT = re.compile(re.escape(_MARK) + r":(\d+)\x1f")
_SEPARATOR = _MARK + "|\x1f"
_RECORD = _MARK + "/\x1f"
#: The names, in the template of the recipients' own values, of the list of recipients
#: and of the one being rendered.
_EACH, _ONE = "sip_recipients_", "sip_recipient_"
#: The statements a template may hold to be rendered once for many recipients.
_PLAIN = (nodes.Template, nodes.Output, nodes.If)


@dataclass(frozen=True)
class _Shared:
    """A message kind split in two: `shared`, each part of the message with a mark where
    a recipient's value goes (rendered once per batch), and `own`, the expressions of
    those values, for each recipient in turn (one pass over the batch for the three parts)."""

    shared: tuple[Template, ...]
    own: Template


def _references(node: nodes.Node, names: frozenset[str]) -> bool:
    """Whether `node` (or an expression in it) reads one of `names`."""
    found = [node] if isinstance(node, nodes.Name) else []
    return any(n.name in names for n in [*found, *node.find_all(nodes.Name)])


class _OwnValues(NodeTransformer):
    """Reads a recipient's value `x` as `sip_recipient_["x"]` (the recipient of the loop)."""

    def __init__(self, names: frozenset[str]):
        self.names = names

    def visit_Name(self, node: nodes.Name) -> nodes.Expr:  # noqa: N802 (the visitor's naming)
        if node.name not in self.names:
            return node
        return nodes.Getitem(nodes.Name(_ONE, "load"), nodes.Const(node.name), "load", lineno=node.lineno)


@lru_cache(maxsize=64)
def _shared(kind: str, language: str, names: frozenset[str]) -> _Shared | None:
    """The split of `kind`'s three templates in `language`, where the values `names`
    differ from one recipient to the next; None when a template does more with them
    than write them out (a test, a loop, an assignment, another template): such a
    message is rendered whole for each recipient."""
    env = environment(language, TEMPLATES, None)
    assert env.loader is not None
    shared, own_nodes, count = [], [], 0
    for ext in _PARTS:
        name = f"{kind}.{ext}"
        source, filename, _uptodate = env.loader.get_source(env, name)
        tree = env.parse(source, name, filename)
        if any(isinstance(n, nodes.Stmt) and not isinstance(n, _PLAIN) for n in tree.find_all(nodes.Stmt)):
            return None
        own: list[nodes.Node] = []
        for statement in tree.body:
            if not isinstance(statement, nodes.Output):
                if _references(statement, names):
                    return None  # a value of a recipient's decides what is written (an `if`)
                continue
            for position, expression in enumerate(statement.nodes):
                if isinstance(expression, nodes.TemplateData) or not _references(expression, names):
                    continue
                if _references(expression, frozenset(("loop", _EACH, _ONE))):
                    return None  # would mean something else inside the loop over the recipients
                statement.nodes[position] = nodes.TemplateData(f"{_MARK}:{count}\x1f")
                own.append(_OwnValues(names).visit(expression))
                count += 1
        if _references(tree, names):
            return None  # a recipient's value is used where it cannot be written in afterwards
        autoescape = env.autoescape(name) if callable(env.autoescape) else env.autoescape
        body: list[nodes.Node] = []
        for value in own:
            body += [nodes.Output([value]), nodes.Output([nodes.TemplateData(_SEPARATOR)])]
        # Each part's values are escaped as its template escapes them.
        own_nodes.append(nodes.ScopedEvalContextModifier([nodes.Keyword("autoescape", nodes.Const(autoescape))], body))
        shared.append(_compiled(env, tree, name, filename))
    loop = nodes.For(
        nodes.Name(_ONE, "store"),
        nodes.Name(_EACH, "load"),
        [*own_nodes, nodes.Output([nodes.TemplateData(_RECORD)])],
        [],
        None,
        False,
        lineno=1,
    )
    own_tree = nodes.Template([loop], lineno=1)
    return _Shared(tuple(shared), _compiled(env, own_tree, f"{kind} (each recipient's values)", None))


def _compiled(env: Environment, tree: nodes.Template, name: str, filename: str | None) -> Template:
    tree.set_environment(env)
    code = env.compile(tree, name, filename)
    return env.template_class.from_code(env, code, env.make_globals(None))


def render_many(kind: str, language: str, common: dict[str, Any], each: list[dict[str, Any]]) -> list[RenderedMessage]:
    """The message `kind` in `language` for each of many recipients: the same as
    `render(kind, language, {**common, **values})` for each `values` of `each` (which
    all name the same variables, none of them in `common`), with the engine's own
    templates. What is common is rendered once; for each recipient only the
    expressions of its own values are, and written in where they go."""
    language = _pick(language)
    names = frozenset(each[0]) if each else frozenset()
    apart = names and not (names | {_EACH, _ONE}) & common.keys()
    split = _shared(kind, language, names) if apart else None
    if split is None or any(values.keys() != names for values in each):
        return [render(kind, language, {**common, **values}) for values in each]
    try:
        parts = [_format(template.render(**common)) for template in split.shared]
        records = split.own.render(**common, **{_EACH: each}).split(_RECORD)[:-1]
        return [_message([part.format(*own.split(_SEPARATOR)) for part in parts], language) for own in records]
    except TemplateError as exc:
        raise RenderError(f"template {_where(exc, kind)}: {exc}; nothing was queued") from exc


def _format(rendered: str) -> str:
    """A part rendered once, as a format string: `{n}` where the recipient's n-th value goes."""
    split = _SLOT.split(rendered)
    return "".join(
        f"{{{piece}}}" if i % 2 else piece.replace("{", "{{").replace("}", "}}") for i, piece in enumerate(split)
    )


def N_(message: str) -> str:
    """Marks a string for the catalogue; translated where it is used."""
    return message


def Nn_(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802 (named like N_)
    """Marks a message with a plural form for the catalogue (`ngettext` where it is used)."""
    return singular, plural


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


@lru_cache
def _territories(language: str) -> dict[str, str]:
    return dict(Locale.parse(language).territories)


def party_name(iso2: str | None, english: str, language: str) -> str:
    """A Party's name for a reader of `language`: CLDR's name of the country (through
    Babel) in French and Spanish; the register's own name (the United Nations' English
    name) in English, or where CLDR has none."""
    language = _pick(language)
    if language == FALLBACK or not iso2:
        return english
    return _territories(language).get(iso2, english)


def status_label(code: str, language: str) -> str:
    """The applicant-facing name of a public status, in `language`."""
    return translations(_pick(language)).gettext(_STATUS_LABELS[code])
