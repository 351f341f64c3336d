"""Notifications rendered from Jinja2 templates in English, French and Spanish.

One template per message kind; the words come from gettext catalogues
(`locale/<lang>/LC_MESSAGES/messages.po`), so a new language is a new catalogue.
Rendering is pure: the service layer writes the result to the outbox in the same
transaction as the change that causes it."""

from notifications.render import (
    ACCESS_CODE_PLACEHOLDER,
    AGREEMENT_LINK_PLACEHOLDER,
    BUNDLE_LINK_PLACEHOLDER,
    DRAFT_LINK_PLACEHOLDER,
    LANGUAGES,
    REVIEW_LINK_PLACEHOLDER,
    RenderedMessage,
    party_name,
    render,
    render_many,
    status_label,
)

__all__ = [
    "ACCESS_CODE_PLACEHOLDER",
    "DRAFT_LINK_PLACEHOLDER",
    "AGREEMENT_LINK_PLACEHOLDER",
    "BUNDLE_LINK_PLACEHOLDER",
    "LANGUAGES",
    "REVIEW_LINK_PLACEHOLDER",
    "RenderedMessage",
    "party_name",
    "render",
    "render_many",
    "status_label",
]
