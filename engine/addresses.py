"""E-mail addresses are checked by `email-validator` (behind pydantic's `EmailStr`), with
its check of the part after the @-sign done once per domain.

That check (length, characters, UTS-46 normalisation, IDNA encoding, special-use names)
is about four fifths of the cost of checking an address, and depends on nothing but the
domain; the applicants of a round write from a few hundred domains. `remember_domains`
puts a bounded cache in front of it: the answer for a domain is the one
`email-validator` gives, and a domain it refuses is not remembered (it is checked again,
and refused with the same message, each time). Nothing else of the check changes: the
part before the @-sign, the address's length and pydantic's own rules are checked for
every address (deliverability is not checked: no I/O). It lives in the engine, not in
`domain/`, because it changes a library for the whole process; `engine` loads it."""

from __future__ import annotations

import sys
from functools import lru_cache

import email_validator  # noqa: F401  (loads the module patched below)
from email_validator.syntax import DomainNameValidationResult, validate_email_domain_name

#: How many domains are remembered (a few hundred Parties write to the programme).
DOMAINS_REMEMBERED = 4096

_check = sys.modules["email_validator.validate_email"]
_uncached = validate_email_domain_name


@lru_cache(maxsize=DOMAINS_REMEMBERED)
def _checked(domain: str, test_environment: bool, globally_deliverable: bool) -> DomainNameValidationResult:
    return _uncached(domain, test_environment=test_environment, globally_deliverable=globally_deliverable)


def domain_checked_once(
    domain: str, test_environment: bool = False, globally_deliverable: bool = True
) -> DomainNameValidationResult:
    """`email_validator.syntax.validate_email_domain_name`, remembered per domain (a copy
    of the answer, so that no caller can change what is remembered)."""
    return _checked(domain, test_environment, globally_deliverable).copy()


def remember_domains() -> None:
    """Check each domain once in this process (safe to call again)."""
    _check.validate_email_domain_name = domain_checked_once  # type: ignore[attr-defined]


remember_domains()
