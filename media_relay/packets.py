"""RTP and RTCP on bytes: header fields the relay reads and rewrites, and feedback it writes.

Nothing here builds packet objects: the hot path reads a header into a tuple, rewrites a
bytearray in place with `struct.pack_into`, and hands bytes on. Every parser returns None
(or skips the item) on truncated or malformed input instead of raising, so garbage from a
participant is dropped and counted by the caller.

References: RTP RFC 3550 §5.1, header extensions RFC 8285 §4, RTCP RFC 3550 §6,
feedback RFC 4585 §6 (NACK, PLI), RFC 5104 §4.3.1 (FIR), retransmission RFC 4588 §4 (RTX),
REMB draft-alvestrand-rmcat-remb-03, audio level RFC 6464, VP8 payload RFC 7741 §4,
H.264 payload RFC 6184 §5.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

RTP_HEADER_SIZE = 12
RTP_VERSION = 2

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_RTPFB = 205
RTCP_PSFB = 206
RTPFB_NACK = 1
PSFB_PLI = 1
PSFB_FIR = 4
PSFB_AFB = 15  # application layer feedback: REMB

_HDR = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_RTCP_HDR = struct.Struct("!BBH")
_SR_BODY = struct.Struct("!IQIII")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_FB_HDR = struct.Struct("!BBHII")


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: RTCP packet types 192–223 share the second byte with RTP's M+PT."""
    return len(data) >= 2 and 192 <= data[1] <= 223


class RtpHeader(NamedTuple):
    """What the relay needs from an RTP header; offsets index the original buffer."""

    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    # Header extension block (RFC 8285): profile and [start, end) of its elements, or 0s.
    extension_profile: int
    extension_start: int
    extension_end: int
    payload_start: int
    payload_end: int  # excludes padding


def parse_rtp_header(data: bytes | bytearray) -> RtpHeader | None:
    """Read the fixed header, CSRCs, extension block and padding; None if malformed."""
    size = len(data)
    if size < RTP_HEADER_SIZE:
        return None
    first, second, seq, ts, ssrc = _HDR.unpack_from(data, 0)
    if first >> 6 != RTP_VERSION:
        return None
    offset = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    ext_profile = ext_start = ext_end = 0
    if first & 0x10:
        if offset + 4 > size:
            return None
        ext_profile, ext_words = struct.unpack_from("!HH", data, offset)
        ext_start = offset + 4
        ext_end = ext_start + 4 * ext_words
        offset = ext_end
    if offset > size:
        return None
    end = size
    if first & 0x20:
        padding = data[size - 1]
        if padding == 0 or offset + padding > size:
            return None
        end = size - padding
    return RtpHeader(
        bool(second & 0x80),
        second & 0x7F,
        seq,
        ts,
        ssrc,
        ext_profile,
        ext_start,
        ext_end,
        offset,
        end,
    )


def find_extension(
    data: bytes | bytearray, header: RtpHeader, extension_id: int
) -> tuple[int, int] | None:
    """(offset, length) of a header extension element's value, or None (RFC 8285 §4.2, §4.3)."""
    if not extension_id or not header.extension_end:
        return None
    pos = header.extension_start
    end = header.extension_end
    if header.extension_profile == 0xBEDE:
        while pos < end:
            byte = data[pos]
            if byte == 0:  # padding
                pos += 1
                continue
            element_id = byte >> 4
            length = (byte & 0x0F) + 1
            if element_id == 15:  # reserved: stop parsing
                return None
            if pos + 1 + length > end:
                return None
            if element_id == extension_id:
                return pos + 1, length
            pos += 1 + length
        return None
    if header.extension_profile & 0xFFF0 == 0x1000:
        while pos < end:
            element_id = data[pos]
            if element_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                return None
            length = data[pos + 1]
            if pos + 2 + length > end:
                return None
            if element_id == extension_id:
                return pos + 2, length
            pos += 2 + length
    return None


def strip_extension(data: bytes | bytearray, header: RtpHeader, found: tuple[int, int]) -> bytes:
    """`data` with the header extension element at `found` (find_extension's (offset, length)
    of its value) zeroed, header included: RFC 8285 padding, at the same offsets."""
    offset, length = found
    start = offset - (1 if header.extension_profile == 0xBEDE else 2)
    return bytes(data[:start]) + bytes(offset + length - start) + bytes(data[offset + length :])


def retag_extension(data: bytearray, header: RtpHeader, value_offset: int, new_id: int) -> None:
    """Change the ID of the element whose value starts at value_offset (found by find_extension).

    Used to hide a MID the subscriber would misread: an ID it never negotiated is ignored.
    """
    if header.extension_profile == 0xBEDE:
        pos = value_offset - 1
        data[pos] = (new_id << 4) | (data[pos] & 0x0F)
    else:
        data[value_offset - 2] = new_id


def audio_level(data: bytes | bytearray, header: RtpHeader, extension_id: int) -> int | None:
    """RFC 6464 §3: level in −dBov (0 loudest … 127 silence), or None when absent."""
    found = find_extension(data, header, extension_id)
    if found is None or found[1] < 1:
        return None
    return data[found[0]] & 0x7F


def rewrite_rtp(
    buffer: bytearray, payload_type: int, marker: bool, seq: int, ts: int, ssrc: int
) -> None:
    """Overwrite PT/marker, sequence number, timestamp and SSRC in place."""
    buffer[1] = payload_type | (0x80 if marker else 0)
    _SEQ_TS_SSRC.pack_into(buffer, 2, seq, ts, ssrc)


# ----------------------------------------------------------------------------- RTX (RFC 4588)


def build_rtx(
    packet: bytes | bytearray, header: RtpHeader, payload_type: int, sequence: int, ssrc: int
) -> bytearray:
    """RFC 4588 §4: the retransmission of `packet`; `header` gives its layout (offsets).

    Same marker, timestamp, CSRCs and header extensions; RTX payload type, sequence number and
    SSRC; the payload is the original sequence number (OSN, 2 bytes) then the original payload.
    Marker, timestamp and OSN are read from `packet` itself (a packet already rewritten for a
    subscriber carries its outgoing values there). Padding is not carried over.
    """
    start = header.payload_start
    out = bytearray(packet[:start])
    out[0] &= 0xDF  # no padding
    out[1] = (out[1] & 0x80) | (payload_type & 0x7F)
    _U16.pack_into(out, 2, sequence & 0xFFFF)
    _U32.pack_into(out, 8, ssrc & 0xFFFFFFFF)
    out += packet[2:4]  # OSN
    out += packet[start : header.payload_end]
    return out


def unwrap_rtx(
    packet: bytes | bytearray, header: RtpHeader, payload_type: int, ssrc: int
) -> bytes | None:
    """RFC 4588 §4: the original packet inside an RTX packet, or None if it has no OSN.

    Restores the associated payload type `payload_type`, the sequence number from the OSN and
    the original SSRC `ssrc`; keeps marker, timestamp, CSRCs and header extensions.
    """
    start = header.payload_start
    if header.payload_end - start < 2:
        return None
    out = bytearray(packet[:start])
    out[0] &= 0xDF  # no padding
    out[1] = (0x80 if header.marker else 0) | (payload_type & 0x7F)
    osn = (packet[start] << 8) | packet[start + 1]
    _SEQ_TS_SSRC.pack_into(out, 2, osn, header.timestamp, ssrc & 0xFFFFFFFF)
    out += packet[start + 2 : header.payload_end]
    return bytes(out)


def is_vp8_keyframe_start(data: bytes | bytearray, start: int, end: int) -> bool:
    """RFC 7741 §4.2–4.3: first packet of a VP8 key frame (S=1, PID=0, P bit clear)."""
    if start >= end:
        return False
    descriptor = data[start]
    if not descriptor & 0x10 or descriptor & 0x07:
        return False
    pos = start + 1
    if descriptor & 0x80:
        if pos >= end:
            return False
        extension = data[pos]
        pos += 1
        if extension & 0x80:  # I: picture id, 7 or 15 bits
            if pos >= end:
                return False
            pos += 2 if data[pos] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            pos += 1
        if extension & 0x30:  # T or K: TID/KEYIDX
            pos += 1
    if pos >= end:
        return False
    return not data[pos] & 0x01


_H264_KEY_NALS = frozenset((5, 7))  # IDR slice, sequence parameter set


def is_h264_keyframe_start(data: bytes | bytearray, start: int, end: int) -> bool:
    """RFC 6184 §5.6–5.8: a packet carrying (the start of) an IDR or SPS NAL unit."""
    if start >= end:
        return False
    nal_type = data[start] & 0x1F
    if 1 <= nal_type <= 23:
        return nal_type in _H264_KEY_NALS
    if nal_type == 24:  # STAP-A: 16-bit size, NAL unit, repeated
        pos = start + 1
        while pos + 2 < end:
            size = (data[pos] << 8) | data[pos + 1]
            if size == 0 or pos + 2 + size > end:
                return False
            if data[pos + 2] & 0x1F in _H264_KEY_NALS:
                return True
            pos += 2 + size
        return False
    if nal_type == 28:  # FU-A: start bit and original type in the FU header
        if start + 1 >= end:
            return False
        fu_header = data[start + 1]
        return bool(fu_header & 0x80) and fu_header & 0x1F in _H264_KEY_NALS
    return False


# ----------------------------------------------------------------------------- RTCP


class RtcpItem(NamedTuple):
    """One packet of a compound RTCP datagram: header fields and [start, end) of the packet."""

    packet_type: int
    subtype: int  # RC, SC or FMT: the 5 bits after V and P
    start: int
    end: int


def iter_rtcp(data: bytes | bytearray) -> Iterator[RtcpItem]:
    """Split a compound RTCP datagram (RFC 3550 §6.1); stops at the first malformed packet."""
    pos = 0
    size = len(data)
    while pos + 4 <= size:
        first, packet_type, words = _RTCP_HDR.unpack_from(data, pos)
        if first >> 6 != RTP_VERSION:
            return
        end = pos + 4 * (words + 1)
        if end > size:
            return
        yield RtcpItem(packet_type, first & 0x1F, pos, end)
        pos = end


class SenderReport(NamedTuple):
    ssrc: int
    ntp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int


def parse_sender_report(data: bytes | bytearray, item: RtcpItem) -> SenderReport | None:
    if item.end - item.start < 28:
        return None
    return SenderReport(*_SR_BODY.unpack_from(data, item.start + 4))


class ReportBlock(NamedTuple):
    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int


def parse_report_blocks(data: bytes | bytearray, item: RtcpItem) -> list[ReportBlock]:
    """Report blocks of an SR (after the sender info) or RR; truncated blocks are skipped."""
    offset = item.start + (28 if item.packet_type == RTCP_SR else 8)
    blocks = []
    for _ in range(item.subtype):
        if offset + 24 > item.end:
            break
        ssrc, loss, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = loss & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr))
        offset += 24
    return blocks


def feedback_media_ssrc(data: bytes | bytearray, item: RtcpItem) -> int | None:
    """Media source SSRC of an RTPFB/PSFB packet (RFC 4585 §6.1)."""
    if item.end - item.start < 12:
        return None
    return int(_U32.unpack_from(data, item.start + 8)[0])


def parse_nack(data: bytes | bytearray, item: RtcpItem) -> list[int]:
    """RFC 4585 §6.2.1: lost sequence numbers from PID + BLP pairs."""
    lost: list[int] = []
    for offset in range(item.start + 12, item.end - 3, 4):
        pid, blp = struct.unpack_from("!HH", data, offset)
        lost.append(pid)
        for bit in range(16):
            if blp & (1 << bit):
                lost.append((pid + bit + 1) & 0xFFFF)
    return lost


def parse_fir_ssrcs(data: bytes | bytearray, item: RtcpItem) -> list[int]:
    """RFC 5104 §4.3.1.1: the FCI entries name the media sources asked for a key frame."""
    return [
        int(_U32.unpack_from(data, offset)[0]) for offset in range(item.start + 12, item.end - 7, 8)
    ]


def parse_fir(data: bytes | bytearray, item: RtcpItem) -> list[tuple[int, int]]:
    """RFC 5104 §4.3.1.1: (media SSRC, command sequence number) of each complete FCI entry.

    The sequence number lets a sender tell a new request from a repeated one (§4.3.1.2)."""
    return [
        (int(_U32.unpack_from(data, offset)[0]), data[offset + 4])
        for offset in range(item.start + 12, item.end - 7, 8)
    ]


def parse_remb(data: bytes | bytearray, item: RtcpItem) -> tuple[int, list[int]] | None:
    """REMB (draft-alvestrand-rmcat-remb §2.2): (bitrate in bit/s, SSRCs it applies to)."""
    start = item.start + 12
    if item.end - start < 8 or data[start : start + 4] != b"REMB":
        return None
    count = data[start + 4]
    exponent = data[start + 5] >> 2
    mantissa = ((data[start + 5] & 0x03) << 16) | _U16.unpack_from(data, start + 6)[0]
    ssrcs = []
    for index in range(count):
        offset = start + 8 + 4 * index
        if offset + 4 > item.end:
            return None
        ssrcs.append(int(_U32.unpack_from(data, offset)[0]))
    return mantissa << exponent, ssrcs


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """RFC 4585 §6.3.1: Picture Loss Indication."""
    return _FB_HDR.pack(0x80 | PSFB_PLI, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, media_ssrc: int, sequence: int) -> bytes:
    """RFC 5104 §4.3.1: Full Intra Request, one FCI entry."""
    return _FB_HDR.pack(0x80 | PSFB_FIR, RTCP_PSFB, 4, sender_ssrc, 0) + struct.pack(
        "!IB3x", media_ssrc, sequence & 0xFF
    )


def build_nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """RFC 4585 §6.2.1: Generic NACK; lost sequence numbers packed into PID/BLP pairs."""
    pairs: list[tuple[int, int]] = []
    for seq in sorted(set(lost)):
        if pairs:
            pid, blp = pairs[-1]
            distance = (seq - pid) & 0xFFFF
            if 1 <= distance <= 16:
                pairs[-1] = (pid, blp | (1 << (distance - 1)))
                continue
        pairs.append((seq, 0))
    fci = b"".join(struct.pack("!HH", pid, blp) for pid, blp in pairs)
    header = _FB_HDR.pack(0x80 | RTPFB_NACK, RTCP_RTPFB, 2 + len(pairs), sender_ssrc, media_ssrc)
    return header + fci


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    bitrate = max(0, int(bitrate))
    exponent = 0
    while bitrate >= (1 << 18):
        bitrate >>= 1
        exponent += 1
    fci = b"REMB" + struct.pack(
        "!BBH", len(ssrcs), (exponent << 2) | (bitrate >> 16), bitrate & 0xFFFF
    )
    fci += b"".join(struct.pack("!I", ssrc) for ssrc in ssrcs)
    return _FB_HDR.pack(0x80 | PSFB_AFB, RTCP_PSFB, 2 + len(fci) // 4, sender_ssrc, 0) + fci


def build_sender_report(
    ssrc: int, ntp: int, rtp_timestamp: int, packet_count: int, octet_count: int
) -> bytes:
    """RFC 3550 §6.4.1 with no report blocks."""
    return _RTCP_HDR.pack(0x80, RTCP_SR, 6) + _SR_BODY.pack(
        ssrc,
        ntp & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )


def build_receiver_report(sender_ssrc: int, blocks: list[ReportBlock]) -> bytes:
    body = b"".join(
        _REPORT_BLOCK.pack(
            block.ssrc,
            (block.fraction_lost << 24) | (block.packets_lost & 0xFFFFFF),
            block.highest_sequence,
            block.jitter,
            block.lsr,
            block.dlsr,
        )
        for block in blocks
    )
    return (
        _RTCP_HDR.pack(0x80 | len(blocks), RTCP_RR, 1 + 6 * len(blocks))
        + _U32.pack(sender_ssrc)
        + body
    )
