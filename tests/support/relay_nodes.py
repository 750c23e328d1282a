"""Relay nodes (`etapalvelu relay`) as real processes on loopback, for the placement tests.

    async with relay_cluster(tmp_path, ["n1", "n2"]) as cluster:
        cluster.nodes["n1"].kill()                 # kill -9
        cluster.settings                           # Settings overrides for signaling servers

Each node registers in the test's real Redis under a prefix of its own (the signaling
servers' `redis_channel`), so parallel runs never see each other's nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from media_relay.node_launcher import NodeProcess, start_node

REDIS_URL = "redis://127.0.0.1:6379/0"
HEARTBEAT = 0.3
TTL = 1.2


async def redis_or_skip() -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()


@dataclass
class RelayCluster:
    prefix: str
    secret: str
    secret_file: Path
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    tmp: Path = Path()

    @property
    def settings(self) -> dict[str, Any]:
        """Settings for a signaling server that places calls on these nodes."""
        return {
            "redis_url": REDIS_URL,
            "redis_channel": self.prefix,
            "relay_mode": "nodes",
            "relay_secret": self.secret,
            "relay_failover_interval": 0.2,
            "relay_move_grace": 1.0,
            "relay_request_timeout": 3.0,
        }

    async def start_node(self, node_id: str, site: str | None = None) -> NodeProcess:
        node = await start_node(
            node_id,
            self.secret_file,
            redis_url=REDIS_URL,
            prefix=self.prefix,
            heartbeat=HEARTBEAT,
            ttl=TTL,
            site=site,
        )
        self.nodes[node_id] = node
        await self.wait_registered(node_id)
        return node

    async def redis(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)

    async def registered(self) -> set[str]:
        from media_relay.registry import live_nodes

        client = await self.redis()
        try:
            return {node.node_id for node in await live_nodes(client, self.prefix)}
        finally:
            await client.aclose()

    async def wait_registered(self, node_id: str, present: bool = True, within: float = 10) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if (node_id in await self.registered()) == present:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"node {node_id} {'not ' if present else ''}registered in time")

    async def set_drain(self, node_id: str, on: bool = True) -> None:
        from media_relay.registry import set_drain

        client = await self.redis()
        try:
            await set_drain(client, self.prefix, node_id, on)
        finally:
            await client.aclose()

    async def rooms_of(self, node_id: str) -> list[str]:
        """The rooms open on a node, asked over its control API."""
        from media_relay.remote import RemoteRelay

        node = self.nodes[node_id]
        relay = RemoteRelay(node_id, node.control_url, self.secret, timeout=5)
        await relay.start()
        try:
            return list(await relay.rooms_open())
        finally:
            await relay.stop()

    async def cleanup(self) -> None:
        for node in self.nodes.values():
            node.terminate()
        client = await self.redis()
        try:
            async for key in client.scan_iter(match=f"{self.prefix}:relay:*"):
                await client.delete(key)
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def relay_cluster(tmp_path: Path, node_ids: list[str]) -> AsyncIterator[RelayCluster]:
    await redis_or_skip()
    secret = secrets.token_urlsafe(24)
    secret_file = tmp_path / "relay-secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    cluster = RelayCluster(
        prefix=f"etapalvelu-test-{secrets.token_hex(6)}",
        secret=secret,
        secret_file=secret_file,
        tmp=tmp_path,
    )
    try:
        for node_id in node_ids:
            await cluster.start_node(node_id)
        yield cluster
    finally:
        await cluster.cleanup()
