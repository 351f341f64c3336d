"""Access codes that a person can copy from a printout: 20 characters of Crockford's base
32 in groups of four, read back however they are typed, and the codes given out before
this format still working."""

from __future__ import annotations

import base64
import hashlib
import hmac

from engine.services.tokens import (
    ALPHABET,
    canonical_code,
    derive_token,
    random_access_code,
    token_hash,
    token_matches,
)

SECRET = b"s" * 32


def test_a_code_has_five_groups_of_four_characters_without_look_alike_letters() -> None:
    codes = {random_access_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4, 4]
        assert set("".join(groups)) <= set(ALPHABET) and not set("ILOU") & set(code)


def test_a_code_is_read_back_however_it_is_typed() -> None:
    code = "7KQM-4XR1-9HWD-PN30-F8JV"
    stored = token_hash(code)
    for typed in (
        "7kqm 4xr1 9hwd pn30 f8jv",
        "7KQM4XRI9HWDPN3OF8JV",
        " 7kqm-4xrl-9hwd-pn3o-f8jv ",
        "7KQM\u00a04XR1 9HWD PN30 F8JV",
    ):
        assert canonical_code(typed) == code and token_matches(typed, stored)
    for wrong in ("7KQM-4XR1-9HWD-PN30-F8J", "7KQM-4XR1-9HWD-PN30-F8JU", "", "7KQM-4XR1-9HWD-PN30-F8JW"):
        assert not token_matches(wrong, stored)


def test_a_code_given_out_before_the_grouped_format_still_opens_its_application() -> None:
    """An application taken in before, with a derived code in base 64: its code is made
    again in that format (for a receipt still queued, or a retried submission) and still
    matches; a new one is grouped."""
    digest = hmac.new(SECRET, b"access-token\x00sip-2018-r1\x00api:key-1", hashlib.sha256).digest()
    earlier = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert derive_token(SECRET, "sip-2018-r1", "api:key-1", token_hash(earlier)) == earlier
    assert token_matches(earlier, token_hash(earlier))
    grouped = derive_token(SECRET, "sip-2018-r1", "api:key-1")
    assert grouped != earlier and derive_token(SECRET, "sip-2018-r1", "api:key-1", token_hash(grouped)) == grouped
