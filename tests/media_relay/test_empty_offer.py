"""A participant with nothing to send or receive yet (it publishes nothing, the room is empty)
used to get an offer with an empty BUNDLE group, which Chromium refuses. Chromium and aiortc
must both take its first offer, stay connected while nothing flows, and get the media once
someone publishes (the renegotiation reuses the inactive m-line or adds one)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from media_relay.aiortc_client import RelayPeerClient
from media_relay.control import LocalRelay
from tests.media_relay.conftest import PatternTrack, loopback_config, wait_for

ROOM = "empty-room"

# Chromium side: a bare RTCPeerConnection answering whatever the relay offers.
SETUP_JS = """() => {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  window.pc = pc;
  window.tracks = 0;
  pc.ontrack = () => { window.tracks += 1; };
  window.answerOffer = async (offer) => {
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise((resolve) => {
        const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
        pc.addEventListener("icegatheringstatechange", done);
        setTimeout(resolve, 3000);
      });
    }
    return pc.localDescription.sdp;
  };
}"""

FRAMES_JS = """() => window.pc.getStats().then((report) => {
  let frames = 0;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
  });
  return frames;
})"""


class Listener:
    """Routes the relay's renegotiation offers to the Chromium page or an aiortc client."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.page: Any = None
        self.clients: dict[str, RelayPeerClient] = {}
        self.errors: list[str] = []
        self.gone: list[tuple[str, str]] = []

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        try:
            if participant_id == "viewer" and self.page is not None:
                sdp = await self.page.evaluate("(o) => window.answerOffer(o)", offer)
            elif participant_id in self.clients:
                sdp = await self.clients[participant_id].handle_offer(offer)
            else:
                return
            await self.relay.answer(room_id, participant_id, sdp)
        except Exception as exc:  # surfaced by the test's assertions
            self.errors.append(f"{participant_id}: {exc}")

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        self.gone.append((participant_id, reason))

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        return None


@pytest_asyncio.fixture
async def relay_and_listener() -> AsyncIterator[tuple[LocalRelay, Listener]]:
    relay = LocalRelay(loopback_config(connect_timeout=3.0, silence_timeout=3.0))
    await relay.start()
    listener = Listener(relay)
    relay.set_listener(listener)
    try:
        yield relay, listener
    finally:
        for client in listener.clients.values():
            await client.close()
        await relay.stop()
        gc.collect()


def assert_no_empty_bundle(sdp: str) -> None:
    for line in sdp.splitlines():
        if line.startswith("a=group:BUNDLE"):
            assert line.split()[1:], f"empty BUNDLE group in {sdp!r}"


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_chromium_takes_an_offer_with_nothing_in_it(
    browser: Any, relay_and_listener: tuple[LocalRelay, Listener]
) -> None:
    relay, listener = relay_and_listener
    await relay.create_room(ROOM)
    page = await browser.new_page()
    await page.evaluate(SETUP_JS)
    listener.page = page

    offer = await relay.join(ROOM, "viewer", [])
    assert offer["tracks"] == []
    assert_no_empty_bundle(offer["sdp"])
    answer = await page.evaluate("(o) => window.answerOffer(o)", offer)
    await relay.answer(ROOM, "viewer", answer)

    # The connection comes up although no media flows, and the viewer outlives the connect
    # and silence timeouts.
    await page.wait_for_function("() => window.pc.connectionState === 'connected'", timeout=10000)
    await asyncio.sleep(4.5)
    assert listener.gone == []

    # Someone publishes: the viewer's renegotiation brings the m-line and the video flows.
    publisher = RelayPeerClient(
        {"camera": PatternTrack()}, ice_servers=[], host_addresses=["127.0.0.1"]
    )
    listener.clients["publisher"] = publisher
    first = await relay.join(ROOM, "publisher", ["camera"])
    await relay.answer(ROOM, "publisher", await publisher.handle_offer(first))

    async def frames() -> int:
        return int(await page.evaluate(FRAMES_JS))

    deadline = asyncio.get_running_loop().time() + 30
    decoded = 0
    while asyncio.get_running_loop().time() < deadline:
        decoded = await frames()
        if decoded > 5:
            break
        await asyncio.sleep(0.3)
    assert listener.errors == []
    assert decoded > 5, f"the viewer decoded {decoded} frames"
    assert listener.gone == []
    await page.close()


async def test_aiortc_takes_an_offer_with_nothing_in_it(
    relay_and_listener: tuple[LocalRelay, Listener],
) -> None:
    relay, listener = relay_and_listener
    await relay.create_room(ROOM)
    viewer = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"])
    listener.clients["viewer"] = viewer
    offer = await relay.join(ROOM, "viewer", [])
    assert_no_empty_bundle(offer["sdp"])
    await relay.answer(ROOM, "viewer", await viewer.handle_offer(offer))

    publisher = RelayPeerClient(
        {"camera": PatternTrack()}, ice_servers=[], host_addresses=["127.0.0.1"]
    )
    listener.clients["publisher"] = publisher
    first = await relay.join(ROOM, "publisher", ["camera"])
    await relay.answer(ROOM, "publisher", await publisher.handle_offer(first))
    assert await wait_for(lambda: viewer.pc.connectionState == "connected", 20), json.dumps(
        listener.errors
    )
    assert listener.errors == []
    assert listener.gone == []
