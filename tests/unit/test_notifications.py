from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from notifications import render
from notifications.render import HERE, RenderError, translations

CONTEXT = dict(
    contact_name="Aïcha <Dossou>",
    reference="SIP-2018-R1-0001",
    round_title="Round 1",
    title="Mercury & gold",
    party_name="Benin",
    submitted_at=datetime(2018, 8, 24, 13, 40, tzinfo=UTC),
    timezone="Europe/Zurich",
    status="received",
    access_token=None,
    status_url="https://sip.example.org/applications/SIP-2018-R1-0001",
    programme_email="sip@example.org",
    language="en",
)


def test_the_receipt_exists_in_english_french_and_spanish() -> None:
    subjects = {lang: render("receipt", lang, {**CONTEXT, "language": lang}).subject for lang in ("en", "fr", "es")}
    assert subjects == {
        "en": "Round 1: application received SIP-2018-R1-0001",
        "fr": "Round 1\u00a0: demande reçue SIP-2018-R1-0001",
        "es": "Round 1: solicitud recibida SIP-2018-R1-0001",
    }
    french = render("receipt", "fr", {**CONTEXT, "language": "fr"})
    assert "24 août 2018" in french.text and "15:40" in french.text  # Geneva time, French date


def test_an_unknown_language_falls_back_to_english() -> None:
    assert render("receipt", "ar", CONTEXT).language == "en"


def test_html_is_escaped_and_text_is_not() -> None:
    message = render("receipt", "en", CONTEXT)
    assert "Aïcha &lt;Dossou&gt;" in message.html and "Mercury &amp; gold" in message.html
    assert "Aïcha <Dossou>" in message.text


def test_a_missing_variable_fails_the_render_naming_the_template() -> None:
    context = dict(CONTEXT)
    del context["reference"]
    with pytest.raises(RenderError, match=r"template receipt\.subject\.txt line 1: 'reference' is undefined"):
        render("receipt", "en", context)


@pytest.mark.parametrize("language", ["fr", "es"])
def test_every_message_of_the_templates_is_translated(language: str) -> None:
    # the same mapping as babel.cfg: the messages' templates, the people's web pages and the committee's bundles
    method_map = [
        ("notifications/**.py", "python"),
        ("notifications/templates/**", "jinja2"),
        ("api/templates/**", "jinja2"),
        ("engine/templates/approved_projects.html", "jinja2"),
        ("engine/templates/bundle.html", "jinja2"),
        ("engine/templates/bundle_*.html", "jinja2"),
        ("engine/services/committee/bundles.py", "python"),
    ]
    options = {
        "notifications/templates/**": {"extensions": "jinja2.ext.i18n"},
        "api/templates/**": {"extensions": "jinja2.ext.i18n"},
        "engine/templates/approved_projects.html": {"extensions": "jinja2.ext.i18n"},
        "engine/templates/bundle.html": {"extensions": "jinja2.ext.i18n"},
        "engine/templates/bundle_*.html": {"extensions": "jinja2.ext.i18n"},
    }
    keywords = {"N_": None, "Nn_": (1, 2), "_": None, "gettext": None, "ngettext": (1, 2)}
    ids = {msg for _, _, msg, _, _ in extract_from_dir(str(HERE.parent), method_map, options, keywords=keywords)}
    assert "Access code" in ids and "Dear %(name)s," in ids
    plurals = {m for m in ids if isinstance(m, tuple)}
    assert any("%(limit)s application per Party" in m[0] for m in plurals)
    with (HERE / "locale" / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    # Every message has its translation, whole and not marked fuzzy (a word may be the same
    # in both languages: "Description", "national").
    missing = []
    for message in ids:
        entry = catalog.get(message[0] if isinstance(message, tuple) else message)
        strings = () if entry is None else entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry is None or entry.fuzzy or not strings or not all(strings):
            missing.append(message if isinstance(message, str) else message[1])
    assert sorted(missing) == []
    assert translations(language).gettext("Reference") != "Reference"  # and the engine reads that catalogue


@pytest.mark.parametrize("folder", ["notifications/templates", "api/templates"])
def test_a_label_and_its_value_are_one_sentence_of_the_catalogue(folder: str) -> None:
    """ "Reference: X" is translated whole, so that French can put its space before the
    colon: no template writes punctuation after a translated block."""
    outside = [
        f"{path.name}: {line.strip()}"
        for path in sorted((HERE.parent / folder).rglob("*"))
        if path.is_file()
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.search(r"endtrans %\}\s*[:;?!]", line)
        or re.search(r"\}\}\s*[:;?!](\s|$)", re.sub(r"\{% trans.*?%\}.*?\{% endtrans %\}", "", line))
    ]
    assert outside == []


def test_the_french_incomplete_notice_says_what_is_missing_rather_than_that_the_application_is_complete() -> None:
    context = {**CONTEXT, "language": "fr", "points": ["Le formulaire C manque."]}
    text = render("screening_incomplete", "fr", context).text
    assert "est complète" not in text
    sentence = "Le secrétariat a vérifié si votre demande était complète. Il y manque les éléments suivants\u00a0:"
    # the sentence leads straight into the list of what is missing
    assert f"{sentence}\n\n  - Le formulaire C manque." in text
    assert "Référence\u00a0: SIP-2018-R1-0001" in text and "Bonjour Aïcha <Dossou>," in text


def test_subjects_and_labels_follow_each_languages_punctuation() -> None:
    french = render("receipt", "fr", {**CONTEXT, "language": "fr", "party_name": "Bénin"})
    assert french.subject == "Round 1\u00a0: demande reçue SIP-2018-R1-0001"
    for line in ("Référence\u00a0: SIP-2018-R1-0001", "Partie requérante\u00a0: Bénin", "État\u00a0: reçue"):
        assert line in french.text
    spanish = render("receipt", "es", {**CONTEXT, "language": "es"})
    assert (
        spanish.subject == "Round 1: solicitud recibida SIP-2018-R1-0001"
        and "Referencia: SIP-2018-R1-0001" in spanish.text
    )


def test_times_are_to_the_minute_with_the_zone_named_the_same_way_in_every_language() -> None:
    written = {
        lang: render("receipt", lang, {**CONTEXT, "language": lang}).text.split("\n")[8] for lang in ("en", "fr", "es")
    }
    assert written == {
        "en": "Received on: August 24, 2018, 3:40\u202fPM (Central European Summer Time)",
        "fr": "Date de réception\u00a0: 24 août 2018, 15:40 (heure d’été d’Europe centrale)",
        "es": "Fecha de recepción: 24 de agosto de 2018, 15:40 (hora de verano de Europa central)",
    }


@pytest.mark.parametrize(
    ("count", "french"),
    [(1, "Oslo 2018, 1 demande."), (3, "Oslo 2018, 3 demandes.")],
)
def test_a_count_takes_the_plural_form_of_the_readers_language(count: int, french: str) -> None:
    context = dict(
        language="fr",
        name="Ana",
        round_title="Oslo 2018",
        meeting_on=datetime(2018, 10, 2).date(),
        place="Oslo",
        version=1,
        changes=[],
        count=count,
        url="https://sip.example.org/bundle",
        programme_email="sip@example.org",
    )
    assert french in render("bundle_ready", "fr", context).text


def test_french_puts_a_non_breaking_space_before_double_punctuation_and_inside_guillemets() -> None:
    with (HERE / "locale" / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="fr")
    texts = [s for m in catalog if m.id for s in (m.string if isinstance(m.string, tuple) else (m.string,))]
    breaking = [t for t in texts if re.search(r" [:;?!]|« | »", t)]
    assert breaking == []
    assert any("\u00a0:" in t for t in texts) and any("«\u00a0" in t for t in texts)


#: What differs from one applicant's receipt to the next; the rest of CONTEXT is the round's.
OWN = ("contact_name", "reference", "title", "party_name", "submitted_at", "status_url")


def _applicants(language: str) -> list[dict[str, object]]:
    """Applicants whose values test the escaping and the template's own logic: markup and
    quotes, braces (format fields), no title, an empty title, a name in another script."""
    names = ["Aïcha <Dossou> & \"Co\" 'x'", "{0} {reference} }{", "Ξένια", "x"]
    titles: list[str | None] = ["Mercury & <gold>", None, "", "Título «A» {1}"]
    return [
        dict(
            contact_name=name,
            reference=f"SIP-2018-R1-{i:04d}",
            title=title,
            party_name=["Benin", "Côte d'Ivoire", "São Tomé & Príncipe", "Perú"][i],
            submitted_at=datetime(2018, 8, 24, 13, 40 + i, tzinfo=UTC),
            status_url=f"https://sip.example.org/status?reference=SIP-2018-R1-{i:04d}&lang={language}",
        )
        for i, (name, title) in enumerate(zip(names, titles, strict=True))
    ]


@pytest.mark.parametrize("language", ["en", "fr", "es", "de"])
@pytest.mark.parametrize("access_token", [None, "[[access-code]]"])
def test_receipts_rendered_together_are_the_receipts_rendered_one_by_one(
    language: str, access_token: str | None
) -> None:
    from notifications import render_many
    from notifications.render import _shared

    common = {k: v for k, v in CONTEXT.items() if k not in OWN} | {"language": language, "access_token": access_token}
    applicants = _applicants(language)
    together = render_many("receipt", language, common, applicants)
    assert together == [render("receipt", language, {**common, **own}) for own in applicants]
    # ... and were rendered together (the round's part once), not one by one
    assert _shared("receipt", "en" if language == "de" else language, frozenset(OWN)) is not None


def test_a_message_whose_template_does_more_with_an_applicants_values_is_rendered_one_by_one() -> None:
    """A template that extends another (or tests, loops over or assigns a recipient's
    value) is not split: each message is rendered whole, with the same result."""
    from notifications import render_many
    from notifications.render import _shared

    common = {k: v for k, v in CONTEXT.items() if k not in OWN} | {"due": datetime(2018, 10, 1, tzinfo=UTC).date()}
    applicants = [own | {"points": [f"point {own['reference']}", "<b>"]} for own in _applicants("fr")]
    assert _shared("information_requested", "fr", frozenset(applicants[0])) is None
    together = render_many("information_requested", "fr", common, applicants)
    assert together == [render("information_requested", "fr", {**common, **own}) for own in applicants]


def test_a_missing_value_fails_the_receipts_rendered_together_as_it_fails_one() -> None:
    from notifications import render_many

    common = {k: v for k, v in CONTEXT.items() if k not in OWN and k != "programme_email"}
    with pytest.raises(RenderError, match="programme_email"):
        render_many("receipt", "en", common, _applicants("en"))
    own = [{k: v for k, v in a.items() if k != "party_name"} for a in _applicants("en")]
    with pytest.raises(RenderError, match="party_name"):
        render_many("receipt", "en", common | {"programme_email": "sip@example.org"}, own)


def test_receipts_rendered_together_do_not_mistake_a_value_named_like_the_loop_over_recipients() -> None:
    from notifications import render_many

    common = {k: v for k, v in CONTEXT.items() if k not in OWN} | {"sip_recipients_": [], "sip_recipient_": "x"}
    applicants = _applicants("es")
    assert render_many("receipt", "es", common, applicants) == [
        render("receipt", "es", {**common, **own}) for own in applicants
    ]


def test_a_party_is_named_in_the_readers_language_and_by_the_register_where_cldr_has_no_name() -> None:
    from notifications import party_name

    assert [party_name("BJ", "Benin", language) for language in ("en", "fr", "es", "de")] == [
        "Benin",
        "Bénin",
        "Benín",
        "Benin",  # no catalogue: English, the register's own name
    ]
    assert party_name("CI", "Côte d'Ivoire", "es") == "Côte d’Ivoire"
    assert party_name("XX", "Somewhere new", "fr") == "Somewhere new"  # no such code in CLDR
    assert party_name(None, "Somewhere new", "fr") == "Somewhere new"


def test_screening_reasons_name_the_party_in_the_readers_language_with_its_plural_forms() -> None:
    from notifications.reasons import reason_text

    late = {"party": "Albania", "party_iso2": "AL", "since": "2020-08-24", "deadline": "2018-08-31"}
    assert reason_text("not_party_on_deadline", late, "fr") == (
        "État devenu Partie à la Convention après la date limite du cycle (31 août 2018)\u00a0: "
        "Albanie, le 24 août 2020."
    )
    assert reason_text("not_party_on_deadline", late, "es").startswith("Albania pasó a ser Parte")
    assert reason_text("not_party_on_deadline", late, "en").startswith("Albania became a Party")
    # a screening record written before the register's alpha-2 codes were kept: the name as recorded
    assert "Albania" in reason_text("not_party_on_deadline", {k: v for k, v in late.items() if k != "party_iso2"}, "fr")
    one, two = ({"limit": n, "rank": n + 1} for n in (1, 2))
    assert "au plus 1 demande par Partie" in reason_text("too_many_applications", one, "fr")
    assert "au plus 2 demandes par Partie" in reason_text("too_many_applications", two, "fr")
    assert "at most 1 application per Party" in reason_text("too_many_applications", one, "en")
    assert "como máximo 2 solicitudes por Parte" in reason_text("too_many_applications", two, "es")


def _words_outside_the_catalogue(text: str) -> list[str]:
    """The words a template writes as they are, outside its `{% trans %}` blocks: what is
    left once comments, translated blocks, expressions, statements, scripts, styles, tags,
    attributes and entities are taken out (a path such as `../assets/` is not a word)."""
    for pattern in (
        r"\{#.*?#\}",
        r"\{%-?\s*trans\b.*?%\}.*?\{%-?\s*endtrans\s*-?%\}",
        r"\{\{.*?\}\}",
        r"\{%.*?%\}",
        r"<(script|style)\b.*?</\1>",
        r"<[^>]*>",
        r"[\w-]+=\"[^\"<>]*\"?",  # attributes that a macro writes outside its tag
        r"&\w+;",
    ):
        text = re.sub(pattern, " ", text, flags=re.S)
    return [word for word in re.findall(r"\S*[A-Za-z]{2,}\S*", text) if "/" not in word]


@pytest.mark.parametrize(
    "templates",
    ["notifications/templates/*", "api/templates/*.html", "engine/templates/bundle*.html", "engine/templates/_bundle*"],
)
def test_no_page_message_or_bundle_writes_a_word_outside_the_catalogue(templates: str) -> None:
    """Every word that people read on a page, in a message or in a committee bundle comes
    from the catalogue (and so is translated: the test above), never from the template as
    it is."""
    folder, _, pattern = templates.rpartition("/")
    found = {
        path.name: words
        for path in sorted((HERE.parent / folder).glob(pattern))
        if (words := _words_outside_the_catalogue(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_every_reason_screening_gives_has_its_sentence() -> None:
    """A reason code `domain.screening` writes (the argument before a check's parameters)
    is worded in the catalogue, for the applicant's letters and the committee's bundles."""
    from notifications.reasons import PLURAL_REASONS, REASONS

    source = (HERE.parent / "domain" / "screening.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'^\s+"([a-z_]+)",\n(?:\s+\w+=[^\n]*\n)*\s+\)', source, flags=re.M))
    codes -= {"", "ok"}
    assert "party_date_unknown" in codes and "budget_does_not_add_up" in codes
    assert codes - set(REASONS) - set(PLURAL_REASONS) == set()
