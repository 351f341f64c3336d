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
        "fr": "Round 1: demande reçue SIP-2018-R1-0001",
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
    # the same mapping as babel.cfg: the messages' templates and the applicant's web pages
    method_map = [
        ("notifications/**.py", "python"),
        ("notifications/templates/**", "jinja2"),
        ("api/templates/**", "jinja2"),
    ]
    options = {
        "notifications/templates/**": {"extensions": "jinja2.ext.i18n"},
        "api/templates/**": {"extensions": "jinja2.ext.i18n"},
    }
    keywords = {"N_": None, "_": None, "gettext": None, "ngettext": (1, 2)}
    ids = {msg for _, _, msg, _, _ in extract_from_dir(str(HERE.parent), method_map, options, keywords=keywords)}
    assert "Access code" in ids and "Dear %(name)s," in ids
    catalog = translations(language)
    missing = sorted(m for m in ids if isinstance(m, str) and catalog.gettext(m) == m)
    assert missing == []


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
