"""Chromium as the expert: the document track, published by the agent's aiortc side through
the relay, is decoded in the browser at the document track's full resolution.

A test-only aiohttp server serves relay-client.js and a page, and carries the page's
join/answer requests to a LocalRelay over a websocket (the real service does this over
socket.io).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

from document_camera.sources import SyntheticSource
from document_camera.track import DEFAULT_SIZE
from endpoint.agent import DocumentPublisher
from media_relay.control import LocalRelay, RelayConfig, RelayError
from tests.support.net import LOOPBACK

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

ROOM = "doc-room"
CLIENT_JS = Path(__file__).resolve().parents[2] / "signaling" / "static" / "js" / "relay-client.js"

PAGE = """<!doctype html>
<html><body>
<script type="module">
import { RelayClient } from "/relay-client.js";
const ws = new WebSocket(`ws://${location.host}/ws`);
let nextId = 1;
const pending = new Map();
const request = (kind, payload) => new Promise((resolve, reject) => {
  const id = nextId++;
  pending.set(id, { resolve, reject });
  ws.send(JSON.stringify({ id, kind, payload }));
});
const client = new RelayClient({ iceServers: [], request });
client.ontrack = (track, meta) => {
  const video = document.createElement("video");
  video.id = `${meta.participant_id}-${meta.source}`;
  video.srcObject = new MediaStream([track]);
  video.autoplay = true;
  video.muted = true;
  document.body.append(video);
};
ws.onmessage = async (event) => {
  const message = JSON.parse(event.data);
  if (message.push === "offer") { await client.handleOffer(message.offer); return; }
  const waiter = pending.get(message.id);
  pending.delete(message.id);
  if (message.error) waiter.reject(new Error(message.error)); else waiter.resolve(message.result);
};
await new Promise((resolve) => { ws.onopen = resolve; });
await client.join({});
window.client = client;
window.joined = true;
</script>
</body></html>
"""


class Bridge:
    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.socket: web.WebSocketResponse | None = None
        self.publisher: DocumentPublisher | None = None

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        if participant_id == "expert" and self.socket is not None and not self.socket.closed:
            await self.socket.send_str(json.dumps({"push": "offer", "offer": offer}))
        elif participant_id == "doccam-3" and self.publisher is not None:
            await self.relay.answer(room_id, participant_id,
                                    await self.publisher.handle_offer(offer))

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        return None

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.socket = socket
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            payload = data.get("payload") or {}
            reply: dict[str, Any] = {"id": data["id"]}
            try:
                if data["kind"] == "join":
                    offer = await self.relay.join(ROOM, "expert", payload["publish"])
                    reply["result"] = {"offer": offer}
                elif data["kind"] == "answer":
                    await self.relay.answer(ROOM, "expert", payload["sdp"])
                    reply["result"] = {"ok": True}
            except RelayError as exc:
                reply["error"] = exc.message
            await socket.send_str(json.dumps(reply))
        return socket


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[tuple[str, Bridge]]:
    relay = LocalRelay(RelayConfig(listen_address=LOOPBACK, announced_addresses=[LOOPBACK]))
    await relay.start()
    bridge = Bridge(relay)
    relay.set_listener(bridge)
    app = web.Application()
    app.router.add_get("/", lambda _r: web.Response(text=PAGE, content_type="text/html"))
    app.router.add_get("/relay-client.js", lambda _r: web.Response(
        text=CLIENT_JS.read_text(encoding="utf-8"), content_type="text/javascript"))
    app.router.add_get("/ws", bridge.websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{LOOPBACK}:{port}", bridge
    finally:
        if bridge.publisher is not None:
            await bridge.publisher.close()
        if bridge.socket is not None:
            await bridge.socket.close()
        await runner.cleanup()
        await relay.stop()


async def test_chromium_decodes_the_document_track_at_full_resolution(
    browser: Any, setup: tuple[str, Bridge]
) -> None:
    url, bridge = setup
    publisher = DocumentPublisher(SyntheticSource(frame_size=(1920, 1080), seed=8),
                                  ice_servers=[], host_addresses=[LOOPBACK])
    bridge.publisher = publisher
    offer = await bridge.relay.join(ROOM, "doccam-3", ["document"])
    await bridge.relay.answer(ROOM, "doccam-3", await publisher.handle_offer(offer))

    # The document camera is in the call first; the expert's console joins it. (A relay
    # offer to a participant with nothing to send or receive has an empty BUNDLE group,
    # which Chromium refuses; a real expert always publishes audio and camera.)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("window.joined === true", timeout=20_000)

    await page.wait_for_function(
        "(() => { const v = document.getElementById('doccam-3-document');"
        " return v && v.videoWidth > 0; })()", timeout=30_000)
    size = await page.evaluate(
        "(() => { const v = document.getElementById('doccam-3-document');"
        " return [v.videoWidth, v.videoHeight]; })()")
    assert tuple(size) == DEFAULT_SIZE

    async def decoded() -> int:
        stats = await page.evaluate("window.client.getStats()")
        return sum(t["framesDecoded"] for t in stats["tracks"]
                   if t["source"] == "document" and t["participant_id"] == "doccam-3")

    first = await decoded()
    await asyncio.sleep(2.0)
    assert await decoded() > first  # still flowing, not one frozen frame
    await context.close()
