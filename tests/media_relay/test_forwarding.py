"""The forwarding hot path without sockets: rewriting, continuity, key frames, feedback."""

from __future__ import annotations

from aiortc.rtp import RtcpPacket, RtpPacket
from hypothesis import example, given, settings
from hypothesis import strategies as st

from media_relay import packets
from media_relay.forwarding import KEYFRAME_REQUEST_INTERVAL, ForwardedStream, PublishedTrack
from media_relay.packet_cache import PacketCache
from media_relay.speaker import ActiveSpeakerDetector
from tests.media_relay.test_packets import make_rtp

KEY = b"\x10\x00\x9d\x01\x2a"  # VP8: start of a key frame
DELTA = b"\x10\x01\x00"
MORE = b"\x00\x01\x00"


def video_track() -> tuple[PublishedTrack, list[bytes]]:
    upstream: list[bytes] = []
    track = PublishedTrack("kiosk", "camera", "video")
    track.codecs = {97: "vp8"}
    track.mid_extension_id = 1
    track.ssrc = 0x1111
    track.send_upstream = upstream.append
    return track, upstream


def subscriber(track: PublishedTrack, mid: bytes = b"3") -> tuple[ForwardedStream, list[bytes]]:
    sent: list[bytes] = []
    stream = ForwardedStream(track.kind, 0xABCD, lambda data: sent.append(bytes(data)))
    stream.mid = mid
    stream.payload_types = frozenset({97})
    stream.negotiated = stream.connected = True
    stream.attach(track)
    return stream, sent


def feed(track: PublishedTrack, data: bytes, now: float = 0.0) -> None:
    header = packets.parse_rtp_header(data)
    assert header is not None
    track.handle_rtp(data, header, now)


def seqs(sent: list[bytes]) -> list[int]:
    return [RtpPacket.parse(p).sequence_number for p in sent]


def test_rewrites_ssrc_seq_ts_and_mid() -> None:
    track, _ = video_track()
    _stream, sent = subscriber(track, mid=b"7")
    ext = bytes([0x10, ord("0")])
    for i, payload in enumerate((KEY, MORE, DELTA)):
        feed(
            track,
            make_rtp(seq=500 + i, ts=9000 + i * 3000, ssrc=0x1111, payload=payload, extensions=ext),
        )
    assert len(sent) == 3
    out = [RtpPacket.parse(p) for p in sent]
    assert {p.ssrc for p in out} == {0xABCD}
    assert seqs(sent) == [(out[0].sequence_number + i) & 0xFFFF for i in range(3)]
    assert out[1].timestamp - out[0].timestamp == 3000
    # MID rewritten to the subscriber's m-line, payload untouched
    for data in sent:
        header = packets.parse_rtp_header(data)
        assert header is not None
        offset, length = packets.find_extension(data, header, 1)  # type: ignore[misc]
        assert data[offset : offset + length] == b"7"
    assert out[0].payload == KEY


def test_mid_of_other_length_is_hidden() -> None:
    track, _ = video_track()
    _stream, sent = subscriber(track, mid=b"12")
    feed(track, make_rtp(payload=KEY, extensions=bytes([0x10, ord("0")])))
    header = packets.parse_rtp_header(sent[0])
    assert header is not None
    assert packets.find_extension(sent[0], header, 1) is None
    # the cached original still carries the publisher's MID
    cached = track.cache.get(1000, 0.0)
    assert cached is not None and b"0" in cached


def test_waits_for_keyframe_then_continues_without_gap() -> None:
    track, _ = video_track()
    stream, sent = subscriber(track)
    feed(track, make_rtp(seq=10, payload=DELTA))
    feed(track, make_rtp(seq=11, payload=MORE))
    assert sent == [] and stream.dropped_waiting == 2
    feed(track, make_rtp(seq=12, payload=KEY))
    feed(track, make_rtp(seq=13, payload=MORE))
    assert len(sent) == 2
    first, second = seqs(sent)
    assert second == (first + 1) & 0xFFFF  # nothing for the subscriber to NACK


def test_publisher_reconnect_is_continuous() -> None:
    track, _ = video_track()
    _stream, sent = subscriber(track)
    for i in range(3):
        feed(
            track,
            make_rtp(seq=100 + i, ts=1000 + 3000 * i, ssrc=0x1111, payload=KEY if i == 0 else MORE),
            now=1.0,
        )
    last = RtpPacket.parse(sent[-1])
    # new SSRC, unrelated sequence numbers and timestamps, 0.5 s later
    feed(track, make_rtp(seq=40000, ts=777, ssrc=0x2222, payload=DELTA), now=1.5)
    assert len(sent) == 3  # waits for a key frame from the new source
    feed(track, make_rtp(seq=40001, ts=3777, ssrc=0x2222, payload=KEY), now=1.5)
    resumed = RtpPacket.parse(sent[-1])
    assert resumed.ssrc == last.ssrc
    assert resumed.sequence_number == (last.sequence_number + 1) & 0xFFFF
    gap = (resumed.timestamp - last.timestamp) & 0xFFFFFFFF
    assert 0.45 * 90000 < gap < 0.6 * 90000


def test_audio_needs_no_keyframe_and_levels_counted() -> None:
    track = PublishedTrack("kiosk", "audio", "audio")
    track.codecs = {96: "opus"}
    track.audio_level_extension_id = 2
    sent: list[bytes] = []
    stream = ForwardedStream("audio", 0x55, lambda data: sent.append(bytes(data)))
    stream.payload_types = frozenset({96})
    stream.negotiated = stream.connected = True
    stream.attach(track)
    for i in range(10):
        level = 20 if i % 2 else 90
        data = make_rtp(seq=i, pt=96, payload=b"opus", extensions=bytes([0x20, level]))
        feed(track, data)
    assert len(sent) == 10
    assert (track.level_samples, track.loud_samples) == (10, 5)


def test_unnegotiated_payload_type_dropped() -> None:
    track, _ = video_track()
    stream, sent = subscriber(track)
    stream.payload_types = frozenset({101})
    feed(track, make_rtp(payload=KEY))
    assert sent == [] and stream.dropped_codec == 1


def test_nack_served_from_cache_or_forwarded_upstream() -> None:
    track, upstream = video_track()
    stream, sent = subscriber(track)
    for i in range(5):
        feed(track, make_rtp(seq=200 + i, payload=KEY if i == 0 else MORE))
    out = seqs(sent)
    sent.clear()
    track.cache = PacketCache(1024, 2.0)  # forget everything but two packets
    for i in (1, 3):
        feed_cache = make_rtp(seq=200 + i, payload=MORE)
        track.cache.store(200 + i, feed_cache, 0.0)
    stream.handle_nack([out[1], out[2], out[3]], now=0.1)
    assert seqs(sent) == [out[1], out[3]]
    assert stream.retransmitted == 2
    assert stream.last_seq == out[4]  # a resend does not move the stream
    nack = RtcpPacket.parse(upstream[-1])[0]
    assert nack.media_ssrc == 0x1111 and nack.lost == [202]


def test_keyframe_requests_rate_limited() -> None:
    track, upstream = video_track()
    track.request_keyframe(now=10.0)
    track.request_keyframe(now=10.05)
    track.request_keyframe(now=10.1)
    assert len(upstream) == 1
    pli = RtcpPacket.parse(upstream[0])[0]
    assert (pli.fmt, pli.media_ssrc) == (packets.PSFB_PLI, 0x1111)
    track.tick(10.0 + KEYFRAME_REQUEST_INTERVAL + 0.01, 0.25)  # the deferred one goes out
    assert len(upstream) == 2
    track.tick(11.0, 0.25)
    assert len(upstream) == 2
    assert track.plis_sent == 2


def test_remb_is_minimum_of_subscribers_and_expires() -> None:
    track, _ = video_track()
    a, _ = subscriber(track)
    b, _ = subscriber(track)
    a.handle_remb(2_000_000, now=1.0)
    b.handle_remb(300_000, now=1.0)
    assert track.estimated_bitrate(now=2.0) == 300_000
    b.detach()
    assert track.estimated_bitrate(now=2.0) == 2_000_000
    assert track.estimated_bitrate(now=100.0) is None


def test_sender_report_translated_to_subscriber_clock() -> None:
    track, _ = video_track()
    stream, _ = subscriber(track)
    feed(track, make_rtp(seq=1, ts=5000, ssrc=0x1111, payload=KEY))
    assert stream.sender_report(0) is None  # nothing from the publisher yet
    track.handle_sender_report(packets.SenderReport(0x1111, 0xAAAA0000BBBB0000, 5000, 1, 10))
    report = stream.sender_report(0)
    assert report is not None
    parsed = RtcpPacket.parse(report)[0]
    assert parsed.ssrc == 0xABCD
    assert parsed.sender_info.ntp_timestamp == 0xAAAA0000BBBB0000
    assert parsed.sender_info.rtp_timestamp == (5000 + stream.ts_offset) & 0xFFFFFFFF
    assert parsed.sender_info.packet_count == 1


def test_detached_stream_stops_and_track_close_frees() -> None:
    track, _ = video_track()
    stream, sent = subscriber(track)
    track.close()
    assert stream.track is None and track.subscribers == []
    feed(track, make_rtp(payload=KEY))
    assert sent == []


def test_active_speaker() -> None:
    track_a = PublishedTrack("a", "audio", "audio")
    track_b = PublishedTrack("b", "audio", "audio")
    detector = ActiveSpeakerDetector()
    assert detector.update([track_a, track_b], 0.0) is None
    track_a.level_samples, track_a.loud_samples = 25, 20
    track_b.level_samples, track_b.loud_samples = 25, 2
    assert detector.update([track_a, track_b], 0.6) == "a"
    track_a.level_samples, track_a.loud_samples = 25, 20
    assert detector.update([track_a, track_b], 1.2) is None  # no change, no event
    track_a.level_samples, track_a.loud_samples = 25, 0
    track_b.level_samples, track_b.loud_samples = 25, 24
    assert detector.update([track_a, track_b], 1.8) == "b"


def test_receiver_report_for_the_publisher() -> None:
    track, _ = video_track()
    assert track.receiver_report_block(0.0) is None
    for seq in (10, 11, 13, 14):  # 12 lost
        feed(track, make_rtp(seq=seq, ssrc=0x1111, payload=MORE))
    track.handle_sender_report(packets.SenderReport(0x1111, 0x0001000200030004, 1, 1, 1))
    block = track.receiver_report_block(track._sender_report_at + 0.5)
    assert block is not None
    assert (block.ssrc, block.packets_lost, block.highest_sequence) == (0x1111, 1, 14)
    assert block.fraction_lost == 256 // 5
    assert block.lsr == 0x00020003
    assert abs(block.dlsr - 0.5 * 65536) < 2
    feed(track, make_rtp(seq=15, ssrc=0x1111, payload=MORE))
    again = track.receiver_report_block(0.0)
    assert again is not None and again.fraction_lost == 0  # nothing lost since


@settings(max_examples=150, deadline=None)
@example(  # late packets, then a reconnect: continues at highest + 1
    [(0x2222, 0, KEY, b""), (0x2222, -2, KEY, b""), (0x2222, -3, KEY, b""), (0x1111, 0, KEY, b"")]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x1111, 0x2222]),  # publisher SSRC (a change = a reconnect)
            st.integers(-3, 5),  # sequence step: loss, reordering, duplicates
            st.sampled_from([KEY, DELTA, MORE, b"", b"\x90"]),
            st.binary(max_size=30),
        ),
        max_size=60,
    )
)
def test_fuzz_forwarding_keeps_streams_well_formed(
    steps: list[tuple[int, int, bytes, bytes]],
) -> None:
    track, _ = video_track()
    stream, sent = subscriber(track, mid=b"5")
    seq = 100
    for ssrc, step, head, tail in steps:
        seq = (seq + step) & 0xFFFF
        data = make_rtp(
            seq=seq,
            ts=seq * 3000,
            ssrc=ssrc,
            payload=head + tail,
            extensions=bytes([0x10, ord("0")]),
        )
        feed(track, data)
    for data in sent:
        packet = RtpPacket.parse(data)
        assert packet.ssrc == stream.ssrc and packet.payload_type == 97
    # The outgoing numbers never jump ahead of the highest one sent by more than the input
    # did (a reconnect continues at highest + 1), and a late packet goes back no further
    # than the input went back (at most 3 per step).
    out = seqs(sent)
    highest = out[0] if out else 0
    for after in out[1:]:
        ahead = (after - highest) & 0xFFFF
        if ahead < 0x8000:
            assert ahead <= 5
            highest = after
        else:
            assert (highest - after) & 0xFFFF <= 3 * len(steps)


async def test_fuzz_participant_input_never_raises() -> None:
    import random

    from media_relay.control import RelayConfig
    from media_relay.participant import Participant

    gone: list[str] = []
    participant = Participant("room", "fuzz", RelayConfig(), lambda p, reason: gone.append(reason))
    track = participant.ensure_published("camera")
    track.codecs = {97: "vp8"}
    participant._set_ssrc(track, 0x1111)
    rng = random.Random(3)
    try:
        for _ in range(3000):
            size = rng.randrange(0, 120)
            data = bytearray(rng.randbytes(size))
            if size >= 12 and rng.random() < 0.5:
                data[0] = 0x80 | (data[0] & 0x3F)  # version 2: deeper into the parsers
                if rng.random() < 0.5:
                    data[8:12] = (0x1111).to_bytes(4, "big")
            participant._on_rtp(bytes(data))
            participant._on_rtcp(bytes(data))
            participant._on_media(bytes(data))  # not connected: dropped and counted
        assert participant.drops.total() > 0
        assert gone == []
    finally:
        await participant.close()
