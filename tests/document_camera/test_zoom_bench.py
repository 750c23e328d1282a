"""The zoom benchmark's subscriber completes a frame at its last packet, as a browser does."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from document_camera.zoom_bench import FrameEndJitterBuffer


def vp8_packet(seq: int, timestamp: int, *, first: bool, marker: bool) -> RtpPacket:
    # VP8 payload descriptor: S = 1 and PID = 0 on a frame's first packet (RFC 7741 §4.2)
    payload = bytes([0x10 if first else 0x00]) + bytes([seq & 0xFF]) * 3
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=timestamp,
                       marker=int(marker), payload=payload)
    packet._data = payload[1:]  # type: ignore[attr-defined]  # what the receiver depayloads
    return packet


def frame_packets(start: int, timestamp: int, count: int) -> list[RtpPacket]:
    return [vp8_packet(start + i, timestamp, first=i == 0, marker=i == count - 1)
            for i in range(count)]


def test_a_frame_is_complete_at_its_last_packet_not_at_the_next_frame() -> None:
    ours = FrameEndJitterBuffer(capacity=64, is_video=True)
    aiortcs = JitterBuffer(capacity=64, is_video=True)
    first = frame_packets(100, 3000, 3)
    for packet in first[:-1]:
        assert ours.add(packet)[1] is None
        assert aiortcs.add(packet)[1] is None
    frame = ours.add(first[-1])[1]
    assert frame is not None and frame.timestamp == 3000
    assert frame.data == b"".join(p._data for p in first)  # type: ignore[attr-defined]
    assert aiortcs.add(first[-1])[1] is None  # aiortc waits for the next frame
    second = frame_packets(103, 6000, 2)
    assert aiortcs.add(second[0])[1] is not None
    assert ours.add(second[0])[1] is None
    got = ours.add(second[1])[1]
    assert got is not None and got.timestamp == 6000


def test_a_frame_waits_for_a_late_packet_and_never_starts_mid_frame() -> None:
    buffer = FrameEndJitterBuffer(capacity=64, is_video=True)
    packets = frame_packets(10, 900, 4)
    for packet in (packets[0], packets[1], packets[3]):  # the third is late
        assert buffer.add(packet)[1] is None
    frame = buffer.add(packets[2])[1]
    assert frame is not None
    assert frame.data == b"".join(p._data for p in packets)  # type: ignore[attr-defined]
    # Joining mid-frame: the frame's first packet never came, so it is not handed out whole.
    joined = FrameEndJitterBuffer(capacity=64, is_video=True)
    tail = frame_packets(50, 1800, 3)[1:]
    assert all(joined.add(packet)[1] is None for packet in tail)
    handed = joined.add(frame_packets(53, 2700, 1)[0])[1]  # aiortc's rule then
    assert handed is not None and handed.timestamp == 1800


async def test_the_bench_sees_every_region_through_the_relay() -> None:
    """measure_zoom_latency end to end on a small camera and track: the subscriber's receiver
    really gets the frame-end buffer, and every region's detail arrives."""
    from document_camera.zoom_bench import DEFAULT_REGIONS, measure_zoom_latency

    result = await measure_zoom_latency(frame_size=(1920, 1080), size=(544, 768), settle=1.0,
                                        wait=10.0)
    assert result.timeouts == 0
    assert len(result.latencies_ms) == len(DEFAULT_REGIONS)
    assert result.median_ms is not None and result.p90_ms is not None
    assert result.median_ms <= result.p90_ms <= (result.max_ms or 0.0)
