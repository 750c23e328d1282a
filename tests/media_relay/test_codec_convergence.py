"""Codec convergence: a publisher is renegotiated onto a video codec every subscriber takes.

Real aiortc peers over UDP on 127.0.0.1. aiortc fixes a sender's codec when it first starts
(RTCRtpSender.send is a no-op afterwards), so the publisher here follows a renegotiated codec
the way a browser does: `follow_send_codec` restarts its RTP loop with the newly negotiated
codec after the answer (fresh encoder, so the first frame is a key frame), its sequence
numbers jumping ahead at the switch. The relay rebases every subscriber's stream at a switch,
so they see no such jump, nor the gap of the old codec's packets it drops after the answer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiortc.codecs import CODECS
from hypothesis import given
from hypothesis import strategies as st

from media_relay.codecs import VIDEO_PREFERENCE, codec_key, converge, preferred_codecs
from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, Peer, wait_for

pytestmark = pytest.mark.timeout(60)

SEQUENCE_JUMP = 1000


class CodecBridge(Bridge):
    """Bridge whose aiortc peers jump their sequence numbers at a codec switch (as some
    publishers do): the relay must hide that from its subscribers too. The switch itself is
    RelayPeerClient's own (aiortc_hooks.follow_send_codec)."""

    def peer(self, room: str, name: str, tracks: dict[str, Any] | None = None) -> Peer:
        made = super().peer(room, name, tracks)
        made.client.codec_switch_jump = SEQUENCE_JUMP
        return made

    @property
    def restarts(self) -> int:
        return sum(peer.client.codec_restarts for peer in self.peers.values())


@pytest_asyncio.fixture
async def codec_bridge(relay: LocalRelay) -> AsyncIterator[CodecBridge]:
    instance = CodecBridge(relay)
    relay.set_listener(instance)
    try:
        yield instance
    finally:
        await instance.close()


def record_video_rtp(peer: Peer) -> list[tuple[int, int, int]]:
    """(ssrc, sequence number, payload type) of every RTP packet the peer's video receivers
    get, as the relay sent them (observed in front of aiortc's own handling)."""
    seen: list[tuple[int, int, int]] = []
    for transceiver in peer.client.pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        receiver: Any = transceiver.receiver
        original = receiver._handle_rtp_packet

        async def observe(packet: Any, arrival_time_ms: int, original: Any = original) -> None:
            seen.append((packet.ssrc, packet.sequence_number, packet.payload_type))
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = observe
    return seen


def payload_type_of(name: str) -> int:
    """The payload type the relay's offers give a codec (aiortc's fixed table, the same on
    every leg): the entry matching preferred_codecs' choice of that codec."""
    chosen = next(c for c in preferred_codecs("video") if codec_key(c) == name)
    return next(
        c.payloadType
        for c in CODECS["video"]
        if c.payloadType is not None
        and c.mimeType.lower() == chosen.mimeType.lower()
        and c.parameters == chosen.parameters
    )


async def join_h264_only(bridge: CodecBridge, room: str, name: str) -> Peer:
    peer = bridge.peer(room, name)
    peer.client.video_codecs = ["video/h264"]
    await peer.join([])
    return peer


async def test_h264_only_subscriber_switches_the_publisher(codec_bridge: CodecBridge) -> None:
    bridge, relay = codec_bridge, codec_bridge.relay
    kiosk = bridge.peer("c1", "kiosk", {"camera": PatternTrack()})
    await kiosk.join(["camera"])
    expert = bridge.peer("c1", "expert")
    await expert.join([])
    expert_rtp = record_video_rtp(expert)
    key = ("kiosk", "camera")
    assert await wait_for(lambda: expert.frames.get(key, 0) >= 5, 10)
    publisher = relay.rooms["c1"].participants["kiosk"]
    track = publisher.published["camera"]
    assert next(iter(track.codecs.values())) == "vp8"  # the usual first choice

    h264 = await join_h264_only(bridge, "c1", "h264")
    h264_rtp = record_video_rtp(h264)
    assert await wait_for(lambda: set(track.codecs.values()) == {"h264"}, 10), track.codecs
    assert await wait_for(lambda: bridge.restarts >= 1, 5)  # the kiosk now encodes H.264
    # both decode frames sent after the switch
    before = {peer.name: peer.frames.get(key, 0) for peer in (expert, h264)}
    assert await wait_for(
        lambda: all(peer.frames.get(key, 0) >= before[peer.name] + 15 for peer in (expert, h264)),
        12,
    ), (before, expert.frames, h264.frames)
    stats = (await relay.stats())["rooms"]["c1"]["participants"]
    assert stats["kiosk"]["published"]["camera"]["codec"] == "h264"
    assert stats["kiosk"]["published"]["camera"]["codec_conflict"] is False
    # the H.264-only subscriber's stream drops nothing for its codec any more
    stream = relay.rooms["c1"].participants["h264"].forwarded[0]
    dropped, packets = stream.dropped_codec, stream.packets
    await asyncio.sleep(1.0)
    assert stream.dropped_codec == dropped and stream.packets > packets
    h264_pt = payload_type_of("h264")
    assert h264_rtp and h264_rtp[-1][2] == h264_pt
    assert expert_rtp[-1][2] == h264_pt  # the VP8 subscriber was switched too, not transcoded

    # (c) the expert's stream went on across the switch: one SSRC, the sequence numbers
    # continuing where VP8 stopped (the kiosk's jumped SEQUENCE_JUMP ahead)
    assert len({ssrc for ssrc, _, _ in expert_rtp}) == 1
    vp8_pt = payload_type_of("vp8")
    switch = next(i for i, item in enumerate(expert_rtp) if item[2] == h264_pt)
    assert switch > 0 and expert_rtp[switch - 1][2] == vp8_pt
    step = (expert_rtp[switch][1] - expert_rtp[switch - 1][1]) & 0xFFFF
    assert 1 <= step <= 3, expert_rtp[switch - 3 : switch + 3]
    assert all(
        ((b[1] - a[1]) & 0xFFFF) < 50 or ((a[1] - b[1]) & 0xFFFF) < 50
        for a, b in itertools.pairwise(expert_rtp)
    )
    receiver = next(r for r in expert.client.pc.getReceivers() if r.track.kind == "video")
    inbound = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
    assert len(inbound) == 1 and 0 <= inbound[0].packetsLost < 20

    # a subscriber that joins after the switch is sent a key frame (PLI on join) and decodes
    late = bridge.peer("c1", "late")
    await late.join([])
    assert await wait_for(lambda: late.frames.get(key, 0) >= 5, 8), late.frames

    # the H.264-only subscriber leaves: the relay keeps H.264 (no widening, no new switch)
    offers = bridge.offers
    await relay.leave("c1", "h264")
    await asyncio.sleep(1.0)
    assert set(track.codecs.values()) == {"h264"}
    assert bridge.restarts == 1
    assert bridge.offers - offers <= 2  # the remaining subscribers' m-lines, not the kiosk


async def test_conflict_is_reported_and_harms_no_one(codec_bridge: CodecBridge) -> None:
    bridge, relay = codec_bridge, codec_bridge.relay
    kiosk = bridge.peer("c2", "kiosk", {"camera": PatternTrack()})
    kiosk.client.video_codecs = ["video/vp8"]  # a publisher that can send only VP8
    await kiosk.join(["camera"])
    expert = bridge.peer("c2", "expert")
    await expert.join([])
    key = ("kiosk", "camera")
    assert await wait_for(lambda: expert.frames.get(key, 0) >= 5, 10)
    offers = bridge.offers

    await join_h264_only(bridge, "c2", "h264")
    participants = relay.rooms["c2"].participants

    def conflict() -> bool:
        return participants["kiosk"].codec_conflicts.get("camera", False)

    assert await wait_for(conflict, 5)
    stats = (await relay.stats())["rooms"]["c2"]["participants"]
    assert stats["kiosk"]["published"]["camera"]["codec_conflict"] is True
    assert stats["kiosk"]["published"]["camera"]["codec"] == "vp8"
    # the publisher was left as it was: not renegotiated, still VP8, the expert still decodes
    before = expert.frames.get(key, 0)
    assert await wait_for(lambda: expert.frames.get(key, 0) >= before + 10, 8)
    assert set(participants["kiosk"].published["camera"].codecs.values()) == {"vp8"}
    assert bridge.restarts == 0
    assert bridge.offers - offers <= 2  # the H.264 subscriber's own offer(s) only
    # the H.264-only subscriber gets nothing of that stream: counted, as before
    stream = participants["h264"].forwarded[0]
    assert await wait_for(lambda: stream.dropped_codec > 0, 5)

    # it leaves: the conflict is gone
    await relay.leave("c2", "h264")
    assert await wait_for(lambda: not conflict(), 3)


# -- the decision itself, over arbitrary inputs

names = st.sampled_from(["vp8", "h264", "vp9", "av1", "", "VP8", "x" * 40])


@given(
    capable=st.frozensets(names),
    answered=st.frozensets(names),
    accepted=st.lists(st.frozensets(names), max_size=6),
)
def test_converge_invariants(
    capable: frozenset[str], answered: frozenset[str], accepted: list[frozenset[str]]
) -> None:
    decision = converge(capable, answered, accepted)
    # only the relay's codecs, in its order, that the publisher can send and all subscribers take
    assert list(decision.allowed) == [
        name
        for name in VIDEO_PREFERENCE
        if name in capable and all(name in names for names in accepted)
    ]
    assert decision.conflict == (bool(accepted) and not decision.allowed)
    if decision.narrow_to is not None:
        assert decision.narrow_to == decision.allowed and decision.allowed
        assert not set(answered) <= set(decision.allowed)
    elif accepted and not decision.conflict:
        assert set(answered) <= set(decision.allowed)


def test_converge_cases() -> None:
    both = {"vp8", "h264"}
    assert converge(both, both, []).narrow_to is None
    assert converge(both, both, [both, {"h264"}]).narrow_to == ("h264",)
    assert converge(both, {"h264"}, [both]).narrow_to is None  # never widens
    assert converge(both, {"h264"}, [{"vp8"}]).narrow_to == ("vp8",)
    assert converge({"vp8"}, {"vp8"}, [both, {"h264"}]).conflict
    assert converge(both, both, [set()]).conflict  # a subscriber that takes no video codec


def test_preferred_codecs_narrowed() -> None:
    names_of = [codec_key(c) for c in preferred_codecs("video", rtx=True, only=("h264",))]
    assert sorted(names_of) == ["h264", "rtx"]
    assert [codec_key(c) for c in preferred_codecs("video", only=())] == []
    # audio is never narrowed
    assert [codec_key(c) for c in preferred_codecs("audio", only=("h264",))] == ["opus"]
