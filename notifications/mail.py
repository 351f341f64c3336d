"""A rendered notification as the e-mail that is sent: multipart (plain text and
HTML), in the recipient's language (`Content-Language`), with a Message-ID derived
from the message's business key, so that a message sent again is recognisably the
same message. Pure: building, not sending.

Built with the `email.mime` classes: the newer `EmailMessage` API parses and refolds
every header it is given, which made building a message cost more than sending it."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email._policybase import Compat32
from email.charset import BASE64, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from notifications.render import RenderedMessage

PROGRAMME = "Specific International Programme – Minamata Convention"


class _Wire(Compat32):
    """compat32 with SMTP's line endings, which writes a header that is already ASCII
    and within 78 characters a line (or folded so) as it is, instead of re-encoding
    it: the library's fold costs more than the rest of a message. Any other header is
    encoded and folded by the library."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii() and "\r" not in value.replace(self.linesep, ""):
            lines = f"{name}: {value}".split(self.linesep)
            if (
                "\n" not in value.replace(self.linesep, "")
                and all(len(line) <= 78 for line in lines)
                and all(line[:1] in (" ", "\t") for line in lines[1:])
            ):
                return f"{name}: {value}{self.linesep}"
        return str(super()._fold(name, value, sanitize))  # type: ignore[misc]  # compat32's own folding


WIRE = _Wire(linesep="\r\n")


def message_id(key: str, sender: str) -> str:
    """The same business key always gives the same Message-ID."""
    domain = sender.rsplit("@", 1)[-1] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.sip@{domain}>"  # 128 bits; one line


#: UTF-8 headers as base64 encoded words: the library's default ("the shortest of
#: quoted-printable and base64") measures every character of every header twice.
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = BASE64


def _subject(value: str) -> str | Header:
    return value if value.isascii() else Header(value, _UTF8, header_name="Subject")


@lru_cache(maxsize=64)
def _from(sender: str) -> str:
    """The sender, with the programme's name as RFC 2047 encoded words, folded (once)."""
    name = Header(PROGRAMME, _UTF8, header_name="From")
    name.append(f"<{sender}>", "us-ascii")
    return name.encode(linesep=WIRE.linesep)


def ascii_domain(address: str) -> str:
    """The address with an internationalised domain in its ASCII (punycode) form, as
    SMTP and the headers take it. `UnicodeError` if the domain is not a valid one."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}" if not domain.isascii() else address


def build(message: RenderedMessage, *, sender: str, recipient: str, mid: str, date: datetime, kind: str) -> Message:
    """`date`: when it is sent (a message tried again later carries the later date)."""
    email = MIMEMultipart("alternative")
    email["From"] = _from(sender)
    try:
        email["To"] = ascii_domain(recipient)
    except UnicodeError:
        email["To"] = recipient  # refused when it is sent, with the reason
    email["Subject"] = _subject(message.subject)  # type: ignore[assignment]  # a Header is taken as it is
    email["Date"] = format_datetime(date)
    email["Message-ID"] = mid
    email["Content-Language"] = message.language
    email["Auto-Submitted"] = "auto-generated"  # no out-of-office replies to a robot
    email["X-SIP-Kind"] = kind
    email.attach(MIMEText(message.text, "plain", "utf-8"))
    email.attach(MIMEText(message.html, "html", "utf-8"))
    return email


def wire_bytes(email: Message) -> bytes:
    """The message as it goes over SMTP (and into an .eml file): CRLF line endings."""
    return email.as_bytes(policy=WIRE)
