"""The endpoint agent's media side straight against the relay: aiortc publisher → LocalRelay
→ aiortc subscriber, over UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack
from hypothesis import given, settings
from hypothesis import strategies as st

from document_camera.notices import NoticeCode
from document_camera.rate_control import RatePolicy
from document_camera.sources import SyntheticSource
from document_camera.track import DEFAULT_SIZE
from endpoint.agent import DocumentPublisher
from endpoint.commands import parse_size
from media_relay.aiortc_client import RelayPeerClient
from media_relay.control import LocalRelay, RelayConfig

ROOM = "call-1"


class Listener:
    """Stands in for the signaling server: hands renegotiation offers to the clients."""

    def __init__(self, relay: LocalRelay) -> None:
        self.relay = relay
        self.handlers: dict[str, Any] = {}

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        handler = self.handlers.get(participant_id)
        if handler is not None:
            await self.relay.answer(room_id, participant_id, await handler(offer))

    async def on_participant_gone(self, room_id: str, participant_id: str, reason: str) -> None:
        pass

    async def on_active_speaker(self, room_id: str, participant_id: str) -> None:
        pass


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[LocalRelay]:
    instance = LocalRelay(RelayConfig(listen_address="127.0.0.1",
                                      announced_addresses=["127.0.0.1"]))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def _subscriber(
    relay: LocalRelay, listener: Listener
) -> tuple[RelayPeerClient, asyncio.Future[tuple[MediaStreamTrack, dict[str, Any]]]]:
    got: asyncio.Future[tuple[MediaStreamTrack, dict[str, Any]]] = (
        asyncio.get_running_loop().create_future())

    def on_track(track: MediaStreamTrack, meta: dict[str, Any]) -> None:
        if meta.get("source") == "document" and not got.done():
            got.set_result((track, meta))

    client = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"], on_track=on_track)
    listener.handlers["user-7"] = client.handle_offer
    offer = await relay.join(ROOM, "user-7", [])
    await relay.answer(ROOM, "user-7", await client.handle_offer(offer))
    return client, got


async def _publish(relay: LocalRelay, listener: Listener, publisher: DocumentPublisher) -> None:
    listener.handlers["doccam-3"] = publisher.handle_offer
    offer = await relay.join(ROOM, "doccam-3", ["document"])
    assert [t["source"] for t in offer["tracks"] if t["direction"] == "send"] == ["document"]
    await relay.answer(ROOM, "doccam-3", await publisher.handle_offer(offer))


async def test_document_track_through_the_relay_at_full_resolution(relay: LocalRelay) -> None:
    listener = Listener(relay)
    relay.set_listener(listener)
    subscriber, got = await _subscriber(relay, listener)
    publisher = DocumentPublisher(
        SyntheticSource(frame_size=(1920, 1080), seed=2), ice_servers=[],
        host_addresses=["127.0.0.1"])
    try:
        await _publish(relay, listener, publisher)
        track, meta = await asyncio.wait_for(got, 20)
        assert meta["participant_id"] == "doccam-3"
        frames = [await asyncio.wait_for(track.recv(), 20) for _ in range(3)]
        assert {(f.width, f.height) for f in frames} == {DEFAULT_SIZE}
        # The detail encoder (not aiortc's default) produced what arrived.
        assert publisher.encoder.frames_encoded >= 3
        assert publisher.track.status.page_found
    finally:
        await publisher.close()
        await subscriber.close()


async def test_camera_unplugged_mid_call_the_stream_goes_on(relay: LocalRelay) -> None:
    listener = Listener(relay)
    relay.set_listener(listener)
    subscriber, got = await _subscriber(relay, listener)
    source = SyntheticSource(frame_size=(960, 540), seed=4, fail_after=4)
    notices: list[Any] = []
    publisher = DocumentPublisher(
        source, ice_servers=[], host_addresses=["127.0.0.1"], size=(544, 768),
        policy=RatePolicy(max_fps=10.0, bits_per_frame=100_000), on_notice=notices.append)
    publisher.track.reopen_interval = 0.2
    try:
        await _publish(relay, listener, publisher)
        track, _meta = await asyncio.wait_for(got, 20)
        for _ in range(8):  # well past the moment the camera went away
            frame = await asyncio.wait_for(track.recv(), 20)
            assert (frame.width, frame.height) == (544, 768)
        assert NoticeCode.CAMERA_LOST in [n.code for n in notices]
        assert not publisher.track.status.camera_ok
        source.plug_back()
        for _ in range(5):
            await asyncio.wait_for(track.recv(), 20)
        assert publisher.track.status.camera_ok
        assert NoticeCode.CAMERA_BACK in [n.code for n in notices]
        assert publisher.client.pc.connectionState == "connected"
    finally:
        await publisher.close()
        await subscriber.close()


async def test_bandwidth_drop_keeps_the_resolution_and_lowers_the_frame_rate(
    relay: LocalRelay,
) -> None:
    listener = Listener(relay)
    relay.set_listener(listener)
    subscriber, got = await _subscriber(relay, listener)
    publisher = DocumentPublisher(
        SyntheticSource(frame_size=(960, 540), seed=5), ice_servers=[],
        host_addresses=["127.0.0.1"], size=(544, 768),
        policy=RatePolicy(max_bitrate=2_000_000, max_fps=8.0, bits_per_frame=250_000))
    try:
        await _publish(relay, listener, publisher)
        track, _meta = await asyncio.wait_for(got, 20)
        await asyncio.wait_for(track.recv(), 20)
        keyframes = publisher.encoder.keyframes
        # What aiortc's sender does when a REMB of 500 kbit/s arrives.
        publisher.encoder.target_bitrate = 500_000
        assert publisher.controller.frame_rate == 2.0
        frames = [await asyncio.wait_for(track.recv(), 20) for _ in range(4)]
        assert {(f.width, f.height) for f in frames} == {(544, 768)}
        assert publisher.encoder.keyframes > keyframes  # reopened at the new rate, decodable
        assert publisher.track.status.frame_rate == 2.0
        assert publisher.track.status.target_bitrate == 500_000
    finally:
        await publisher.close()
        await subscriber.close()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_size_option_parses_or_refuses_cleanly(text: str) -> None:
    try:
        width, height = parse_size(text)
    except SystemExit as exc:
        assert str(exc).startswith("--size")
        return
    assert 64 <= width <= 4096 and 64 <= height <= 4096
    assert width % 2 == 0 and height % 2 == 0


def test_size_option_examples() -> None:
    assert parse_size("1088x1536") == (1088, 1536)
    assert parse_size("1920X1080") == (1920, 1080)
    for bad in ("", "1088", "x", "1087x1536", "10x10", "99999x2", "axb", "1x2x3"):
        with pytest.raises(SystemExit):
            parse_size(bad)
