"""Applicant access codes: shown once, stored only as a SHA-256 hash.

A submission with an idempotency key gets a code derived from the server's secret
key and that idempotency key, so a retried submission can be answered with the same
code without the code ever being stored.

A code is 20 characters of Crockford's base 32 in groups of four
(`7KQM-4XRT-9HWD-PN3C-F8JV`, 100 bits): digits and capitals without I, L, O and U, so
that it can be read from a printout and typed back. It is read back as Crockford says:
small letters as capitals, I and L as 1, O as 0, spaces and hyphens anywhere. Codes
given before this format (43 characters of URL-safe base 64) keep working."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

#: Crockford's base 32.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARACTERS = 20
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0", " ": None, "-": None, "\u00a0": None, "\u2011": None})
_CODE = re.compile(f"[{ALPHABET}]{{{CODE_CHARACTERS}}}")


def access_code(raw: bytes) -> str:
    """The code of 100 bits of `raw` (at least 13 bytes), grouped by four."""
    number = int.from_bytes(raw[:13], "big") >> 4
    characters = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(CODE_CHARACTERS)))
    return "-".join(characters[i : i + 4] for i in range(0, CODE_CHARACTERS, 4))


def canonical_code(text: str) -> str | None:
    """The code as it was given out, from what a person typed back; None if it is not one."""
    characters = text.upper().translate(_READ_AS)
    if not _CODE.fullmatch(characters):
        return None
    return "-".join(characters[i : i + 4] for i in range(0, CODE_CHARACTERS, 4))


def _derived_digest(secret: bytes, round_id: str, idempotency_key: str) -> bytes:
    return hmac.new(secret, f"access-token\x00{round_id}\x00{idempotency_key}".encode(), hashlib.sha256).digest()


def derive_token(secret: bytes, round_id: str, idempotency_key: str, stored_hash: str | None = None) -> str:
    """The access code of the application taken in under `idempotency_key`. Given the
    hash stored for it, the code in the format it was given out in: one given out in
    the format before grouped codes is made again in that format."""
    digest = _derived_digest(secret, round_id, idempotency_key)
    code = access_code(digest)
    if stored_hash is not None and not hmac.compare_digest(token_hash(code), stored_hash):
        earlier = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if hmac.compare_digest(token_hash(earlier), stored_hash):
            return earlier
    return code


def random_token() -> str:
    """A secret that is never typed (a link's, a session's)."""
    return secrets.token_urlsafe(32)


def random_access_code() -> str:
    return access_code(secrets.token_bytes(13))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    """Whether `token` is the code (or token) whose hash is stored: as given, or as the
    access code it reads as."""
    if not token:
        return False
    as_given = hmac.compare_digest(token_hash(token), stored_hash)
    code = canonical_code(token) if len(token) <= 60 else None
    return as_given | (code is not None and hmac.compare_digest(token_hash(code), stored_hash))


def derive_secret(secret: bytes, purpose: str, value: str) -> str:
    """A token derived from the secret key for one purpose and value: it can be made
    again when a message is delivered, so it is never stored (only its hash is)."""
    digest = hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def derive_link_token(secret: bytes, nonce: str) -> str:
    """A reviewer's sign-in link token, from the link's nonce."""
    return derive_secret(secret, "reviewer-link", nonce)


def derive_bundle_token(secret: bytes, message_key: str) -> str:
    """A committee member's download link for a bundle, from its message's key."""
    return derive_secret(secret, "bundle-link", message_key)


def derive_agreement_token(secret: bytes, message_key: str) -> str:
    """A grant recipient's link to their agreement, from its message's key."""
    return derive_secret(secret, "agreement-link", message_key)


def status_proof(secret: bytes, reference: str, until: int, purpose: str = "status-page") -> str:
    """Proof, until `until` (a Unix time), that its holder gave `reference`'s access code:
    the status page's language buttons send it instead of the code, which is never
    written into a page. `purpose`: the page it holds for (the status page's does not
    open the forms page's, nor the reverse)."""
    mac = hmac.new(secret, f"{purpose}:{reference}:{until}".encode(), hashlib.sha256).hexdigest()
    return f"{until}.{mac}"


_PROOF = re.compile(r"([0-9]{1,12})\.[0-9a-f]{64}")


def status_proof_until(secret: bytes, reference: str, proof: str, now: int, purpose: str = "status-page") -> int | None:
    """Until when `proof` holds for `reference`; None if it is not one, or no longer holds."""
    found = _PROOF.fullmatch(proof)
    if found is None or int(found.group(1)) < now:
        return None
    until = int(found.group(1))
    expected = status_proof(secret, reference, until, purpose)
    return until if hmac.compare_digest(proof.encode(), expected.encode()) else None


def derive_draft_token(secret: bytes, nonce: str) -> str:
    """An applicant's link to their draft application, from the draft's nonce."""
    return derive_secret(secret, "draft-link", nonce)
