"""The codecs the relay negotiates: Opus, VP8 and H.264 constrained baseline — never transcoded.

Both directions of every connection are offered the same list, in the same order, by the same
aiortc, so payload types and header extension IDs agree on all legs; a subscriber's answer says
which of them it can take, and a stream whose codec it refused is not forwarded to it.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

H264_CONSTRAINED_BASELINE = "42e01f"


def preferred_codecs(kind: str) -> list[RTCRtpCodecCapability]:
    """Opus for audio; VP8 then H.264 constrained baseline (packetization-mode 1) for video.

    RTX is left out: the relay resends NACKed packets on the original SSRC (RFC 4588 is optional).
    """
    chosen: list[RTCRtpCodecCapability] = []
    for codec in RTCRtpSender.getCapabilities(kind).codecs:
        name = codec.mimeType.lower()
        if name == "audio/opus" or name == "video/vp8":
            chosen.append(codec)
        elif (
            name == "video/h264"
            and str(codec.parameters.get("profile-level-id", "")).lower()
            == H264_CONSTRAINED_BASELINE
            and str(codec.parameters.get("packetization-mode", "0")) == "1"
        ):
            chosen.append(codec)
    return chosen


def codec_key(codec: Any) -> str:
    """'opus', 'vp8', 'h264', … from an aiortc codec description."""
    return str(codec.mimeType).split("/", 1)[-1].lower()
