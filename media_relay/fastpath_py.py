"""The relay's per-packet work in Python: the twin of `media_relay/_fastpath.c`.

Same names and behaviour as the C module (tests/media_relay/test_fastpath.py sends the same
packets through both and compares the bytes on the wire and the counters). It is the reference
and the fallback: `media_relay.fastpath` uses it when the C module is not built or
ETAPALVELU_RELAY_PURE_PYTHON=1 is set.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import Any

from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from media_relay.packets import RtpHeader, find_extension, parse_rtp_header, strip_extension

BUFFER_SIZE = 1600
SRTP_TRAILER = 144
MAX_PLAIN = BUFFER_SIZE - SRTP_TRAILER
MAX_MID = 255
# transport-wide sequence numbers the receive path keeps between two drains (one drain per
# feedback interval, 50–100 ms: 1024 is over 10,000 packets a second)
TRANSPORT_CC_CAPACITY = 1024
_SEQ_TS_SSRC = struct.Struct("!HII")


class Link:
    """One participant's SRTP send context and UDP destination."""

    def __init__(self) -> None:
        self.send_errors = 0
        self._ctx: Any = None
        self._session: Any = None
        self._sock: socket.socket | None = None
        self._address: Any = None
        self._buffer = _srtp_ffi.new("char[]", BUFFER_SIZE)
        self._view = memoryview(_srtp_ffi.buffer(self._buffer))
        self._length = _srtp_ffi.new("int *")

    @property
    def bound(self) -> bool:
        return self._sock is not None

    def bind(self, ctx: int, session: Any, sock: socket.socket, address: tuple[Any, ...]) -> None:
        """Send with srtp_t `ctx` (kept alive by `session`) on `sock` to `address`."""
        if not ctx:
            raise ValueError("no SRTP context")
        if sock.fileno() < 0:  # as PyObject_AsFileDescriptor in C
            raise ValueError("file descriptor cannot be a negative integer (-1)")
        self._ctx = _srtp_ffi.cast("srtp_t", ctx)
        self._session = session
        self._sock = sock
        self._address = address

    def unbind(self) -> None:
        self._ctx = self._session = self._sock = self._address = None

    def send(self, packet: bytes | bytearray) -> int:
        """Protect and send plain RTP: 1 sent, 0 failed (counted), -1 not bound."""
        if self._sock is None:
            return -1
        size = len(packet)
        if size > MAX_PLAIN:
            self.send_errors += 1
            return 0
        self._view[:size] = packet
        return self._send_buffer(size)

    def send_rtcp(self, packet: bytes | bytearray) -> int:
        """Protect (SRTCP) and send plain RTCP: 1 sent, 0 failed (counted), -1 not bound."""
        if self._sock is None:
            return -1
        size = len(packet)
        if size > MAX_PLAIN:
            self.send_errors += 1
            return 0
        self._view[:size] = packet
        return self._send_buffer(size, _srtp_lib.srtp_protect_rtcp)

    def _send_buffer(self, size: int, protect: Any = None) -> int:
        length = self._length
        length[0] = size
        if (protect or _srtp_lib.srtp_protect)(self._ctx, self._buffer, length) != 0:
            self.send_errors += 1
            return 0
        try:
            assert self._sock is not None
            self._sock.sendto(self._view[: length[0]], self._address)
        except OSError:  # e.g. a full socket buffer: a lost packet, as on the wire
            self.send_errors += 1
            return 0
        return 1


class Output:
    """One forwarded stream to one subscriber."""

    def __init__(self, ssrc: int) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise ValueError("ssrc out of range")
        self.ssrc = ssrc
        self.in_ssrc: int | None = None
        self.seq_offset = 0
        self.ts_offset = 0
        self.mid = b""
        self.hidden_extension_id = 14
        self.enabled = False
        self.pending = False
        self.link: Link | None = None
        self.last_seq: int | None = None
        self.last_ts = 0
        self.last_sent_at = 0.0
        self.packets = 0
        self.bytes = 0
        self.payload_bytes = 0
        self.dropped_codec = 0
        self._payload_types: frozenset[int] = frozenset()

    def set_payload_types(self, payload_types: Iterable[int]) -> None:
        self._payload_types = frozenset(int(pt) for pt in payload_types if 0 <= int(pt) < 128)

    def accepts(self, payload_type: int) -> bool:
        return payload_type in self._payload_types

    def rewrite(
        self,
        data: bytes | bytearray,
        header: RtpHeader,
        mid_at: tuple[int, int] | None,
        now: float,
        retransmission: bool,
    ) -> bytearray:
        """`data` rewritten for this subscriber (accounted), for the slow path."""
        _check(data, header, mid_at)
        buffer = bytearray(data)
        self._rewrite_into(buffer, data, header, mid_at, now, retransmission)
        return buffer

    def send(
        self,
        data: bytes | bytearray,
        header: RtpHeader,
        mid_at: tuple[int, int] | None,
        now: float,
        retransmission: bool,
    ) -> int:
        """Rewrite, protect and send: 1 sent, 0 failed (counted), -1 not bound."""
        link = self.link
        if link is None or not link.bound:
            return -1
        _check(data, header, mid_at)
        size = len(data)
        if size > MAX_PLAIN:
            link.send_errors += 1
            return 0
        view = link._view
        view[:size] = data
        self._rewrite_into(view, data, header, mid_at, now, retransmission)
        return link._send_buffer(size)

    def _rewrite_into(
        self,
        out: Any,
        data: bytes | bytearray,
        header: RtpHeader,
        mid_at: tuple[int, int] | None,
        now: float,
        retransmission: bool,
    ) -> None:
        seq = (header.sequence_number + self.seq_offset) & 0xFFFF
        ts = (header.timestamp + self.ts_offset) & 0xFFFFFFFF
        out[1] = header.payload_type | 0x80 if header.marker else header.payload_type
        _SEQ_TS_SSRC.pack_into(out, 2, seq, ts, self.ssrc)
        if mid_at is not None:
            offset, length = mid_at
            if length == len(self.mid):
                out[offset : offset + length] = self.mid
            elif header.extension_profile == 0xBEDE:
                # an ID the subscriber never negotiated: it ignores the element
                element = offset - 1
                out[element] = (self.hidden_extension_id << 4) | (out[element] & 0x0F)
            else:
                out[offset - 2] = self.hidden_extension_id
        last_seq = self.last_seq
        if not retransmission and (
            last_seq is None or (seq != last_seq and ((seq - last_seq) & 0xFFFF) < 0x8000)
        ):
            self.last_seq = seq
            self.last_ts = ts
            self.last_sent_at = now
        self.packets += 1
        self.bytes += len(data)
        self.payload_bytes += header.payload_end - header.payload_start


def _check(data: bytes | bytearray, header: RtpHeader, mid_at: tuple[int, int] | None) -> None:
    """The C module's argument checks: a header that does not describe `data` is refused."""
    size = len(data)
    if (
        not 0 <= header.payload_type <= 127
        or not 0 <= header.sequence_number <= 0xFFFF
        or header.payload_start < 12
        or not header.payload_start <= header.payload_end <= size
    ):
        raise ValueError("header does not describe this packet")
    if mid_at is not None:
        offset, length = mid_at
        if offset < 14 or length < 0 or offset + length > size:
            raise ValueError("mid_at outside the packet")


def fanout(
    data: bytes | bytearray,
    header: RtpHeader,
    mid_at: tuple[int, int] | None,
    outputs: tuple[Output, ...],
    now: float,
) -> int:
    """Send `data` to every output in steady state for it; returns how many were left pending."""
    _check(data, header, mid_at)
    pending = 0
    ssrc = header.ssrc
    for out in outputs:
        link = out.link
        if not out.enabled or out.in_ssrc != ssrc or link is None or not link.bound:
            out.pending = True
            pending += 1
            continue
        out.pending = False
        if header.payload_type not in out._payload_types:
            out.dropped_codec += 1
            continue
        out.send(data, header, mid_at, now, False)
    return pending


def unprotect(ctx: int, data: bytes | bytearray) -> bytes | None:
    """Verify and decrypt one SRTP packet; None when it does not verify."""
    size = len(data)
    if not ctx or size < 12 or size > BUFFER_SIZE:
        return None
    view = _IN_VIEW
    view[:size] = data
    length = _IN_LENGTH
    length[0] = size
    if _srtp_lib.srtp_unprotect(_srtp_ffi.cast("srtp_t", ctx), _IN, length) != 0:
        return None
    return view[: length[0]].tobytes()


# one receive buffer: the relay unprotects one packet at a time, on its event loop
_IN = _srtp_ffi.new("char[]", BUFFER_SIZE)
_IN_VIEW = memoryview(_srtp_ffi.buffer(_IN))
_IN_LENGTH = _srtp_ffi.new("int *")


def set_srtp(protect: int, unprotect_address: int, protect_rtcp: int = 0) -> None:
    """The C module needs libsrtp's entry points; Python calls pylibsrtp's binding directly."""


class Route:
    """What the receive path needs of a published track (PublishedTrack.sync_route)."""

    def __init__(self) -> None:
        self.outputs: tuple[Output, ...] = ()
        self.mid_id = 0
        self._payload_types: frozenset[int] = frozenset()

    def set_payload_types(self, payload_types: Iterable[int]) -> None:
        self._payload_types = frozenset(int(pt) for pt in payload_types if 0 <= int(pt) < 128)


class Receiver:
    """One participant's SRTP receive context and its tracks by SSRC.

    With `transport_cc_id` set (the transport-wide-cc header extension ID the participant's
    answer kept), every packet that verifies and parses — routed here or not — leaves its
    transport-wide sequence number and `now` for `drain_transport_cc` (transport_cc.py
    reports them to the sender; past TRANSPORT_CC_CAPACITY they are counted in
    `transport_cc_overflow` instead), and loses the element before anything else sees it: its
    bytes are zeroed (RFC 8285 padding), since a subscriber's BUNDLE may map the same ID to
    transport-cc (its own m-lines that publish) and take the publisher's numbers for the
    relay's."""

    def __init__(self) -> None:
        self._ctx = 0
        self._session: Any = None
        self._tracks: dict[int, Any] = {}
        self._transport_cc_id = 0
        self._transport_cc: list[tuple[int, float]] = []
        self.transport_cc_overflow = 0

    @property
    def bound(self) -> bool:
        return bool(self._ctx)

    @property
    def transport_cc_id(self) -> int:
        return self._transport_cc_id

    @transport_cc_id.setter
    def transport_cc_id(self, value: int) -> None:
        if not 0 <= value <= 255:  # as the C module's set_uint
            raise ValueError("value out of range")
        self._transport_cc_id = int(value)

    def drain_transport_cc(self) -> list[tuple[int, float]]:
        """(transport-wide sequence number, arrival) of the packets since the last drain."""
        entries = self._transport_cc
        self._transport_cc = []
        return entries

    def bind(self, ctx: int, session: Any, tracks: dict[int, Any]) -> None:
        if not ctx:
            raise ValueError("no SRTP context")
        if not isinstance(tracks, dict):
            raise TypeError("tracks must be a dict")
        self._ctx, self._session, self._tracks = ctx, session, tracks

    def unbind(self) -> None:
        self._ctx, self._session, self._tracks = 0, None, {}

    def receive(self, data: bytes | bytearray, now: float) -> Any:
        """False (not bound) | None (did not verify) | bytes (not routed here) |
        (track, bytes, pending) (forwarded to the subscribers in steady state)."""
        if not self._ctx:
            return False
        plain = unprotect(self._ctx, data)
        if plain is None:
            return None
        header = parse_rtp_header(plain)
        if header is None:
            return plain
        if self._transport_cc_id:
            found = find_extension(plain, header, self._transport_cc_id)
            if found is not None:
                offset, length = found
                if length >= 2:
                    if len(self._transport_cc) < TRANSPORT_CC_CAPACITY:
                        seq = (plain[offset] << 8) | plain[offset + 1]
                        self._transport_cc.append((seq, float(now)))
                    else:
                        self.transport_cc_overflow += 1
                plain = strip_extension(plain, header, found)
        track = self._tracks.get(header.ssrc)
        route = getattr(track, "route", None) if track is not None else None
        if not isinstance(route, Route) or header.payload_type not in route._payload_types:
            return plain
        mid_at = find_extension(plain, header, route.mid_id)
        return track, plain, fanout(plain, header, mid_at, route.outputs, now)


def parse(data: bytes, mid_id: int) -> tuple[Any, ...] | None:
    """The receive path's parser: header fields and mid_at, or None (as the C module's)."""
    header = parse_rtp_header(data)
    if header is None:
        return None
    return (*header, find_extension(data, header, mid_id))
