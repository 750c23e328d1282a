"""Short-lived TURN credentials in the form of coturn's TURN REST API (`use-auth-secret`).

The signaling server and coturn share a secret. For each participant joining a call the
server mints

    username = "<expiry as Unix seconds>:<user label>"
    password = base64(HMAC-SHA1(secret, username))

coturn recomputes the password from the user name and refuses it (401) once the expiry has
passed, so nothing has to be stored or revoked. Several secrets may be listed in coturn's
configuration at once; new credentials are always signed with the first one, which makes
rotation a matter of prepending the new secret, waiting one TTL, then dropping the old one.

`ice_servers_for(settings, user_id)` is what the signaling service calls on `call:join`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from turn_config.errors import CredentialError
from turn_config.urls import parse_ice_url

logger = logging.getLogger(__name__)

# coturn's REST API separator is ':'; a user label must not contain it, and is kept short
# and printable because it shows up in coturn's logs and counts towards `user-quota`.
_USER_LABEL = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
MIN_SECRET_LENGTH = 16
MAX_TTL = 7 * 86400


class TurnSettings(Protocol):
    """The fields of `signaling.config.Settings` this module reads."""

    stun_urls: list[str]
    turn_urls: list[str]
    turn_secrets: list[str]
    turn_credential_ttl: int


@dataclass(frozen=True)
class TurnCredential:
    username: str
    password: str
    ttl: int
    expires_at: int

    def rest_api_response(self, uris: list[str]) -> dict[str, Any]:
        """The JSON body of the TURN REST API draft (draft-uberti-behave-turn-rest-00 §2.2)."""
        return {
            "username": self.username,
            "password": self.password,
            "ttl": self.ttl,
            "uris": list(uris),
        }


def check_secret(secret: str) -> str:
    if not isinstance(secret, str) or not secret:
        raise CredentialError("the TURN secret is empty")
    if len(secret) < MIN_SECRET_LENGTH:
        raise CredentialError(
            f"the TURN secret is too short ({len(secret)} characters; use at least "
            f"{MIN_SECRET_LENGTH}, e.g. `openssl rand -hex 32`)"
        )
    if any(ch.isspace() for ch in secret) or not secret.isprintable() or "#" in secret:
        # coturn's configuration parser would cut the value at whitespace or '#'.
        raise CredentialError("the TURN secret must not contain spaces, '#' or control characters")
    return secret


def check_user_label(user: str) -> str:
    if not isinstance(user, str) or not _USER_LABEL.fullmatch(user):
        raise CredentialError(
            f"user {user!r} is not usable in a TURN user name: use 1–128 characters of "
            "A–Z a–z 0–9 . _ @ + - (no ':', which separates the expiry)"
        )
    return user


def safe_user_label(user_id: str) -> str:
    """Turn any participant id into a label coturn accepts (':' and others become '_')."""
    label = _UNSAFE.sub("_", str(user_id))[:128]
    return label or "anonymous"


def check_ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise CredentialError(f"TTL {ttl!r} must be a whole number of seconds in 1–{MAX_TTL}")
    return ttl


def password_for(secret: str, username: str) -> str:
    """coturn's REST API password: base64 of HMAC-SHA1(secret, username)."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint_credential(secret: str, user: str, ttl: int, now: float | None = None) -> TurnCredential:
    """A credential for `user` valid for `ttl` seconds from `now` (default: the clock)."""
    check_secret(secret)
    check_user_label(user)
    check_ttl(ttl)
    expires_at = int(time.time() if now is None else now) + ttl
    username = f"{expires_at}:{user}"
    return TurnCredential(username, password_for(secret, username), ttl, expires_at)


def read_secret_file(path: Path) -> list[str]:
    """Secrets from a file: one per line, blank lines and '#' comments ignored; newest first."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialError(f"cannot read secret file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise CredentialError(f"secret file {path} is not UTF-8 text") from None
    secrets = [line.strip() for line in text.splitlines()]
    secrets = [line for line in secrets if line and not line.startswith("#")]
    if not secrets:
        raise CredentialError(f"secret file {path} holds no secret")
    for secret in secrets:
        try:
            check_secret(secret)
        except CredentialError as exc:
            raise CredentialError(f"secret file {path}: {exc}") from None
    return secrets


def ice_servers_for(
    settings: TurnSettings, user_id: str, now: float | None = None
) -> list[dict[str, Any]]:
    """RTCIceServer dicts for one participant joining a call.

    STUN URLs come as one entry without credentials; TURN URLs as one entry with a fresh
    credential signed with the first of `settings.turn_secrets`, valid for
    `settings.turn_credential_ttl` seconds. `user_id` only labels the allocation in coturn's
    logs and quota; characters coturn cannot take are replaced. Raises CredentialError when
    TURN URLs are configured without a secret (calls behind firewalls would fail silently),
    and TurnUrlError for a malformed URL.
    """
    servers: list[dict[str, Any]] = []
    stun_urls = list(settings.stun_urls)
    for url in stun_urls:
        if parse_ice_url(url).is_turn:
            raise CredentialError(f"stun_urls holds a TURN URL {url!r}; move it to turn_urls")
    if stun_urls:
        servers.append({"urls": stun_urls})
    if settings.turn_urls:
        for url in settings.turn_urls:
            if not parse_ice_url(url).is_turn:
                raise CredentialError(f"turn_urls holds a STUN URL {url!r}; move it to stun_urls")
        if not settings.turn_secrets:
            raise CredentialError("turn_urls are configured but turn_secrets is empty")
        credential = mint_credential(
            settings.turn_secrets[0],
            safe_user_label(user_id),
            settings.turn_credential_ttl,
            now=now,
        )
        servers.append(
            {
                "urls": list(settings.turn_urls),
                "username": credential.username,
                "credential": credential.password,
            }
        )
    return servers
