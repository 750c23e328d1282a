"""The codecs the relay negotiates: Opus, VP8 and H.264 constrained baseline — never transcoded.

Both directions of every connection are offered the same list, in the same order, by the same
aiortc, so payload types and header extension IDs agree on all legs; a subscriber's answer says
which of them it can take, and a stream whose codec it refused is not forwarded to it.

Convergence (`converge`): a publisher is renegotiated onto a video codec every current
subscriber of its track accepts. The room computes, per published video track, the codecs in
every subscriber's answer, intersected with what the publisher's answer to an unrestricted
offer listed, in the relay's order (VP8, then H.264); when the publisher's latest answer
allows a codec outside that set, its next offer lists only the set (setCodecPreferences on
its receiving transceiver), so whatever it sends, every subscriber can decode. An empty set
is a conflict: reported, never forced. The relay does not widen again by itself when the set
grows back (a subscriber left): each switch costs every subscriber a key-frame wait, and the
narrower codec still plays everywhere.

Video is also offered RTX (RFC 4588: retransmissions on their own SSRC and payload type, one
RTX payload type per codec, paired by `apt`) and `ccm fir` feedback (RFC 5104 §7.1); each
answer says per m-line whether the peer takes them.

The video m-lines the relay receives on (a publisher's cameras and screens) also offer
transport-wide congestion control (`with_transport_cc`: the header extension at
TRANSPORT_CC_ID and `a=rtcp-fb:<pt> transport-cc`): a browser that keeps them numbers its
video packets and estimates its uplink from the relay's Transport Feedback (transport_cc.py).
Audio is left out on purpose (see `with_transport_cc`). The m-lines the relay sends
on do not: the relay neither numbers forwarded packets nor reads feedback about them, so
subscribers' browsers keep sending REMB. (The receive path blanks the publisher's element in
every packet: a subscriber that publishes too has the same ID in its BUNDLE, and seeing
transport-wide numbers on what it receives, Chromium would send Transport Feedback about them
instead of REMB.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecCapability,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.sdp import SessionDescription

from media_relay.transport_cc import TRANSPORT_CC_URI

H264_CONSTRAINED_BASELINE = "42e01f"
FIR_FEEDBACK = RTCRtcpFeedback(type="ccm", parameter="fir")
TRANSPORT_CC_FEEDBACK = RTCRtcpFeedback(type="transport-cc")
# The transport-wide-cc extension's ID in the relay's offers: one the offers use for nothing
# else (aiortc: 1 MID, 2 audio level, 3 abs-send-time), the same on every m-line (BUNDLE).
TRANSPORT_CC_ID = 5
RECEIVING = ("recvonly", "sendrecv")  # an offer's directions in which the relay receives
# the relay's order of preference for video (codec_key names)
VIDEO_PREFERENCE = ("vp8", "h264")


def preferred_codecs(
    kind: str, rtx: bool = False, only: Collection[str] | None = None
) -> list[RTCRtpCodecCapability]:
    """Opus for audio; VP8 then H.264 constrained baseline (packetization-mode 1) for video.

    With `rtx`, video also offers RTX: aiortc's setCodecPreferences takes the one RTX
    capability and createOffer pairs an RTX payload type (apt=) with each chosen codec and
    announces the sender's RTX SSRC (a=ssrc-group:FID). `only` (codec_key names) narrows
    video to those codecs, for a publisher that must send one every subscriber takes.
    """
    chosen: list[RTCRtpCodecCapability] = []
    for codec in RTCRtpSender.getCapabilities(kind).codecs:
        name = codec.mimeType.lower()
        if only is not None and kind == "video" and not is_rtx(codec):
            if codec_key(codec) not in only:
                continue
        if name == "audio/opus" or name == "video/vp8":
            chosen.append(codec)
        elif (
            name == "video/h264"
            and str(codec.parameters.get("profile-level-id", "")).lower()
            == H264_CONSTRAINED_BASELINE
            and str(codec.parameters.get("packetization-mode", "0")) == "1"
        ):
            chosen.append(codec)
        elif name == "video/rtx" and rtx:
            chosen.append(codec)
    return chosen


def codec_key(codec: Any) -> str:
    """'opus', 'vp8', 'h264', … from an aiortc codec description."""
    return str(codec.mimeType).split("/", 1)[-1].lower()


def is_rtx(codec: Any) -> bool:
    return codec_key(codec) == "rtx"


def rtx_payload_types(codecs: list[Any]) -> dict[int, int]:
    """RTX payload type -> its associated (apt) payload type, from an m-line's codecs; an RTX
    payload type whose apt is not among the m-line's own codecs is left out."""
    media = {codec.payloadType for codec in codecs if not is_rtx(codec)}
    pairs: dict[int, int] = {}
    for codec in codecs:
        if not is_rtx(codec) or codec.payloadType is None:
            continue
        try:
            apt = int(codec.parameters.get("apt"))
        except (TypeError, ValueError):  # absent or not a number: not usable
            continue
        if apt in media:
            pairs[int(codec.payloadType)] = apt
    return pairs


def fir_payload_types(codecs: list[Any]) -> frozenset[int]:
    """Payload types whose `a=rtcp-fb` lines kept `ccm fir` (RFC 5104 §7.1)."""
    return frozenset(
        int(codec.payloadType)
        for codec in codecs
        if codec.payloadType is not None
        and not is_rtx(codec)
        and any(
            str(fb.type).lower() == "ccm" and str(fb.parameter or "").lower() == "fir"
            for fb in codec.rtcpFeedback
        )
    )


def with_fir_feedback(sdp: str) -> str:
    """Add `a=rtcp-fb:<pt> ccm fir` to each video codec of an offer (aiortc cannot be told to
    offer it: its answers keep only the feedback it knows itself, which never includes FIR).

    Goes through aiortc's own parser and writer, as setLocalDescription does with it anyway.
    """
    description = SessionDescription.parse(sdp)
    for media in description.media:
        if media.kind != "video":
            continue
        for codec in media.rtp.codecs:
            if not is_rtx(codec) and FIR_FEEDBACK not in codec.rtcpFeedback:
                codec.rtcpFeedback.append(FIR_FEEDBACK)
    return str(description)


def with_transport_cc(sdp: str) -> str:
    """Offer transport-wide congestion control on the video m-lines the relay receives on
    (recvonly in its offer): `a=extmap:TRANSPORT_CC_ID <transport-wide-cc-01>` and
    `a=rtcp-fb:<pt> transport-cc` for each of their codecs but RTX.

    Never on audio: libwebrtc makes an audio sender whose packets carry transport-wide numbers
    part of the bandwidth allocation, so audio and every packet's overhead come out of the
    estimate, which the subscribers' REMB caps. A Chromium subscriber's REMB counts the video
    it receives, and it never rises above 1.5 × that + 10 kbit/s: at about 120 kbit/s, with
    ~60 kbit/s of it going to audio and overhead, the video left can no longer lift the REMB,
    and the call stays there (the one-direction-stuck-low fault, README). Without the
    extension on audio the estimate goes to video alone, as with REMB only."""
    description = SessionDescription.parse(sdp)
    for media in description.media:
        if media.kind != "video" or media.direction not in RECEIVING:
            continue
        extensions = media.rtp.headerExtensions
        if not any(ext.uri == TRANSPORT_CC_URI for ext in extensions):
            if any(ext.id == TRANSPORT_CC_ID for ext in extensions):
                continue  # never two meanings for one ID
            extensions.append(
                RTCRtpHeaderExtensionParameters(id=TRANSPORT_CC_ID, uri=TRANSPORT_CC_URI)
            )
        for codec in media.rtp.codecs:
            if not is_rtx(codec) and TRANSPORT_CC_FEEDBACK not in codec.rtcpFeedback:
                codec.rtcpFeedback.append(TRANSPORT_CC_FEEDBACK)
    return str(description)


def transport_cc_id(media: Any) -> int:
    """The transport-wide-cc extension ID an answer's m-line kept (0: none)."""
    for ext in media.rtp.headerExtensions:
        if ext.uri == TRANSPORT_CC_URI:
            return int(ext.id)
    return 0


@dataclass(frozen=True)
class Convergence:
    """What to do about one published video track's codec (see `converge`)."""

    allowed: tuple[str, ...]  # codecs the publisher can send and every subscriber takes
    conflict: bool  # no such codec: the publisher is left as it is
    narrow_to: tuple[str, ...] | None  # renegotiate the publisher offering only these


def converge(
    capable: Iterable[str], answered: Iterable[str], accepted: Iterable[Collection[str]]
) -> Convergence:
    """`capable`: the codecs the publisher answered an unrestricted offer with; `answered`:
    those of its latest answer (it may send any of them); `accepted`: per subscriber, the
    codecs of its answer. Narrow only when the publisher might send something a subscriber
    cannot take; never widen (see the module docstring)."""
    can = set(capable)
    subscribers = [set(names) for names in accepted]
    allowed = tuple(
        name
        for name in VIDEO_PREFERENCE
        if name in can and all(name in names for names in subscribers)
    )
    if not subscribers:
        return Convergence(allowed, False, None)
    if not allowed:
        return Convergence(allowed, True, None)
    if set(answered) <= set(allowed):
        return Convergence(allowed, False, None)
    return Convergence(allowed, False, allowed)
