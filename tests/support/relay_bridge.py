"""A test-only stand-in for the signaling service between Chromium pages and a LocalRelay.

The real service carries relay-client.js's requests ("join", "answer", "publish") to the relay
over socket.io and pushes the relay's renegotiation offers back. Browser tests need only that
part, so this small aiohttp server does it over a websocket: it serves the test's page, the
product's static files (relay-client.js among them) and `/relay-bridge.js`, the page's end of
the websocket. It is also the relay's listener: an offer for a participant registered with
`join_peer` (an aiortc peer in the test) is answered by that peer, any other goes to the page
of that participant.

    async with RelayBridge(relay, "room", PAGE) as bridge:
        await bridge.join_peer("kiosk", ["camera"], kiosk.handle_offer)
        await page.goto(bridge.page_url("expert"))

A page reads its participant id from `?participant=` (which `page_url` sets):

    import { connectBridge } from "/relay-bridge.js";
    import { RelayClient } from "/static/common/js/relay-client.js";
    const bridge = await connectBridge();
    const client = new RelayClient({ iceServers: [], request: bridge.request });
    bridge.onoffer = (offer) => client.handleOffer(offer);
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from media_relay.control import LocalRelay
from tests.support.net import LOOPBACK

STATIC = Path(__file__).resolve().parents[2] / "signaling" / "static"

# Answers a relay offer for a participant that is not a page (e.g. RelayPeerClient.handle_offer).
Answerer = Callable[[dict[str, Any]], Awaitable[str]]
IceServers = Callable[[str], list[dict[str, Any]]]

BRIDGE_JS = """\
// The page's end of tests/support/relay_bridge.py: a websocket standing in for socket.io.
// `request(kind, payload)` resolves to the server's result and rejects with its error;
// offers the relay pushes later go to `bridge.onoffer(offer)`.
export async function connectBridge() {
  const participant = new URLSearchParams(location.search).get("participant");
  const query = new URLSearchParams({ participant });
  const socket = new WebSocket(`ws://${location.host}/ws?${query}`);
  await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
  const pending = new Map();
  let nextId = 1;
  const bridge = {
    participant,
    onoffer: null,
    request(kind, payload = {}) {
      const id = nextId++;
      socket.send(JSON.stringify({ id, kind, payload }));
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.push === "offer") {
      if (bridge.onoffer) bridge.onoffer(message.offer);
      return;
    }
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(message.error));
    else waiter.resolve(message.result);
  };
  return bridge;
}
"""


def no_ice_servers(participant: str) -> list[dict[str, Any]]:
    """Loopback tests: host candidates on 127.0.0.1 only."""
    return []


class RelayBridge:
    """Websocket ↔ LocalRelay for browser pages in one room; also the relay's listener."""

    def __init__(
        self,
        relay: LocalRelay,
        room: str,
        page_html: str,
        *,
        ice_servers: IceServers = no_ice_servers,
    ) -> None:
        self.relay = relay
        self.room = room
        self.page_html = page_html
        self.ice_servers = ice_servers
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.answerers: dict[str, Answerer] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0

    async def __aenter__(self) -> RelayBridge:
        self.relay.set_listener(self)
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/relay-bridge.js", self._bridge_js)
        app.router.add_get("/ws", self._socket)
        # Where the real service serves them, so pages import relay-client.js by the same path.
        app.router.add_static("/static/common/", STATIC)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for socket in list(self.sockets.values()):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self.relay.set_listener(None)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}/"

    def page_url(self, participant: str, **query: str) -> str:
        """The page for `participant`; extra query parameters are the page's own."""
        return self.url + "?" + urlencode({"participant": participant, **query})

    async def join_peer(self, participant: str, publish: list[str], answerer: Answerer) -> None:
        """Join a non-browser participant whose offers (first and later) `answerer` answers."""
        self.answerers[participant] = answerer
        offer = await self.relay.join(self.room, participant, publish)
        await self.relay.answer(self.room, participant, await answerer(offer))

    # RelayListener

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        answerer = self.answerers.get(participant_id)
        if answerer is not None:
            await self.relay.answer(room_id, participant_id, await answerer(offer))
            return
        socket = self.sockets.get(participant_id)
        if socket is not None and not socket.closed:
            await socket.send_str(json.dumps({"push": "offer", "offer": offer}))

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        return None

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None

    # HTTP

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page_html, content_type="text/html")

    async def _bridge_js(self, request: web.Request) -> web.Response:
        return web.Response(text=BRIDGE_JS, content_type="text/javascript")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        participant = request.query["participant"]
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets[participant] = socket
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            reply: dict[str, Any] = {"id": data["id"]}
            try:
                reply["result"] = await self._request(
                    participant, data["kind"], data.get("payload") or {}
                )
            except Exception as exc:  # the page's request rejects with it; tests see it there
                reply["error"] = f"{type(exc).__name__}: {exc}"
            await socket.send_str(json.dumps(reply))
        return socket

    async def _request(
        self, participant: str, kind: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """relay-client.js's three requests, plus "ice_servers" for pages that ask for them."""
        if kind == "join":
            offer = await self.relay.join(self.room, participant, list(payload["publish"]))
            return {"offer": offer}
        if kind == "answer":
            await self.relay.answer(self.room, participant, str(payload["sdp"]))
            return {"ok": True}
        if kind == "publish":
            await self.relay.publish(self.room, participant, str(payload["source"]))
            return {"ok": True}
        if kind == "ice_servers":
            return {"ice_servers": self.ice_servers(participant)}
        raise ValueError(f"unknown request {kind!r}")


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float) -> bool:
    """Poll `predicate` until it holds or `within` seconds pass; its last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return bool(await predicate())
