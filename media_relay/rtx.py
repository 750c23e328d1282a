"""RTX (RFC 4588) state of the relay: retransmissions it sends to a subscriber on the stream's
RTX SSRC, and the bookkeeping to recognise a publisher's RTX packets.

Sending: when a subscriber's answer kept RTX for a forwarded video stream, a NACKed packet is
resent as an RTX packet — RTX SSRC of the relay's sender for that m-line (announced in its
offer's `a=ssrc-group:FID`), the RTX payload type paired (apt) with the packet's payload
type, RTX sequence numbers of its own, and the *outgoing* sequence number as OSN. Receivers
then tell retransmissions from originals (Chromium's loss and bandwidth estimates do).
Receiving: a publisher's RTX packets are unwrapped by the participant (packets.unwrap_rtx)
and handled like originals.
"""

from __future__ import annotations

import random
from typing import Any

from aiortc.sdp import SessionDescription

from media_relay import packets
from media_relay.packets import RtpHeader


class RtxSender:
    """RTX towards one subscriber on one m-line; lives as long as the m-line's sender."""

    __slots__ = ("packets", "payload_types", "sequence", "ssrc")

    def __init__(self, ssrc: int, payload_types: dict[int, int]) -> None:
        self.ssrc = ssrc
        # associated payload type -> RTX payload type (the reverse of the SDP's apt=)
        self.payload_types = payload_types
        self.sequence = random.getrandbits(15)  # RFC 3550 §5.1: random initial value
        self.packets = 0

    def wrap(self, packet: bytes | bytearray, header: RtpHeader) -> bytearray | None:
        """The RTX packet for an outgoing (already rewritten) packet; None when the subscriber
        has no RTX payload type for its payload type."""
        payload_type = self.payload_types.get(header.payload_type)
        if payload_type is None:
            return None
        rtx = packets.build_rtx(packet, header, payload_type, self.sequence, self.ssrc)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets += 1
        return rtx


def negotiated_rtx(
    current: RtxSender | None, ssrc: int, rtx_to_apt: dict[int, int]
) -> RtxSender | None:
    """The RTX state after an answer: None if the answer refused RTX; the current state kept
    when the SSRC stays (its sequence numbers must go on, not restart)."""
    if not rtx_to_apt:
        return None
    by_apt = {apt: rtx for rtx, apt in rtx_to_apt.items()}
    if current is not None and current.ssrc == ssrc:
        current.payload_types = by_apt
        return current
    return RtxSender(ssrc, by_apt)


def route_rtx_to_receivers(pc: Any) -> int:
    """For an aiortc 1.16 *client* of the relay: deliver RTX on every m-line.

    aiortc routes an RTP packet by SSRC, and by payload type only when exactly one receiver
    has it; it never registers a receiver's RTX SSRC. With two video m-lines (camera and
    document) both have the RTX payload type, so it drops every RTX packet and a lost packet
    stays lost. The remote description names each m-line's RTX SSRC (a=ssrc-group:FID):
    register it for that m-line's receiver, which then unwraps it (it knows the pairing).
    Call after each setRemoteDescription; returns how many SSRCs it registered.
    """
    remote = pc.remoteDescription
    if remote is None:
        return 0
    by_mid = {m.rtp.muxId: m for m in SessionDescription.parse(remote.sdp).media if m.rtp.muxId}
    registered = 0
    for transceiver in pc.getTransceivers():
        media = by_mid.get(transceiver.mid or "")
        router = getattr(transceiver.receiver.transport, "_rtp_router", None)
        if media is None or router is None:
            continue
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) == 2:
                router.ssrc_table[group.items[1]] = transceiver.receiver
                registered += 1
    return registered
