"""A participant's side of the relay protocol in Python (aiortc): the endpoint agent, the
document camera, tests and the benchmark use it; browsers use static/js/relay-client.js.

The relay offers; the client attaches its local track for each offered `"direction": "send"`
m-line, answers, and reports remote tracks with their participant and source.

    client = RelayPeerClient({"camera": track}, ice_servers=[], host_addresses=["127.0.0.1"])
    offer = await relay.join(room, me, publish=["camera"])   # or over signaling
    sdp = await client.handle_offer(offer)                     # every offer, first and later
    await relay.answer(room, me, sdp)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy

from media_relay.aiortc_hooks import follow_send_codec, install_host_candidates
from media_relay.rtx import route_rtx_to_receivers

TrackCallback = Callable[[MediaStreamTrack, dict[str, Any]], None]


def ice_servers_from_dicts(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    """RTCIceServer objects from the JSON form (`{"urls", "username", "credential"}`)."""
    result = []
    for server in servers:
        result.append(
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    return result


class RelayPeerClient:
    def __init__(
        self,
        tracks: dict[str, MediaStreamTrack] | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        host_addresses: list[str] | None = None,
        on_track: TrackCallback | None = None,
        ice_transport_policy: str = "all",
        video_codecs: list[str] | None = None,
    ) -> None:
        """`ice_servers` must be explicit (empty = none), or aiortc would use a public STUN
        server. `host_addresses`, when given, replace aioice's host candidates (which leave
        out loopback): tests pass ["127.0.0.1"]. `video_codecs` (e.g. ["video/H264"]) limits
        what this client answers for video, in order of preference."""
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        self.tracks = dict(tracks or {})
        self.video_codecs = [name.lower() for name in video_codecs] if video_codecs else None
        # senders restarted on a codec the relay narrowed us to (and, for tests, how far their
        # sequence numbers jump at such a restart: some publishers do)
        self.codec_restarts = 0
        self.codec_switch_jump = 0
        self.host_addresses = host_addresses
        self.on_track = on_track
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=ice_servers_from_dicts(ice_servers or []),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=RTCIceTransportPolicy(ice_transport_policy),
            )
        )
        self.meta_by_mid: dict[str, dict[str, Any]] = {}
        self.remote_tracks: list[tuple[MediaStreamTrack, dict[str, Any]]] = []
        self._lock = asyncio.Lock()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        meta = self.meta(track)
        self.remote_tracks.append((track, meta))
        if self.on_track is not None:
            self.on_track(track, meta)

    def meta(self, track: MediaStreamTrack) -> dict[str, Any]:
        """Who and what a remote track carries now: the relay reuses an m-line (and so the
        track) for another participant's track after renegotiation."""
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid is not None:
                return dict(self.meta_by_mid.get(transceiver.mid, {"kind": track.kind}))
        return {"kind": track.kind}

    async def handle_offer(self, offer: dict[str, Any]) -> str:
        """Apply a relay offer and return the SDP answer to send back."""
        async with self._lock:
            for item in offer.get("tracks", []):
                self.meta_by_mid[item["mid"]] = item
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer["sdp"], type="offer")
            )
            # aiortc drops RTX when two video m-lines share its payload type (camera + document)
            route_rtx_to_receivers(self.pc)
            for item in offer.get("tracks", []):
                if item.get("direction") != "send":
                    continue
                track = self.tracks.get(item["source"])
                transceiver = next(
                    (t for t in self.pc.getTransceivers() if t.mid == item["mid"]), None
                )
                if transceiver is None or track is None:
                    continue
                transceiver.direction = "sendonly"
                if transceiver.sender.track is not track:
                    transceiver.sender.replaceTrack(track)
            if self.video_codecs is not None:
                self._limit_video_codecs()
            if self.host_addresses is not None:
                install_host_candidates(self.pc, "", self.host_addresses, 0, 0)
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            # the relay narrowed our codecs (codecs.converge): encode with the new one
            self.codec_restarts += await follow_send_codec(self.pc, self.codec_switch_jump)
            return str(self.pc.localDescription.sdp)

    def _limit_video_codecs(self) -> None:
        from aiortc import RTCRtpReceiver

        capabilities = RTCRtpReceiver.getCapabilities("video")
        assert capabilities is not None and self.video_codecs is not None
        chosen = [
            codec
            for name in self.video_codecs
            for codec in capabilities.codecs
            if codec.mimeType.lower() == name
        ]
        wanted = self.video_codecs
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            transceiver.setCodecPreferences(chosen)  # for later offers
            # aiortc fixed this answer's codecs in setRemoteDescription (from the
            # preferences then): narrow them the same way (RTCRtpTransceiver._codecs)
            transceiver._codecs = sorted(
                (c for c in transceiver._codecs if c.mimeType.lower() in wanted),
                key=lambda c: wanted.index(c.mimeType.lower()),
            )

    async def close(self) -> None:
        # shielded: aiortc shares one "closed" future between concurrent close() calls
        await asyncio.shield(self.pc.close())
