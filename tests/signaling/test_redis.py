"""Two signaling servers sharing state through a real Redis (python-socketio's manager)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest

from signaling.transport import rooms
from tests.support.service import make_live_service

REDIS_URL = "redis://127.0.0.1:6379/0"


async def redis_reachable() -> bool:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except (OSError, redis.RedisError):
        return False
    finally:
        await client.aclose()


async def test_rooms_and_presence_span_processes(tmp_path: Path) -> None:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}; skipping the Redis manager test")
    shared = {
        "redis_url": REDIS_URL,
        # A channel of our own: other test runs may use the same Redis at the same time.
        "redis_channel": f"etapalvelu-test-{secrets.token_hex(6)}",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "revocation_check_seconds": 0.2,
    }
    async with (
        make_live_service(tmp_path / "a", **shared) as first,
        make_live_service(tmp_path / "b", **shared) as second,
    ):
        clerk = await second.connect_user("sihteeri")
        received: list[Any] = []
        clerk.on("office:note", received.append)
        pushes: list[dict[str, Any]] = []
        clerk.on("presence:changed", pushes.append)
        assert (await clerk.call("presence:get", {}))["ok"] is True
        # The second server subscribes to Redis when its first socket arrives; publish until
        # the subscription is live (then every later publish is delivered).
        for _ in range(100):
            await first.services.sio.emit(
                "office:note", {"hello": 1}, room=rooms.office(first.demo.office_id)
            )
            await asyncio.sleep(0.1)
            if received:
                break
        assert received and received[0] == {"hello": 1}
        expert = await first.connect_user("kela")
        assert (await expert.call("presence:set", {"status": "busy"}))["ok"] is True
        for _ in range(500):
            if any(p.get("status") == "busy" for p in pushes):
                break
            await asyncio.sleep(0.02)
        kela = first.demo.user_ids["kela"]
        assert any(p["id"] == kela and p["status"] == "busy" for p in pushes), pushes

        # Disabling the kiosk on the first server disconnects its socket on the second.
        kiosk = await second.connect_kiosk()
        async with first.services.sessions() as session:
            from signaling.directory import directory

            await directory.set_enabled(session, "endpoint", first.demo.endpoint_id, False)
            await session.commit()
        from signaling.transport.connections import disconnect_principal

        assert await disconnect_principal(first.services, "endpoint", first.demo.endpoint_id) == 0
        for _ in range(500):
            if not kiosk.connected:
                break
            await asyncio.sleep(0.02)
        assert not kiosk.connected
