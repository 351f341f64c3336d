"""Applicant access tokens: shown once, stored only as a SHA-256 hash.

A submission with an idempotency key gets a token derived from the server's secret
key and that idempotency key, so a retried submission can be answered with the same
token without the token ever being stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets


def derive_token(secret: bytes, round_id: str, idempotency_key: str) -> str:
    digest = hmac.new(secret, f"access-token\x00{round_id}\x00{idempotency_key}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def random_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token_hash(token), stored_hash)


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


def status_proof(secret: bytes, reference: str, until: int) -> str:
    """Proof, until `until` (a Unix time), that its holder gave `reference`'s access code:
    the status page's language buttons send it instead of the code, which is never
    written into a page."""
    mac = hmac.new(secret, f"status-page:{reference}:{until}".encode(), hashlib.sha256).hexdigest()
    return f"{until}.{mac}"


_PROOF = re.compile(r"([0-9]{1,12})\.[0-9a-f]{64}")


def status_proof_until(secret: bytes, reference: str, proof: str, now: int) -> int | None:
    """Until when `proof` holds for `reference`; None if it is not one, or no longer holds."""
    found = _PROOF.fullmatch(proof)
    if found is None or int(found.group(1)) < now:
        return None
    until = int(found.group(1))
    return until if hmac.compare_digest(proof.encode(), status_proof(secret, reference, until).encode()) else None
