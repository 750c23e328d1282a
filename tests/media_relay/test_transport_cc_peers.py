"""Transport-wide congestion control and the REMB policy with real aiortc peers over UDP.

aiortc neither numbers its packets with the transport-wide-cc extension nor reads Transport
Feedback, and its answers drop the extension: an aiortc publisher must keep working as before
(no feedback sent to it). To see the relay's feedback on the wire, one test makes an aiortc
publisher behave as Chromium does: its answer keeps the extension and a wrapper around its
DTLS transport's send path numbers every RTP packet it sends (media, retransmissions) before
SRTP; a lossy proxy between it and the relay drops 5 % of them (the extension is in the
clear header, so the proxy knows which transport-wide numbers it dropped), and a tap on its
receive path keeps the Transport Feedback the relay sends, after SRTCP.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import struct
import time
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.sdp import SessionDescription
from prometheus_client import REGISTRY

from media_relay import codecs, forwarding, packets
from media_relay import transport_cc as tcc
from media_relay.aiortc_hooks import dtls_transport
from media_relay.bandwidth import SlowSubscriberPolicy
from media_relay.control import LocalRelay
from tests.media_relay.conftest import Bridge, PatternTrack, Peer, ToneTrack, wait_for
from tests.media_relay.lossy_link import LossyLink, rewrite_candidates

pytestmark = pytest.mark.timeout(90)


def with_extension(packet: bytes, ext_id: int, value: bytes) -> bytes:
    """`packet` with one more one-byte header extension element (RFC 8285 §4.2)."""
    header = packets.parse_rtp_header(packet)
    assert header is not None
    elements = b""
    if header.extension_end:
        assert header.extension_profile == 0xBEDE
        pos = header.extension_start
        while pos < header.extension_end:
            byte = packet[pos]
            if byte == 0:
                pos += 1
                continue
            size = (byte & 0x0F) + 1
            elements += packet[pos : pos + 1 + size]
            pos += 1 + size
    elements += bytes([(ext_id << 4) | (len(value) - 1)]) + value
    elements += b"\0" * (-len(elements) % 4)
    fixed = bytes([packet[0] | 0x10]) + packet[1 : 12 + 4 * (packet[0] & 0x0F)]
    extension = struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
    return fixed + extension + packet[header.payload_start :]


def keep_transport_cc(answer: str) -> str:
    """An answer that kept the relay's offer of transport-wide-cc on the sending m-lines."""
    description = SessionDescription.parse(answer)
    for media in description.media:
        if media.direction in ("sendonly", "sendrecv"):
            media.rtp.headerExtensions.append(
                RTCRtpHeaderExtensionParameters(id=codecs.TRANSPORT_CC_ID, uri=tcc.TRANSPORT_CC_URI)
            )
    return str(description)


class ChromiumLike:
    """Numbers an aiortc publisher's outgoing RTP (transport-wide-cc) and keeps the Transport
    Feedback that reaches it."""

    def __init__(self, peer: Peer) -> None:
        dtls = dtls_transport(peer.client.pc)
        assert dtls is not None
        self.next = 65500  # wraps during the test
        self.sent: dict[int, float] = {}  # transport-wide number -> when it was sent
        self.feedback: list[tcc.TransportFeedback] = []
        self.feedback_at: list[float] = []
        send, handle = dtls._send_rtp, dtls._handle_rtcp_data

        async def send_rtp(data: bytes) -> None:
            if len(data) > 12 and not 192 <= data[1] <= 223:
                number = self.next & 0xFFFF
                self.next += 1
                data = with_extension(data, codecs.TRANSPORT_CC_ID, struct.pack("!H", number))
                self.sent[number] = time.monotonic()
            await send(data)

        async def handle_rtcp(data: bytes) -> None:
            for item in packets.iter_rtcp(data):
                parsed = tcc.parse_transport_feedback(data, item)
                if parsed is not None:
                    self.feedback.append(parsed)
                    self.feedback_at.append(time.monotonic())
            await handle(data)

        dtls._send_rtp = send_rtp  # type: ignore[method-assign]
        dtls._handle_rtcp_data = handle_rtcp  # type: ignore[method-assign]


def transport_number(data: bytes) -> int | None:
    header = packets.parse_rtp_header(data)
    if header is None:
        return None
    found = packets.find_extension(data, header, codecs.TRANSPORT_CC_ID)
    if found is None or found[1] < 2:
        return None
    return int(struct.unpack_from("!H", data, found[0])[0])


async def test_relay_sends_transport_feedback_that_reports_what_arrived_and_what_was_lost(
    fast_path: str, relay: LocalRelay, bridge: Bridge
) -> None:
    """On the C receive path and on its Python twin."""
    link = LossyLink(0.0, towards="relay")
    await link.start()
    try:
        publisher = bridge.peer(
            "twcc", "kiosk", {"camera": PatternTrack(fps=20, width=320, height=240)}
        )
        offer: dict[str, Any] = await relay.join("twcc", "kiosk", ["camera"])
        assert f"a=extmap:{codecs.TRANSPORT_CC_ID} {tcc.TRANSPORT_CC_URI}" in offer["sdp"]
        assert "transport-cc" in offer["sdp"]
        offer_sdp, relay_addr = rewrite_candidates(offer["sdp"], link.port(link.client_side))
        link.relay_addr = relay_addr
        answer = await publisher.client.handle_offer({**offer, "sdp": offer_sdp})
        assert tcc.TRANSPORT_CC_URI not in answer  # aiortc drops it on its own
        chromium_like = ChromiumLike(publisher)
        answer_sdp, client_addr = rewrite_candidates(answer, link.port(link.relay_side))
        link.client_addr = client_addr
        await relay.answer("twcc", "kiosk", keep_transport_cc(answer_sdp))

        # the proxy drops one numbered packet in ten and remembers which
        dropped: set[int] = set()
        passed: set[int] = set()

        def drop(data: bytes) -> bool:
            number = transport_number(data)
            if number is None:
                return False
            if number % 10 == 3:
                dropped.add(number)
                return True
            passed.add(number)
            return False

        link.drop_filter = drop
        viewer = bridge.peer("twcc", "viewer")
        await viewer.join([])
        assert await wait_for(lambda: viewer.frames.get(("kiosk", "camera"), 0) >= 10, 20)

        kiosk = relay.rooms["twcc"].participants["kiosk"]
        assert kiosk.transport_cc_id == codecs.TRANSPORT_CC_ID
        assert kiosk.link is not None
        assert type(kiosk.link.receiver).__module__ == (
            "media_relay._fastpath" if fast_path == "C" else "media_relay.fastpath_py"
        )
        counts = []
        for _ in range(8):
            await asyncio.sleep(0.5)
            stats = await relay.stats()
            camera = stats["rooms"]["twcc"]["participants"]["kiosk"]["published"]["camera"]
            assert camera["transport_cc"] is True
            counts.append(camera["transport_feedback_sent"])
        assert counts == sorted(counts) and counts[-1] > counts[0], counts  # monotonic, moving
        link.drop_filter = None
        await asyncio.sleep(0.5)  # everything sent so far reported

        feedback = chromium_like.feedback
        assert len(feedback) >= 20
        # with the first packet 50 ms after the previous feedback (20 packets a second here:
        # every 50–100 ms)
        span = chromium_like.feedback_at[-1] - chromium_like.feedback_at[0]
        assert len(feedback) / span >= 8, (len(feedback), span)
        gaps = [b - a for a, b in itertools.pairwise(chromium_like.feedback_at)]
        assert statistics.median(gaps) >= 0.04, gaps  # (plus a flush with each report)
        camera_ssrc = publisher.client.pc.getSenders()[0]._ssrc
        assert {f.media_ssrc for f in feedback} == {camera_ssrc}
        assert {f.sender_ssrc for f in feedback} == {kiosk.published["camera"].feedback_ssrc}
        # no feedback packet lost (nothing dropped this way): consecutive counts
        numbers = [f.feedback_count for f in feedback]
        assert all((b - a) & 0xFF == 1 for a, b in itertools.pairwise(numbers))

        received: dict[int, int] = {}
        lost: set[int] = set()
        for packet in feedback:
            for number, at in packet.arrivals_us():
                if at is None:
                    lost.add(number)
                else:
                    assert number not in received  # reported once
                    received[number] = at
        assert len(dropped) >= 5, dropped
        assert 65535 in received or 65535 in lost  # the numbers wrapped
        # the relay's view agrees with the proxy's, packet by packet
        assert dropped <= lost, dropped - lost
        assert not (passed & lost), passed & lost
        assert passed <= set(received), len(passed - set(received))
        # arrivals follow the sending times (loopback: within a few ms, plus loop jitter)
        offsets = sorted(received[n] / 1e6 - chromium_like.sent[n] for n in passed)
        spread = offsets[int(len(offsets) * 0.95)] - offsets[int(len(offsets) * 0.05)]
        assert spread < 0.05, spread
        stats = (await relay.stats())["rooms"]["twcc"]["participants"]["kiosk"]["transport_cc"]
        assert stats["extension_id"] == codecs.TRANSPORT_CC_ID
        assert stats["packets"] >= len(passed) and stats["overflow"] == 0
        metric = REGISTRY.get_sample_value("etapalvelu_relay_transport_feedback_packets_total")
        assert metric is not None and metric >= len(feedback)
    finally:
        link.close()


async def test_aiortc_publisher_without_transport_cc_keeps_working(
    relay: LocalRelay, bridge: Bridge
) -> None:
    publisher = bridge.peer("plain", "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await publisher.join(["camera", "audio"])
    viewer = bridge.peer("plain", "viewer")
    await viewer.join([])
    assert await wait_for(
        lambda: (
            viewer.frames.get(("kiosk", "camera"), 0) >= 10
            and viewer.frames.get(("kiosk", "audio"), 0) >= 20
        ),
        20,
    )
    room = relay.rooms["plain"]
    kiosk = room.participants["kiosk"]
    assert kiosk.transport_cc_id == 0 and kiosk.transport_cc is None
    assert kiosk.link is not None and kiosk.link.receiver.transport_cc_id == 0
    stats = (await relay.stats())["rooms"]["plain"]["participants"]
    for track in stats["kiosk"]["published"].values():
        assert track["transport_cc"] is False and track["transport_feedback_sent"] == 0
    assert stats["kiosk"]["transport_cc"] is None
    # the relay offers transport-cc only where it receives: never to a subscriber
    description = SessionDescription.parse(room.participants["viewer"].pc.localDescription.sdp)
    for media in description.media:
        if media.direction == "sendonly":
            assert codecs.transport_cc_id(media) == 0
            assert all(fb.type != "transport-cc" for c in media.rtp.codecs for fb in c.rtcpFeedback)


async def test_publisher_follows_the_slow_subscriber_then_the_others(
    relay: LocalRelay, bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two subscribers report (REMB) 150 kbit/s and 1.2 Mbit/s: the aiortc publisher's
    encoder is first held to the slow one, after the (shortened) hold limit follows the fast
    one while the slow one keeps receiving, and follows it again once it recovers."""
    monkeypatch.setattr(forwarding, "SLOW_SUBSCRIBER_POLICY", SlowSubscriberPolicy(hold_limit=3.0))
    publisher = bridge.peer("remb", "kiosk", {"camera": PatternTrack(fps=15)})
    await publisher.join(["camera"])
    viewers = {name: bridge.peer("remb", name) for name in ("slow", "fast")}
    for viewer in viewers.values():
        await viewer.join([])
    assert await wait_for(
        lambda: all(v.frames.get(("kiosk", "camera"), 0) >= 5 for v in viewers.values()), 20
    )
    room = relay.rooms["remb"]
    wanted = {"slow": 150_000, "fast": 1_200_000}

    async def report() -> None:
        # what the subscribers' receivers would estimate; their own estimators are silenced
        for viewer in viewers.values():
            for receiver in viewer.client.pc.getReceivers():
                setattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator", None)  # noqa: B010
        while True:
            for name, viewer in viewers.items():
                stream = next(s for s in room.participants[name].forwarded if s.track)
                dtls = dtls_transport(viewer.client.pc)
                assert dtls is not None
                await dtls._send_rtp(packets.build_remb(1, wanted[name], [stream.ssrc]))
            await asyncio.sleep(0.2)

    sender = publisher.client.pc.getSenders()[0]

    def encoder_target() -> int | None:
        encoder = getattr(sender, "_RTCRtpSender__encoder", None)
        return None if encoder is None else int(encoder.target_bitrate)

    async def camera() -> dict[str, Any]:
        stats = await relay.stats()
        return dict(stats["rooms"]["remb"]["participants"]["kiosk"]["published"]["camera"])

    reporter = asyncio.ensure_future(report())
    try:
        assert await wait_for(lambda: encoder_target() == 250_000, 5)  # aiortc's minimum
        held = await camera()
        assert (held["held_down_by"], held["remb_upstream"]) == ("slow", 150_000), held
        assert held["ignored_slow_subscriber"] == 0
        started = time.monotonic()
        frames_slow = viewers["slow"].frames[("kiosk", "camera")]
        assert await wait_for(lambda: encoder_target() == 1_200_000, 8)
        assert time.monotonic() - started >= 1.5  # not before the limit (3 s, from the start)
        released = await camera()
        assert released["held_down_by"] == "fast" and released["remb_upstream"] == 1_200_000
        assert released["ignored_subscribers"] == ["slow"]
        assert released["ignored_slow_subscriber"] == 1
        assert REGISTRY.get_sample_value("etapalvelu_relay_ignored_slow_subscribers_total") == 1
        # the slow subscriber still gets the stream
        assert await wait_for(
            lambda: viewers["slow"].frames[("kiosk", "camera")] >= frames_slow + 10, 5
        )
        wanted["slow"] = 900_000  # 75 % of the other: recovered
        assert await wait_for(lambda: encoder_target() == 900_000, 5)
        recovered = await camera()
        assert recovered["held_down_by"] == "slow" and recovered["ignored_subscribers"] == []
        assert recovered["ignored_slow_subscriber"] == 1
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
