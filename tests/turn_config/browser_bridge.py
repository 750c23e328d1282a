"""A tiny test-only web server bridging a Chromium page to a LocalRelay over a WebSocket.

The page gets the relay's offers (first and renegotiations) with its ICE servers and sends
back answers — the part the real signaling service does over socket.io.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from media_relay.control import LocalRelay
from tests.support.net import LOOPBACK, free_port

STATIC = Path(__file__).resolve().parents[2] / "signaling" / "static"


class BrowserBridge:
    def __init__(self, relay: LocalRelay, room: str, page_html: str) -> None:
        self.relay = relay
        self.room = room
        self.page_html = page_html
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.ice_servers: dict[str, list[dict[str, Any]]] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/ws", self._socket)
        app.router.add_static("/static/common/", STATIC)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        for socket in list(self.sockets.values()):
            await socket.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page_html, content_type="text/html")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        participant = request.query["participant"]
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets[participant] = socket
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            try:
                ack = await self._request(participant, body["name"], body.get("payload") or {})
            except Exception as exc:  # reported to the page, which records it
                ack = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            await socket.send_json({"id": body["id"], "ack": ack})
        return socket

    async def _request(
        self, participant: str, name: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The three requests relay-client.js makes (plus where its ICE servers come from)."""
        if name == "ice_servers":
            return {"ok": True, "ice_servers": self.ice_servers[participant]}
        if name == "join":
            offer = await self.relay.join(self.room, participant, list(payload["publish"]))
            return {"ok": True, "offer": offer}
        if name == "answer":
            await self.relay.answer(self.room, participant, str(payload["sdp"]))
            return {"ok": True}
        raise ValueError(f"unknown request {name!r}")

    async def push_offer(self, participant: str, offer: dict[str, Any]) -> bool:
        socket = self.sockets.get(participant)
        if socket is None or socket.closed:
            return False
        await socket.send_json({"type": "offer", "offer": offer})
        return True


async def wait_until(predicate: Any, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return bool(await predicate())
