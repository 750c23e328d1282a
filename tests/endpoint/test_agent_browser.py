"""Chromium as the expert: the document track, published by the agent's aiortc side through
the relay, is decoded in the browser at the document track's full resolution.

tests/support/relay_bridge.py serves relay-client.js and the page, and carries the page's
join/answer requests to a LocalRelay over a websocket (the real service does this over
socket.io); the agent's offers it hands to the agent's DocumentPublisher.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from document_camera.sources import SyntheticSource
from document_camera.track import DEFAULT_SIZE
from endpoint.agent import DocumentPublisher
from media_relay.control import LocalRelay, RelayConfig
from tests.support.net import LOOPBACK
from tests.support.relay_bridge import RelayBridge

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

ROOM = "doc-room"

PAGE = """<!doctype html>
<html><body>
<script type="module">
import { connectBridge } from "/relay-bridge.js";
import { RelayClient } from "/static/common/js/relay-client.js";
const bridge = await connectBridge();
const client = new RelayClient({ iceServers: [], request: bridge.request });
client.ontrack = (track, meta) => {
  const video = document.createElement("video");
  video.id = `${meta.participant_id}-${meta.source}`;
  video.srcObject = new MediaStream([track]);
  video.autoplay = true;
  video.muted = true;
  document.body.append(video);
};
bridge.onoffer = (offer) => client.handleOffer(offer);
await client.join({});
window.client = client;
window.joined = true;
</script>
</body></html>
"""


@pytest_asyncio.fixture
async def bridge() -> AsyncIterator[RelayBridge]:
    relay = LocalRelay(RelayConfig(listen_address=LOOPBACK, announced_addresses=[LOOPBACK]))
    await relay.start()
    try:
        async with RelayBridge(relay, ROOM, PAGE) as running:
            yield running
    finally:
        await relay.stop()


@pytest_asyncio.fixture
async def publisher() -> AsyncIterator[DocumentPublisher]:
    instance = DocumentPublisher(
        SyntheticSource(frame_size=(1920, 1080), seed=8), ice_servers=[], host_addresses=[LOOPBACK]
    )
    try:
        yield instance
    finally:
        await instance.close()


async def test_chromium_decodes_the_document_track_at_full_resolution(
    browser: Any, bridge: RelayBridge, publisher: DocumentPublisher
) -> None:
    await bridge.join_peer("doccam-3", ["document"], publisher.handle_offer)

    # The document camera is in the call first; the expert's console joins it. (A relay
    # offer to a participant with nothing to send or receive has an empty BUNDLE group,
    # which Chromium refuses; a real expert always publishes audio and camera.)
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(bridge.page_url("expert"))
    await page.wait_for_function("() => window.joined === true", timeout=20_000)

    await page.wait_for_function(
        "(() => { const v = document.getElementById('doccam-3-document');"
        " return v && v.videoWidth > 0; })()",
        timeout=30_000,
    )
    size = await page.evaluate(
        "(() => { const v = document.getElementById('doccam-3-document');"
        " return [v.videoWidth, v.videoHeight]; })()"
    )
    assert tuple(size) == DEFAULT_SIZE

    async def decoded() -> int:
        stats = await page.evaluate("window.client.getStats()")
        return sum(
            t["framesDecoded"]
            for t in stats["tracks"]
            if t["source"] == "document" and t["participant_id"] == "doccam-3"
        )

    first = await decoded()
    await asyncio.sleep(2.0)
    assert await decoded() > first  # still flowing, not one frozen frame
    await context.close()
