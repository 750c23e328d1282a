"""Presence and limits across signaling processes (signaling/flow/leases.py), on a real Redis.

A killed process is a real `python -m signaling serve` subprocess, killed with SIGKILL while
an expert's socket is connected to it; the in-process server sharing its database and Redis
must mark the expert offline once the lease lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio

from signaling.flow.presence import presence_snapshot
from tests.signaling.test_presence import Pushes, entry
from tests.signaling.test_redis import REDIS_URL, redis_reachable
from tests.support.net import free_port
from tests.support.service import connect_refusal, connect_socket, make_live_service

LEASE_SECONDS = 1.5


def shared_settings(database_url: str, **more: Any) -> dict[str, Any]:
    return {
        "redis_url": REDIS_URL,
        # A channel of our own: other test runs may use the same Redis at the same time.
        "redis_channel": f"etapalvelu-test-{secrets.token_hex(6)}",
        "database_url": database_url,
        "process_lease_seconds": LEASE_SECONDS,
        **more,
    }


@pytest_asyncio.fixture
async def redis_client() -> AsyncIterator[Any]:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def drop_channel_keys(client: Any, channel: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{channel}:*")]
    if keys:
        await client.delete(*keys)


@contextlib.asynccontextmanager
async def serve_subprocess(
    tmp: Path, shared: dict[str, Any]
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m signaling serve --demo` on loopback with the shared database and Redis."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ETAPALVELU_REDIS_CHANNEL": shared["redis_channel"],
        "ETAPALVELU_PROCESS_LEASE_SECONDS": str(shared["process_lease_seconds"]),
        "ETAPALVELU_STUN_URLS": "[]",
        "ETAPALVELU_TURN_URLS": "[]",
    }
    log_path = tmp.parent / f"serve-{tmp.name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [
            sys.executable,
            "-m",
            "signaling",
            "serve",
            "--demo",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp / "data"),
            "--database-url",
            shared["database_url"],
            "--redis-url",
            REDIS_URL,
            "--ice-address",
            "127.0.0.1",
            "--log-level",
            "INFO",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(log_path.read_text())
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{base_url}/readyz") as response,
                ):
                    if response.status == 200:
                        break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("serve did not become ready: " + log_path.read_text())
        yield base_url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()


async def online_in_db(services: Any, kind: str, ident: int) -> bool:
    snapshot = await presence_snapshot(services)
    item = entry(snapshot, kind, ident)
    return bool(item["online"]) if kind == "user" else item["presence"] == "online"


async def wait_db(services: Any, kind: str, ident: int, online: bool, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await online_in_db(services, kind, ident) is online:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind} {ident} not online={online} within {within} s")


async def test_killed_process_people_go_offline(
    tmp_path: Path, fresh_postgres_url: str, redis_client: Any
) -> None:
    shared = shared_settings(fresh_postgres_url)
    try:
        async with serve_subprocess(tmp_path / "b", shared) as (victim_url, victim):
            async with make_live_service(tmp_path / "a", **shared) as survivor:
                kela = survivor.demo.user_ids["kela"]
                tulkki = survivor.demo.user_ids["tulkki"]
                endpoint_id = survivor.demo.endpoint_id
                clerk = await survivor.connect_user("sihteeri")
                pushes = Pushes(clerk)
                assert (await clerk.call("presence:get", {}))["ok"] is True

                # The expert and the kiosk on the victim; the interpreter on both processes.
                expert = await connect_socket(
                    victim_url, {"token": await survivor.issue_token("kela")}
                )
                kiosk = await connect_socket(victim_url, survivor.kiosk_auth)
                interpreter_there = await connect_socket(
                    victim_url, {"token": await survivor.issue_token("tulkki")}
                )
                await survivor.connect_user("tulkki")
                await wait_db(survivor.services, "user", kela, True, 10)
                await wait_db(survivor.services, "endpoint", endpoint_id, True, 10)
                procs = await redis_client.smembers(f"{shared['redis_channel']}:procs")
                assert len(procs) == 2, procs
                pushes.items.clear()

                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                victim.wait(10)
                offline = await pushes.wait_for(kind="user", id=kela, online=False)
                elapsed = time.monotonic() - killed_at
                await pushes.wait_for(kind="endpoint", id=endpoint_id, presence="offline")
                print(f"kill -9 to expert offline push: {elapsed:.2f} s (lease {LEASE_SECONDS} s)")
                assert offline["id"] == kela
                # Not before the lease could lapse (it was renewed at most a third of it before
                # the kill), and within lease + a sweep period + slack.
                assert LEASE_SECONDS * 2 / 3 - 0.1 <= elapsed <= LEASE_SECONDS * 1.5 + 3.0, elapsed
                assert await online_in_db(survivor.services, "user", kela) is False
                assert await online_in_db(survivor.services, "endpoint", endpoint_id) is False
                # The interpreter still has a socket on the survivor: still online.
                assert await online_in_db(survivor.services, "user", tulkki) is True
                assert not any(p["id"] == tulkki and p.get("kind") == "user" for p in pushes.items)
                # The dead process's registration is gone; only the survivor's remains.
                procs = await redis_client.smembers(f"{shared['redis_channel']}:procs")
                assert len(procs) == 1, procs
                leases = survivor.services.extras["leases"]
                assert procs == {leases.process_id}
                for client in (expert, kiosk, interpreter_there):
                    with contextlib.suppress(Exception):
                        await client.disconnect()
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])


async def test_online_while_any_process_holds_a_socket(tmp_path: Path, redis_client: Any) -> None:
    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    try:
        async with (
            make_live_service(tmp_path / "a", **shared) as first,
            make_live_service(tmp_path / "b", **shared) as second,
        ):
            kela = first.demo.user_ids["kela"]
            observer = await first.connect_user("sihteeri")
            pushes = Pushes(observer)
            await observer.call("presence:get", {})
            on_first = await first.connect_user("kela")
            on_second = await second.connect_user("kela")
            await wait_db(first.services, "user", kela, True, 10)
            pushes.items.clear()

            await on_first.disconnect()
            await asyncio.sleep(0.5)
            assert await online_in_db(first.services, "user", kela) is True
            assert not any(p["id"] == kela and p["online"] is False for p in pushes.items)

            await on_second.disconnect()
            await pushes.wait_for(kind="user", id=kela, online=False)
            assert await online_in_db(first.services, "user", kela) is False
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])


async def test_socket_limit_counts_every_process(tmp_path: Path, redis_client: Any) -> None:
    shared = shared_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}", max_sockets_per_user=2
    )
    try:
        async with (
            make_live_service(tmp_path / "a", **shared) as first,
            make_live_service(tmp_path / "b", **shared) as second,
        ):
            await first.connect_user("kela")
            on_second = await second.connect_user("kela")
            # One socket on each process: a third, on either, is over the limit of 2.
            refusal = await connect_refusal(
                first.base_url, {"token": await first.issue_token("kela")}
            )
            assert refusal["data"]["code"] == "rate_limited", refusal
            refusal = await connect_refusal(
                second.base_url, {"token": await first.issue_token("kela")}
            )
            assert refusal["data"]["code"] == "rate_limited", refusal
            # Another person is not affected.
            await first.connect_user("tulkki")
            await on_second.disconnect()
            await asyncio.sleep(0.1)
            third = await first.connect_user("kela")
            assert third.connected
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])


async def test_event_rate_limit_counts_every_process(tmp_path: Path, redis_client: Any) -> None:
    # Per socket 50 events per 10 s; per person 30 per 10 s over all his sockets.
    shared = shared_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        rate_limit_events=50,
        rate_limit_principal_events=30,
        rate_limit_window=10.0,
    )
    try:
        async with (
            make_live_service(tmp_path / "a", **shared) as first,
            make_live_service(tmp_path / "b", **shared) as second,
        ):
            sockets: list[socketio.AsyncClient] = [
                await first.connect_user("kela"),
                await second.connect_user("kela"),
            ]
            per_socket = 35  # under the per-socket budget of 50

            async def burst(client: socketio.AsyncClient) -> list[dict[str, Any]]:
                return [await client.call("session:whoami", {}) for _ in range(per_socket)]

            results = await asyncio.gather(*(burst(s) for s in sockets))
            acks = [ack for batch in results for ack in batch]
            accepted = sum(1 for ack in acks if ack["ok"])
            refused = [ack for ack in acks if not ack["ok"]]
            # 70 sent: at most 30 per window, and the burst spans at most two windows.
            assert accepted <= 60, accepted
            assert len(refused) >= 10, len(refused)
            assert all(ack["error"]["code"] == "rate_limited" for ack in refused), refused[:3]
            assert "all your connections" in refused[0]["error"]["message"]
            # Someone else still gets through.
            other = await second.connect_user("tulkki")
            assert (await other.call("session:whoami", {}))["ok"] is True
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])


async def test_starting_process_sweeps_dead_leases(tmp_path: Path, redis_client: Any) -> None:
    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    channel = shared["redis_channel"]
    try:
        async with make_live_service(tmp_path / "a", **shared) as live:
            kela = live.demo.user_ids["kela"]
            await live.connect_user("kela")
            await wait_db(live.services, "user", kela, True, 10)
            own_id = live.services.extras["leases"].process_id
        # That process stopped cleanly: its registration went with it.
        assert await redis_client.smembers(f"{channel}:procs") == set()

        # A process that died without a trace but its registration (no lease key), and the
        # database still saying its expert is online.
        await redis_client.sadd(f"{channel}:procs", "ghost")
        await redis_client.hset(f"{channel}:proc-sockets:ghost", mapping={f"user:{kela}": 1})
        from sqlalchemy import update

        from signaling.store.models import User

        async with make_live_service(tmp_path / "a", **shared) as live:
            procs = await redis_client.smembers(f"{channel}:procs")
            assert "ghost" not in procs and own_id not in procs, procs
            assert not await redis_client.exists(f"{channel}:proc-sockets:ghost")
            assert await online_in_db(live.services, "user", kela) is False
            # Now a dead registration appears while this process runs: its sweeper takes it.
            async with live.services.sessions() as session:
                await session.execute(update(User).where(User.id == kela).values(online=True))
                await session.commit()
            lost: list[tuple[str, int]] = []

            async def record(_services: Any, kind: str, ident: int) -> None:
                lost.append((kind, ident))

            live.services.extras["leases"].on_lost(record)
            await redis_client.sadd(f"{channel}:procs", "ghost2")
            await redis_client.hset(f"{channel}:proc-sockets:ghost2", mapping={f"user:{kela}": 1})
            took = await wait_db(live.services, "user", kela, False, LEASE_SECONDS * 2 + 3)
            print(f"dead registration swept after {took:.2f} s")
            # The sweep marks people offline first, then drops the registration: wait for both.
            for _ in range(100):
                if not await redis_client.exists(f"{channel}:proc-sockets:ghost2"):
                    break
                await asyncio.sleep(0.05)
            assert not await redis_client.exists(f"{channel}:proc-sockets:ghost2")
            assert "ghost2" not in await redis_client.smembers(f"{channel}:procs")
            assert lost == [("user", kela)]
    finally:
        await drop_channel_keys(redis_client, channel)


async def test_lapsed_lease_registers_again(tmp_path: Path, redis_client: Any) -> None:
    """A process whose lease lapsed (stalled loop) and was swept comes back on its next
    heartbeat: registration rewritten, its people online again."""
    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    channel = shared["redis_channel"]
    try:
        async with make_live_service(tmp_path / "a", **shared) as live:
            kela = live.demo.user_ids["kela"]
            await live.connect_user("kela")
            await wait_db(live.services, "user", kela, True, 10)
            own_id = live.services.extras["leases"].process_id
            # What another process's sweeper does to a lapsed lease.
            await redis_client.delete(
                f"{channel}:proc:{own_id}", f"{channel}:proc-sockets:{own_id}"
            )
            await redis_client.srem(f"{channel}:procs", own_id)
            from signaling.flow.leases import mark_offline

            await mark_offline(live.services, "user", kela)
            assert await online_in_db(live.services, "user", kela) is False
            await wait_db(live.services, "user", kela, True, LEASE_SECONDS + 3)
            assert (
                await redis_client.hget(f"{channel}:proc-sockets:{own_id}", f"user:{kela}") == "1"
            )
            assert own_id in await redis_client.smembers(f"{channel}:procs")
    finally:
        await drop_channel_keys(redis_client, channel)


async def test_killed_process_expert_is_gone_from_his_call(
    tmp_path: Path, redis_client: Any
) -> None:
    """The expert's socket (and relay session) were on the process that died: his call
    counts him `socket_lost` from the sweep, so the call watchdog can end it (expert_lost)."""
    from sqlalchemy import select

    from signaling.store.flow_models import CallParticipant

    shared = shared_settings(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    try:
        async with (
            serve_subprocess(tmp_path / "b", shared) as (victim_url, victim),
            make_live_service(tmp_path / "a", **shared) as survivor,
        ):
            kela = survivor.demo.user_ids["kela"]
            kiosk = await survivor.connect_kiosk()
            expert = await connect_socket(victim_url, {"token": await survivor.issue_token("kela")})
            for client in (kiosk, expert):
                assert (await client.call("flow:sync", {}, timeout=10))["ok"]
            taken = await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"})
            assert taken["ok"], taken
            took = await expert.call("queue:take_next", {}, timeout=10)
            assert took["ok"], took
            call_id = int(took["call"]["id"])
            joined = await expert.call("call:join", {"call_id": call_id}, timeout=10)
            assert joined["ok"], joined

            async def expert_row() -> CallParticipant:
                async with survivor.services.sessions() as session:
                    found = await session.execute(
                        select(CallParticipant).where(
                            CallParticipant.call_id == call_id,
                            CallParticipant.kind == "user",
                            CallParticipant.principal_id == kela,
                        )
                    )
                    return found.scalar_one()

            assert (await expert_row()).connected is True
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            deadline = time.monotonic() + LEASE_SECONDS * 1.5 + 5
            row = await expert_row()
            while row.connected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                row = await expert_row()
            assert row.connected is False and row.gone_reason == "socket_lost", row
            with contextlib.suppress(Exception):
                await expert.disconnect()
    finally:
        await drop_channel_keys(redis_client, shared["redis_channel"])
