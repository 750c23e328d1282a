"""Real aiortc peers through the relay over UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

import pytest

from media_relay.control import LocalRelay, RelayError
from tests.media_relay.conftest import (
    Bridge,
    PatternTrack,
    ToneTrack,
    loopback_config,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def forwarded_streams(stats: dict, room: str, pid: str) -> list[dict]:
    return list(stats["rooms"][room]["participants"][pid]["forwarded"])


async def test_one_publisher_two_subscribers_decode(relay: LocalRelay, bridge: Bridge) -> None:
    publisher = bridge.peer("r1", "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await publisher.join(["camera", "audio"])
    subscribers = [bridge.peer("r1", name) for name in ("expert", "interpreter")]
    for subscriber in subscribers:
        await subscriber.join([])

    def decoded() -> bool:
        return all(
            s.frames.get(("kiosk", "camera"), 0) >= 15 and s.frames.get(("kiosk", "audio"), 0) >= 20
            for s in subscribers
        )

    assert await wait_for(decoded, 15), [s.frames for s in subscribers]
    stats = await relay.stats()
    published = stats["rooms"]["r1"]["participants"]["kiosk"]["published"]
    assert published["camera"]["packets"] > 0 and published["camera"]["subscribers"] == 2
    assert published["camera"]["keyframes"] >= 1
    for name in ("expert", "interpreter"):
        streams = {s["source"]: s for s in forwarded_streams(stats, "r1", name)}
        assert set(streams) == {"camera", "audio"}
        assert streams["camera"]["packets"] > 10 and streams["camera"]["bytes"] > 1000

    # The relay's own sender reports reach the subscribers: non-zero NTP time and counts.
    await asyncio.sleep(2.5)
    for subscriber in subscribers:
        reports = []
        for receiver in subscriber.client.pc.getReceivers():
            for item in (await receiver.getStats()).values():
                if item.type == "remote-outbound-rtp":
                    reports.append(item)
        assert reports, "no sender report reached the subscriber"
        for report in reports:
            assert report.packetsSent > 0
            assert abs(report.remoteTimestamp.timestamp() - time.time()) < 60
    # and the publisher hears receiver reports about its streams (loss, round trip)
    remote_inbound = [
        item
        for sender in publisher.client.pc.getSenders()
        for item in (await sender.getStats()).values()
        if item.type == "remote-inbound-rtp"
    ]
    assert {item.kind for item in remote_inbound} == {"audio", "video"}
    assert all(item.packetsLost == 0 for item in remote_inbound)


async def test_late_subscriber_gets_keyframe_quickly(relay: LocalRelay, bridge: Bridge) -> None:
    publisher = bridge.peer("r2", "kiosk", {"camera": PatternTrack()})
    await publisher.join(["camera"])
    early = bridge.peer("r2", "early")
    await early.join([])
    assert await wait_for(lambda: early.frames.get(("kiosk", "camera"), 0) >= 5, 10)
    await asyncio.sleep(2.0)  # well past the publisher's first key frame

    late = bridge.peer("r2", "late")
    connected_at: list[float] = []

    def on_state() -> None:
        if late.client.pc.connectionState == "connected":
            connected_at.append(time.monotonic())

    late.client.pc.on("connectionstatechange", on_state)
    await late.join([])
    assert await wait_for(lambda: ("kiosk", "camera") in late.first_frame_at, 5)
    assert connected_at
    delay = late.first_frame_at[("kiosk", "camera")] - connected_at[0]
    print(f"late subscriber: first frame {delay * 1000:.0f} ms after connecting")
    assert delay < 0.5, f"first frame {delay * 1000:.0f} ms after connecting"
    stats = await relay.stats()
    assert stats["rooms"]["r2"]["participants"]["kiosk"]["published"]["camera"]["plis_sent"] >= 2


async def test_publisher_reconnect_keeps_stream_continuous(
    relay: LocalRelay, bridge: Bridge
) -> None:
    first = bridge.peer("r3", "kiosk", {"camera": PatternTrack()})
    await first.join(["camera"])
    viewer = bridge.peer("r3", "viewer")
    await viewer.join([])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 5, 10)
    before = viewer.frames[("kiosk", "camera")]
    offers_before = bridge.offers
    stream_before = forwarded_streams(await relay.stats(), "r3", "viewer")[0]

    # the kiosk reconnects (same participant id, new connection, new SSRC)
    await first.close()
    second = bridge.peer("r3", "kiosk", {"camera": PatternTrack()})
    await second.join(["camera"])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= before + 15, 10)
    stream_after = forwarded_streams(await relay.stats(), "r3", "viewer")[0]
    # the same outgoing stream (SSRC, m-line) carries on
    assert stream_after["ssrc"] == stream_before["ssrc"]
    assert stream_after["mid"] == stream_before["mid"]
    # the viewer's receiver saw one SSRC with no big hole in its sequence numbers
    receiver = next(r for r in viewer.client.pc.getReceivers() if r.track.kind == "video")
    inbound = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
    assert len(inbound) == 1
    assert inbound[0].packetsLost < 20
    assert bridge.offers >= offers_before


async def test_mlines_reused_when_publishers_change(relay: LocalRelay, bridge: Bridge) -> None:
    viewer = bridge.peer("r4", "viewer")
    await viewer.join([])
    for round_number in range(3):
        name = f"kiosk{round_number}"
        publisher = bridge.peer("r4", name, {"camera": PatternTrack()})
        await publisher.join(["camera"])
        assert await wait_for(lambda name=name: viewer.frames.get((name, "camera"), 0) >= 3, 10)
        await relay.leave("r4", name)
        await publisher.close()
        await asyncio.sleep(0.3)
    # one video m-line, reused each time
    assert len(viewer.client.pc.getTransceivers()) == 1


async def test_publish_later_renegotiates(relay: LocalRelay, bridge: Bridge) -> None:
    kiosk = bridge.peer("r5", "kiosk", {"camera": PatternTrack(), "document": PatternTrack(fps=5)})
    await kiosk.join(["camera"])
    expert = bridge.peer("r5", "expert")
    await expert.join([])
    assert await wait_for(lambda: expert.frames.get(("kiosk", "camera"), 0) >= 3, 10)
    await relay.publish("r5", "kiosk", "document")
    assert await wait_for(lambda: expert.frames.get(("kiosk", "document"), 0) >= 3, 10)
    await relay.unpublish("r5", "kiosk", "document")
    stats = await relay.stats()
    assert "document" not in stats["rooms"]["r5"]["participants"]["kiosk"]["published"]


async def test_active_speaker_from_audio_levels(relay: LocalRelay, bridge: Bridge) -> None:
    quiet = bridge.peer("r6", "quiet", {"audio": ToneTrack(loud=False)})
    loud = bridge.peer("r6", "loud", {"audio": ToneTrack(loud=True)})
    await quiet.join(["audio"])
    await loud.join(["audio"])
    assert await wait_for(lambda: ("r6", "loud") in bridge.speakers, 10), bridge.speakers
    assert ("r6", "quiet") not in bridge.speakers


async def test_control_errors(relay: LocalRelay, bridge: Bridge) -> None:
    with pytest.raises(RelayError) as info:
        await relay.join("r7", "x", ["hologram"])
    assert info.value.code == "bad_source"
    with pytest.raises(RelayError) as info:
        await relay.answer("nowhere", "x", "v=0")
    assert info.value.code == "unknown_room"
    await relay.join("r7", "a", ["camera"])
    with pytest.raises(RelayError) as info:
        await relay.answer("r7", "a", "this is not sdp")
    assert info.value.code == "bad_answer"
    # a rejected answer leaves the offer open for a correct one
    assert (await relay.stats())["rooms"]["r7"]["participants"]["a"]["negotiating"]
    peer = bridge.peer("r7", "b")
    await peer.join([])
    with pytest.raises(RelayError) as info:
        await relay.answer("r7", "b", peer.client.pc.localDescription.sdp)
    assert info.value.code == "no_offer"
    await relay.leave("r7", "a")
    await relay.leave("r7", "a")  # idempotent


async def test_unanswered_participant_times_out(bridge: Bridge) -> None:
    quick = LocalRelay(loopback_config(connect_timeout=1))
    await quick.start()
    quick.set_listener(bridge)
    try:
        await quick.join("r8", "silent", ["camera"])
        assert await wait_for(lambda: ("r8", "silent", "timeout") in bridge.gone, 5)
        assert (await quick.stats())["rooms"]["r8"]["participants"] == {}
    finally:
        await quick.stop()


async def test_participant_that_closes_is_reported_gone(relay: LocalRelay, bridge: Bridge) -> None:
    kiosk = bridge.peer("r9", "kiosk", {"camera": PatternTrack()})
    await kiosk.join(["camera"])
    viewer = bridge.peer("r9", "viewer")
    await viewer.join([])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 2, 10)
    await kiosk.close()  # no leave(): the connection just ends (DTLS close_notify)
    assert await wait_for(lambda: ("r9", "kiosk", "connection_closed") in bridge.gone, 10)
    stats = await relay.stats()
    assert set(stats["rooms"]["r9"]["participants"]) == {"viewer"}
    # the viewer was renegotiated: its m-line for the kiosk's camera is inactive now
    assert await wait_for(lambda: not relay.rooms["r9"].participants["viewer"].negotiating, 5)
    viewer_stats = (await relay.stats())["rooms"]["r9"]["participants"]["viewer"]
    assert viewer_stats["forwarded"] == []


async def test_participant_that_vanishes_times_out(bridge: Bridge) -> None:
    quick = LocalRelay(loopback_config(silence_timeout=1.5))
    await quick.start()
    bridge.relay = quick
    quick.set_listener(bridge)
    try:
        ghost = bridge.peer("r10", "ghost", {"camera": PatternTrack()})
        ghost.relay = quick
        await ghost.join(["camera"])
        assert await wait_for(lambda: quick.rooms["r10"].participants["ghost"].connected, 10)
        # the network goes away: its sockets close without a word to the relay
        connection = ghost.client.pc.getTransceivers()[0].sender.transport.transport._connection
        for protocol in connection._protocols:
            protocol.transport.close()
        assert await wait_for(lambda: ("r10", "ghost", "timeout") in bridge.gone, 8), bridge.gone
    finally:
        await quick.stop()


async def test_h264_publisher_reaches_subscribers_untranscoded(
    relay: LocalRelay, bridge: Bridge
) -> None:
    kiosk = bridge.peer("r11", "kiosk", {"camera": PatternTrack()})
    kiosk.client.video_codecs = ["video/h264"]
    await kiosk.join(["camera"])
    viewer = bridge.peer("r11", "viewer")
    await viewer.join([])
    assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 5, 15)
    published = relay.rooms["r11"].participants["kiosk"].published["camera"]
    assert set(published.codecs.values()) == {"h264"}
    assert published.keyframes >= 1  # IDR found in the H.264 payload
    stream = relay.rooms["r11"].participants["viewer"].forwarded[0]
    assert stream.dropped_codec == 0 and stream.packets > 5
