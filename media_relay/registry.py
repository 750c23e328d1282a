"""The relay node registry in Redis, read by signaling (placement, failover) and written by nodes.

    <prefix>:relay:node:<node_id>   JSON NodeInfo, TTL `ttl`, rewritten every `heartbeat` s
    <prefix>:relay:drain:<node_id>  "1" while the node is draining (no TTL; an operator's word)

A node that stops cleanly deletes its key; one that dies disappears when the key expires.
Each heartbeat reads the drain key, so `draining` in the record follows `set_drain` within a
heartbeat. Clocks are not compared: liveness is the key's existence (Redis applies the TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

__all__ = [
    "NODE_ID_PATTERN",
    "NodeInfo",
    "NodeLoad",
    "Registration",
    "drain_key",
    "get_node",
    "is_draining",
    "live_nodes",
    "node_key",
    "set_drain",
]

logger = logging.getLogger(__name__)

# Node ids go into Redis keys, metrics labels and log lines.
NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NODE_ID = re.compile(NODE_ID_PATTERN)
SCAN_COUNT = 200


class NodeLoad(BaseModel):
    rooms: int = Field(0, ge=0)
    participants: int = Field(0, ge=0)


class NodeInfo(BaseModel):
    """One node's registry record."""

    node_id: str = Field(pattern=NODE_ID_PATTERN)
    control_url: str
    announced_addresses: list[str] = Field(default_factory=list)
    port_min: int = 0
    port_max: int = 0
    capacity: int = Field(600, ge=0)  # participants
    load: NodeLoad = Field(default_factory=NodeLoad)
    site: str | None = None
    draining: bool = False
    pid: int = 0
    started_at: float = 0.0  # Unix time

    @property
    def load_ratio(self) -> float:
        """Participants over capacity (inf for a node with no capacity)."""
        if self.capacity <= 0:
            return math.inf
        return self.load.participants / self.capacity


def check_node_id(node_id: str) -> str:
    if not isinstance(node_id, str) or not _NODE_ID.match(node_id):
        raise ValueError(
            f"node id {node_id!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return node_id


def node_key(prefix: str, node_id: str) -> str:
    return f"{prefix}:relay:node:{node_id}"


def drain_key(prefix: str, node_id: str) -> str:
    return f"{prefix}:relay:drain:{node_id}"


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parse(key: str, value: Any) -> NodeInfo | None:
    if value is None:
        return None  # expired between SCAN and MGET
    try:
        info = NodeInfo.model_validate_json(value)
    except (ValidationError, ValueError):
        logger.warning("relay registry: unreadable record at %s skipped", key)
        return None
    if not key.endswith(":" + info.node_id):
        logger.warning("relay registry: record at %s names node %s; skipped", key, info.node_id)
        return None
    return info


async def live_nodes(redis: Any, prefix: str) -> list[NodeInfo]:
    """Every node whose registration has not expired, by node id; garbage records skipped."""
    pattern = _glob_escape(node_key(prefix, "")) + "*"
    keys: list[str] = []
    async for key in redis.scan_iter(match=pattern, count=SCAN_COUNT):
        keys.append(_text(key))
    nodes: list[NodeInfo] = []
    for start in range(0, len(keys), SCAN_COUNT):
        batch = keys[start : start + SCAN_COUNT]
        for key, value in zip(batch, await redis.mget(batch), strict=True):
            info = _parse(key, value)
            if info is not None:
                nodes.append(info)
    nodes.sort(key=lambda info: info.node_id)
    return nodes


async def get_node(redis: Any, prefix: str, node_id: str) -> NodeInfo | None:
    key = node_key(prefix, check_node_id(node_id))
    return _parse(key, await redis.get(key))


async def set_drain(redis: Any, prefix: str, node_id: str, on: bool) -> None:
    """Set or clear a node's drain flag (the node's record follows on its next heartbeat)."""
    key = drain_key(prefix, check_node_id(node_id))
    if on:
        await redis.set(key, "1")
    else:
        await redis.delete(key)


async def is_draining(redis: Any, prefix: str, node_id: str) -> bool:
    return bool(await redis.exists(drain_key(prefix, check_node_id(node_id))))


class Registration:
    """A node's registration: `start()` writes the record (raising if Redis refuses), then a
    task rewrites it every `heartbeat` seconds with the current load and drain flag; `stop()`
    ends the task and deletes the record.

    `describe()` returns the record as it is now; `on_drain(flag)` hears the drain flag each
    heartbeat (the node mirrors it in its own state). A heartbeat that fails is logged and
    retried on the next; the record expires after `ttl` if Redis stays away.
    """

    def __init__(
        self,
        redis: Any,
        prefix: str,
        describe: Callable[[bool], NodeInfo],
        *,
        heartbeat: float = 1.0,
        ttl: float = 3.0,
        on_drain: Callable[[bool], None] | None = None,
    ) -> None:
        if heartbeat <= 0 or ttl <= heartbeat:
            raise ValueError("heartbeat must be positive and ttl longer than the heartbeat")
        self.redis = redis
        self.prefix = prefix
        self.describe = describe
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.on_drain = on_drain
        self.draining = False
        self.beats = 0
        self.last: NodeInfo | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.ensure_future(self._run())

    async def beat(self) -> NodeInfo:
        info = self.describe(self.draining)
        draining = bool(await self.redis.exists(drain_key(self.prefix, info.node_id)))
        if draining != self.draining:
            self.draining = draining
            logger.info("relay node %s: draining %s", info.node_id, "on" if draining else "off")
            if self.on_drain is not None:
                self.on_drain(draining)
            info = self.describe(draining)
        await self.redis.set(
            node_key(self.prefix, info.node_id),
            info.model_dump_json(),
            px=max(1, int(self.ttl * 1000)),
        )
        self.beats += 1
        self.last = info
        return info

    async def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            next_at += self.heartbeat
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            try:
                await asyncio.wait_for(self.beat(), self.heartbeat)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("relay registry: heartbeat failed: %s", exc)
            next_at = max(next_at, time.monotonic() - self.heartbeat)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.last is not None:
            try:
                await self.redis.delete(node_key(self.prefix, self.last.node_id))
            except Exception as exc:
                logger.warning("relay registry: deregistering failed: %s", exc)
