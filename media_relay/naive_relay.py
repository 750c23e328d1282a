"""The baseline the relay is measured against: the naive Python SFU.

aiortc's `MediaRelay` hands the publisher's *decoded* frames to every subscriber's sender,
which encodes them again (aiortc #1155, #1015). Same control surface as LocalRelay (the
subset the benchmark uses), one video source, for `etapalvelu bench relay` only.
"""

from __future__ import annotations

import sys
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.rtcconfiguration import RTCBundlePolicy

from media_relay.aiortc_hooks import install_host_candidates
from media_relay.codecs import preferred_codecs
from media_relay.control import RelayConfig
from media_relay.errors import RelayError


def zero_timestamp_origin() -> None:
    """Make re-encoding senders start their RTP timestamps at 0, so the benchmark can tell
    which published frame a re-encoded packet carries (out ts = in ts − first in ts)."""
    import aiortc.rtcrtpsender as sender_module

    original = sender_module.random32
    if getattr(original, "_bench_patched", False):
        return

    def random32() -> int:
        if sys._getframe(1).f_code.co_name == "_run_rtp":
            return 0
        return original()

    random32._bench_patched = True  # type: ignore[attr-defined]
    sender_module.random32 = random32


class NaiveRelay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.media = MediaRelay()
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.published: Any = None
        self.listener: Any = None

    async def start(self) -> None:
        zero_timestamp_origin()

    async def stop(self) -> None:
        for pc in self.pcs.values():
            await pc.close()
        self.pcs.clear()

    def set_listener(self, listener: Any) -> None:
        self.listener = listener

    async def join(self, room_id: str, participant_id: str, publish: list[str]) -> dict[str, Any]:
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pcs[participant_id] = pc
        tracks = []
        if publish:
            transceiver = pc.addTransceiver("video", direction="recvonly")
            transceiver.setCodecPreferences(preferred_codecs("video"))
            self.published = transceiver
            tracks.append(("send", participant_id))
        elif self.published is not None and self.published.receiver.track is not None:
            source = self.published.receiver.track
            sender = pc.addTrack(self.media.subscribe(source, buffered=False))
            transceiver = next(t for t in pc.getTransceivers() if t.sender is sender)
            transceiver.setCodecPreferences(preferred_codecs("video"))
            tracks.append(("recv", "publisher"))
        else:
            raise RelayError("no_publisher", "the baseline relay needs its publisher first")
        install_host_candidates(
            pc, self.config.listen_address, self.config.announced_addresses, 0, 0
        )
        await pc.setLocalDescription(await pc.createOffer())
        mid = pc.getTransceivers()[0].mid
        return {
            "type": "offer",
            "sdp": pc.localDescription.sdp,
            "tracks": [
                {
                    "mid": mid,
                    "kind": "video",
                    "source": "camera",
                    "participant_id": owner,
                    "direction": direction,
                }
                for direction, owner in tracks
            ],
        }

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        await self.pcs[participant_id].setRemoteDescription(
            RTCSessionDescription(sdp=sdp, type="answer")
        )

    def packets_sent(self) -> int:
        """RTP packets the re-encoding senders wrote (the naive relay's 'forwarded')."""
        total = 0
        for pc in self.pcs.values():
            for sender in pc.getSenders():
                if sender.track is not None:
                    total += sender._RTCRtpSender__packet_count  # type: ignore[attr-defined]
        return total
