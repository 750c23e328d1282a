"""First media for a new subscriber: with real aiortc peers whose encoders make a key frame only
at the start and when asked (aiortc: kf_max_dist 3000 frames, 200 s at 15 fps), a subscriber
that joins a publisher already sending decodes video at once — from a key frame the relay asks
for when its transport comes up, or from the publisher's recent key frame replayed out of the
relay's cache (forwarding.PublishedTrack.start_stream) — not at the next natural key frame.
The bounds prove the mechanism, not performance (that is `etapalvelu bench relay --first-media`).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from media_relay import forwarding
from media_relay.control import LocalRelay
from media_relay.forwarding import ForwardedStream, PublishedTrack
from tests.media_relay.conftest import Bridge, PatternTrack, ToneTrack, wait_for

BOUND = 1.5  # seconds; the publisher's natural key-frame interval is 200 s


async def _join_timed(relay: LocalRelay, bridge: Bridge, name: str) -> tuple[float, object]:
    """A subscriber joins; returns when its answer went to the relay, and the peer."""
    peer = bridge.peer("room", name)
    offer = await relay.join("room", name, [])
    sdp = await peer.client.handle_offer(offer)
    answered = time.monotonic()
    await relay.answer("room", name, sdp)
    return answered, peer


def _track(relay: LocalRelay, source: str) -> PublishedTrack:
    return relay.rooms["room"].participants["publisher"].published[source]


async def test_new_subscriber_decodes_long_before_the_next_natural_key_frame(
    relay: LocalRelay, bridge: Bridge
) -> None:
    publisher = bridge.peer("room", "publisher", {"camera": PatternTrack(), "audio": ToneTrack()})
    await publisher.join(["camera", "audio"])
    camera = _track(relay, "camera")
    # the publisher sends its only key frame at the start, with no one to see it; well past
    # the replay window when the subscriber comes
    assert await wait_for(lambda: camera.packets > 0, 10)
    await asyncio.sleep(forwarding.KEYFRAME_REPLAY_AGE + 0.5)

    answered, peer = await _join_timed(relay, bridge, "viewer")
    video = ("publisher", "camera")
    assert await wait_for(lambda: video in peer.first_frame_at, BOUND + 3)
    assert peer.first_frame_at[video] - answered < BOUND
    # it asked the publisher (nothing recent to replay) ...
    assert camera.plis_sent + camera.firs_sent >= 1
    assert camera.keyframes_replayed == 0
    # ... and audio did not wait for video
    assert await wait_for(lambda: ("publisher", "audio") in peer.first_frame_at, BOUND)


async def test_a_recent_key_frame_is_replayed_decodable_without_asking_the_publisher(
    relay: LocalRelay, bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a wide replay window, so the test does not depend on how fast this machine connects
    monkeypatch.setattr(forwarding, "KEYFRAME_REPLAY_AGE", 30.0)
    publisher = bridge.peer("room", "publisher", {"camera": PatternTrack()})
    await publisher.join(["camera"])
    camera = _track(relay, "camera")
    first_answered, first = await _join_timed(relay, bridge, "first")
    video = ("publisher", "camera")
    assert await wait_for(lambda: video in first.first_frame_at, BOUND + 3)
    await asyncio.sleep(0.5)  # a few delta frames after the key frame, in the cache
    requests = camera.plis_sent + camera.firs_sent

    answered, second = await _join_timed(relay, bridge, "second")
    assert await wait_for(lambda: second.frames.get(video, 0) >= 5, BOUND + 3)
    assert second.first_frame_at[video] - answered < BOUND
    # decoded from the replayed key frame and its delta frames: the publisher was not asked
    assert camera.keyframes_replayed == 1
    assert camera.plis_sent + camera.firs_sent == requests
    stream = next(s for s in camera.subscribers if s.subscriber_id == "second")
    assert stream.replayed_packets > 1
    assert first.frames[video] > 0 and first_answered < answered


def test_replayed_packets_continue_the_stream_and_keep_their_timestamps_on_retransmission() -> None:
    """No sockets: the replay's sequence numbers run on without a gap into the live ones, the
    frames before the newest get timestamps just below it, and a NACKed replayed packet is
    resent with the timestamp it was first sent with."""
    from media_relay import packets
    from tests.media_relay.test_packets import make_rtp

    track = PublishedTrack("publisher", "camera", "video")
    track.codecs = {96: "vp8"}
    track.ssrc = 0x1111
    sent: list[bytes] = []
    stream = ForwardedStream("video", 0x2222, lambda data: sent.append(bytes(data)), "viewer")
    stream.payload_types = frozenset({96})
    stream.attach(track)
    stream.negotiated = False  # not yet: packets only fill the cache
    now = 100.0
    key = b"\x10\x00"  # S=1, PID 0; VP8 payload header with the P bit clear: a key frame
    rest = b"\x00\x00"  # the key frame's second packet (S=0)
    delta = b"\x10\x01"
    for index, (payload, ts) in enumerate(
        [(key, 9000), (rest, 9000), (delta, 12000), (delta, 15000)]
    ):
        data = make_rtp(seq=500 + index, ts=ts, ssrc=0x1111, pt=96, payload=payload + b"x" * 20)
        header = packets.parse_rtp_header(data)
        assert header is not None
        track.handle_rtp(data, header, now + index * 0.01)
    stream.negotiated = True
    stream.connected = True
    track.start_stream(stream, now + 0.1)
    assert track.keyframes_replayed == 1 and not stream.waiting_keyframe
    headers = [packets.parse_rtp_header(p) for p in sent]
    seqs = [h.sequence_number for h in headers if h]
    tss = [h.timestamp for h in headers if h]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(4)]
    newest = tss[-1]
    assert tss == [newest - 2, newest - 2, newest - 1, newest]
    # the live stream continues from there, at the real timestamp spacing
    live = make_rtp(seq=504, ts=18000, ssrc=0x1111, pt=96, payload=delta + b"y" * 20)
    header = packets.parse_rtp_header(live)
    assert header is not None
    track.handle_rtp(live, header, now + 0.2)
    last = packets.parse_rtp_header(sent[-1])
    assert last is not None
    assert last.sequence_number == (seqs[-1] + 1) & 0xFFFF
    assert last.timestamp == (newest + 3000) & 0xFFFFFFFF
    # a retransmission of the first replayed packet carries its replayed timestamp
    stream.handle_nack([seqs[0]], now + 0.3)
    again = packets.parse_rtp_header(sent[-1])
    assert again is not None
    assert (again.sequence_number, again.timestamp) == (seqs[0], tss[0])
