"""The identity step of the customer at home (`/join/<token>`, issue 18): a seam where an
e-identification provider plugs in.

    provider = identity_provider(settings)     # NoIdentity or OidcProvider
    url, pending = await provider.start(redirect_uri=...)   # send the browser to url
    identified = await provider.finish(params, pending, redirect_uri=...)  # at the callback

`NoIdentity` (the default, `join_identity = "none"`) skips the step: the customer enters the
waiting room on the strength of his link alone, as he checks in at a kiosk with his booking
code. `OidcProvider` speaks OpenID Connect (authorization code flow with PKCE S256, a `state`
against cross-site request forgery and a `nonce` against replayed tokens): the id_token's
signature is checked against the provider's JWKS (RS256 or ES256 only; `none` and HMAC are
refused), and so are its issuer, audience (our client id; `azp` when there are several),
expiry, issue time and nonce. A Finnish e-identification broker (Suomi.fi, a bank ID broker)
is an OpenID Connect provider like this one. `pending` (state, nonce, PKCE verifier) is kept
by the caller in an HttpOnly cookie of the browser that started the step.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
import jwt

from signaling.config import Settings

ALGORITHMS = ("RS256", "ES256")
DISCOVERY_TTL = 600.0  # seconds a provider's configuration and keys are kept
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
LEEWAY = 60  # seconds of clock difference allowed on exp / iat / nbf


class IdentityError(Exception):
    """The identity step failed; `reason` is a stable code the page translates."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Identified:
    provider: str  # "" when no identity step was taken
    subject: str | None = None
    name: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


class IdentityProvider(Protocol):
    name: str

    async def start(self, *, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """The provider's URL to send the browser to, and what to keep until the callback."""
        ...

    async def finish(
        self, params: Mapping[str, str], pending: Mapping[str, str], *, redirect_uri: str
    ) -> Identified:
        """Check the provider's answer (callback query `params`). Raises IdentityError."""
        ...


class NoIdentity:
    """No identity step: the link alone lets the customer in."""

    name = "none"

    async def start(self, *, redirect_uri: str) -> tuple[str, dict[str, str]]:
        raise IdentityError("not_configured", "no identity provider is configured")

    async def finish(
        self, params: Mapping[str, str], pending: Mapping[str, str], *, redirect_uri: str
    ) -> Identified:
        raise IdentityError("not_configured", "no identity provider is configured")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class OidcProvider:
    """OpenID Connect, authorization code + PKCE; see the module docstring."""

    name = "oidc"

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str = "",
        scope: str = "openid",
        *,
        allow_http: bool = False,
    ) -> None:
        if not issuer or not client_id:
            raise ValueError("OpenID Connect needs oidc_issuer and oidc_client_id")
        if not issuer.startswith("https://") and not (allow_http and issuer.startswith("http://")):
            raise ValueError("oidc_issuer must be an https URL")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope if "openid" in scope.split() else f"openid {scope}".strip()
        self.allow_http = allow_http
        self._config: dict[str, Any] | None = None
        self._config_at = 0.0
        self._keys: dict[str, Any] = {}
        self._keys_at = 0.0

    # --- the provider's metadata and keys -------------------------------------------------

    async def _get_json(self, url: str) -> Any:
        if not url.startswith("https://") and not (self.allow_http and url.startswith("http://")):
            raise IdentityError("provider_config", f"refusing a non-https provider URL {url!r}")
        try:
            async with (
                aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
                http.get(url, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise IdentityError("provider_unavailable", f"{url}: HTTP {response.status}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise IdentityError("provider_unavailable", f"{url}: {exc}") from exc

    async def configuration(self) -> dict[str, Any]:
        if self._config is not None and time.monotonic() - self._config_at < DISCOVERY_TTL:
            return self._config
        found = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if not isinstance(found, dict) or found.get("issuer", "").rstrip("/") != self.issuer:
            raise IdentityError("provider_config", "the discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(found.get(key), str):
                raise IdentityError("provider_config", f"the discovery document lacks {key}")
        self._config, self._config_at = found, time.monotonic()
        return found

    async def _key(self, kid: str | None, alg: str) -> Any:
        fresh = time.monotonic() - self._keys_at < DISCOVERY_TTL
        for attempt in range(2):
            if attempt == 1 or not fresh or not self._keys:
                config = await self.configuration()
                jwks = await self._get_json(config["jwks_uri"])
                keys: dict[str, Any] = {}
                for entry in jwks.get("keys", []) if isinstance(jwks, dict) else []:
                    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                        continue
                    try:
                        keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
                    except (jwt.exceptions.PyJWKError, jwt.exceptions.InvalidKeyError):
                        continue
                self._keys, self._keys_at = keys, time.monotonic()
            key = self._keys.get(kid or "")
            if key is None and kid is None and len(self._keys) == 1:
                key = next(iter(self._keys.values()))
            if key is not None:
                if key.algorithm_name != alg:
                    raise IdentityError("bad_token", "the key is not for this algorithm")
                return key.key
        raise IdentityError("bad_token", "the token is signed by a key the provider does not list")

    # --- the flow ---------------------------------------------------------------------------

    async def start(self, *, redirect_uri: str) -> tuple[str, dict[str, str]]:
        config = await self.configuration()
        pending = {
            "state": secrets.token_urlsafe(24),
            "nonce": secrets.token_urlsafe(24),
            "verifier": secrets.token_urlsafe(48),
        }
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.scope,
                "state": pending["state"],
                "nonce": pending["nonce"],
                "code_challenge": pkce_challenge(pending["verifier"]),
                "code_challenge_method": "S256",
            }
        )
        endpoint = config["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", pending

    async def finish(
        self, params: Mapping[str, str], pending: Mapping[str, str], *, redirect_uri: str
    ) -> Identified:
        state = params.get("state", "")
        expected = pending.get("state", "")
        if not expected or not hmac.compare_digest(state.encode(), expected.encode()):
            raise IdentityError("bad_state", "the answer is not for this browser's request")
        if "error" in params:
            raise IdentityError("refused", f"the provider said {params['error'][:100]!r}")
        code = params.get("code", "")
        if not code or len(code) > 2000:
            raise IdentityError("bad_answer", "the provider's answer has no code")
        id_token = await self._exchange(code, pending.get("verifier", ""), redirect_uri)
        claims = await self.verify_id_token(id_token, pending.get("nonce", ""))
        name = claims.get("name")
        return Identified(
            provider=self.name,
            subject=str(claims["sub"])[:255],
            name=name[:200] if isinstance(name, str) else None,
            claims=claims,
        )

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        config = await self.configuration()
        url = config["token_endpoint"]
        if not url.startswith("https://") and not (self.allow_http and url.startswith("http://")):
            raise IdentityError("provider_config", "refusing a non-https token endpoint")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        auth = aiohttp.BasicAuth(self.client_id, self.client_secret) if self.client_secret else None
        try:
            async with (
                aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
                http.post(url, data=form, auth=auth, allow_redirects=False) as response,
            ):
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise IdentityError("provider_unavailable", f"token endpoint: {exc}") from exc
        if status != 200 or not isinstance(body, dict):
            raise IdentityError("refused", f"the token endpoint answered HTTP {status}")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or len(id_token) > 16384:
            raise IdentityError("bad_answer", "the token endpoint sent no id_token")
        return id_token

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The id_token's claims once its signature, issuer, audience, times and nonce hold."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.exceptions.PyJWTError as exc:
            raise IdentityError("bad_token", f"not a signed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise IdentityError("bad_token", f"algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.exceptions.PyJWTError as exc:
            raise IdentityError("bad_token", f"the id_token does not hold: {exc}") from exc
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise IdentityError("bad_token", "the id_token was issued to another party (azp)")
        got = claims.get("nonce")
        if not nonce or not isinstance(got, str) or not hmac.compare_digest(got, nonce):
            raise IdentityError("bad_nonce", "the id_token's nonce is not this request's")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise IdentityError("bad_token", "the id_token has no subject")
        return claims


def identity_provider(settings: Settings) -> IdentityProvider:
    if settings.join_identity == "oidc":
        return OidcProvider(
            settings.oidc_issuer,
            settings.oidc_client_id,
            settings.oidc_client_secret,
            settings.oidc_scope,
            allow_http=settings.oidc_allow_http,
        )
    return NoIdentity()


def encode_pending(token: str, pending: Mapping[str, str]) -> str:
    return b64url(json.dumps({"token": token, **pending}, separators=(",", ":")).encode())


def decode_pending(value: str) -> dict[str, str] | None:
    """The cookie kept during the identity step, or None if it is garbage."""
    if not value or len(value) > 2000:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("token", "state", "nonce", "verifier")
    ):
        return None
    return {k: data[k] for k in ("token", "state", "nonce", "verifier")}
