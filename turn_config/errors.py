"""Errors of the TURN package.

TurnConfigError (ValueError)      an input or configuration value is unusable; exit status 2
├── TurnUrlError                  a STUN/TURN URL does not follow RFC 7064 / RFC 7065
└── CredentialError               a secret, user name or TTL cannot make a credential
"""

from __future__ import annotations


class TurnConfigError(ValueError):
    """A value given to the TURN tooling is unusable; the message says which and why."""


class TurnUrlError(TurnConfigError):
    """A STUN/TURN URL is malformed."""


class CredentialError(TurnConfigError):
    """A TURN REST API credential cannot be made from the given secret, user or TTL."""
