"""Transport-wide congestion control feedback (media_relay/transport_cc.py) on bytes: the wire
format written out by hand, build → parse round trips, every truncation, garbage; the window
that turns arrivals into feedback; the offer's SDP; and the receive path's recording of
transport-wide sequence numbers, C against its Python twin on real SRTP."""

from __future__ import annotations

import struct
from typing import Any

import pylibsrtp
import pytest
from aiortc.sdp import SessionDescription
from hypothesis import given, settings
from hypothesis import strategies as st

from media_relay import codecs, fastpath, fastpath_py, packets
from media_relay import transport_cc as tcc
from media_relay.packets import RtcpItem
from tests.media_relay.test_fastpath import (
    FakeTrack,
    Wire,
    expected,
    implementation,
    native,
    session,
)

TWCC_ID = 5
MID_ID = 1


def only_item(data: bytes) -> RtcpItem:
    items = list(packets.iter_rtcp(data))
    assert len(items) == 1 and items[0].end == len(data)
    return items[0]


def parse(data: bytes) -> tcc.TransportFeedback | None:
    return tcc.parse_transport_feedback(data, only_item(data))


# ----------------------------------------------------------------------------- wire format


def test_a_packet_written_out_by_hand() -> None:
    # three packets from sequence number 1, all received: one run length chunk
    # (0 | 01 | 3), deltas 1 ms, 2 ms, 3 ms; 25 bytes, padded to 28 (P set, last byte 3)
    expected = bytes.fromhex(
        "af cd 0006"  # V=2 P=1 FMT=15, PT=205, length 6 words
        "11111111 22222222"  # sender, media source
        "0001 0003"  # base sequence number, packet status count
        "000001 00"  # reference time 64 ms, feedback packet count 0
        "2003"  # run length chunk: symbol 1 (small delta), run 3
        "04 08 0c"  # receive deltas ×250 µs
        "0000 03"  # padding
    )
    built = tcc.build_transport_feedback(0x11111111, 0x22222222, 1, 1, 0, [4, 8, 12])
    assert built == expected
    assert parse(expected) == tcc.TransportFeedback(0x11111111, 0x22222222, 1, 1, 0, (4, 8, 12))


def test_vector_chunks_large_and_negative_deltas() -> None:
    # received, lost, received large (+300 = 75 ms), received negative (−2): a two-bit vector
    deltas: list[int | None] = [1, None, 300, -2]
    built = tcc.build_transport_feedback(7, 8, 0xFFFE, 0xFFFFFF, 255, deltas)
    chunk = struct.unpack_from("!H", built, 20)[0]
    # 1 | 1 | 01 00 10 10 then three unused symbols
    assert chunk == 0b11_01_00_10_10_00_00_00
    assert built[22:27] == bytes([1]) + struct.pack("!hh", 300, -2)
    parsed = parse(built)
    assert parsed is not None and parsed.deltas == tuple(deltas)
    assert (parsed.base_sequence, parsed.reference_time, parsed.feedback_count) == (
        0xFFFE,
        0xFFFFFF,
        255,
    )
    # sequence numbers wrap; arrivals follow the deltas from the reference time
    clock = 0xFFFFFF * tcc.REFERENCE_TICK_US
    assert parsed.arrivals_us() == [
        (0xFFFE, clock + 250),
        (0xFFFF, None),
        (0, clock + 250 + 300 * 250),
        (1, clock + 250 + 298 * 250),
    ]
    # small deltas and losses only: a one-bit vector of 14
    mixed: list[int | None] = [5, None] * 8
    built = tcc.build_transport_feedback(7, 8, 10, 0, 0, mixed)
    assert struct.unpack_from("!H", built, 20)[0] >> 14 == 0b10
    parsed = parse(built)
    assert parsed is not None and parsed.deltas == tuple(mixed)


def test_long_runs_use_run_length_chunks() -> None:
    deltas: list[int | None] = [None] * 9000 + [0] * 20
    built = tcc.build_transport_feedback(1, 2, 0, 0, 0, deltas)
    chunks = struct.unpack_from("!HHH", built, 20)
    assert chunks == (0x1FFF, 9000 - 0x1FFF, (1 << 13) | 20)
    parsed = parse(built)
    assert parsed is not None and parsed.deltas == tuple(deltas)


def test_build_refuses_what_the_format_cannot_carry() -> None:
    with pytest.raises(ValueError):
        tcc.build_transport_feedback(1, 2, 0, 0, 0, [])
    with pytest.raises(ValueError):
        tcc.build_transport_feedback(1, 2, 0, 0, 0, [0x8000])
    with pytest.raises(ValueError):
        tcc.build_transport_feedback(1, 2, 0, 0, 0, [None] * 0x10000)


DELTA = st.one_of(st.none(), st.integers(0, 255), st.integers(tcc.MIN_DELTA, tcc.MAX_DELTA))


@settings(max_examples=300, deadline=None)
@given(
    sender=st.integers(0, 0xFFFFFFFF),
    media=st.integers(0, 0xFFFFFFFF),
    base=st.integers(0, 0xFFFF),
    reference=st.integers(0, 0xFFFFFF),
    count=st.integers(0, 255),
    deltas=st.one_of(
        st.lists(DELTA, min_size=1, max_size=300),
        # long runs: run length chunks, and runs broken by one different symbol
        st.builds(
            lambda a, n, b, m: [a] * n + [b] + [a] * m,
            DELTA,
            st.integers(0, 9000),
            DELTA,
            st.integers(0, 40),
        ),
    ),
)
def test_build_parse_round_trip(
    sender: int, media: int, base: int, reference: int, count: int, deltas: list[int | None]
) -> None:
    built = tcc.build_transport_feedback(sender, media, base, reference, count, deltas)
    assert len(built) % 4 == 0
    item = only_item(built)
    assert (item.packet_type, item.subtype) == (packets.RTCP_RTPFB, tcc.RTPFB_TRANSPORT_CC)
    parsed = tcc.parse_transport_feedback(built, item)
    assert parsed == tcc.TransportFeedback(sender, media, base, reference, count, tuple(deltas))
    # the packet's other parsers take it as an RTPFB and do not crash on it
    assert packets.feedback_media_ssrc(built, item) == media
    packets.parse_nack(built, item)


@pytest.mark.parametrize(
    "deltas",
    [
        [4, 8, 12],  # padded
        [1, None, 300, -2, 7, 7, 7, 7],  # padded
        [3] * 6,  # 20 + 2 + 6 = 28: no padding
        [None] * 30 + [2],
    ],
)
def test_every_truncation_is_refused(deltas: list[int | None]) -> None:
    built = tcc.build_transport_feedback(1, 2, 100, 5, 9, deltas)
    padded = bool(built[0] & 0x20)
    for size in range(len(built)):
        cut = built[:size]
        # as delivered (the length field says more than there is): never an item
        assert list(packets.iter_rtcp(cut)) == []
        # a length field that agrees with the cut (a truncating sender): refused or, when the
        # cut took only padding, the same feedback
        if size >= 4 and size % 4 == 0:
            fixed = bytearray(cut)
            struct.pack_into("!H", fixed, 2, size // 4 - 1)
            parsed = tcc.parse_transport_feedback(bytes(fixed), RtcpItem(205, 15, 0, size))
            if not padded:
                assert parsed is None, size
            elif parsed is not None:
                assert len(parsed.deltas) == len(deltas)
        # an item that claims the whole packet on a shorter buffer
        assert tcc.parse_transport_feedback(cut, RtcpItem(205, 15, 0, len(built))) is None


@settings(max_examples=500, deadline=None)
@given(
    body=st.binary(max_size=120),
    count=st.integers(0, 400),
    padding=st.booleans(),
)
def test_garbage_never_raises_and_parses_consistently(
    body: bytes, count: int, padding: bool
) -> None:
    body += bytes(-len(body) % 4)
    first = 0x80 | (0x20 if padding else 0) | tcc.RTPFB_TRANSPORT_CC
    header = struct.pack(
        "!BBHIIHHI", first, 205, (20 + len(body)) // 4 - 1, 1, 2, 3, count, (4 << 8) | 5
    )
    data = header + body
    for item in packets.iter_rtcp(data):
        parsed = tcc.parse_transport_feedback(data, item)
        if parsed is None:
            continue
        assert len(parsed.deltas) == count > 0
        assert all(d is None or tcc.MIN_DELTA <= d <= tcc.MAX_DELTA for d in parsed.deltas)
        # what parsed builds again into a packet that parses the same
        again = tcc.build_transport_feedback(*parsed[:5], parsed.deltas)
        assert parse(again) == parsed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_rtcp_never_raises(data: bytes) -> None:
    for item in packets.iter_rtcp(data):
        tcc.parse_transport_feedback(data, item)


def test_other_packets_are_not_transport_feedback() -> None:
    nack = packets.build_nack(1, 2, [5, 6])
    assert parse(nack) is None
    remb = packets.build_remb(1, 300_000, [2])
    assert parse(remb) is None
    # status count 0: refused (libwebrtc refuses it too)
    empty = struct.pack("!BBHIIHHI", 0x8F, 205, 4, 1, 2, 3, 0, 0)
    assert parse(empty) is None
    # the reserved symbol in a run length chunk and in a two-bit vector
    for chunk in (0x6001, 0xF000):
        bad = struct.pack("!BBHIIHHIHH", 0x8F, 205, 5, 1, 2, 3, 1, 0, chunk, 0)
        assert parse(bad) is None
    # zero padding length
    padded = bytearray(tcc.build_transport_feedback(1, 2, 0, 0, 0, [1]))
    padded[-1] = 0
    assert parse(bytes(padded)) is None


# ----------------------------------------------------------------------------- the window


def reported(feedback: list[bytes]) -> list[tuple[int, int | None]]:
    out: list[tuple[int, int | None]] = []
    for packet in feedback:
        parsed = parse(packet)
        assert parsed is not None
        out.extend(parsed.arrivals_us())
    return out


def test_window_reports_arrivals_losses_and_wraps() -> None:
    window = tcc.FeedbackWindow()
    sent = [(65530 + i) & 0xFFFF for i in range(12)]
    arrived = {seq: 100.0 + i * 0.0021 for i, seq in enumerate(sent) if i not in (3, 4)}
    # reordered: 0 arrives before 65535 (a negative delta, across the wrap)
    arrived[65535], arrived[0] = arrived[0], arrived[65535]
    for seq in sorted(arrived, key=lambda seq: arrived[seq]):
        window.add(seq, arrived[seq])
    feedback = window.build(9, 10)
    assert len(feedback) == 1
    parsed = parse(feedback[0])
    assert parsed is not None
    assert (parsed.sender_ssrc, parsed.media_ssrc, parsed.base_sequence) == (9, 10, 65530)
    result = reported(feedback)
    assert [seq for seq, _ in result] == sent
    for seq, at in result:
        if seq in arrived:
            assert at is not None and abs(at - arrived[seq] * 1e6) <= 125  # quantised, no drift
        else:
            assert at is None
    assert window.pending == 0 and window.build(9, 10) == []

    # the next window starts where this one ended; a straggler it reported lost is late
    window.add(sent[3], 100.1)
    window.add((sent[-1] + 2) & 0xFFFF, 100.2)
    feedback = window.build(9, 10)
    assert window.late == 1
    result = reported(feedback)
    assert [seq for seq, _ in result] == [(sent[-1] + 1) & 0xFFFF, (sent[-1] + 2) & 0xFFFF]
    assert result[0][1] is None
    counts = [parse(packet).feedback_count for packet in feedback]  # type: ignore[union-attr]
    assert counts == [1]
    window.add((sent[-1] + 3) & 0xFFFF, 100.3)
    window.add((sent[-1] + 3) & 0xFFFF, 100.31)
    assert window.duplicates == 1


def test_window_splits_long_windows_and_long_pauses() -> None:
    window = tcc.FeedbackWindow()
    for i in range(700):
        window.add(i, 10.0 + i * 0.001)
    window.add(700, 30.0)  # 20 s later: past what a 16-bit delta carries
    feedback = window.build(1, 2)
    assert len(feedback) == 4  # 300 + 300 + 100 received, then the late one on its own
    parsed = [parse(packet) for packet in feedback]
    assert [p.feedback_count for p in parsed] == [0, 1, 2, 3]  # type: ignore[union-attr]
    assert all(len(packet) <= 1200 for packet in feedback)
    result = reported(feedback)
    assert [seq for seq, _ in result] == list(range(701))
    for seq, at in result:
        expected = 10.0 + seq * 0.001 if seq < 700 else 30.0
        assert at is not None and abs(at - expected * 1e6) <= 125


def test_window_does_not_report_a_jump_as_thousands_of_losses() -> None:
    window = tcc.FeedbackWindow()
    window.add(10, 1.0)
    window.build(1, 2)
    window.add(10 + tcc.MAX_REPORTED_GAP + 50, 2.0)
    result = reported(window.build(1, 2))
    assert result == [((10 + tcc.MAX_REPORTED_GAP + 50) & 0xFFFF, 2_000_000)]


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 0xFFFF),
    steps=st.lists(
        st.tuples(
            st.integers(-3, 6),  # sequence step (negative: reordered)
            st.floats(0, 0.2),  # seconds since the previous arrival
            st.booleans(),  # feedback after this one
        ),
        min_size=1,
        max_size=300,
    ),
)
def test_window_reports_every_packet_once_at_its_time(
    start: int, steps: list[tuple[int, float, bool]]
) -> None:
    window = tcc.FeedbackWindow()
    seq = start
    now = 50.0
    arrived: dict[int, float] = {}  # unwrapped -> arrival
    reports: list[tuple[int, int | None]] = []
    for step, gap, flush in steps:
        seq += step
        now += gap
        window.add(seq & 0xFFFF, now)
        arrived.setdefault(seq, now)
        if flush:
            reports.extend(reported(window.build(3, 4)))
    reports.extend(reported(window.build(3, 4)))
    received = [(s, at) for s, at in reports if at is not None]
    # every packet reported received at most once, at its arrival time (±½ tick), and
    # every one reported received did arrive
    by_seq: dict[int, list[int]] = {}
    for s, at in received:
        assert at is not None
        by_seq.setdefault(s, []).append(at)
    assert all(len(times) == 1 for times in by_seq.values())
    arrivals_16: dict[int, list[float]] = {}
    for number, arrival in arrived.items():
        arrivals_16.setdefault(number & 0xFFFF, []).append(arrival)
    for number, times in by_seq.items():
        assert any(abs(times[0] - int(a * 1e6)) <= 125 for a in arrivals_16[number]), number
    # what was not reported was late (or a duplicate number)
    assert len(received) + window.late + window.duplicates == len(steps)


# ----------------------------------------------------------------------------- the offer


async def test_offer_adds_transport_cc_where_the_relay_receives() -> None:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="sendonly")
    sdp = (await pc.createOffer()).sdp
    await pc.close()
    changed = codecs.with_transport_cc(codecs.with_fir_feedback(sdp))
    assert codecs.with_transport_cc(changed) == changed  # once
    media = SessionDescription.parse(changed).media
    assert [m.direction for m in media] == ["recvonly", "recvonly", "sendonly"]
    video = media[0]
    assert codecs.transport_cc_id(video) == codecs.TRANSPORT_CC_ID
    assert all(
        any(fb.type == "transport-cc" for fb in codec.rtcpFeedback)
        for codec in video.rtp.codecs
        if not codecs.is_rtx(codec)
    )
    ids = [ext.id for ext in video.rtp.headerExtensions]
    assert len(ids) == len(set(ids))
    # never on audio: libwebrtc would take audio and its overhead out of the (REMB-capped)
    # estimate, which leaves too little video for a subscriber's REMB to climb from
    # (test_transport_cc_audio_share.py)
    assert codecs.transport_cc_id(media[1]) == 0
    assert "transport-cc" not in changed.split("m=audio")[1].split("m=video")[0]
    assert codecs.transport_cc_id(media[2]) == 0
    assert "transport-cc" not in changed.split("m=video")[-1]
    assert f"a=extmap:{codecs.TRANSPORT_CC_ID} {tcc.TRANSPORT_CC_URI}" in changed


# ----------------------------------------------------------------------------- sending it


def test_link_sends_rtcp_the_same_in_c_and_python() -> None:
    """Link.send_rtcp: SRTCP with the participant's send context, on its socket, in C as in
    the twin (the relay's feedback, reports and key-frame requests go this way)."""
    feedback = tcc.build_transport_feedback(1, 2, 3, 4, 5, [1, None, 300])
    report = packets.build_receiver_report(1, []) + packets.build_pli(1, 2)
    results = {}
    for name in ("C", "Python"):
        wire = Wire(implementation(name))
        try:
            sent = []
            for packet in (feedback, report):
                assert wire.link.send_rtcp(packet) == 1
                data = wire.receiver.recv(2048)
                assert bytes(wire.rx.unprotect_rtcp(data)) == packet
                sent.append(data)
            assert wire.link.send_rtcp(bytes(1500)) == 0 and wire.link.send_errors == 1
            assert wire.nothing_arrived()
            unbound = wire.module.Link()
            assert unbound.send_rtcp(feedback) == -1
            results[name] = sent
        finally:
            wire.close()
    assert results["C"] == results["Python"]  # fresh sessions, same key: the same bytes


# ----------------------------------------------------------------------------- receive path


def rtp_with_twcc(
    seq: int,
    twcc: int | None,
    ssrc: int = 0xABCDEF01,
    pt: int = 97,
    two_byte: bool = False,
    twcc_length: int = 2,
) -> bytes:
    value = struct.pack("!H", twcc or 0)[:twcc_length].ljust(twcc_length, b"\0")
    if two_byte:
        elements = bytes([MID_ID, 1]) + b"0"
        if twcc is not None:
            elements += bytes([TWCC_ID, len(value)]) + value
        profile = 0x1000
    else:
        elements = bytes([(MID_ID << 4) | 0]) + b"0"
        if twcc is not None:
            elements += bytes([(TWCC_ID << 4) | (len(value) - 1)]) + value
        profile = 0xBEDE
    elements += b"\0" * (-len(elements) % 4)
    header = struct.pack("!BBHII", 0x90, pt, seq, 1000, ssrc)
    return header + struct.pack("!HH", profile, len(elements) // 4) + elements + b"\x10payload"


def bound_receiver(module: Any, wire: Wire, rx: pylibsrtp.Session, ssrc: int) -> tuple[Any, Any]:
    out = wire.output(enabled=True, in_ssrc=ssrc, payload_types=[97], mid=b"5")
    route = module.Route()
    route.outputs = (out,)
    route.mid_id = MID_ID
    route.set_payload_types([97])
    receiver = module.Receiver()
    receiver.transport_cc_id = TWCC_ID
    receiver.bind(fastpath.srtp_context(rx), rx, {ssrc: FakeTrack(route)})
    return receiver, out


def blanked(packet: bytes) -> bytes:
    header = packets.parse_rtp_header(packet)
    assert header is not None
    found = packets.find_extension(packet, header, TWCC_ID)
    return packet if found is None else packets.strip_extension(packet, header, found)


@pytest.mark.parametrize("two_byte", [False, True])
def test_strip_extension_leaves_padding_and_the_other_elements(two_byte: bool) -> None:
    packet = rtp_with_twcc(1, 0xABCD, two_byte=two_byte)
    header = packets.parse_rtp_header(packet)
    assert header is not None
    found = packets.find_extension(packet, header, TWCC_ID)
    assert found is not None and packet[found[0] : found[0] + 2] == b"\xab\xcd"
    stripped = packets.strip_extension(packet, header, found)
    assert len(stripped) == len(packet)
    assert packets.parse_rtp_header(stripped) == header
    assert packets.find_extension(stripped, header, TWCC_ID) is None
    assert packets.find_extension(stripped, header, MID_ID) == packets.find_extension(
        packet, header, MID_ID
    )
    element = found[0] - (2 if two_byte else 1)
    assert stripped[element : found[0] + 2] == bytes(found[0] + 2 - element)
    assert stripped[:element] == packet[:element]
    assert stripped[found[0] + 2 :] == packet[found[0] + 2 :]
    # aiortc's parser (as a subscriber's would) sees no transport-wide number in it
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(TWCC_ID, tcc.TRANSPORT_CC_URI)]
        )
    )
    if not two_byte:
        before = RtpPacket.parse(packet, extensions).extensions.transport_sequence_number
        after = RtpPacket.parse(stripped, extensions).extensions.transport_sequence_number
        assert (before, after) == (0xABCD, None)


@pytest.mark.parametrize("name", ["C", "Python"])
def test_receive_path_records_transport_wide_sequence_numbers(name: str) -> None:
    module = implementation(name)
    wire = Wire(module)
    try:
        tx, rx = session(outbound=True), session(outbound=False)
        receiver, out = bound_receiver(module, wire, rx, 0xABCDEF01)
        assert receiver.transport_cc_id == TWCC_ID and receiver.drain_transport_cc() == []
        cases = [
            (rtp_with_twcc(1, 700), 700),  # routed and forwarded
            (rtp_with_twcc(2, 701, pt=98), 701),  # another payload type (RTX): Python's
            (rtp_with_twcc(3, 702, ssrc=42), 702),  # an unknown SSRC
            (rtp_with_twcc(4, 0xFFFF, two_byte=True), 0xFFFF),  # two-byte header form
            (rtp_with_twcc(5, None), None),  # no element
            (rtp_with_twcc(6, 9, twcc_length=1), None),  # too short to be one
            (rtp_with_twcc(7, 0x1234, twcc_length=3), 0x1234),  # longer (a later draft)
        ]
        recorded = []
        for index, (packet, twcc) in enumerate(cases):
            result = receiver.receive(tx.protect(packet), 10.0 + index)
            plain = result[1] if isinstance(result, tuple) else result
            # what goes on (to Python, the cache, the subscribers) has the element blanked
            assert plain == blanked(packet), index
            if twcc is not None:
                recorded.append((twcc, 10.0 + index))
        assert receiver.receive(b"\x80" * 40, 30.0) is None  # does not verify: not recorded
        assert receiver.drain_transport_cc() == recorded
        assert receiver.drain_transport_cc() == []
        assert out.packets == 5  # all but the other payload type and the unknown SSRC
        assert wire.receive() == expected(blanked(cases[0][0]), b"5", 0, 0, 14)

        receiver.transport_cc_id = 0  # off: nothing recorded
        receiver.receive(tx.protect(rtp_with_twcc(8, 800)), 40.0)
        assert receiver.drain_transport_cc() == []
        receiver.transport_cc_id = TWCC_ID
        receiver.unbind()  # bind/unbind leave the recording alone
        receiver.bind(fastpath.srtp_context(rx), rx, {})
        receiver.receive(tx.protect(rtp_with_twcc(9, 801)), 41.0)
        assert receiver.drain_transport_cc() == [(801, 41.0)]
        with pytest.raises((ValueError, OverflowError)):
            receiver.transport_cc_id = 256
    finally:
        wire.close()


def test_receive_path_overflow_is_counted_alike() -> None:
    results = {}
    for name in ("C", "Python"):
        module = implementation(name)
        wire = Wire(module)
        try:
            tx, rx = session(outbound=True), session(outbound=False)
            receiver, _ = bound_receiver(module, wire, rx, 0x77)  # not routed: nothing sent
            for seq in range(fastpath_py.TRANSPORT_CC_CAPACITY + 5):
                receiver.receive(tx.protect(rtp_with_twcc(seq, seq)), float(seq))
            drained = receiver.drain_transport_cc()
            results[name] = (drained, receiver.transport_cc_overflow)
        finally:
            wire.close()
    assert results["C"] == results["Python"]
    drained, overflow = results["C"]
    assert len(drained) == fastpath_py.TRANSPORT_CC_CAPACITY and overflow == 5
    assert drained[-1] == (fastpath_py.TRANSPORT_CC_CAPACITY - 1, 1023.0)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=120),
    first=st.one_of(st.integers(0x80, 0xBF), st.just(0x90)),
    second=st.integers(0, 255),
    profile=st.sampled_from([0xBEDE, 0x1000, 0x1234]),
    elements=st.binary(max_size=24),
    twcc_id=st.integers(1, 15),
    on_route=st.booleans(),
)
def test_c_and_python_record_and_forward_the_same_on_any_packet(
    body: bytes,
    first: int,
    second: int,
    profile: int,
    elements: bytes,
    twcc_id: int,
    on_route: bool,
) -> None:
    """Whatever authenticated RTP a participant sends, both receive paths record the same
    transport-wide sequence numbers and send the same bytes on."""
    native()
    ssrc = 0x01020304
    words = (len(elements) + 3) // 4
    extension = struct.pack("!HH", profile, words) + elements.ljust(words * 4, b"\0")
    plain = struct.pack("!BBHII", first, second, 9, 1, ssrc if on_route else ssrc + 1)
    plain += (extension if first & 0x10 else b"") + body
    results = {}
    for name in ("C", "Python"):
        module = implementation(name)
        wire = Wire(module)
        try:
            tx, rx = session(outbound=True), session(outbound=False)
            try:
                protected = tx.protect(plain)
            except pylibsrtp.Error:
                return
            out = wire.output(enabled=True, in_ssrc=ssrc, payload_types=range(128))
            route = module.Route()
            route.outputs = (out,)
            route.mid_id = MID_ID
            route.set_payload_types(range(128))
            receiver = module.Receiver()
            receiver.transport_cc_id = twcc_id
            receiver.bind(fastpath.srtp_context(rx), rx, {ssrc: FakeTrack(route)})
            result = receiver.receive(protected, 3.5)
            sent = None
            if isinstance(result, tuple):
                result = ("track", *result[1:])
                sent = wire.receive() if result[2] == 0 else None
            results[name] = (result, sent, receiver.drain_transport_cc(), out.packets)
        finally:
            wire.close()
    assert results["C"] == results["Python"]
    # and what they recorded is what packets.find_extension reads, blanked in what went on
    header = packets.parse_rtp_header(plain)
    found = packets.find_extension(plain, header, twcc_id) if header is not None else None
    result, _, recorded, _ = results["C"]
    if found is None or found[1] < 2:
        assert recorded == []
    else:
        assert recorded == [(struct.unpack_from("!H", plain, found[0])[0], 3.5)]
    if header is not None and found is not None:
        went_on = result[1] if isinstance(result, tuple) else result
        assert went_on == packets.strip_extension(plain, header, found)
