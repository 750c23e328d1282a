"""A relay node: one LocalRelay in a process of its own, driven by signaling processes over a
WebSocket control API (wire format: media_relay/wire.py; client: media_relay/remote.py).

    GET /control   WebSocket; `Authorization: Bearer <secret>` (401 before the upgrade otherwise)
    GET /healthz   {"status": "ok", "node_id", "draining", "load"}
    GET /metrics   Prometheus (the relay's counters, the node's gauges, process CPU and memory);
                   Bearer `metrics_token` when one is set, else loopback clients only

Several signaling processes connect at once. Events are routed: `offer` and `gone` for a
participant to the connection that last joined (or claimed) it, or to every open connection
when that one is gone; `speaker` to every connection that joined someone in the room (every
open one if none of those is open). A control connection that closes leaves its participants
in place: their signaling process may come back, or they rejoin through another.

With a Redis URL the node registers itself (media_relay/registry.py) and follows its drain flag.
`etapalvelu relay` (media_relay/node_command.py) runs it on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from media_relay import wire
from media_relay.control import LocalRelay, RelayConfig
from media_relay.errors import RelayError
from media_relay.registry import NodeInfo, NodeLoad, Registration, check_node_id, set_drain

__all__ = ["NodeConfig", "RelayNode"]

logger = logging.getLogger(__name__)

# Requests one connection may have in progress; reading waits beyond (backpressure).
MAX_IN_FLIGHT = 64
# Frames queued to one connection; a signaling process that reads slower than this is cut off
# (it reconnects, and its participants' events go to the others meanwhile).
MAX_QUEUED = 4096


@dataclass
class NodeConfig:
    node_id: str
    secret: str
    relay: RelayConfig = field(default_factory=RelayConfig)
    control_host: str = "127.0.0.1"
    control_port: int = 0
    # what the registry tells signaling (default ws://<control_host>:<port>/control); set it
    # when binding a wildcard address or behind a TLS proxy (wss://…)
    advertise_url: str | None = None
    capacity: int = 600
    site: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "etapalvelu"
    heartbeat: float = 1.0
    ttl: float = 3.0
    metrics_token: str | None = None

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if not self.secret:
            raise ValueError("a relay node needs a control secret")
        if self.capacity < 0:
            raise ValueError("capacity must not be negative")
        if self.heartbeat <= 0 or self.ttl <= self.heartbeat:
            raise ValueError("heartbeat must be positive and ttl longer than the heartbeat")


class ControlConnection:
    """One signaling process's WebSocket; frames go out through one writer task, in order."""

    def __init__(self, ws: web.WebSocketResponse, number: int, peer: str) -> None:
        self.ws = ws
        self.number = number
        self.peer = peer
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_QUEUED)
        self.open = True
        self._closing: asyncio.Task[Any] | None = None
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    def __repr__(self) -> str:
        return f"<control #{self.number} {self.peer}>"

    def send(self, data: str) -> None:
        if not self.open:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            logger.warning("relay node: %r reads too slowly; closing it", self)
            self.close()

    def close(self) -> None:
        if self.open:
            self.open = False
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            self._closing = asyncio.ensure_future(self.ws.close())

    async def write(self) -> None:
        while True:
            data = await self.queue.get()
            if data is None:
                return
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                self.open = False
                return


class RelayNode:
    """The node: a LocalRelay, its control server, and its registration."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.relay = LocalRelay(config.relay)
        self.relay.set_listener(self)
        self.draining = False
        self.started_at = time.time()
        self.control_url = ""
        self.registration: Registration | None = None
        self._redis: Any = None
        self._runner: web.AppRunner | None = None
        self._connections: set[ControlConnection] = set()
        self._owner: dict[tuple[str, str], ControlConnection] = {}
        self._room_connections: dict[str, set[ControlConnection]] = {}
        self._numbers = 0
        self._collector: Any = None

    # -- lifecycle

    async def start(self) -> str:
        """Start the relay, the control server and the registration; returns the control URL."""
        from prometheus_client import REGISTRY

        from media_relay.metrics import NodeCollector

        await self.relay.start()
        app = web.Application()
        app.router.add_get("/control", self._control)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.control_host, self.config.control_port)
        await site.start()
        port = self._bound_port(site)
        host = self.config.control_host
        shown = f"[{host}]" if ":" in host else host
        self.control_url = self.config.advertise_url or f"ws://{shown}:{port}/control"
        self._collector = NodeCollector(self.describe_node)
        with contextlib.suppress(ValueError):
            REGISTRY.register(self._collector)
        if self.config.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self.config.redis_url)
            self.registration = Registration(
                self._redis,
                self.config.redis_prefix,
                self.info,
                heartbeat=self.config.heartbeat,
                ttl=self.config.ttl,
                on_drain=self._on_drain,
            )
            await self.registration.start()
        return self.control_url

    @staticmethod
    def _bound_port(site: web.TCPSite) -> int:
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("the control server has no socket")

    async def stop(self) -> None:
        """Deregister, close every room, close the control server."""
        from prometheus_client import REGISTRY

        if self.registration is not None:
            await self.registration.stop()
            self.registration = None
        await self.relay.stop()
        for connection in list(self._connections):
            connection.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._collector is not None:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(self._collector)
            self._collector = None

    # -- what the node tells

    def load(self) -> NodeLoad:
        participants = sum(len(room.participants) for room in self.relay.rooms.values())
        return NodeLoad(rooms=len(self.relay.rooms), participants=participants)

    def info(self, draining: bool | None = None) -> NodeInfo:
        relay = self.config.relay
        return NodeInfo(
            node_id=self.config.node_id,
            control_url=self.control_url,
            announced_addresses=list(relay.announced_addresses),
            port_min=relay.port_min,
            port_max=relay.port_max,
            capacity=self.config.capacity,
            load=self.load(),
            site=self.config.site,
            draining=self.draining if draining is None else draining,
            pid=os.getpid(),
            started_at=self.started_at,
        )

    def describe_node(self) -> dict[str, Any]:
        return {
            "node_id": self.config.node_id,
            "site": self.config.site,
            "capacity": self.config.capacity,
            "draining": self.draining,
            "connections": sum(1 for c in self._connections if c.open),
            "load": self.load().model_dump(),
        }

    def _on_drain(self, draining: bool) -> None:
        self.draining = draining

    async def set_draining(self, draining: bool) -> bool:
        """The drain flag: in Redis when registered (the heartbeat reads it back), else here."""
        if self.registration is not None:
            await set_drain(self._redis, self.config.redis_prefix, self.config.node_id, draining)
            await self.registration.beat()
        else:
            self.draining = draining
        return self.draining

    # -- HTTP

    def _authorized(self, request: web.Request, secret: str) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(token.strip().encode(), secret.encode())

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "node_id": self.config.node_id,
                "draining": self.draining,
                "load": self.load().model_dump(),
            }
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        token = self.config.metrics_token
        if token is not None:
            allowed = self._authorized(request, token)
        else:
            allowed = _is_loopback(request.remote)
        if not allowed:
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _control(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, self.config.secret):
            logger.warning("relay node: control connection from %s refused", request.remote)
            return web.json_response(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        # aiohttp closes the connection (1009) above its limit; up to it, an oversized
        # request gets an error reply (wire.parse_request) and the connection stays.
        ws = web.WebSocketResponse(max_msg_size=4 * wire.MAX_REQUEST_BYTES, heartbeat=None)
        await ws.prepare(request)
        self._numbers += 1
        connection = ControlConnection(ws, self._numbers, str(request.remote))
        self._connections.add(connection)
        writer = asyncio.ensure_future(connection.write())
        logger.info("relay node: %r connected", connection)
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data: str | bytes = message.data
                elif message.type == WSMsgType.BINARY:
                    connection.send(wire.encode_error(0, wire.BAD_MESSAGE, "text frames only"))
                    continue
                else:
                    break
                try:
                    parsed = wire.parse_request(data)
                except wire.WireError as exc:
                    connection.send(wire.encode_error(exc.request_id, exc.code, exc.message))
                    continue
                await connection.slots.acquire()
                task = asyncio.ensure_future(self._serve_request(connection, parsed))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            self._forget_connection(connection)
            connection.close()
            # requests already running finish (a join half done would leave a dangling offer)
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(writer, return_exceptions=True)
            logger.info("relay node: %r closed", connection)
        return ws

    async def _serve_request(self, connection: ControlConnection, request: wire.Request) -> None:
        try:
            result = await self._execute(connection, request)
        except RelayError as exc:
            connection.send(wire.encode_error(request.id, exc.code, exc.message))
        except Exception as exc:
            logger.exception("relay node: %s failed", request.op)
            connection.send(wire.encode_error(request.id, wire.INTERNAL, type(exc).__name__))
        else:
            connection.send(wire.encode_reply(request.id, result))
        finally:
            connection.slots.release()

    async def _execute(self, connection: ControlConnection, request: wire.Request) -> Any:
        op, args = request.op, request.args
        relay = self.relay
        if isinstance(args, wire.RoomArgs):
            if op == "create_room":
                await relay.create_room(args.room)
            else:
                await relay.close_room(args.room)
                self._forget_room(args.room)
            return None
        if isinstance(args, wire.JoinArgs):
            self._route_to(connection, args.room, args.participant)
            offer = await relay.join(
                args.room, args.participant, publish=list(args.publish), subscribe=args.subscribe
            )
            return {"offer": offer}
        if isinstance(args, wire.AnswerArgs):
            await relay.answer(args.room, args.participant, args.sdp)
            return None
        if isinstance(args, wire.SourceArgs):
            if op == "publish":
                await relay.publish(args.room, args.participant, args.source)
            else:
                await relay.unpublish(args.room, args.participant, args.source)
            return None
        if isinstance(args, wire.ParticipantArgs):
            if op == "claim":
                room = relay.rooms.get(args.room)
                known = room is not None and args.participant in room.participants
                if known:
                    self._route_to(connection, args.room, args.participant)
                return {"known": known}
            await relay.leave(args.room, args.participant)
            self._owner.pop((args.room, args.participant), None)
            return None
        if isinstance(args, wire.DrainArgs):
            return {"draining": await self.set_draining(args.draining)}
        if op == "stats":
            stats = await relay.stats()
            stats["node"] = self.describe_node()
            return stats
        if op == "rooms":
            return sorted(relay.rooms)
        raise RelayError(wire.UNKNOWN_OP, f"unknown op {op!r}")  # OPS and this disagree

    # -- event routing (the relay's listener)

    def _route_to(self, connection: ControlConnection, room_id: str, participant_id: str) -> None:
        self._owner[(room_id, participant_id)] = connection
        self._room_connections.setdefault(room_id, set()).add(connection)

    def _forget_room(self, room_id: str) -> None:
        self._room_connections.pop(room_id, None)
        for key in [key for key in self._owner if key[0] == room_id]:
            del self._owner[key]

    def _forget_connection(self, connection: ControlConnection) -> None:
        # routing falls back to every open connection for what this one owned
        self._connections.discard(connection)
        for key in [key for key, owner in self._owner.items() if owner is connection]:
            del self._owner[key]
        for connections in self._room_connections.values():
            connections.discard(connection)

    def _open(self) -> list[ControlConnection]:
        return [connection for connection in self._connections if connection.open]

    def _to_participant(self, room_id: str, participant_id: str, data: str) -> None:
        owner = self._owner.get((room_id, participant_id))
        targets = [owner] if owner is not None and owner.open else self._open()
        for connection in targets:
            connection.send(data)

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        data = wire.encode_event("offer", room_id, participant_id, offer=offer)
        self._to_participant(room_id, participant_id, data)

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        data = wire.encode_event("gone", room_id, participant_id, reason=reason)
        self._to_participant(room_id, participant_id, data)
        self._owner.pop((room_id, participant_id), None)

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        data = wire.encode_event("speaker", room_id, participant_id)
        joined = [c for c in self._room_connections.get(room_id, ()) if c.open]
        for connection in joined or self._open():
            connection.send(data)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


async def run_node(config: NodeConfig, stop: asyncio.Event | None = None) -> int:
    """Run a node until SIGTERM/SIGINT (or `stop`); prints the control URL line tests read."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    node = RelayNode(config)
    try:
        url = await node.start()
    except Exception as exc:
        print(f"relay node {config.node_id}: cannot start: {exc}", flush=True)
        await node.stop()
        return 1
    print(f"relay node {config.node_id} control {url}", flush=True)
    try:
        await stop.wait()
    finally:
        logger.info("relay node %s: stopping", config.node_id)
        await node.stop()
    return 0
