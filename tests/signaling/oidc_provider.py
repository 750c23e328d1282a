"""A small OpenID Connect provider for tests: an aiohttp app on 127.0.0.1 that issues RS256
id_tokens (authorization code flow with PKCE S256).

    async with LocalOidcProvider(client_id="etapalvelu") as op:
        params = await op.authorize(url)              # GET the authorize URL like a browser
        params = await op.authorize(url, nonce="x")   # ... and issue a token that is wrong so

`authorize` approves at once (the user "logs in") and returns the query the provider
redirects back with ({code, state} or {error, state}). Tweaks make the next id_token wrong in
one way: `nonce`, `audience`, `issuer`, `expired`, `sign_with_other_key`, `alg` ("none",
"HS256"), `state`, `error`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.net import LOOPBACK, free_port


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalOidcProvider:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.port = free_port()
        self.issuer = f"http://{LOOPBACK}:{self.port}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.codes: dict[str, dict[str, Any]] = {}
        self.next_tweaks: dict[str, Any] = {}
        self.verified_pkce = 0
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> LocalOidcProvider:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize_endpoint)
        app.router.add_post("/token", self.token)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, LOOPBACK, self.port).start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def discovery(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, _request: web.Request) -> web.Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return web.json_response({"keys": [jwk]})

    async def authorize_endpoint(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        tweaks, self.next_tweaks = self.next_tweaks, {}
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            raise web.HTTPBadRequest(text="unknown client or response type")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            raise web.HTTPBadRequest(text="PKCE S256 required")
        state = tweaks.get("state", query.get("state", ""))
        if "error" in tweaks:
            return web.HTTPFound(f"{query['redirect_uri']}?error={tweaks['error']}&state={state}")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": query["redirect_uri"],
            "challenge": query["code_challenge"],
            "nonce": query.get("nonce", ""),
            "tweaks": tweaks,
        }
        return web.HTTPFound(f"{query['redirect_uri']}?code={code}&state={state}")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self.codes.pop(str(form.get("code", "")), None)
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != self.client_id
            or form.get("redirect_uri") != grant["redirect_uri"]
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        if _b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return web.json_response({"error": "invalid_grant", "why": "pkce"}, status=400)
        self.verified_pkce += 1
        tweaks = grant["tweaks"]
        now = int(time.time())
        claims = {
            "iss": tweaks.get("issuer", self.issuer),
            "aud": tweaks.get("audience", self.client_id),
            "sub": "010101-123N",
            "name": "Testi Asiakas",
            "nonce": tweaks.get("nonce", grant["nonce"]),
            "iat": now - (7200 if tweaks.get("expired") else 0),
            "exp": now + (-3600 if tweaks.get("expired") else 300),
        }
        alg = tweaks.get("alg", "RS256")
        if alg == "none":
            id_token = jwt.encode(claims, None, algorithm="none", headers={"kid": self.kid})
        elif alg == "HS256":
            id_token = jwt.encode(
                claims,
                "a-guessable-secret-of-32-bytes!!",
                algorithm="HS256",
                headers={"kid": self.kid},
            )
        else:
            key = self.other_key if tweaks.get("sign_with_other_key") else self.key
            id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "id_token": id_token,
            }
        )

    async def authorize(self, url: str, **tweaks: Any) -> dict[str, str]:
        """GET the authorization URL as the user's browser would; the query it redirects to."""
        self.next_tweaks = tweaks
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, allow_redirects=False) as response,
        ):
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
        return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
