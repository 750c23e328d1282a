"""Disabling a person or kiosk, or a session running out, disconnects their live sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
import socketio
from sqlalchemy import update

from signaling.db import utcnow
from signaling.directory.identity import sha256_hex
from signaling.store.models import UserSession
from tests.support.service import LiveService, connect_refusal, make_live_service


async def wait_disconnected(client: socketio.AsyncClient, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if not client.connected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the socket is still connected")


async def test_disabling_over_rest_disconnects_at_once(tmp_path: Path) -> None:
    # No sweep during the test: the REST call itself must disconnect.
    async with make_live_service(tmp_path, revocation_check_seconds=3600) as live_service:
        await _disable_over_rest(live_service)


async def _disable_over_rest(live_service: LiveService) -> None:
    admin_token = await live_service.login("admin")
    headers = {"Authorization": f"Bearer {admin_token}"}
    ids = live_service.demo.user_ids
    expert_a = await live_service.connect_user("kela")
    expert_b = await live_service.connect_user("kela")
    bystander = await live_service.connect_user("rakennus")
    kiosk = await live_service.connect_kiosk()
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{live_service.base_url}/api/admin/users/{ids['kela']}/disable"
        async with http.post(url) as response:
            assert response.status == 200
            body = await response.json()
        assert body == {"ok": True, "id": ids["kela"], "enabled": False, "disconnected": 2}
        await wait_disconnected(expert_a)
        await wait_disconnected(expert_b)
        url = f"{live_service.base_url}/api/admin/endpoints/{live_service.demo.endpoint_id}/disable"
        async with http.post(url) as response:
            assert (await response.json())["disconnected"] == 1
        await wait_disconnected(kiosk)
    assert bystander.connected
    assert (await bystander.call("session:ping", {}))["ok"] is True
    refusal = await connect_refusal(live_service.base_url, live_service.kiosk_auth)
    assert refusal["message"] == "this endpoint is disabled"


async def test_disabling_with_the_admin_cli_disconnects_within_the_sweep(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, revocation_check_seconds=0.2) as live:
        kiosk = await live.connect_kiosk()
        interpreter = await live.connect_user("tulkki")
        data_dir = str(live.settings.data_dir)
        for args in (
            ["endpoint", "disable", str(live.demo.endpoint_id)],
            ["user", "disable", str(live.demo.user_ids["tulkki"])],
        ):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "signaling",
                "admin",
                *args,
                "--data-dir",
                data_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _out, err = await process.communicate()
            assert process.returncode == 0, err.decode()
        await wait_disconnected(kiosk)
        await wait_disconnected(interpreter)


async def test_expired_session_is_disconnected(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, revocation_check_seconds=0.2) as live:
        token = await live.issue_token("kela")
        expert = await live.connect({"token": token})
        other = await live.connect_user("kela")
        async with live.services.sessions() as session:
            await session.execute(
                update(UserSession)
                .where(UserSession.token_hash == sha256_hex(token))
                .values(expires_at=utcnow() + timedelta(seconds=3))
            )
            await session.commit()
        # The expiry was read at connect; reconnect so the socket knows the new one.
        await expert.disconnect()
        expert = await live.connect({"token": token})
        await wait_disconnected(expert, 15)
        assert other.connected
