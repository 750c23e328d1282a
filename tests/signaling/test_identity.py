"""Passwords, session tokens and kiosk credentials, directly and over HTTP / socket.io."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select, update

from signaling.db import utcnow
from signaling.directory.identity import (
    AuthenticationError,
    authenticate,
    hash_password,
    login,
    sha256_hex,
    verify_password,
)
from signaling.directory.principals import Role
from signaling.store.models import Endpoint, User, UserSession
from tests.support.service import LiveService, connect_refusal, http_login


def test_password_hash_is_argon2_and_verifies() -> None:
    hashed = hash_password("oikea salasana")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "oikea salasana")
    assert not verify_password(hashed, "väärä salasana")
    assert not verify_password("not a hash", "oikea salasana")


async def test_login_issues_a_token_stored_only_as_hash(live_service: LiveService) -> None:
    body = await http_login(live_service.base_url, "kela", "kela-demo")
    token = body["token"]
    assert body["user"]["username"] == "kela" and body["user"]["role"] == "expert"
    assert body["user"]["authorities"] == ["kela"]
    async with live_service.services.sessions() as session:
        hashes = (await session.execute(select(UserSession.token_hash))).scalars().all()
    assert sha256_hex(token) in hashes
    assert token not in hashes
    principal = await authenticate(live_service.services.sessions, {"token": token})
    assert principal.role == Role.EXPERT and principal.kind == "user"


@pytest.mark.parametrize(
    ("username", "password"),
    [("kela", "wrong-password"), ("nobody", "kela-demo"), ("kela", "KELA-DEMO")],
)
async def test_wrong_credentials_are_refused(
    live_service: LiveService, username: str, password: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{live_service.base_url}/api/login",
            json={"username": username, "password": password},
        ) as response,
    ):
        assert response.status == 401
        body = await response.json()
    assert body == {
        "ok": False,
        "error": {"code": "unauthenticated", "message": "wrong username or password"},
    }
    async with live_service.services.sessions() as session:
        assert (await session.execute(select(UserSession))).scalars().all() == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"username": "kela"}',
        b'{"username": "kela", "password": "kela-demo", "extra": 1}',
        b'{"username": 5, "password": "kela-demo"}',
        b"\xff\xfe",
    ],
)
async def test_malformed_login_bodies_are_invalid(live_service: LiveService, body: bytes) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{live_service.base_url}/api/login", data=body) as response,
    ):
        assert response.status == 400
        answer = await response.json()
    assert answer["ok"] is False and answer["error"]["code"] == "invalid"


async def test_disabled_user_cannot_log_in_or_connect(live_service: LiveService) -> None:
    token = await live_service.issue_token("tulkki")
    async with live_service.services.sessions() as session:
        await session.execute(update(User).where(User.username == "tulkki").values(enabled=False))
        await session.commit()
    with pytest.raises(PermissionError, match="disabled"):
        await live_service.login("tulkki")
    refusal = await connect_refusal(live_service.base_url, {"token": token})
    assert refusal == {
        "message": "this account is disabled",
        "data": {"code": "unauthenticated"},
    }


async def test_expired_token_is_refused(live_service: LiveService) -> None:
    token = await live_service.issue_token("kela")
    async with live_service.services.sessions() as session:
        await session.execute(
            update(UserSession)
            .where(UserSession.token_hash == sha256_hex(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    refusal = await connect_refusal(live_service.base_url, {"token": token})
    assert refusal == {
        "message": "session expired; log in again",
        "data": {"code": "unauthenticated"},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{live_service.base_url}/api/me", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 401


@pytest.mark.parametrize(
    "auth",
    [
        None,
        {},
        {"token": "forged-token-that-was-never-issued-xxxxxxxx"},
        {"token": ""},
        {"token": 12345},
        {"token": "x" * 5000},
        {"endpoint_id": 1, "credential": "wrong"},
        {"endpoint_id": 999, "credential": "demo-kiosk-credential-not-for-production"},
        {"endpoint_id": "1; DROP TABLE users", "credential": "x"},
        {"endpoint_id": True, "credential": "x"},
        {"endpoint_id": 1},
        {"token": "a" * 43, "endpoint_id": 1, "credential": "x"},
        "just a string",
    ],
)
async def test_socket_without_valid_credentials_is_refused(
    live_service: LiveService, auth: object
) -> None:
    refusal = await connect_refusal(live_service.base_url, auth)
    assert refusal["data"] == {"code": "unauthenticated"} and refusal["message"]
    assert len(live_service.services.connections) == 0
    # The service is unaffected: a good client still gets in.
    kiosk = await live_service.connect_kiosk()
    assert (await kiosk.call("session:whoami", {}))["ok"] is True


async def test_kiosk_credential_identifies_its_office(live_service: LiveService) -> None:
    principal = await authenticate(live_service.services.sessions, live_service.kiosk_auth)
    assert principal.kind == "endpoint" and principal.role == Role.ENDPOINT
    assert principal.office_id == live_service.demo.office_id
    async with live_service.services.sessions() as session:
        await session.execute(update(Endpoint).values(enabled=False))
        await session.commit()
    with pytest.raises(AuthenticationError, match="disabled"):
        await authenticate(live_service.services.sessions, live_service.kiosk_auth)


async def test_login_removes_expired_sessions(live_service: LiveService) -> None:
    sessions = live_service.services.sessions
    first = await login(sessions, "admin", "admin-demo", 3600)
    async with sessions() as session:
        await session.execute(
            update(UserSession)
            .where(UserSession.token_hash == sha256_hex(first.token))
            .values(expires_at=utcnow() - timedelta(hours=1))
        )
        await session.commit()
    await login(sessions, "admin", "admin-demo", 3600)
    async with sessions() as session:
        rows = (await session.execute(select(UserSession))).scalars().all()
    assert len(rows) == 1 and rows[0].token_hash != sha256_hex(first.token)


async def test_logout_ends_the_session(live_service: LiveService) -> None:
    token = await live_service.login("sihteeri")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{live_service.base_url}/api/me", headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["user"]["role"] == "clerk"
        async with http.post(f"{live_service.base_url}/api/logout", headers=headers) as response:
            assert response.status == 200
        async with http.get(f"{live_service.base_url}/api/me", headers=headers) as response:
            assert response.status == 401


async def test_password_guessing_is_throttled(live_service: LiveService) -> None:
    from signaling.directory.login_guard import Limits

    url = f"{live_service.base_url}/api/login"
    async with aiohttp.ClientSession() as http:
        for _ in range(Limits().per_pair):
            async with http.post(url, json={"username": "kela", "password": "guess"}) as r:
                assert r.status == 401
        # Even the right password is refused for a while ...
        async with http.post(url, json={"username": "kela", "password": "kela-demo"}) as r:
            assert r.status == 429
            assert (await r.json())["error"]["code"] == "rate_limited"
        # ... for that username only.
        async with http.post(url, json={"username": "tulkki", "password": "tulkki-demo"}) as r:
            assert r.status == 200
