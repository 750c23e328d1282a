"""`RemoteRelay`: the relay control API of media_relay/control.py, spoken to a relay node
(media_relay/node.py) over its WebSocket `/control` (wire format: media_relay/wire.py).

    relay = RemoteRelay("relay-a-0", "ws://10.0.0.5:7700/control", secret)
    relay.set_listener(listener)            # on_offer, on_participant_gone, on_active_speaker
    relay.set_connection_listener(on_link)  # on_link(node_id, up): up=False the moment the
    await relay.start()                     #   control connection fails
    offer = await relay.join("call-1", "user-3", publish=["audio", "camera"])

Same methods and results as LocalRelay. Each call waits at most `timeout` seconds: for the
connection (while it is being re-established) and then for the node's reply. Errors are
`RelayError`: the relay's own codes pass through from the node; `node_unreachable` when there
is no connection within the timeout or it drops while the call is in flight (the call may or
may not have been done); `timeout` when the node is connected but does not answer in time.

After a drop the client reconnects with backoff (0.1 s doubling to `backoff_max`) until
`stop()`. It pings the node every `ping_interval` seconds; a node that does not answer a ping
within half that is taken as lost (a frozen or cut-off node is noticed within ~1.5 ×
`ping_interval`). On reconnect it claims again the participants it joined (wire op `claim`),
so their offers come back to it rather than to every connection. Events are delivered in
order per participant (per room for speaker events), each in its own task, so a listener may
call back into the relay (e.g. `answer`) from `on_offer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from media_relay import wire
from media_relay.control import RelayListener, _NullListener
from media_relay.errors import RelayError

__all__ = ["ConnectionListener", "RemoteRelay"]

logger = logging.getLogger(__name__)

# on_link(node_id, up): plain function or coroutine function
ConnectionListener = Callable[[str, bool], Any]


class RemoteRelay:
    """A relay node's control API, over one WebSocket."""

    def __init__(
        self,
        node_id: str,
        control_url: str,
        secret: str,
        *,
        timeout: float = 5.0,
        ping_interval: float = 2.0,
        backoff_max: float = 5.0,
    ) -> None:
        if timeout <= 0 or ping_interval <= 0 or backoff_max <= 0:
            raise ValueError("timeout, ping_interval and backoff_max must be positive")
        self.node_id = node_id
        self.control_url = control_url
        self.timeout = timeout
        self.ping_interval = ping_interval
        self.backoff_max = backoff_max
        self._secret = secret
        self._listener: RelayListener = _NullListener()
        self._connection_listener: ConnectionListener | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._chains: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # (room, participant) this client joined: claimed again after a reconnect
        self._joined: set[tuple[str, str]] = set()
        self._stopping = False
        self.last_error: str | None = None
        self.connects = 0

    def __repr__(self) -> str:
        return f"RemoteRelay({self.node_id!r}, {self.control_url!r})"

    # -- lifecycle

    @property
    def running(self) -> bool:
        """True while the control connection is up."""
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect; raises RelayError (`node_unreachable`, or `unauthorized` for a refused
        secret) when the first connection does not succeed within `timeout`."""
        if self._keeper is not None:
            return
        self._stopping = False
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                # sock_read bounds the upgrade handshake (a port that accepts and never
                # answers); aiohttp lifts it once the WebSocket is open
                total=None,
                connect=self.timeout,
                sock_connect=self.timeout,
                sock_read=self.timeout,
            )
        )
        self._keeper = asyncio.ensure_future(self._keep_connected())
        try:
            await asyncio.wait_for(self._connected.wait(), self.timeout)
        except TimeoutError:
            error = self.last_error or "no connection"
            await self.stop()
            code = "unauthorized" if error.startswith("unauthorized") else "node_unreachable"
            raise RelayError(code, f"relay node {self.node_id}: {error}") from None

    async def stop(self) -> None:
        self._stopping = True
        keeper, self._keeper = self._keeper, None
        ws = self._ws
        if ws is not None:
            await ws.close()
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        self._fail_pending("the client stopped")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def set_listener(self, listener: RelayListener | None) -> None:
        self._listener = listener if listener is not None else _NullListener()

    @property
    def listener(self) -> RelayListener:
        return self._listener

    def set_connection_listener(self, listener: ConnectionListener | None) -> None:
        """`listener(node_id, up)` is called with up=True on every (re)connection and with
        up=False as soon as an established control connection fails."""
        self._connection_listener = listener

    # -- the control API (as LocalRelay)

    async def create_room(self, room_id: str) -> None:
        await self.request("create_room", {"room": room_id})

    async def close_room(self, room_id: str) -> None:
        await self.request("close_room", {"room": room_id})
        self._joined = {key for key in self._joined if key[0] != room_id}

    async def join(
        self,
        room_id: str,
        participant_id: str,
        publish: list[str] | None = None,
        subscribe: bool | Sequence[str] = True,
    ) -> dict[str, Any]:
        args = {
            "room": room_id,
            "participant": participant_id,
            "publish": list(publish or []),
            "subscribe": subscribe if isinstance(subscribe, bool) else list(subscribe),
        }
        result = await self.request("join", args)
        self._joined.add((room_id, participant_id))
        offer = result.get("offer") if isinstance(result, dict) else None
        if not isinstance(offer, dict):
            raise RelayError("bad_reply", f"relay node {self.node_id}: join without an offer")
        return offer

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        await self.request("answer", {"room": room_id, "participant": participant_id, "sdp": sdp})

    async def publish(self, room_id: str, participant_id: str, source: str) -> None:
        args = {"room": room_id, "participant": participant_id, "source": source}
        await self.request("publish", args)

    async def unpublish(self, room_id: str, participant_id: str, source: str) -> None:
        args = {"room": room_id, "participant": participant_id, "source": source}
        await self.request("unpublish", args)

    async def leave(self, room_id: str, participant_id: str) -> None:
        await self.request("leave", {"room": room_id, "participant": participant_id})
        self._joined.discard((room_id, participant_id))

    async def stats(self) -> dict[str, Any]:
        """LocalRelay.stats() of the node, plus `node`: {node_id, site, capacity, draining,
        connections, load: {rooms, participants}}."""
        result = await self.request("stats", {})
        return result if isinstance(result, dict) else {}

    async def rooms_open(self) -> list[str]:
        result = await self.request("rooms", {})
        return [str(room) for room in result] if isinstance(result, list) else []

    async def drain(self, draining: bool = True) -> bool:
        """Set the node's drain flag (in Redis when the node has a registry); returns it."""
        result = await self.request("drain", {"draining": bool(draining)})
        return bool(result.get("draining")) if isinstance(result, dict) else bool(draining)

    # -- requests

    async def request(self, op: str, args: dict[str, Any]) -> Any:
        """Send one request and wait for its reply (both within `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        request_id = next(self._ids)
        try:
            data = wire.encode_request(request_id, op, args)
        except wire.WireError as exc:
            raise RelayError(exc.code, exc.message) from None
        if not self._connected.is_set():
            if self._keeper is None:
                raise RelayError("node_unreachable", f"relay node {self.node_id}: not started")
            try:
                await asyncio.wait_for(self._connected.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise RelayError(
                    "node_unreachable",
                    f"relay node {self.node_id}: no control connection "
                    f"({self.last_error or 'connecting'})",
                ) from None
        ws = self._ws
        if ws is None or ws.closed:
            raise RelayError("node_unreachable", f"relay node {self.node_id}: connection lost")
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[request_id] = (op, future)
        try:
            try:
                await ws.send_str(data)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                raise RelayError(
                    "node_unreachable", f"relay node {self.node_id}: sending failed: {exc}"
                ) from None
            try:
                return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise RelayError(
                    "timeout",
                    f"relay node {self.node_id} did not answer {op} within {self.timeout:g} s",
                ) from None
        finally:
            self._pending.pop(request_id, None)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for op, future in pending.values():
            if not future.done():
                future.set_exception(
                    RelayError("node_unreachable", f"relay node {self.node_id}: {why} ({op})")
                )

    # -- the connection

    async def _keep_connected(self) -> None:
        delay = 0.1
        while not self._stopping:
            assert self._session is not None
            try:
                ws = await self._session.ws_connect(
                    self.control_url,
                    headers={"Authorization": f"Bearer {self._secret}"},
                    heartbeat=self.ping_interval,
                    max_msg_size=wire.MAX_NODE_MESSAGE_BYTES,
                    autoping=True,
                )
            except asyncio.CancelledError:
                raise
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401:
                    self.last_error = "unauthorized: the node refused the secret (401)"
                else:
                    self.last_error = f"handshake refused ({exc.status})"
                logger.warning("relay node %s: %s", self.node_id, self.last_error)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.last_error = f"cannot connect: {exc or type(exc).__name__}"
                logger.debug("relay node %s: %s", self.node_id, self.last_error)
            else:
                delay = 0.1
                await self._serve(ws)
                if self._stopping:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.connects += 1
        self.last_error = None
        self._connected.set()
        logger.info("relay node %s: control connection up", self.node_id)
        self._notify(True)
        if self._joined:
            self._spawn(self._claim(ws, sorted(self._joined)))
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._on_message(message.data)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    self.last_error = f"connection error: {ws.exception()}"
                    break
        finally:
            self._connected.clear()
            self._ws = None
            if not ws.closed:
                await ws.close()
            if self.last_error is None:
                self.last_error = f"connection closed ({ws.close_code})"
            self._fail_pending("control connection lost")
            if not self._stopping:
                logger.warning("relay node %s: control connection lost", self.node_id)
                self._notify(False)

    async def _claim(self, ws: aiohttp.ClientWebSocketResponse, joined: list[Any]) -> None:
        for room_id, participant_id in joined:
            if ws.closed:
                return
            try:
                await self.request("claim", {"room": room_id, "participant": participant_id})
            except RelayError as exc:
                logger.info(
                    "relay node %s: claim %s/%s: %s",
                    self.node_id,
                    room_id,
                    participant_id,
                    exc.message,
                )

    def _on_message(self, data: str) -> None:
        try:
            message = wire.parse_node_message(data)
        except wire.WireError as exc:
            logger.warning("relay node %s sent a bad message: %s", self.node_id, exc.message)
            return
        if isinstance(message, wire.Reply):
            entry = self._pending.get(message.id)
            if entry is None or entry[1].done():
                return  # timed out meanwhile
            future = entry[1]
            if message.ok:
                future.set_result(message.result)
            else:
                assert message.error is not None
                future.set_exception(RelayError(message.error.code, message.error.message))
            return
        self._deliver(message)

    # -- events

    def _deliver(self, event: wire.Event) -> None:
        if event.event == "gone":
            self._joined.discard((event.room, event.participant))
        key = (event.room, "" if event.event == "speaker" else event.participant)
        previous = self._chains.get(key)
        task = self._spawn(self._call_listener(previous, event))
        self._chains[key] = task

        def forget(done: asyncio.Task[Any]) -> None:
            if self._chains.get(key) is done:
                del self._chains[key]

        task.add_done_callback(forget)

    async def _call_listener(self, previous: asyncio.Task[None] | None, event: wire.Event) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        listener = self._listener
        try:
            if event.event == "offer":
                assert event.offer is not None
                await listener.on_offer(event.room, event.participant, event.offer.model_dump())
            elif event.event == "gone":
                reason = event.reason or "unknown"
                await listener.on_participant_gone(event.room, event.participant, reason)
            else:
                await listener.on_active_speaker(event.room, event.participant)
        except Exception:
            logger.exception(
                "relay node %s: listener failed on %s for %s/%s",
                self.node_id,
                event.event,
                event.room,
                event.participant,
            )

    def _notify(self, up: bool) -> None:
        listener = self._connection_listener
        if listener is None:
            return
        try:
            result = listener(self.node_id, up)
        except Exception:
            logger.exception("relay node %s: connection listener failed", self.node_id)
            return
        if inspect.isawaitable(result):
            self._spawn(result)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
