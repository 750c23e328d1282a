"""FIR (RFC 5104 §4.3.1) upstream where negotiated: the relay offers `ccm fir` for video and
asks a publisher whose answer kept it with FIR (command sequence number counting up per media
SSRC), any other with PLI; same rate limit. The FIR builder and parser under truncation,
garbage and hypothesis.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from media_relay import packets
from media_relay.aiortc_hooks import dtls_transport
from media_relay.codecs import fir_payload_types, with_fir_feedback
from media_relay.control import LocalRelay
from media_relay.forwarding import KEYFRAME_REQUEST_INTERVAL, PublishedTrack
from tests.media_relay.conftest import Bridge, PatternTrack, Peer, wait_for

# ----------------------------------------------------------------------------- bytes


def test_fir_matches_aiortc_and_parses_back() -> None:
    data = packets.build_fir(0x01020304, 0xA0B0C0D0, 0x1FF)
    parsed = RtcpPacket.parse(data)
    assert len(parsed) == 1 and isinstance(parsed[0], RtcpPsfbPacket)
    assert parsed[0].fmt == packets.PSFB_FIR
    assert parsed[0].ssrc == 0x01020304
    assert parsed[0].media_ssrc == 0  # RFC 5104 §4.3.1.2: the FCI names the source
    assert parsed[0].fci == bytes.fromhex("a0b0c0d0ff000000")
    item = next(packets.iter_rtcp(data))
    assert packets.parse_fir(data, item) == [(0xA0B0C0D0, 0xFF)]  # sequence is 8 bits
    assert packets.parse_fir_ssrcs(data, item) == [0xA0B0C0D0]


def test_fir_with_several_entries_and_every_truncation() -> None:
    fci = bytes.fromhex("00000001070000000000000208000000")
    data = bytes([0x80 | packets.PSFB_FIR, packets.RTCP_PSFB, 0, 6]) + bytes(8) + fci
    item = next(packets.iter_rtcp(data))
    assert packets.parse_fir(data, item) == [(1, 7), (2, 8)]
    for size in range(len(data)):
        truncated = data[:size]
        for item in packets.iter_rtcp(truncated):
            entries = packets.parse_fir(truncated, item)
            assert entries == [(1, 7), (2, 8)][: len(entries)]
    # an item whose length word claims less than one entry: no entries
    short = bytes([0x84, packets.RTCP_PSFB, 0, 3]) + bytes(12)
    assert packets.parse_fir(short, next(packets.iter_rtcp(short))) == []


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fir_parser_never_raises_on_garbage(data: bytes) -> None:
    for item in packets.iter_rtcp(data):
        entries = packets.parse_fir(data, item)
        assert [ssrc for ssrc, _ in entries] == packets.parse_fir_ssrcs(data, item)
        assert all(0 <= sequence <= 255 for _, sequence in entries)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 10_000))
def test_fir_roundtrip(sender: int, media: int, sequence: int) -> None:
    data = packets.build_fir(sender, media, sequence)
    items = list(packets.iter_rtcp(data))
    assert len(items) == 1 and items[0].subtype == packets.PSFB_FIR
    assert packets.parse_fir(data, items[0]) == [(media, sequence & 0xFF)]


# ----------------------------------------------------------------------------- negotiation


def test_offer_munging_adds_fir_to_video_codecs_only() -> None:
    from aiortc.sdp import SessionDescription

    offer = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
        "a=rtpmap:96 opus/48000/2\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
        "a=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack pli\r\n"
        "a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n"
    )
    munged = with_fir_feedback(offer)
    assert munged.count("ccm fir") == 1 and "a=rtcp-fb:97 ccm fir" in munged
    assert with_fir_feedback(munged).count("ccm fir") == 1  # idempotent
    video = SessionDescription.parse(munged).media[1]
    assert fir_payload_types(video.rtp.codecs) == {97}
    assert fir_payload_types(SessionDescription.parse(offer).media[1].rtp.codecs) == set()


def test_published_track_asks_with_fir_counting_up_per_ssrc() -> None:
    sent: list[bytes] = []
    track = PublishedTrack("kiosk", "camera", "video")
    track.ssrc, track.feedback_ssrc, track.send_upstream = 0x1111, 0x2222, sent.append
    track.uses_fir = True

    def requests() -> list[tuple[int, list[tuple[int, int]]]]:
        out = []
        for data in sent:
            item = next(packets.iter_rtcp(data))
            assert item.packet_type == packets.RTCP_PSFB
            out.append((item.subtype, packets.parse_fir(data, item)))
        return out

    track.request_keyframe(100.0)
    track.request_keyframe(100.1)  # inside the interval: deferred, not sent
    assert requests() == [(packets.PSFB_FIR, [(0x1111, 0)])]
    track.tick(100.0 + KEYFRAME_REQUEST_INTERVAL, 1.0)  # (no event loop: the tick sends it)
    track.request_keyframe(101.0)
    assert [entries for _, entries in requests()] == [
        [(0x1111, 0)],
        [(0x1111, 1)],
        [(0x1111, 2)],
    ]
    track.ssrc = 0x3333  # the publisher reconnected: a new media SSRC starts again
    track.request_keyframe(102.0)
    assert requests()[-1] == (packets.PSFB_FIR, [(0x3333, 0)])
    assert (track.firs_sent, track.plis_sent) == (4, 0)
    track.uses_fir = False  # renegotiated without FIR: PLI
    track.request_keyframe(103.0)
    item = next(packets.iter_rtcp(sent[-1]))
    assert item.subtype == packets.PSFB_PLI
    assert packets.feedback_media_ssrc(sent[-1], item) == 0x3333
    assert (track.firs_sent, track.plis_sent) == (4, 1)


# ----------------------------------------------------------------------------- real peers


def keep_fir(answer: str) -> str:
    """The answer of a publisher that supports FIR (as Chromium's): `ccm fir` kept."""
    return re.sub(r"(a=rtcp-fb:(\d+) nack pli\r\n)", r"\1a=rtcp-fb:\2 ccm fir\r\n", answer)


class FeedbackCapture:
    """What a publisher hears from the relay: (PSFB FMT, media SSRC, FIR entries) in order.

    Wraps the peer's handle_offer: the tap goes on its DTLS transport as soon as it exists,
    before the connection (and the first key-frame request) comes up."""

    def __init__(self, peer: Peer, fir: bool) -> None:
        self.feedback: list[tuple[int, int | None, list[tuple[int, int]]]] = []
        self.offers: list[str] = []
        handle_offer = peer.client.handle_offer

        async def handle(offer: dict[str, Any]) -> str:
            self.offers.append(offer["sdp"])
            answer = await handle_offer(offer)
            self._tap(peer)
            return keep_fir(answer) if fir else answer

        peer.client.handle_offer = handle  # type: ignore[method-assign]

    def _tap(self, peer: Peer) -> None:
        dtls = dtls_transport(peer.client.pc)
        assert dtls is not None
        if getattr(dtls, "_fir_test_tap", False):
            return
        original = dtls._handle_rtcp_data

        async def handle(data: bytes) -> None:
            for item in packets.iter_rtcp(data):
                if item.packet_type == packets.RTCP_PSFB and item.subtype in (
                    packets.PSFB_PLI,
                    packets.PSFB_FIR,
                ):
                    self.feedback.append(
                        (
                            item.subtype,
                            packets.feedback_media_ssrc(data, item),
                            packets.parse_fir(data, item),
                        )
                    )
            await original(data)

        dtls._handle_rtcp_data = handle  # type: ignore[method-assign]
        dtls._fir_test_tap = True  # type: ignore[attr-defined]

    def of(self, subtype: int) -> list[tuple[int, int | None, list[tuple[int, int]]]]:
        return [entry for entry in self.feedback if entry[0] == subtype]


@pytest.mark.timeout(60)
async def test_fir_to_a_publisher_that_kept_it_pli_to_another(
    relay: LocalRelay, bridge: Bridge
) -> None:
    plain = bridge.peer("fir", "plain", {"camera": PatternTrack()})
    plain_capture = FeedbackCapture(plain, fir=False)
    await plain.join(["camera"])
    firpub = bridge.peer("fir", "firpub", {"camera": PatternTrack()})
    fir_capture = FeedbackCapture(firpub, fir=True)
    await firpub.join(["camera"])
    # the relay offers FIR for video, to every publisher
    for sdp in fir_capture.offers + plain_capture.offers:
        assert re.search(r"a=rtcp-fb:97 ccm fir", sdp), sdp
    fir_track = relay.rooms["fir"].participants["firpub"].published["camera"]
    plain_track = relay.rooms["fir"].participants["plain"].published["camera"]
    assert fir_track.uses_fir and not plain_track.uses_fir

    # subscribers join one after the other: each asks both publishers for a key frame
    for index in range(2):
        viewer = bridge.peer("fir", f"viewer{index}")
        await viewer.join([])
        assert await wait_for(lambda v=viewer: v.frames.get(("plain", "camera"), 0) >= 1, 10)
        await asyncio.sleep(KEYFRAME_REQUEST_INTERVAL + 0.2)
    fir_ssrc = firpub.client.pc.getSenders()[0]._ssrc
    plain_ssrc = plain.client.pc.getSenders()[0]._ssrc
    assert await wait_for(lambda: len(fir_capture.of(packets.PSFB_FIR)) >= 2, 5)

    firs = fir_capture.of(packets.PSFB_FIR)
    assert all(entries and entries[0][0] == fir_ssrc for _, _, entries in firs), firs
    # one more per request for this media SSRC (RFC 5104 §4.3.1.2); the very first request
    # may come before the publisher's SRTP is up (as a PLI would), so not necessarily 0
    sequences = [entries[0][1] for _, _, entries in firs]
    assert sequences == list(range(sequences[0], sequences[0] + len(firs))), sequences
    assert all(media == 0 for _, media, _ in firs)
    assert [f for f in fir_capture.of(packets.PSFB_PLI) if f[1] == fir_ssrc] == []
    assert plain_capture.of(packets.PSFB_FIR) == []
    assert len([f for f in plain_capture.of(packets.PSFB_PLI) if f[1] == plain_ssrc]) >= 2

    stats = (await relay.stats())["rooms"]["fir"]["participants"]
    assert stats["firpub"]["published"]["camera"]["firs_sent"] >= len(firs)
    assert stats["firpub"]["published"]["camera"]["plis_sent"] == 0
    assert stats["plain"]["published"]["camera"]["firs_sent"] == 0
    assert stats["plain"]["published"]["camera"]["plis_sent"] >= 2
