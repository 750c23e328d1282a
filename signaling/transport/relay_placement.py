"""Which media relay each call uses, and the clients that reach the relays.

Two modes (`Settings.relay_mode`):

* "local" — one relay inside this process (the one-machine default). Every call is placed on
  the node named "local".
* "nodes" — relay nodes (`etapalvelu relay`, media_relay/node.py) register themselves in
  Redis (media_relay/registry.py) with a short TTL. A call is placed, in the transaction that
  creates it, on the least-loaded live node that is not draining, preferring a node with the
  office's site label (`offices.relay_site`); `calls.relay_node` remembers it, so every
  join/answer/leave of that call, from whichever signaling process the client is on, goes to
  that node through a `media_relay.remote.RemoteRelay` kept per node.

The router's view of the live nodes is a snapshot refreshed in the background (placement runs
inside a database transaction and must not wait for Redis). A node whose control connection
fails from this process is "suspect" at once: it is not chosen, and the failover loop
(signaling/flow/relay_failover.py) treats it as dead without waiting for its registration to
expire. It is cleared when the connection comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from signaling.transport.protocol import ErrorCode

if TYPE_CHECKING:
    from media_relay.registry import NodeInfo
    from signaling.config import Settings

log = logging.getLogger(__name__)

LOCAL_NODE = "local"
# A control connection that is down longer than this makes its node suspect in this process.
SUSPECT_AFTER = 0.5
# Seconds between attempts to open a control connection to a node that did not answer.
RETRY_CONNECT = 2.0


class RelayUnavailable(Exception):
    """No relay can take the call (none live, or the call's node is gone)."""

    code = ErrorCode.UNAVAILABLE


async def cancel_for_sure(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has ended, cancelling again if it swallowed the
    cancellation: on Python 3.11 `asyncio.wait_for` can lose a cancel that arrives as its own
    timeout fires (a registry refresh connecting to a node that never answers), and a loop that
    then carries on would make stopping wait forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


class FromNode:
    """A relay node's events, told which node they come from.

    A call moved to another node (the old one drained or lost) may still hear its old room
    for a moment: a renegotiation offer or a departure there is about the session being
    replaced, and must not reach the participant's new session (his page would apply the old
    node's offer to its new connection) or mark him gone. The listener decides with the node
    (`CallRelayListener` compares it with the call's current node)."""

    def __init__(self, node_id: str, listener: Any) -> None:
        self.node_id = node_id
        self.listener = listener

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        await self.listener.on_offer(room_id, participant_id, offer, node_id=self.node_id)

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        await self.listener.on_participant_gone(
            room_id, participant_id, reason, node_id=self.node_id
        )

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        await self.listener.on_active_speaker(room_id, participant_id)


class RelayRouter:
    """Places calls on relays and hands out the client of a call's relay."""

    def __init__(self, settings: Settings, local: Any | None) -> None:
        self.settings = settings
        self.mode = settings.relay_mode
        # The in-process relay ("local" mode only).
        self.local = local if self.mode == "local" else None
        self._listener: Any = None
        self._remotes: dict[str, Any] = {}
        self._live: dict[str, NodeInfo] = {}
        self._down_since: dict[str, float] = {}
        self._redis: Any = None
        self._refresher: asyncio.Task[None] | None = None
        self._stopping = False
        self._connecting: dict[str, asyncio.Task[None]] = {}
        self._tried_at: dict[str, float] = {}
        self.prefix = settings.redis_channel

    # -- lifecycle

    async def start(self) -> None:
        if self.local is not None:
            await self.local.start()
            return
        if self.mode != "nodes":
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(
            self.settings.redis_url, socket_connect_timeout=2, socket_timeout=2
        )
        with contextlib.suppress(Exception):
            await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_loop())

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._connecting.values()):
            task.cancel()
        if self._refresher is not None:
            await cancel_for_sure(self._refresher)
            self._refresher = None
        for remote in list(self._remotes.values()):
            with contextlib.suppress(Exception):
                await remote.stop()
        self._remotes.clear()
        if self.local is not None:
            await self.local.stop()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    @property
    def running(self) -> bool:
        """Whether a call could get media now (readiness)."""
        if self.local is not None:
            return bool(getattr(self.local, "running", True))
        return bool(self.choosable())

    @property
    def redis(self) -> Any:
        return self._redis

    # -- listener

    @property
    def listener(self) -> Any:
        return self._listener

    @property
    def client_nodes(self) -> list[str]:
        """The nodes this process holds a control client of (live or not)."""
        return list(self._remotes)

    def set_listener(self, listener: Any) -> None:
        """Who hears the relays' offers and departures (calls.CallRelayListener)."""
        self._listener = listener
        if self.local is not None:
            self.local.set_listener(listener)
        for node_id, remote in self._remotes.items():
            remote.set_listener(FromNode(node_id, listener))

    # -- the live nodes

    async def refresh(self) -> dict[str, NodeInfo]:
        from media_relay.registry import live_nodes

        nodes = await live_nodes(self._redis, self.prefix)
        self._live = {node.node_id: node for node in nodes}
        self._connect_new()
        return self._live

    def _connect_new(self) -> None:
        """Open a control connection to every live node we have none to, in the background:
        a node is chosen for new calls only once it has answered (a registered node that
        never answers is never chosen)."""
        now = time.monotonic()
        for node_id, node in self._live.items():
            if node_id in self._remotes or node_id in self._connecting:
                continue
            if now - self._tried_at.get(node_id, -1e9) < RETRY_CONNECT:
                continue
            self._tried_at[node_id] = now
            task = asyncio.create_task(self._connect(node))
            self._connecting[node_id] = task
            task.add_done_callback(functools.partial(self._connected_or_not, node_id))

    def _connected_or_not(self, node_id: str, _task: asyncio.Task[None]) -> None:
        self._connecting.pop(node_id, None)

    async def _connect(self, node: NodeInfo) -> None:
        remote = self._make_remote(node)
        try:
            await remote.start()
        except Exception as exc:
            self._mark_down(node.node_id)
            log.warning("relay node %s does not answer at %s: %s", node.node_id,
                        node.control_url, exc)
            return
        if node.node_id in self._remotes or node.node_id not in self._live:
            await remote.stop()
            return
        self._remotes[node.node_id] = remote
        self._down_since.pop(node.node_id, None)
        log.info("relay node %s connected (%s)", node.node_id, node.control_url)

    async def _refresh_loop(self) -> None:
        interval = min(0.5, self.settings.relay_failover_interval)
        while not self._stopping:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis away: keep the last view (nodes keep running without it).
                log.warning("relay registry not readable: %s", exc)
            await asyncio.sleep(interval)

    @property
    def live(self) -> dict[str, NodeInfo]:
        return dict(self._live)

    def suspect(self, node_id: str) -> bool:
        since = self._down_since.get(node_id)
        return since is not None and time.monotonic() - since >= SUSPECT_AFTER

    def alive(self, node_id: str) -> bool:
        """Whether the node can carry calls (registered and reachable from here)."""
        if node_id == LOCAL_NODE:
            return self.local is not None and bool(getattr(self.local, "running", True))
        return node_id in self._live and not self.suspect(node_id)

    def draining(self, node_id: str) -> bool:
        node = self._live.get(node_id)
        return node is not None and bool(node.draining)

    def choosable(self) -> list[NodeInfo]:
        """Live nodes that are not draining and whose control connection is up."""
        return [
            node
            for node in self._live.values()
            if not node.draining
            and not self.suspect(node.node_id)
            and bool(getattr(self._remotes.get(node.node_id), "running", False))
        ]

    def choose(self, site: str | None = None, exclude: str | None = None) -> str:
        """The node for a new (or moving) call: same site first, then the least loaded."""
        if self.mode == "local":
            if self.local is None:
                raise RelayUnavailable("the media relay is not running")
            return LOCAL_NODE
        candidates = [node for node in self.choosable() if node.node_id != exclude]
        if not candidates:
            raise RelayUnavailable("no relay node is live")
        if site:
            near = [node for node in candidates if node.site == site]
            candidates = near or candidates
        return min(candidates, key=lambda node: (node.load_ratio, node.node_id)).node_id

    # -- clients

    async def client(self, node_id: str) -> Any:
        """The control client of a node (connected), or RelayUnavailable."""
        if node_id == LOCAL_NODE:
            if self.local is None or not getattr(self.local, "running", True):
                raise RelayUnavailable("the media relay is not running")
            return self.local
        remote = self._remotes.get(node_id)
        if remote is None:
            node = self._live.get(node_id)
            if node is None:
                raise RelayUnavailable(f"relay node {node_id} is not live")
            remote = self._make_remote(node)
            self._remotes[node_id] = remote
            try:
                await remote.start()
            except Exception as exc:
                self._remotes.pop(node_id, None)
                self._mark_down(node_id)
                raise RelayUnavailable(f"relay node {node_id} does not answer: {exc}") from exc
        if self.suspect(node_id):
            raise RelayUnavailable(f"relay node {node_id} does not answer")
        return remote

    def known_client(self, node_id: str) -> Any | None:
        """The client of a node if this process has one (no connecting)."""
        if node_id == LOCAL_NODE:
            return self.local
        return self._remotes.get(node_id)

    def _make_remote(self, node: NodeInfo) -> Any:
        from media_relay.remote import RemoteRelay

        remote = RemoteRelay(
            node.node_id,
            node.control_url,
            self.settings.relay_control_secret(),
            timeout=self.settings.relay_request_timeout,
        )
        if self._listener is not None:
            remote.set_listener(FromNode(node.node_id, self._listener))
        remote.set_connection_listener(self._on_connection)
        return remote

    def _on_connection(self, node_id: str, up: bool) -> None:
        if up:
            self._down_since.pop(node_id, None)
        else:
            self._mark_down(node_id)

    def _mark_down(self, node_id: str) -> None:
        # Suspect after SUSPECT_AFTER unless it comes back (a blip is not a dead node).
        self._down_since.setdefault(node_id, time.monotonic())

    async def forget(self, node_id: str) -> None:
        """Drop the client of a node that is gone for good (its registration expired)."""
        remote = self._remotes.pop(node_id, None)
        self._down_since.pop(node_id, None)
        if remote is not None:
            with contextlib.suppress(Exception):
                await remote.stop()


def router_of(services: Any) -> RelayRouter | None:
    found = services.extras.get("relay_router")
    return found if isinstance(found, RelayRouter) else None
