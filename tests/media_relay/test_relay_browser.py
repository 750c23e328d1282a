"""Two real Chromium pages exchange audio and video through the relay with relay-client.js.

A test-only aiohttp server serves the module and a page, and bridges each page to a
LocalRelay over a websocket (the real service does the same over socket.io).
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

from media_relay.control import LocalRelay, RelayError
from tests.support.net import LOOPBACK

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CLIENT_JS = Path(__file__).resolve().parents[2] / "signaling" / "static" / "js" / "relay-client.js"

PAGE = """<!doctype html>
<html><body>
<script type="module">
import { RelayClient } from "/relay-client.js";
const name = new URLSearchParams(location.search).get("name");
const ws = new WebSocket(`ws://${location.host}/ws?name=${name}`);
let nextId = 1;
const pending = new Map();
const request = (kind, payload) => new Promise((resolve, reject) => {
  const id = nextId++;
  pending.set(id, { resolve, reject });
  ws.send(JSON.stringify({ id, kind, payload }));
});
const client = new RelayClient({ iceServers: [], request });
window.remote = [];
client.ontrack = (track, meta) => {
  window.remote.push(meta);
  const element = document.createElement(track.kind);
  element.srcObject = new MediaStream([track]);
  element.autoplay = true;
  element.muted = true;
  document.body.append(element);
};
ws.onmessage = async (event) => {
  const message = JSON.parse(event.data);
  if (message.push === "offer") {
    await client.handleOffer(message.offer);
    return;
  }
  const waiter = pending.get(message.id);
  pending.delete(message.id);
  if (message.error) waiter.reject(new Error(message.error));
  else waiter.resolve(message.result);
};
await new Promise((resolve) => { ws.onopen = resolve; });
const stream = await navigator.mediaDevices.getUserMedia({
  video: { width: 320, height: 240, frameRate: 15 }, audio: true,
});
const local = { camera: stream, audio: stream };
if (new URLSearchParams(location.search).get("document")) {
  // the document camera: a second video source, tuned for detail
  local.document = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 5 },
  });
}
await client.join(local, {
  hints: { camera: "maintain-framerate", document: "maintain-resolution" },
});
window.hint = local.document ? local.document.getVideoTracks()[0].contentHint : null;
window.client = client;
window.joined = true;
</script>
</body></html>
"""


class PageBridge:
    """Websocket ↔ LocalRelay for the test pages; also the relay's listener."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.sockets: dict[str, web.WebSocketResponse] = {}

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        socket = self.sockets.get(participant_id)
        if socket is not None and not socket.closed:
            await socket.send_str(json.dumps({"push": "offer", "offer": offer}))

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        return None

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        name = request.query["name"]
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets[name] = socket
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            reply: dict[str, Any] = {"id": data["id"]}
            try:
                payload = data.get("payload") or {}
                if data["kind"] == "join":
                    offer = await self.relay.join("browser-room", name, payload["publish"])
                    reply["result"] = {"offer": offer}
                elif data["kind"] == "answer":
                    await self.relay.answer("browser-room", name, payload["sdp"])
                    reply["result"] = {"ok": True}
                elif data["kind"] == "publish":
                    await self.relay.publish("browser-room", name, payload["source"])
                    reply["result"] = {"ok": True}
            except RelayError as exc:
                reply["error"] = exc.message
            await socket.send_str(json.dumps(reply))
        return socket


@pytest_asyncio.fixture
async def page_server(relay: LocalRelay) -> AsyncIterator[str]:
    bridge = PageBridge(relay)
    relay.set_listener(bridge)
    app = web.Application()
    app.router.add_get("/", lambda _request: web.Response(text=PAGE, content_type="text/html"))
    app.router.add_get(
        "/relay-client.js",
        lambda _request: web.Response(
            text=CLIENT_JS.read_text(encoding="utf-8"), content_type="text/javascript"
        ),
    )
    app.router.add_get("/ws", bridge.websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        for socket in list(bridge.sockets.values()):
            await socket.close()
        await runner.cleanup()


async def remote_stats(page: Any) -> list[dict[str, Any]]:
    stats = await page.evaluate("window.client ? window.client.getStats() : null")
    return list(stats["tracks"]) if stats else []


async def test_two_browsers_exchange_audio_and_video(browser: Any, page_server: str) -> None:
    pages = []
    for name, query in (("alice", "&document=1"), ("bob", "")):
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{page_server}/?name={name}{query}")
        pages.append(page)
    for page in pages:
        await page.wait_for_function("window.joined === true", timeout=20_000)

    async def decoded(page: Any, other: str) -> tuple[int, int]:
        tracks = await remote_stats(page)
        mine = [t for t in tracks if t["participant_id"] == other]
        video = sum(t["framesDecoded"] for t in mine if t["kind"] == "video")
        audio = sum(t["packetsReceived"] for t in mine if t["kind"] == "audio")
        return video, audio

    first: list[tuple[int, int]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        first = [await decoded(pages[0], "bob"), await decoded(pages[1], "alice")]
        if all(video > 5 and audio > 10 for video, audio in first):
            break
        assert asyncio.get_running_loop().time() < deadline, f"no media: {first}"
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)
    second = [await decoded(pages[0], "bob"), await decoded(pages[1], "alice")]
    for (video_before, audio_before), (video_after, audio_after) in zip(first, second, strict=True):
        assert video_after > video_before + 5, (first, second)
        assert audio_after > audio_before + 20, (first, second)

    remote = await pages[0].evaluate("window.remote")
    announced = {(m["participant_id"], m["source"]) for m in remote}
    assert announced == {("bob", "camera"), ("bob", "audio")}
    # bob also gets alice's document camera, as its own video track
    remote = await pages[1].evaluate("window.remote")
    announced = {(m["participant_id"], m["source"]) for m in remote}
    assert announced == {("alice", "camera"), ("alice", "audio"), ("alice", "document")}
    tracks = await remote_stats(pages[1])
    document = [t for t in tracks if t["source"] == "document"]
    assert document and document[0]["framesDecoded"] > 0, tracks
    assert await pages[0].evaluate("window.hint") == "detail"
    stats = await pages[0].evaluate("window.client.getStats()")
    assert stats["connectionState"] == "connected"
    assert stats["rttMs"] is None or stats["rttMs"] < 1000
