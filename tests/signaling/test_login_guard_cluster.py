"""Login failure limits shared by several processes through a real Redis
(signaling/directory/login_guard.py `RedisFailures`): two guards, as two signaling processes hold
them,
with their own Redis connections."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from signaling.directory.login_guard import Blocked, Limits, LoginGuard
from tests.signaling.test_redis import REDIS_URL, redis_reachable

LIMITS = Limits(per_pair=4, per_address=6, per_username=8, window=1.5, username_window=1.5)


@pytest_asyncio.fixture
async def two_guards() -> AsyncIterator[tuple[LoginGuard, LoginGuard, Any]]:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    import redis.asyncio as aioredis

    prefix = f"etapalvelu-test-{secrets.token_hex(6)}"
    clients = [aioredis.Redis.from_url(REDIS_URL, decode_responses=True) for _ in range(2)]
    guards = []
    for client in clients:
        guard = LoginGuard(4, 32, LIMITS)
        guard.use_redis(client, prefix)
        guards.append(guard)
    try:
        yield guards[0], guards[1], clients[0]
    finally:
        keys = [k async for k in clients[0].scan_iter(match=f"{prefix}:*")]
        if keys:
            await clients[0].delete(*keys)
        for client in clients:
            await client.aclose()


async def blocked(guard: LoginGuard, address: str, username: str) -> str | None:
    try:
        await guard.admit(address, username)
    except Blocked as exc:
        return str(exc)
    return None


async def test_failures_on_one_process_count_on_the_other(
    two_guards: tuple[LoginGuard, LoginGuard, Any],
) -> None:
    first, second, client = two_guards
    for n in range(LIMITS.per_pair):
        guard = first if n % 2 == 0 else second
        assert await blocked(guard, "10.0.0.1", "kela") is None
        await guard.record_failure("10.0.0.1", "kela")
    # Each process saw only half: in memory neither would block yet.
    assert not first.per_pair.exceeded(("10.0.0.1", "kela"))
    assert "try again in a few minutes" in (await blocked(first, "10.0.0.1", "kela") or "")
    assert "try again in a few minutes" in (await blocked(second, "10.0.0.1", "kela") or "")
    # Another username from that address, and that username elsewhere, are not blocked.
    assert await blocked(second, "10.0.0.1", "tulkki") is None
    assert await blocked(second, "10.0.0.2", "kela") is None
    # Nothing readable in Redis: keys are digests.
    keys = [k async for k in client.scan_iter(match="*login*")]
    assert keys and not any("kela" in k or "10.0.0.1" in k for k in keys)
    # The window ages out.
    await asyncio.sleep(LIMITS.window + 0.2)
    assert await blocked(first, "10.0.0.1", "kela") is None


async def test_address_and_username_limits_span_processes(
    two_guards: tuple[LoginGuard, LoginGuard, Any],
) -> None:
    first, second, _ = two_guards
    for n in range(LIMITS.per_address):
        await (first if n % 2 else second).record_failure("10.0.0.3", f"user{n}")
    assert "from this address" in (await blocked(first, "10.0.0.3", "someone") or "")
    for n in range(LIMITS.per_username):
        await (first if n % 2 else second).record_failure(f"10.1.0.{n}", "rakennus")
    assert "for this account" in (await blocked(second, "10.2.0.1", "rakennus") or "")


async def test_concurrent_failures_are_all_counted(
    two_guards: tuple[LoginGuard, LoginGuard, Any],
) -> None:
    first, second, client = two_guards
    await asyncio.gather(
        *(
            (first if n % 2 else second).record_failure(f"10.3.0.{n}", "kela2")
            for n in range(LIMITS.per_username - 1)
        )
    )
    assert await blocked(first, "10.9.9.9", "kela2") is None
    await second.record_failure("10.3.1.1", "kela2")
    assert await blocked(first, "10.9.9.9", "kela2") is not None
    # Bounded: at most `limit` entries are kept per key.
    await asyncio.gather(*(first.record_failure(f"10.4.0.{n}", "kela2") for n in range(20)))
    key = first.shared.keys("x", "kela2")[2] if first.shared else ""
    assert await client.zcard(key) == LIMITS.per_username


async def test_redis_down_falls_back_to_this_process(
    two_guards: tuple[LoginGuard, LoginGuard, Any],
) -> None:
    import redis.asyncio as aioredis

    first, _, _ = two_guards
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    first.use_redis(dead, "nowhere")
    try:
        for _ in range(LIMITS.per_pair):
            await first.record_failure("10.5.0.1", "kela")
        assert await blocked(first, "10.5.0.1", "kela") is not None
    finally:
        await dead.aclose()
