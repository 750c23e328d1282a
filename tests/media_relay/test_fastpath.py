"""The relay's C fast path (media_relay/_fastpath.c) against its Python twin (fastpath_py.py).

Both send through real SRTP sessions on real UDP sockets on 127.0.0.1; the receiver unprotects
what arrived and the plain packets and counters must be the same — and what an independent
rewrite of the header says they should be.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_relay import fastpath, fastpath_py, forwarding, packets
from media_relay.packets import RtpHeader
from tests.media_relay.conftest import Bridge, PatternTrack, ToneTrack, wait_for

KEY = bytes(range(30))
PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
OUT_SSRC = 0x11223344
MID_ID = 1
LEVEL_ID = 2


def native() -> Any:
    if not fastpath.NATIVE:
        pytest.fail("the C fast path is not built: run scripts/setup (needs a C compiler)")
    from media_relay import _fastpath

    return _fastpath


IMPLEMENTATIONS = ["C", "Python"]


def implementation(name: str) -> Any:
    return native() if name == "C" else fastpath_py


def session(outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=kind, srtp_profile=PROFILE))


class Wire:
    """A Link of one implementation bound to a fresh SRTP session and a receiving socket."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.tx = session(outbound=True)
        self.rx = session(outbound=False)
        self.receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receiver.bind(("127.0.0.1", 0))
        self.receiver.settimeout(1.0)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.bind(("127.0.0.1", 0))
        self.sender.setblocking(False)
        self.link = module.Link()
        self.link.bind(
            fastpath.srtp_context(self.tx), self.tx, self.sender, self.receiver.getsockname()
        )

    def output(self, **state: Any) -> Any:
        out = self.module.Output(OUT_SSRC)
        out.link = self.link
        for name, value in state.items():
            if name == "payload_types":
                out.set_payload_types(value)
            else:
                setattr(out, name, value)
        return out

    def receive(self) -> bytes:
        data = self.receiver.recv(2048)
        return bytes(self.rx.unprotect(data))

    def nothing_arrived(self) -> bool:
        self.receiver.setblocking(False)
        try:
            self.receiver.recv(2048)
        except BlockingIOError:
            return True
        finally:
            self.receiver.settimeout(1.0)
        return False

    def close(self) -> None:
        self.link.unbind()
        self.sender.close()
        self.receiver.close()


@pytest.fixture
def wires() -> Iterator[dict[str, Wire]]:
    made = {name: Wire(implementation(name)) for name in IMPLEMENTATIONS}
    yield made
    for wire in made.values():
        wire.close()


def rtp(
    seq: int = 100,
    ts: int = 90000,
    ssrc: int = 0xABCDEF01,
    pt: int = 97,
    marker: bool = False,
    mid: bytes | None = b"0",
    level: int | None = 30,
    payload: bytes = b"\x10" + bytes(range(200)),
    padding: int = 0,
) -> bytes:
    elements = b""
    if mid is not None:
        elements += bytes([(MID_ID << 4) | (len(mid) - 1)]) + mid
    if level is not None:
        elements += bytes([(LEVEL_ID << 4) | 0, level])
    extension = b""
    if elements:
        elements += b"\0" * (-len(elements) % 4)
        extension = struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
    first = 0x80 | (0x10 if extension else 0) | (0x20 if padding else 0)
    header = struct.pack("!BBHII", first, pt | (0x80 if marker else 0), seq, ts, ssrc)
    pad = b"\0" * (padding - 1) + bytes([padding]) if padding else b""
    return header + extension + payload + pad


def parsed(data: bytes) -> tuple[RtpHeader, tuple[int, int] | None]:
    header = packets.parse_rtp_header(data)
    assert header is not None
    return header, packets.find_extension(data, header, MID_ID)


def expected(data: bytes, out_mid: bytes, seq_offset: int, ts_offset: int, hidden: int) -> bytes:
    """What the subscriber must receive, written out independently of both implementations."""
    header, mid_at = parsed(data)
    result = bytearray(data)
    result[1] = header.payload_type | (0x80 if header.marker else 0)
    struct.pack_into(
        "!HII",
        result,
        2,
        (header.sequence_number + seq_offset) & 0xFFFF,
        (header.timestamp + ts_offset) & 0xFFFFFFFF,
        OUT_SSRC,
    )
    if mid_at is not None:
        offset, length = mid_at
        if length == len(out_mid):
            result[offset : offset + length] = out_mid
        else:  # moved to an ID the subscriber did not negotiate
            result[offset - 1] = (hidden << 4) | (result[offset - 1] & 0x0F)
    return bytes(result)


COUNTERS = ("packets", "bytes", "payload_bytes", "dropped_codec", "last_seq", "last_ts")


def counters(out: Any) -> dict[str, Any]:
    return {name: getattr(out, name) for name in COUNTERS}


# ----------------------------------------------------------------------------- same bytes


@pytest.mark.parametrize(
    "packet, out_mid",
    [
        (rtp(), b"3"),  # MID of the same length: overwritten
        (rtp(mid=b"0"), b"12"),  # another length: hidden
        (rtp(mid=None), b"1"),  # no MID element
        (rtp(mid=b"7", level=None, marker=True, padding=4), b"9"),
        (rtp(seq=0xFFFF, ts=0xFFFFFFF0), b"4"),  # wraps
    ],
)
def test_send_writes_the_same_packet_in_c_and_python(
    wires: dict[str, Wire], packet: bytes, out_mid: bytes
) -> None:
    header, mid_at = parsed(packet)
    state = {
        "mid": out_mid,
        "seq_offset": 1234,
        "ts_offset": 0xFFFF0000,
        "hidden_extension_id": 13,
        "payload_types": [97],
    }
    results = {}
    for name, wire in wires.items():
        out = wire.output(**state)
        assert out.send(packet, header, mid_at, 5.0, False) == 1
        results[name] = (wire.receive(), counters(out), out.last_sent_at)
    assert results["C"] == results["Python"]
    plain, count, sent_at = results["C"]
    assert plain == expected(packet, out_mid, 1234, 0xFFFF0000, 13)
    assert count["packets"] == 1 and count["bytes"] == len(packet)
    assert count["payload_bytes"] == header.payload_end - header.payload_start
    assert count["last_seq"] == (header.sequence_number + 1234) & 0xFFFF
    assert sent_at == 5.0


@settings(max_examples=150, deadline=None)
@given(
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    pt=st.integers(0, 127),
    marker=st.booleans(),
    mid=st.one_of(st.none(), st.binary(min_size=1, max_size=16)),
    payload=st.binary(max_size=1200),
    padding=st.integers(0, 8),
    out_mid=st.binary(max_size=16),
    seq_offset=st.integers(0, 0xFFFF),
    ts_offset=st.integers(0, 0xFFFFFFFF),
)
def test_c_and_python_agree_on_any_packet(
    seq: int,
    ts: int,
    pt: int,
    marker: bool,
    mid: bytes | None,
    payload: bytes,
    padding: int,
    out_mid: bytes,
    seq_offset: int,
    ts_offset: int,
) -> None:
    packet = rtp(seq, ts, 7, pt, marker, mid, None, payload, padding)
    header, mid_at = parsed(packet)
    results = {}
    for name in IMPLEMENTATIONS:
        # fresh SRTP sessions: libsrtp refuses to protect a packet index twice
        wire = Wire(implementation(name))
        try:
            out = wire.output(
                mid=out_mid, seq_offset=seq_offset, ts_offset=ts_offset, payload_types=[pt]
            )
            assert out.send(packet, header, mid_at, 1.0, False) == 1
            results[name] = (wire.receive(), counters(out))
        finally:
            wire.close()
    assert results["C"] == results["Python"]
    assert results["C"][0] == expected(packet, out_mid, seq_offset, ts_offset, 14)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_retransmission_and_late_packets_leave_the_latest_position(
    wires: dict[str, Wire], name: str
) -> None:
    wire = wires[name]
    out = wire.output(payload_types=[97])
    for seq in (10, 11):
        header, mid_at = parsed(rtp(seq=seq, ts=seq * 100))
        out.send(rtp(seq=seq, ts=seq * 100), header, mid_at, float(seq), False)
    late = rtp(seq=9, ts=900)
    header, mid_at = parsed(late)
    out.send(late, header, mid_at, 12.0, False)  # reordered: older than the latest
    assert (out.last_seq, out.last_ts, out.last_sent_at) == (11, 1100, 11.0)
    again = rtp(seq=12, ts=1200)
    header, mid_at = parsed(again)
    out.send(again, header, mid_at, 13.0, True)  # a retransmission
    assert (out.last_seq, out.last_ts, out.packets) == (11, 1100, 4)
    for _ in range(4):
        wire.receive()


# ----------------------------------------------------------------------------- fanout


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_fanout_sends_steady_outputs_and_leaves_the_rest_to_python(
    wires: dict[str, Wire], name: str
) -> None:
    wire = wires[name]
    module = wire.module
    packet = rtp(ssrc=555)
    header, mid_at = parsed(packet)
    steady = wire.output(enabled=True, in_ssrc=555, payload_types=[97])
    disabled = wire.output(enabled=False, in_ssrc=555, payload_types=[97])
    other_source = wire.output(enabled=True, in_ssrc=556, payload_types=[97])
    unlinked = wire.output(enabled=True, in_ssrc=555, payload_types=[97])
    unlinked.link = None
    unbound_link = module.Link()
    unbound = wire.output(enabled=True, in_ssrc=555, payload_types=[97])
    unbound.link = unbound_link
    refused_codec = wire.output(enabled=True, in_ssrc=555, payload_types=[96])
    outputs = (steady, disabled, other_source, unlinked, unbound, refused_codec)

    assert module.fanout(packet, header, mid_at, outputs, 2.0) == 4
    assert [out.pending for out in outputs] == [False, True, True, True, True, False]
    assert steady.packets == 1 and refused_codec.dropped_codec == 1
    assert all(out.packets == 0 for out in outputs[1:])
    assert wire.receive() == expected(packet, b"", 0, 0, 14)
    assert wire.nothing_arrived()

    steady.enabled = False  # e.g. the subscriber waits for a key frame again
    assert module.fanout(packet, header, mid_at, outputs, 3.0) == 5
    assert steady.pending and steady.packets == 1


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_header_that_does_not_describe_the_packet_is_refused(
    wires: dict[str, Wire], name: str
) -> None:
    wire = wires[name]
    module = wire.module
    packet = rtp()
    header, mid_at = parsed(packet)
    out = wire.output(enabled=True, in_ssrc=header.ssrc, payload_types=[97])
    bad_headers = [
        header._replace(payload_end=len(packet) + 1),
        header._replace(payload_start=4),
        header._replace(payload_type=200),
        header._replace(sequence_number=70000),
    ]
    for bad in bad_headers:
        with pytest.raises(ValueError):
            out.send(packet, bad, mid_at, 1.0, False)
        with pytest.raises(ValueError):
            module.fanout(packet, bad, mid_at, (out,), 1.0)
    for bad_mid in [(len(packet) - 1, 5), (3, 1), (20, -1)]:
        with pytest.raises(ValueError):
            out.send(packet, header, bad_mid, 1.0, False)
    assert out.packets == 0 and wire.nothing_arrived()  # nothing changed, nothing sent


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_oversized_unbound_and_closed(wires: dict[str, Wire], name: str) -> None:
    wire = wires[name]
    module = wire.module
    big = rtp(payload=bytes(1480))
    header, mid_at = parsed(big)
    out = wire.output(payload_types=[97])
    assert out.send(big, header, mid_at, 1.0, False) == 0  # no room for the SRTP trailer
    assert wire.link.send_errors == 1 and wire.link.send(big) == 0
    assert wire.link.send_errors == 2
    assert wire.nothing_arrived()

    link = module.Link()
    assert not link.bound and link.send(rtp()) == -1
    out.link = link
    header, mid_at = parsed(rtp())
    assert out.send(rtp(), header, mid_at, 1.0, False) == -1 and out.packets == 0

    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    with pytest.raises((ValueError, OSError)):
        link.bind(fastpath.srtp_context(wire.tx), wire.tx, closed, ("127.0.0.1", 9))
    with pytest.raises(ValueError):
        link.bind(0, wire.tx, wire.sender, ("127.0.0.1", 9))
    with pytest.raises(ValueError):
        module.Output(1 << 32)
    if name == "C":  # C fields have fixed widths (Python masks where it uses them)
        with pytest.raises((ValueError, OverflowError)):
            out.seq_offset = 1 << 16


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_unprotect_refuses_garbage_truncation_and_tampering(name: str) -> None:
    module = implementation(name)
    tx, rx = session(outbound=True), session(outbound=False)
    ctx = fastpath.srtp_context(rx)
    packet = rtp()
    protected = tx.protect(packet)
    assert module.unprotect(ctx, protected) == packet
    replayed = module.unprotect(ctx, protected)
    assert replayed is None  # libsrtp's replay protection
    second = tx.protect(rtp(seq=101))
    assert module.unprotect(ctx, second[:-1]) is None
    assert module.unprotect(ctx, second[:11]) is None
    tampered = bytearray(second)
    tampered[20] ^= 1
    assert module.unprotect(ctx, bytes(tampered)) is None
    assert module.unprotect(ctx, bytes(3000)) is None
    assert module.unprotect(0, second) is None
    assert module.unprotect(ctx, second) == rtp(seq=101)  # the failures changed nothing


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1600))
def test_unprotect_survives_any_bytes(data: bytes) -> None:
    rx = session(outbound=False)
    ctx = fastpath.srtp_context(rx)
    assert native().unprotect(ctx, data) is None
    assert fastpath_py.unprotect(ctx, data) is None


# ----------------------------------------------------------------------------- in the relay


async def test_relay_forwards_through_fanout_on_both_fast_paths(
    fast_path: str, bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real peers: after the first key frame, subscribers are fed by `fanout`, not by the
    Python slow path — on the C fast path and on the Python one."""
    slow_calls = 0
    slow_forward = forwarding.ForwardedStream.forward

    def counting(self: forwarding.ForwardedStream, *args: Any) -> None:
        nonlocal slow_calls
        slow_calls += 1
        slow_forward(self, *args)

    monkeypatch.setattr(forwarding.ForwardedStream, "forward", counting)
    routed_in_python = 0
    python_route = forwarding.PublishedTrack.handle_rtp

    def counting_route(self: forwarding.PublishedTrack, *args: Any) -> None:
        nonlocal routed_in_python
        routed_in_python += 1
        python_route(self, *args)

    monkeypatch.setattr(forwarding.PublishedTrack, "handle_rtp", counting_route)
    publisher = bridge.peer("fp", "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
    await publisher.join(["camera", "audio"])
    subscribers = [bridge.peer("fp", name) for name in ("expert", "interpreter")]
    for subscriber in subscribers:
        await subscriber.join([])

    def decoded() -> bool:
        return all(
            s.frames.get(("kiosk", "camera"), 0) >= 20 and s.frames.get(("kiosk", "audio"), 0) >= 30
            for s in subscribers
        )

    assert await wait_for(decoded, 20), [s.frames for s in subscribers]
    room = bridge.relay.rooms["fp"]
    streams = [s for name in ("expert", "interpreter") for s in room.participants[name].forwarded]
    sent = sum(stream.packets for stream in streams)
    assert sent > 100
    assert type(streams[0].out).__module__ == (
        "media_relay._fastpath" if fast_path == "C" else "media_relay.fastpath_py"
    )
    # the slow path only carried packets until each stream's first key frame / SSRC rebase
    assert slow_calls < sent / 5, (slow_calls, sent)
    # and the receive path (fastpath.Receiver) routed the publisher's packets, not Python
    received = room.participants["kiosk"].rtp_received
    assert received > 50 and routed_in_python < received / 5, (routed_in_python, received)


# ----------------------------------------------------------------------------- receive path


def rtp_two_byte(mid: bytes, payload: bytes = b"\x10abc") -> bytes:
    """A packet with RFC 8285 two-byte header extensions (profile 0x1000)."""
    elements = bytes([MID_ID, len(mid)]) + mid + bytes([5, 0])
    elements += b"\0" * (-len(elements) % 4)
    extension = struct.pack("!HH", 0x1000, len(elements) // 4) + elements
    return struct.pack("!BBHII", 0x90, 97, 1, 2, 3) + extension + payload


@pytest.mark.parametrize(
    "data",
    [
        rtp(),
        rtp(mid=b"0123456789abcdef", level=None),
        rtp(padding=3),
        rtp_two_byte(b"a-long-mid"),
        rtp_two_byte(b""),
        struct.pack("!BBHII", 0x82, 97, 1, 2, 3) + bytes(8) + b"payload",  # two CSRCs
        rtp()[:11],  # truncated header
        rtp()[:15],  # truncated extension header
        rtp()[:18],  # truncated extension block
        bytes([0x40]) + rtp()[1:],  # version 1
        rtp(padding=3)[:-1] + bytes([200]),  # more padding than packet
        rtp(padding=1)[:-1] + b"\0",  # zero padding length
        b"",
    ],
)
def test_receive_parser_matches_packets_py(data: bytes) -> None:
    assert native().parse(data, MID_ID) == fastpath_py.parse(data, MID_ID)


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda prefix, rest: prefix + rest,
            st.sampled_from([b"\x90", b"\xb0", b"\x80", b"\xa1"]),
            st.binary(max_size=80),
        ),
        st.builds(
            lambda cut, packet: packet[:cut],
            st.integers(0, 60),
            st.sampled_from([rtp(), rtp_two_byte(b"xyz"), rtp(padding=5)]),
        ),
    ),
    mid_id=st.integers(0, 15),
)
def test_receive_parser_agrees_with_packets_py_on_any_bytes(data: bytes, mid_id: int) -> None:
    assert native().parse(data, mid_id) == fastpath_py.parse(data, mid_id)


class FakeTrack:
    """What the receive path reads of a PublishedTrack: its `route`."""

    def __init__(self, route: Any) -> None:
        self.route = route


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_receiver_unprotects_routes_and_fans_out(wires: dict[str, Wire], name: str) -> None:
    wire = wires[name]
    module = wire.module
    publisher_tx = session(outbound=True)
    publisher_rx = session(outbound=False)  # the relay's receive session for the publisher
    receiver = module.Receiver()
    assert receiver.receive(publisher_tx.protect(rtp(seq=1)), 1.0) is False  # not bound yet

    out = wire.output(enabled=True, in_ssrc=0xABCDEF01, payload_types=[97], mid=b"5")
    route = module.Route()
    route.outputs = (out,)
    route.mid_id = MID_ID
    route.set_payload_types([97])
    track = FakeTrack(route)
    tracks: dict[int, Any] = {0xABCDEF01: track}
    receiver.bind(fastpath.srtp_context(publisher_rx), publisher_rx, tracks)

    packet = rtp(seq=2)
    result = receiver.receive(publisher_tx.protect(packet), 2.0)
    assert result == (track, packet, 0)
    assert wire.receive() == expected(packet, b"5", 0, 0, 14)

    other_type = rtp(seq=3, pt=98)  # RTX or another codec: Python decides
    assert receiver.receive(publisher_tx.protect(other_type), 3.0) == other_type
    unknown = rtp(seq=4, ssrc=42)
    assert receiver.receive(publisher_tx.protect(unknown), 4.0) == unknown
    tracks[42] = object()  # no route: Python decides
    assert receiver.receive(publisher_tx.protect(rtp(seq=5, ssrc=42)), 5.0) == rtp(seq=5, ssrc=42)
    out.enabled = False  # e.g. waiting for a key frame: left pending
    waiting = rtp(seq=6)
    assert receiver.receive(publisher_tx.protect(waiting), 6.0) == (track, waiting, 1)

    assert receiver.receive(b"garbage that is not srtp", 7.0) is None
    assert receiver.receive(b"", 7.0) is None
    assert receiver.receive(bytes(4000), 7.0) is None
    tampered = bytearray(publisher_tx.protect(rtp(seq=7)))
    tampered[-1] ^= 1
    assert receiver.receive(bytes(tampered), 7.0) is None
    assert out.packets == 1 and wire.nothing_arrived()  # only the one steady packet was sent

    receiver.unbind()
    assert not receiver.bound and receiver.receive(publisher_tx.protect(rtp(seq=8)), 8.0) is False


@settings(max_examples=400, deadline=None)
@given(
    body=st.binary(max_size=300),
    # version 2 with any P/X/CC bits (libsrtp refuses to protect most other first bytes)
    first=st.one_of(st.integers(0x80, 0xBF), st.integers(0, 255)),
    second=st.integers(0, 255),
    on_route=st.booleans(),
)
def test_receive_path_c_and_python_agree_on_any_authenticated_packet(
    body: bytes, first: int, second: int, on_route: bool
) -> None:
    """A participant holds its SRTP keys: whatever plain RTP it sends, authenticated, takes the
    same way through both receive paths and never crashes them."""
    ssrc = 0x01020304
    plain = bytes([first, second, 0, 9, 0, 0, 0, 1]) + struct.pack("!I", ssrc) + body
    if not on_route:
        plain = plain[:8] + struct.pack("!I", ssrc + 1) + plain[12:]
    results = {}
    for name in IMPLEMENTATIONS:
        wire = Wire(implementation(name))
        try:
            module = wire.module
            tx, rx = session(outbound=True), session(outbound=False)
            try:
                protected = tx.protect(plain)
            except pylibsrtp.Error:
                return  # libsrtp itself refuses to protect it: nothing reaches the relay
            out = wire.output(enabled=True, in_ssrc=ssrc, payload_types=range(128))
            route = module.Route()
            route.outputs = (out,)
            route.mid_id = MID_ID
            route.set_payload_types(range(128))
            track = FakeTrack(route)
            receiver = module.Receiver()
            receiver.bind(fastpath.srtp_context(rx), rx, {ssrc: track})
            result = receiver.receive(protected, 1.0)
            sent = None
            if isinstance(result, tuple):
                assert result[0] is track
                result = ("track", *result[1:])
                sent = wire.receive() if result[2] == 0 else None
            results[name] = (result, sent, counters(out))
        finally:
            wire.close()
    assert results["C"] == results["Python"]
