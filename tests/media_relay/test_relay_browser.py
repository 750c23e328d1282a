"""Two real Chromium pages exchange audio and video through the relay with relay-client.js.

tests/support/relay_bridge.py serves the module and the page, and carries each page's requests
to a LocalRelay over a websocket (the real service does the same over socket.io).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from media_relay.control import LocalRelay
from tests.support.relay_bridge import RelayBridge

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

PAGE = """<!doctype html>
<html><body>
<script type="module">
import { connectBridge } from "/relay-bridge.js";
import { RelayClient } from "/static/common/js/relay-client.js";
const bridge = await connectBridge();
const client = new RelayClient({ iceServers: [], request: bridge.request });
window.remote = [];
client.ontrack = (track, meta) => {
  window.remote.push(meta);
  const element = document.createElement(track.kind);
  element.srcObject = new MediaStream([track]);
  element.autoplay = true;
  element.muted = true;
  document.body.append(element);
};
bridge.onoffer = (offer) => client.handleOffer(offer);
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


@pytest_asyncio.fixture
async def bridge(relay: LocalRelay) -> AsyncIterator[RelayBridge]:
    async with RelayBridge(relay, "browser-room", PAGE) as running:
        yield running


async def remote_stats(page: Any) -> list[dict[str, Any]]:
    stats = await page.evaluate("window.client ? window.client.getStats() : null")
    return list(stats["tracks"]) if stats else []


async def test_two_browsers_exchange_audio_and_video(browser: Any, bridge: RelayBridge) -> None:
    pages = []
    for name, query in (("alice", {"document": "1"}), ("bob", {})):
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(bridge.page_url(name, **query))
        pages.append(page)
    for page in pages:
        await page.wait_for_function("() => window.joined === true", timeout=20_000)

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
