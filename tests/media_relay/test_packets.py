"""RTP/RTCP on bytes: fields, every truncation, garbage, and hypothesis fuzzing."""

from __future__ import annotations

import struct

from aiortc.rtp import RtcpPacket, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from media_relay import packets


def make_rtp(
    seq: int = 1000,
    ts: int = 90000,
    ssrc: int = 0x11223344,
    pt: int = 97,
    marker: bool = True,
    payload: bytes = b"\x10\x00payload",
    extensions: bytes = b"",
    csrcs: int = 0,
    padding: int = 0,
) -> bytes:
    first = 0x80 | csrcs | (0x10 if extensions else 0) | (0x20 if padding else 0)
    data = struct.pack("!BBHII", first, pt | (0x80 if marker else 0), seq, ts, ssrc)
    data += b"".join(struct.pack("!I", 0xC0000000 + i) for i in range(csrcs))
    if extensions:
        body = extensions + b"\0" * (-len(extensions) % 4)
        data += struct.pack("!HH", 0xBEDE, len(body) // 4) + body
    data += payload
    if padding:
        data += b"\0" * (padding - 1) + bytes([padding])
    return data


MID_AND_LEVEL = bytes([0x10, ord("3"), 0x20, 0x80 | 25])  # mid "3" (id 1), audio level 25 (id 2)


def test_header_fields_match_aiortc() -> None:
    data = make_rtp(extensions=MID_AND_LEVEL, csrcs=2, padding=3)
    header = packets.parse_rtp_header(data)
    assert header is not None
    reference = RtpPacket.parse(data)
    assert header.sequence_number == reference.sequence_number == 1000
    assert header.timestamp == reference.timestamp == 90000
    assert header.ssrc == reference.ssrc == 0x11223344
    assert header.payload_type == reference.payload_type == 97
    assert header.marker
    payload = data[header.payload_start : header.payload_end]
    assert payload == reference.payload == b"\x10\x00payload"


def test_every_truncation_is_rejected_or_consistent() -> None:
    data = make_rtp(extensions=MID_AND_LEVEL, csrcs=1)
    header = packets.parse_rtp_header(data)
    assert header is not None
    for size in range(len(data)):
        truncated = data[:size]
        parsed = packets.parse_rtp_header(truncated)
        if parsed is not None:
            # a shorter valid packet: never an offset beyond the buffer
            assert parsed.payload_start <= parsed.payload_end <= len(truncated)
        else:
            assert size < header.payload_start or size < 12


def test_extensions_found_and_retagged() -> None:
    data = bytearray(make_rtp(extensions=MID_AND_LEVEL))
    header = packets.parse_rtp_header(data)
    assert header is not None
    assert packets.find_extension(data, header, 1) is not None
    offset, length = packets.find_extension(data, header, 1)  # type: ignore[misc]
    assert bytes(data[offset : offset + length]) == b"3"
    assert packets.audio_level(data, header, 2) == 25
    assert packets.find_extension(data, header, 5) is None
    packets.retag_extension(data, header, offset, 14)
    assert packets.find_extension(data, header, 1) is None
    assert packets.find_extension(data, header, 14) == (offset, 1)
    assert packets.audio_level(data, header, 2) == 25  # the rest still parses


def test_two_byte_extensions() -> None:
    body = bytes([1, 2]) + b"ab" + bytes([2, 1, 0x85])
    body += b"\0" * (-len(body) % 4)
    data = struct.pack("!BBHII", 0x90, 97, 1, 2, 3) + struct.pack("!HH", 0x1000, len(body) // 4)
    data += body + b"payload"
    header = packets.parse_rtp_header(data)
    assert header is not None
    assert packets.find_extension(data, header, 1) == (header.extension_start + 2, 2)
    assert packets.audio_level(data, header, 2) == 5


def test_rewrite_in_place() -> None:
    buffer = bytearray(make_rtp(extensions=MID_AND_LEVEL))
    packets.rewrite_rtp(buffer, 96, False, 65535, 0xFFFFFFFF, 0xAABBCCDD)
    reference = RtpPacket.parse(bytes(buffer))
    assert (reference.payload_type, reference.marker) == (96, 0)
    assert (reference.sequence_number, reference.timestamp, reference.ssrc) == (
        65535,
        0xFFFFFFFF,
        0xAABBCCDD,
    )


def test_garbage_and_wrong_version() -> None:
    assert packets.parse_rtp_header(b"") is None
    assert packets.parse_rtp_header(b"\x40" + b"\0" * 20) is None  # version 1
    assert packets.parse_rtp_header(make_rtp()[:11]) is None
    padded = bytearray(make_rtp(padding=4))
    padded[-1] = 200  # padding longer than the packet
    assert packets.parse_rtp_header(padded) is None
    padded[-1] = 0
    assert packets.parse_rtp_header(padded) is None


def test_vp8_keyframe_detection() -> None:
    key = b"\x10" + b"\x00\x9d\x01\x2a"  # S=1, PID 0; P bit 0
    delta = b"\x10" + b"\x01"
    continuation = b"\x00" + b"\x00"
    extended = b"\x90\x80\x81\x23" + b"\x00"  # X, I with 15-bit picture id
    assert packets.is_vp8_keyframe_start(key, 0, len(key))
    assert not packets.is_vp8_keyframe_start(delta, 0, len(delta))
    assert not packets.is_vp8_keyframe_start(continuation, 0, len(continuation))
    assert packets.is_vp8_keyframe_start(extended, 0, len(extended))
    for size in range(len(extended)):
        assert not packets.is_vp8_keyframe_start(extended, 0, size)


def test_h264_keyframe_detection() -> None:
    idr = b"\x65\x88"
    non_idr = b"\x41\x9a"
    stap_a = b"\x18" + b"\x00\x02\x67\x42" + b"\x00\x02\x68\xce"
    fu_start = b"\x7c\x85"
    fu_middle = b"\x7c\x05"
    assert packets.is_h264_keyframe_start(idr, 0, 2)
    assert not packets.is_h264_keyframe_start(non_idr, 0, 2)
    assert packets.is_h264_keyframe_start(stap_a, 0, len(stap_a))
    assert packets.is_h264_keyframe_start(fu_start, 0, 2)
    assert not packets.is_h264_keyframe_start(fu_middle, 0, 2)
    assert not packets.is_h264_keyframe_start(b"\x18\x00\xff\x67", 0, 4)  # size past the end


def test_nack_packing_like_pion() -> None:
    # the pattern pion tests: 10, 11, 12, 14, 16, 18
    data = packets.build_nack(1, 2, [10, 11, 12, 14, 16, 18])
    parsed = RtcpPacket.parse(data)[0]
    assert sorted(parsed.lost) == [10, 11, 12, 14, 16, 18]
    item = next(packets.iter_rtcp(data))
    assert packets.parse_nack(data, item) == [10, 11, 12, 14, 16, 18]
    assert struct.unpack_from("!HH", data, 12) == (10, 0b10101011)
    # wrap-around
    wrapped = packets.build_nack(1, 2, [65535, 0, 1])
    assert sorted(packets.parse_nack(wrapped, next(packets.iter_rtcp(wrapped)))) == [0, 1, 65535]


def test_feedback_builders_parse_with_aiortc() -> None:
    pli = RtcpPacket.parse(packets.build_pli(7, 9))[0]
    assert (pli.fmt, pli.ssrc, pli.media_ssrc) == (1, 7, 9)
    remb = packets.build_remb(7, 1_234_567, [9, 10])
    item = next(packets.iter_rtcp(remb))
    bitrate, ssrcs = packets.parse_remb(remb, item)  # type: ignore[misc]
    assert ssrcs == [9, 10]
    assert abs(bitrate - 1_234_567) / 1_234_567 < 0.001
    sr = packets.build_sender_report(5, 0x0102030405060708, 1234, 10, 2000)
    reference = RtcpPacket.parse(sr)[0]
    assert reference.sender_info.ntp_timestamp == 0x0102030405060708
    assert reference.sender_info.rtp_timestamp == 1234
    parsed = packets.parse_sender_report(sr, next(packets.iter_rtcp(sr)))
    assert parsed == packets.SenderReport(5, 0x0102030405060708, 1234, 10, 2000)
    fir = packets.build_fir(7, 9, 3)
    assert packets.parse_fir_ssrcs(fir, next(packets.iter_rtcp(fir))) == [9]


def test_compound_rtcp_and_report_blocks() -> None:
    block = packets.ReportBlock(9, 25, -3, 70000, 12, 0, 0)
    data = packets.build_receiver_report(1, [block]) + packets.build_pli(1, 9)
    items = list(packets.iter_rtcp(data))
    assert [item.packet_type for item in items] == [packets.RTCP_RR, packets.RTCP_PSFB]
    assert packets.parse_report_blocks(data, items[0]) == [block]
    # every truncation: never an exception, never an item past the end
    for size in range(len(data)):
        for item in packets.iter_rtcp(data[:size]):
            assert item.end <= size
            packets.parse_report_blocks(data[:size], item)
            packets.parse_nack(data[:size], item)
            packets.parse_remb(data[:size], item)
            packets.parse_sender_report(data[:size], item)
            packets.feedback_media_ssrc(data[:size], item)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_rtp_parsers_never_raise(data: bytes) -> None:
    header = packets.parse_rtp_header(data)
    if header is None:
        return
    assert 12 <= header.payload_start <= header.payload_end <= len(data)
    for ext_id in (1, 2, 3, 14):
        found = packets.find_extension(data, header, ext_id)
        if found is not None:
            assert found[0] + found[1] <= len(data)
    packets.audio_level(data, header, 2)
    packets.is_vp8_keyframe_start(data, header.payload_start, header.payload_end)
    packets.is_h264_keyframe_start(data, header.payload_start, header.payload_end)
    buffer = bytearray(data)
    packets.rewrite_rtp(buffer, 96, True, 1, 2, 3)
    assert len(buffer) == len(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_rtcp_parsers_never_raise(data: bytes) -> None:
    for item in packets.iter_rtcp(data):
        assert item.start < item.end <= len(data)
        packets.parse_sender_report(data, item)
        packets.parse_report_blocks(data, item)
        packets.parse_nack(data, item)
        packets.parse_remb(data, item)
        packets.parse_fir_ssrcs(data, item)
        packets.feedback_media_ssrc(data, item)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(min_size=1, max_size=64),
    st.lists(st.integers(0, 65535), min_size=1, max_size=40),
)
def test_fuzz_roundtrips(seq: int, ts: int, ssrc: int, payload: bytes, lost: list[int]) -> None:
    data = make_rtp(seq=seq, ts=ts, ssrc=ssrc, payload=payload, extensions=MID_AND_LEVEL)
    header = packets.parse_rtp_header(data)
    assert header is not None
    assert (header.sequence_number, header.timestamp, header.ssrc) == (seq, ts, ssrc)
    assert data[header.payload_start : header.payload_end] == payload
    nack = packets.build_nack(1, 2, lost)
    assert sorted(set(packets.parse_nack(nack, next(packets.iter_rtcp(nack))))) == sorted(set(lost))
