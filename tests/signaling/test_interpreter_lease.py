"""An alerted interpreter whose process died (signaling/flow/interpreters.py `interpreter_lost`,
run by the lease sweeper of signaling/flow/leases.py), on a real Redis: the dead process is a
registration whose lease key is gone, as `kill -9` leaves it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from signaling.flow.flow_common import load_ids
from signaling.store.flow_models import InterpreterRequest
from tests.signaling.test_presence_lease import (
    LEASE_SECONDS,
    drop_channel_keys,
    redis_client,  # noqa: F401 (fixture)
    shared_settings,
)
from tests.support.service import make_live_service


async def test_dead_process_interpreter_leaves_the_ring(
    tmp_path: Path,
    redis_client: Any,  # noqa: F811
) -> None:
    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    channel = shared["redis_channel"]
    try:
        async with make_live_service(tmp_path / "a", **shared) as live:
            tulkki = live.demo.user_ids["tulkki"]
            kiosk = await live.connect_kiosk()
            expert = await live.connect_user("kela")
            interpreter = await live.connect_user("tulkki")
            updates: list[dict[str, Any]] = []
            expert.on("interpreter:update", updates.append)
            for client in (kiosk, expert, interpreter):
                assert (await client.call("flow:sync", {}))["ok"]
            assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
            call_id = (await expert.call("queue:take_next", {}))["call"]["id"]
            asked = await expert.call(
                "interpreter:request", {"call_id": call_id, "language": "fse"}
            )
            assert asked["ok"] and asked["alerted"] == 1, asked
            request_id = asked["request"]["id"]
            # His socket goes (here, on this process, without a withdrawal) and a dead
            # process still holds one of his: the sweeper must take him out of the ring.
            await interpreter.disconnect()
            await asyncio.sleep(0.3)
            updates.clear()
            await redis_client.sadd(f"{channel}:procs", "dead")
            await redis_client.hset(f"{channel}:proc-sockets:dead", mapping={f"user:{tulkki}": 1})
            for _ in range(int((LEASE_SECONDS * 2 + 3) / 0.05)):
                if any(u.get("alerted") == 0 for u in updates):
                    break
                await asyncio.sleep(0.05)
            mine = [u for u in updates if u["request"]["id"] == request_id]
            assert mine and mine[-1]["alerted"] == 0, updates
            assert mine[-1]["request"]["status"] == "ringing"
            async with live.services.sessions() as session:
                row = await session.get(InterpreterRequest, request_id)
                assert row is not None and tulkki not in load_ids(row.alerted)
    finally:
        await drop_channel_keys(redis_client, channel)
