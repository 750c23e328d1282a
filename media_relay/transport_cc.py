"""Transport-wide congestion control feedback, the receiving end (draft-holmer-rmcat-
transport-wide-cc-extensions-01, "transport-cc": what Chromium's send-side estimator needs).

A publisher that negotiated the header extension numbers every packet it sends on the
transport (audio, video, RTX, padding probes alike) with one 16-bit transport-wide sequence
number. The relay notes when each arrived (the receive path, `fastpath.Receiver`, keeps
(sequence, arrival) pairs that Python drains) and every 50–100 ms tells the publisher, in one
RTCP Transport Feedback packet per window, which sequence numbers arrived and when:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |V=2|P|  FMT=15 |    PT=205     |           length              |
    |                     SSRC of packet sender                     |
    |                      SSRC of media source                     |
    |      base sequence number     |      packet status count      |
    |                 reference time                | fb pkt. count |
    |          packet chunk         |         packet chunk          |  ...
    |         packet chunk          |  recv delta   |  recv delta   |  ...
    |           recv delta          |  recv delta   |    padding    |

* base sequence number: the first transport-wide sequence number reported; packet status
  count: how many consecutive ones follow from it (at least one).
* reference time: 24 bits, in units of 64 ms, of an arbitrary clock; the first received
  packet's delta is counted from it. fb pkt. count: 8 bits, one more per feedback packet
  (the sender can tell a lost feedback packet).
* packet chunks (16 bits each) give one status symbol per reported sequence number:
  0 not received, 1 received with a small delta (1 byte, 0..255 × 250 µs), 2 received with a
  large or negative delta (2 bytes, signed, × 250 µs); 3 is reserved.
  - run length chunk: 0 | symbol (2 bits) | run length (13 bits);
  - status vector chunk: 1 | 0 | 14 one-bit symbols (0 / 1), or 1 | 1 | 7 two-bit symbols.
  A chunk may hold symbols past the status count; they mean nothing.
* recv deltas: one per received packet, in sequence order, each from the previous received
  packet's (quantised) arrival, the first from the reference time.
* padding to 32 bits as RFC 3550 §6.4.1 has it: P set, the last byte counts the padding.

Everything here is pure (bytes in, bytes out) except `FeedbackWindow`, which keeps one
transport's arrivals between two feedback packets. Parsers return None on anything
truncated or malformed, never raise.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from media_relay.packets import RTCP_RTPFB, RtcpItem

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTPFB_TRANSPORT_CC = 15

DELTA_TICK_US = 250
REFERENCE_TICK_US = 64_000
NOT_RECEIVED = 0
SMALL_DELTA = 1
LARGE_DELTA = 2
MAX_RUN_LENGTH = 0x1FFF
MAX_STATUS_COUNT = 0xFFFF
MIN_DELTA = -0x8000
MAX_DELTA = 0x7FFF

# One feedback packet reports at most this many sequence numbers and received packets, so
# that it stays well inside one datagram: chunks take at most 2 bytes per 7 symbols, deltas
# at most 2 bytes each: 20 + 2 * ceil(2000 / 7) + 2 * 300 + 3 = 1195 bytes at worst.
MAX_STATUS_PER_PACKET = 2000
MAX_RECEIVED_PER_PACKET = 300
# A jump forward by more than this many sequence numbers (a publisher restart, garbage) is
# not reported as that many losses: the window starts again at the first packet after it.
MAX_REPORTED_GAP = 0x2000
# Arrivals one window keeps while it cannot report (not connected yet): the rest is counted.
MAX_PENDING = 8192

_HEADER = struct.Struct("!BBHIIHHI")  # V/P/FMT, PT, length, sender, media, base, count, ref|fb
_U16 = struct.Struct("!H")
_I16 = struct.Struct("!h")


class TransportFeedback(NamedTuple):
    """One Transport Feedback packet, decoded."""

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int  # 24 bits, × 64 ms
    feedback_count: int  # 8 bits
    # one entry per reported sequence number, from base_sequence on: the receive delta in
    # 250 µs ticks, or None when the packet was not received
    deltas: tuple[int | None, ...]

    def arrivals_us(self) -> list[tuple[int, int | None]]:
        """(sequence number, arrival in µs of the reference clock or None) per entry."""
        clock = self.reference_time * REFERENCE_TICK_US
        out: list[tuple[int, int | None]] = []
        for index, delta in enumerate(self.deltas):
            seq = (self.base_sequence + index) & 0xFFFF
            if delta is None:
                out.append((seq, None))
            else:
                clock += delta * DELTA_TICK_US
                out.append((seq, clock))
        return out


def status_symbol(delta: int | None) -> int:
    if delta is None:
        return NOT_RECEIVED
    return SMALL_DELTA if 0 <= delta <= 0xFF else LARGE_DELTA


def encode_chunks(symbols: Sequence[int]) -> bytes:
    """Packet status chunks for `symbols` (greedy: runs of 14 or more, and a run that ends the
    list, as run length chunks; else a one-bit vector when the next 14 hold no large delta,
    else a two-bit vector of 7)."""
    out = bytearray()
    count = len(symbols)
    index = 0
    while index < count:
        symbol = symbols[index]
        run = 1
        while index + run < count and symbols[index + run] == symbol and run < MAX_RUN_LENGTH:
            run += 1
        if run >= 14 or index + run == count:
            out += _U16.pack((symbol << 13) | run)
            index += run
            continue
        window = symbols[index : index + 14]
        if max(window) <= SMALL_DELTA:
            chunk = 0x8000
            for position, value in enumerate(window):
                chunk |= value << (13 - position)
            out += _U16.pack(chunk)
            index += len(window)
            continue
        window = symbols[index : index + 7]
        chunk = 0xC000
        for position, value in enumerate(window):
            chunk |= value << (12 - 2 * position)
        out += _U16.pack(chunk)
        index += len(window)
    return bytes(out)


def decode_chunks(
    data: bytes | bytearray, pos: int, end: int, count: int
) -> tuple[list[int], int] | None:
    """`count` status symbols from the chunks at data[pos:end], and where the chunks end;
    None when they run out or use the reserved symbol."""
    symbols: list[int] = []
    while len(symbols) < count:
        if pos + 2 > end:
            return None
        chunk = (data[pos] << 8) | data[pos + 1]
        pos += 2
        wanted = count - len(symbols)
        if not chunk & 0x8000:
            symbol = (chunk >> 13) & 0x03
            if symbol == 3:
                return None
            symbols.extend([symbol] * min(chunk & MAX_RUN_LENGTH, wanted))
        elif not chunk & 0x4000:
            for position in range(min(14, wanted)):
                symbols.append((chunk >> (13 - position)) & 0x01)
        else:
            for position in range(min(7, wanted)):
                symbol = (chunk >> (12 - 2 * position)) & 0x03
                if symbol == 3:
                    return None
                symbols.append(symbol)
    return symbols, pos


def build_transport_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    base_sequence: int,
    reference_time: int,
    feedback_count: int,
    deltas: Sequence[int | None],
) -> bytes:
    """One Transport Feedback packet (RTPFB, FMT 15) reporting `deltas` (see
    TransportFeedback.deltas) from `base_sequence` on."""
    if not deltas or len(deltas) > MAX_STATUS_COUNT:
        raise ValueError("a feedback packet reports 1 to 65535 sequence numbers")
    symbols = [status_symbol(delta) for delta in deltas]
    body = bytearray(encode_chunks(symbols))
    for delta in deltas:
        if delta is None:
            continue
        if 0 <= delta <= 0xFF:
            body.append(delta)
        elif MIN_DELTA <= delta <= MAX_DELTA:
            body += _I16.pack(delta)
        else:
            raise ValueError(f"receive delta {delta} does not fit 16 bits")
    size = 20 + len(body)
    padding = -size % 4
    first = 0x80 | RTPFB_TRANSPORT_CC
    if padding:
        first |= 0x20
        body += bytes(padding - 1) + bytes([padding])
    header = _HEADER.pack(
        first,
        RTCP_RTPFB,
        (size + padding) // 4 - 1,
        sender_ssrc & 0xFFFFFFFF,
        media_ssrc & 0xFFFFFFFF,
        base_sequence & 0xFFFF,
        len(deltas),
        ((reference_time & 0xFFFFFF) << 8) | (feedback_count & 0xFF),
    )
    return header + bytes(body)


def parse_transport_feedback(data: bytes | bytearray, item: RtcpItem) -> TransportFeedback | None:
    """Decode the Transport Feedback packet `item` of `data` (from packets.iter_rtcp)."""
    start, end = item.start, item.end
    if (
        item.packet_type != RTCP_RTPFB
        or item.subtype != RTPFB_TRANSPORT_CC
        or end > len(data)
        or end - start < 20
    ):
        return None
    if data[start] & 0x20:  # RFC 3550 padding: the last byte counts it
        padding = data[end - 1]
        if padding == 0 or end - padding < start + 20:
            return None
        end -= padding
    _, _, _, sender, media, base, count, reference = _HEADER.unpack_from(data, start)
    if count == 0:
        return None
    decoded = decode_chunks(data, start + 20, end, count)
    if decoded is None:
        return None
    symbols, pos = decoded
    deltas: list[int | None] = []
    for symbol in symbols:
        if symbol == NOT_RECEIVED:
            deltas.append(None)
        elif symbol == SMALL_DELTA:
            if pos + 1 > end:
                return None
            deltas.append(data[pos])
            pos += 1
        else:
            if pos + 2 > end:
                return None
            deltas.append(_I16.unpack_from(data, pos)[0])
            pos += 2
    return TransportFeedback(sender, media, base, reference >> 8, reference & 0xFF, tuple(deltas))


class FeedbackWindow:
    """One transport's arrivals since its last feedback packet, and the packets that report
    them. Sequence numbers are unwrapped (16 bits → an ever-growing count) against the
    highest one seen; a packet whose number an earlier feedback already covered (it was
    reported lost) is counted `late` and left out — the sender has made up its mind."""

    def __init__(self) -> None:
        self._arrivals: dict[int, int] = {}  # unwrapped sequence number -> arrival in µs
        self._highest: int | None = None
        self._next: int | None = None  # the first number the next feedback reports
        self._feedback_count = 0
        self.packets = 0  # distinct packets recorded
        self.late = 0
        self.duplicates = 0
        self.overflow = 0
        self.feedback_packets = 0

    @property
    def pending(self) -> int:
        return len(self._arrivals)

    def add(self, sequence: int, arrival: float) -> None:
        """Packet `sequence` (16 bits) arrived at `arrival` (seconds, monotonic)."""
        sequence &= 0xFFFF
        highest = self._highest
        if highest is None:
            unwrapped = sequence
            self._highest = unwrapped
        else:
            step = (sequence - highest) & 0xFFFF
            if step >= 0x8000:
                step -= 0x10000
            unwrapped = highest + step
            if step > 0:
                self._highest = unwrapped
        if self._next is not None and unwrapped < self._next:
            self.late += 1
            return
        if unwrapped in self._arrivals:
            self.duplicates += 1
            return
        if len(self._arrivals) >= MAX_PENDING:
            self.overflow += 1
            return
        self._arrivals[unwrapped] = int(arrival * 1_000_000)
        self.packets += 1

    def extend(self, entries: Iterable[tuple[int, float]]) -> None:
        for sequence, arrival in entries:
            self.add(sequence, arrival)

    def build(self, sender_ssrc: int, media_ssrc: int) -> list[bytes]:
        """Feedback packets reporting everything since the last ones (usually one; none when
        nothing arrived), from the first number not reported yet to the highest arrived."""
        arrivals = self._arrivals
        if not arrivals:
            return []
        received = sorted(arrivals)
        base = received[0] if self._next is None else self._next
        if received[0] - base > MAX_REPORTED_GAP:
            base = received[0]
        last = received[-1]
        out: list[bytes] = []
        index = 0  # received[index]: the next received packet to report
        while base <= last:
            reference = arrivals[received[index]] // REFERENCE_TICK_US
            clock = reference * REFERENCE_TICK_US
            deltas: list[int | None] = []
            count = 0
            sequence = base
            while sequence <= last and len(deltas) < MAX_STATUS_PER_PACKET:
                arrival = arrivals.get(sequence)
                if arrival is None:
                    deltas.append(None)
                else:
                    ticks = (arrival - clock + DELTA_TICK_US // 2) // DELTA_TICK_US
                    full = count >= MAX_RECEIVED_PER_PACKET
                    if count and (full or not MIN_DELTA <= ticks <= MAX_DELTA):
                        break  # the next packet goes on, from a reference time of its own
                    clock += ticks * DELTA_TICK_US
                    deltas.append(ticks)
                    count += 1
                    index += 1
                sequence += 1
            out.append(
                build_transport_feedback(
                    sender_ssrc, media_ssrc, base, reference, self._feedback_count, deltas
                )
            )
            self._feedback_count = (self._feedback_count + 1) & 0xFF
            base = sequence
        self._next = last + 1
        arrivals.clear()
        self.feedback_packets += len(out)
        return out
