"""The relay node registry (media_relay/registry.py) on the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from media_relay.registry import (
    NodeInfo,
    NodeLoad,
    Registration,
    drain_key,
    get_node,
    live_nodes,
    node_key,
    set_drain,
)

pytestmark = pytest.mark.timeout(30)
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def prefix(redis: Any) -> AsyncIterator[str]:
    # glob characters in the prefix must not widen the SCAN
    value = f"etapalvelu-test-{secrets.token_hex(6)}[*]"
    try:
        yield value
    finally:
        keys = [key async for key in redis.scan_iter(match="etapalvelu-test-*")]
        mine = [key for key in keys if key.decode().startswith(value)]
        if mine:
            await redis.delete(*mine)


def record(node_id: str, participants: int = 0, capacity: int = 100) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        control_url=f"ws://127.0.0.1:7700/{node_id}",
        announced_addresses=["127.0.0.1"],
        capacity=capacity,
        load=NodeLoad(rooms=1, participants=participants),
    )


async def test_registration_heartbeat_drain_and_deregistration(redis: Any, prefix: str) -> None:
    load = {"participants": 3}
    heard: list[bool] = []

    def describe(draining: bool) -> NodeInfo:
        info = record("n1", participants=load["participants"])
        info.draining = draining
        return info

    registration = Registration(
        redis, prefix, describe, heartbeat=0.2, ttl=0.8, on_drain=heard.append
    )
    await registration.start()
    try:
        nodes = await live_nodes(redis, prefix)
        assert [node.node_id for node in nodes] == ["n1"]
        assert nodes[0].load.participants == 3 and nodes[0].load_ratio == pytest.approx(0.03)
        assert 0 < await redis.pttl(node_key(prefix, "n1")) <= 800
        # the record is renewed: alive well past its TTL, and it follows the load
        load["participants"] = 50
        await asyncio.sleep(1.2)
        node = await get_node(redis, prefix, "n1")
        assert node is not None and node.load.participants == 50
        assert registration.beats >= 5
        # the drain flag reaches the record on the next heartbeat
        await set_drain(redis, prefix, "n1", True)
        assert await redis.get(drain_key(prefix, "n1")) == b"1"
        assert await redis.pttl(drain_key(prefix, "n1")) == -1  # no TTL: an operator's word
        await asyncio.sleep(0.5)
        node = await get_node(redis, prefix, "n1")
        assert node is not None and node.draining and registration.draining
        assert heard == [True]
        await set_drain(redis, prefix, "n1", False)
        await asyncio.sleep(0.5)
        node = await get_node(redis, prefix, "n1")
        assert node is not None and not node.draining and heard == [True, False]
    finally:
        await registration.stop()
    assert await redis.exists(node_key(prefix, "n1")) == 0
    assert await live_nodes(redis, prefix) == []


async def test_a_silent_node_expires(redis: Any, prefix: str) -> None:
    registration = Registration(redis, prefix, lambda _d: record("n2"), heartbeat=0.1, ttl=0.4)
    await registration.start()
    assert registration._task is not None
    registration._task.cancel()  # the process froze: no more heartbeats, no deregistration
    assert [node.node_id for node in await live_nodes(redis, prefix)] == ["n2"]
    await asyncio.sleep(0.6)
    assert await live_nodes(redis, prefix) == []
    registration.last = None
    await registration.stop()


async def test_live_nodes_skips_garbage(redis: Any, prefix: str) -> None:
    await redis.set(node_key(prefix, "good"), record("good", 10).model_dump_json(), px=5000)
    await redis.set(node_key(prefix, "b"), record("b", 1).model_dump_json(), px=5000)
    await redis.set(node_key(prefix, "junk"), b"\xff not json", px=5000)
    await redis.set(node_key(prefix, "partial"), json.dumps({"node_id": "partial"}), px=5000)
    # a record filed under another node's key
    await redis.set(node_key(prefix, "liar"), record("good").model_dump_json(), px=5000)
    await redis.set(
        node_key(prefix, "neg"), json.dumps({**record("neg").model_dump(), "capacity": -1}), px=5000
    )
    # another prefix that starts the same, and the drain flags, are not nodes
    await redis.set(node_key(prefix + "x", "other"), record("other").model_dump_json(), px=5000)
    await set_drain(redis, prefix, "good", True)
    try:
        nodes = await live_nodes(redis, prefix)
        assert [node.node_id for node in nodes] == ["b", "good"]
        assert await get_node(redis, prefix, "junk") is None
        assert await get_node(redis, prefix, "missing") is None
    finally:
        await redis.delete(node_key(prefix + "x", "other"))


def test_node_info_validation() -> None:
    assert record("a", participants=0, capacity=0).load_ratio == math.inf
    with pytest.raises(ValueError):
        record("bad id")
    with pytest.raises(ValueError):
        record("x" * 65)
    with pytest.raises(ValueError):
        Registration(None, "p", lambda _d: record("a"), heartbeat=1.0, ttl=1.0)


async def test_set_drain_refuses_a_bad_node_id(redis: Any, prefix: str) -> None:
    with pytest.raises(ValueError):
        await set_drain(redis, prefix, "a:b", True)
    keys = [key.decode() async for key in redis.scan_iter(match="etapalvelu-test-*")]
    assert drain_key(prefix, "a:b") not in keys
