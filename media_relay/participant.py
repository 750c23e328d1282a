"""One participant's connection to the relay: its RTCPeerConnection, what it publishes and
what it is sent, and the (serialised) SDP negotiations with it.

The relay is the offerer. Each published source has a recvonly transceiver; each track of
someone else has a sendonly transceiver, reused for another track of the same kind (set
inactive meanwhile) so m-lines do not grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from media_relay import packets
from media_relay.aiortc_hooks import SilentTrack, SrtpLink, dtls_transport, install_host_candidates
from media_relay.codecs import (
    codec_key,
    converge,
    fir_payload_types,
    is_rtx,
    preferred_codecs,
    rtx_payload_types,
    transport_cc_id,
    with_fir_feedback,
    with_transport_cc,
)
from media_relay.errors import RelayError
from media_relay.forwarding import MAX_RTP_SIZE, DropCounters, ForwardedStream, PublishedTrack
from media_relay.rtx import negotiated_rtx
from media_relay.transport_cc import FeedbackWindow

if TYPE_CHECKING:
    from media_relay.control import RelayConfig

logger = logging.getLogger(__name__)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
# Transport Feedback to a publisher that negotiated transport-cc: after the first packet at
# least this long after the previous feedback (Chromium's own receivers: every 50–250 ms), so
# it rides on a wake-up the packets cause anyway; when packets stop, at the room's next tick
TRANSPORT_FEEDBACK_INTERVAL = 0.05


def kind_of(source: str) -> str:
    return "audio" if source == "audio" else "video"


class Participant:
    def __init__(
        self,
        room_id: str,
        participant_id: str,
        config: RelayConfig,
        on_gone: Callable[[Participant, str], None],
    ) -> None:
        self.room_id = room_id
        self.participant_id = participant_id
        self.config = config
        self._on_gone = on_gone
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.link: SrtpLink | None = None
        self.published: dict[str, PublishedTrack] = {}
        # False: publish only (Room._wanted_by gives it nothing of the others)
        self.subscribe = True
        # None: every source of the others; else only these (the clerk's preview of the
        # document camera subscribes to "document" alone)
        self.sources: frozenset[str] | None = None
        self._recv_transceivers: dict[str, RTCRtpTransceiver] = {}
        self.forwarded: list[ForwardedStream] = []
        self._send_transceivers: dict[int, RTCRtpTransceiver] = {}  # id(stream) -> transceiver
        self._inbound_by_ssrc: dict[int, PublishedTrack] = {}
        self._rtx_by_ssrc: dict[int, PublishedTrack] = {}  # a publisher's RTX SSRCs (RFC 4588)
        self._outbound_by_ssrc: dict[int, ForwardedStream] = {}
        self._track_by_mid: dict[str, PublishedTrack] = {}
        self._lock = asyncio.Lock()
        self.negotiating = False
        self.negotiation_started = 0.0
        self.renegotiate_pending = False
        self.connected = False
        self.ever_connected = False
        self.closed = False
        self.gone_reason: str | None = None
        self.created = time.monotonic()
        self.last_heard = self.created
        self._window_start = self.created
        self._window_packets = 0
        self._max_pps = config.max_participant_pps
        self.drops = DropCounters()
        self.rtp_received = 0
        self.rtcp_received = 0
        self.nacks_received = 0
        self.plis_received = 0
        self._mid_extension_id = 0
        self._free_recv: list[RTCRtpTransceiver] = []
        # codec convergence (codecs.converge), per published video source: the codecs its
        # next offer is narrowed to, what its answer to an unrestricted offer listed, and
        # whether no codec suits every subscriber; per receiving transceiver, the narrowing
        # its preferences were last set with (None: the full list)
        self._codec_limits: dict[str, tuple[str, ...]] = {}
        self._offered_limits: dict[int, tuple[str, ...] | None] = {}
        self.video_capabilities: dict[str, frozenset[str]] = {}
        self.codec_conflicts: dict[str, bool] = {}
        # id(stream) -> the codec names of this participant's answer for that m-line
        self._accepted_by_stream: dict[int, frozenset[str]] = {}
        # transport-wide congestion control (transport_cc.py), when the participant's answer
        # kept the header extension on an m-line it sends on: the extension's ID, what arrived
        # since the last Transport Feedback, and when the next is due (inf: never)
        self.transport_cc_id = 0
        self.transport_cc: FeedbackWindow | None = None
        self._feedback_due = math.inf
        self.pc.on("connectionstatechange", self._on_connection_state)

    # -- what is sent and received

    def ensure_published(self, source: str) -> PublishedTrack:
        track = self.published.get(source)
        if track is None:
            track = PublishedTrack(self.participant_id, source, kind_of(source))
            self.published[source] = track
        return track

    def adopt_published(self, tracks: dict[str, PublishedTrack]) -> None:
        """A reconnect: the new connection carries on the old one's tracks (same objects, so
        subscribers keep their streams and rebase on the new SSRC)."""
        self.published = tracks
        for track in tracks.values():
            track.ssrc = None
            track.send_upstream = None

    def unpublish(self, source: str) -> PublishedTrack | None:
        track = self.published.pop(source, None)
        if track is not None:
            track.close()
        # a later publish of the source starts over with the full codec list
        self._codec_limits.pop(source, None)
        self.video_capabilities.pop(source, None)
        self.codec_conflicts.pop(source, None)
        return track

    def plan(self, wanted: list[PublishedTrack]) -> bool:
        """Make the transceivers match: one recvonly per published source, one sendonly per
        track in `wanted`; streams of tracks no longer wanted go inactive and are reused.
        Returns whether anything changed (so needs an offer)."""
        changed = False
        for source in self.published:
            transceiver = self._recv_transceivers.get(source)
            if transceiver is None:
                changed = True
                transceiver = self._free_recv_transceiver(kind_of(source))
                if transceiver is None:
                    transceiver = self.pc.addTransceiver(kind_of(source), direction="recvonly")
                    transceiver.setCodecPreferences(preferred_codecs(kind_of(source), rtx=True))
                    self._offered_limits[id(transceiver)] = None
                self._recv_transceivers[source] = transceiver
            transceiver.direction = "recvonly"
            changed |= self._apply_codec_limit(source, transceiver)
        for source, transceiver in list(self._recv_transceivers.items()):
            if source not in self.published:
                changed = True
                transceiver.direction = "inactive"
                del self._recv_transceivers[source]
                self._free_recv.append(transceiver)

        wanted_ids = {id(track) for track in wanted}
        for stream in self.forwarded:
            if stream.track is not None and id(stream.track) not in wanted_ids:
                changed = True
                stream.detach()
                stream.negotiated = False
                self._send_transceivers[id(stream)].direction = "inactive"
            elif stream.track is None and (
                self._send_transceivers[id(stream)].direction != "inactive"
            ):
                # Its track was closed under it (unpublished, or its publisher left): closing
                # detaches the subscribers' streams at once, so without this the subscriber
                # would never be told; its m-line goes inactive and out of the offer's tracks.
                changed = True
                stream.negotiated = False
                self._send_transceivers[id(stream)].direction = "inactive"
        have = {id(stream.track) for stream in self.forwarded if stream.track is not None}
        for track in wanted:
            if id(track) in have:
                continue
            changed = True
            free = next(
                (s for s in self.forwarded if s.track is None and s.kind == track.kind), None
            )
            target = free if free is not None else self._add_forwarded_stream(track.kind)
            target.attach(track)
            target.negotiated = False
            transceiver = self._send_transceivers[id(target)]
            transceiver.direction = "sendonly"
            sender: RTCRtpSender = transceiver.sender
            # msid: "<stream id> <track id>", so a browser groups a participant's tracks
            sender._stream_id = _token(track.participant_id)
            sender._track_id = _token(f"{track.participant_id}-{track.source}")
        if not self.pc.getTransceivers():
            # Nothing to send or receive yet. An offer without m-lines has an empty BUNDLE
            # group (aiortc writes "a=group:BUNDLE "), which Chromium refuses, and with
            # max-bundle it refuses an offer without the group too. So offer one inactive
            # video m-line: the connection comes up, and the line is the first one reused
            # when someone publishes video (what a watcher waits for).
            changed = True
            placeholder = self._add_forwarded_stream("video")
            self._send_transceivers[id(placeholder)].direction = "inactive"
        return changed

    def _apply_codec_limit(self, source: str, transceiver: RTCRtpTransceiver) -> bool:
        """Set the receiving transceiver's codec preferences to the source's narrowing (or
        back to the full list); whether they changed, so the next offer must go out."""
        limit = self._codec_limits.get(source)
        if self._offered_limits.get(id(transceiver)) == limit:
            return False
        transceiver.setCodecPreferences(preferred_codecs(kind_of(source), rtx=True, only=limit))
        self._offered_limits[id(transceiver)] = limit
        return True

    def accepted_codecs(self, track: PublishedTrack) -> frozenset[str] | None:
        """The codecs this participant's answer took for its stream of `track`; None while
        it receives no negotiated stream of it (no answer yet, or the m-line refused)."""
        for stream in self.forwarded:
            if stream.track is track and stream.negotiated:
                return self._accepted_by_stream.get(id(stream))
        return None

    def converge_codecs(self, source: str, accepted: list[frozenset[str]]) -> bool:
        """Given what every subscriber of `source` accepts, narrow the source's next offer
        when the publisher might send a codec one of them cannot take (codecs.converge).
        Returns whether the publisher must be renegotiated; a conflict is logged, not raised."""
        track = self.published.get(source)
        capable = self.video_capabilities.get(source)
        if track is None or track.kind != "video" or capable is None or not track.codecs:
            return False  # the publisher has not answered yet: nothing to compare with
        decision = converge(capable, track.codecs.values(), accepted)
        if decision.conflict and not self.codec_conflicts.get(source):
            logger.warning(
                "relay: %s/%s %s: no video codec every subscriber takes (publisher can send "
                "%s; subscribers take %s); the publisher is left as it is",
                self.room_id,
                self.participant_id,
                source,
                sorted(capable),
                [sorted(names) for names in accepted],
            )
        elif not decision.conflict and self.codec_conflicts.get(source):
            logger.info(
                "relay: %s/%s %s: codec conflict resolved",
                self.room_id,
                self.participant_id,
                source,
            )
        self.codec_conflicts[source] = decision.conflict
        if decision.narrow_to is None or self._codec_limits.get(source) == decision.narrow_to:
            return False
        logger.info(
            "relay: %s/%s %s: renegotiating the publisher onto %s (sends %s)",
            self.room_id,
            self.participant_id,
            source,
            list(decision.narrow_to),
            list(dict.fromkeys(track.codecs.values())),
        )
        self._codec_limits[source] = decision.narrow_to
        return True

    def expects_media(self) -> bool:
        """Whether an m-line is active, so the participant sends RTP or at least RTCP."""
        return any(t.direction != "inactive" for t in self.pc.getTransceivers())

    def _free_recv_transceiver(self, kind: str) -> RTCRtpTransceiver | None:
        for transceiver in self._free_recv:
            if transceiver.kind == kind:
                self._free_recv.remove(transceiver)
                return transceiver
        return None

    def _add_forwarded_stream(self, kind: str) -> ForwardedStream:
        transceiver = self.pc.addTransceiver(kind, direction="sendonly")
        transceiver.setCodecPreferences(preferred_codecs(kind, rtx=True))
        transceiver.sender.replaceTrack(SilentTrack(kind))
        send = self.link.send_rtp if self.link is not None else self._send_rtp
        stream = ForwardedStream(kind, transceiver.sender._ssrc, send, self.participant_id)
        if self.link is not None:
            stream.out.link = self.link.native
        self.forwarded.append(stream)
        self._send_transceivers[id(stream)] = transceiver
        self._outbound_by_ssrc[stream.ssrc] = stream
        return stream

    # -- negotiation

    async def create_offer(self) -> dict[str, Any]:
        install_host_candidates(
            self.pc,
            self.config.listen_address,
            self.config.announced_addresses,
            self.config.port_min,
            self.config.port_max,
        )
        offer = await self.pc.createOffer()
        # aiortc offers no `ccm fir`: added, so a publisher that takes it is asked with FIR;
        # nor transport-cc: added where the relay receives, so a browser's send-side
        # bandwidth estimator gets Transport Feedback from the relay
        sdp = with_fir_feedback(offer.sdp)
        if self.config.transport_cc:
            sdp = with_transport_cc(sdp)
        offer = RTCSessionDescription(sdp=sdp, type="offer")
        await self.pc.setLocalDescription(offer)
        self._hook_transport()
        self.negotiating = True
        self.negotiation_started = time.monotonic()
        tracks: list[dict[str, Any]] = []
        for source, transceiver in self._recv_transceivers.items():
            tracks.append(
                {
                    "mid": transceiver.mid,
                    "kind": kind_of(source),
                    "source": source,
                    "participant_id": self.participant_id,
                    "direction": "send",
                }
            )
        for stream in self.forwarded:
            transceiver = self._send_transceivers[id(stream)]
            stream.mid = (transceiver.mid or "").encode("ascii")
            if stream.track is None:
                continue
            tracks.append(
                {
                    "mid": transceiver.mid,
                    "kind": stream.kind,
                    "source": stream.track.source,
                    "participant_id": stream.track.participant_id,
                    "direction": "recv",
                }
            )
        local = self.pc.localDescription
        return {"type": "offer", "sdp": local.sdp, "tracks": tracks}

    async def apply_answer(self, sdp: str) -> list[PublishedTrack]:
        """Take the participant's answer; returns the tracks whose subscribers need a key frame."""
        if not self.negotiating:
            raise RelayError("no_offer", "no offer is waiting for an answer")
        if not isinstance(sdp, str) or len(sdp) > 200_000:
            raise RelayError("bad_answer", "the answer must be an SDP string")
        try:
            parsed = SessionDescription.parse(sdp)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError, AssertionError…
            raise RelayError("bad_answer", f"the SDP answer was not accepted: {exc}") from exc
        self.negotiating = False
        by_mid = {media.rtp.muxId: media for media in parsed.media if media.rtp.muxId}
        need_keyframe: list[PublishedTrack] = []
        transport_cc = 0
        for source, transceiver in self._recv_transceivers.items():
            media = by_mid.get(transceiver.mid or "")
            track = self.published.get(source)
            if media is None or track is None:
                continue
            if self._configure_published(track, media, transceiver):
                need_keyframe.append(track)
            track.transport_cc = bool(transport_cc_id(media))
            transport_cc = transport_cc or transport_cc_id(media)
        self.transport_cc_id = transport_cc
        self._sync_transport_cc()
        for stream in self.forwarded:
            transceiver = self._send_transceivers[id(stream)]
            media = by_mid.get(transceiver.mid or "")
            if media is None or stream.track is None:
                stream.negotiated = False
                continue
            stream.payload_types = frozenset(
                codec.payloadType
                for codec in media.rtp.codecs
                if codec.payloadType is not None and not is_rtx(codec)
            )
            self._accepted_by_stream[id(stream)] = frozenset(
                codec_key(codec) for codec in media.rtp.codecs if not is_rtx(codec)
            )
            # RTX where the answer kept it: retransmissions on the sender's RTX SSRC, which
            # the offer announced (a=ssrc-group:FID); else on the stream's own SSRC
            stream.rtx = negotiated_rtx(
                stream.rtx, transceiver.sender._rtx_ssrc, rtx_payload_types(media.rtp.codecs)
            )
            used = {ext.id for ext in media.rtp.headerExtensions}
            stream.hidden_extension_id = next((i for i in range(14, 0, -1) if i not in used), 14)
            accepted = media.port != 0 and media.direction in ("recvonly", "sendrecv")
            if accepted and not stream.negotiated and self.connected:
                # (not yet connected: asked when the connection comes up)
                need_keyframe.append(stream.track)
            stream.negotiated = accepted
            stream.connected = self.connected
        return need_keyframe

    def _configure_published(
        self, track: PublishedTrack, media: Any, transceiver: RTCRtpTransceiver
    ) -> bool:
        """Set the track up from the publisher's answer; returns whether the codec it sends
        (the answer's first) changed, so its subscribers need the new codec's key frame."""
        before = next(iter(track.codecs.values()), None)
        track.codecs = {
            codec.payloadType: codec_key(codec) for codec in media.rtp.codecs if not is_rtx(codec)
        }
        switched = self._note_codecs(track, transceiver, before)
        # RTX is not in `codecs`: an RTX packet misses the hot path's payload type check and is
        # unwrapped on the slow path (_on_other_payload)
        track.rtx_payload_types = rtx_payload_types(media.rtp.codecs)
        # FIR when every codec the publisher may send with kept `ccm fir` (browsers keep it
        # for all or none); PLI, which every WebRTC sender takes, otherwise
        track.uses_fir = bool(track.codecs) and set(track.codecs) <= fir_payload_types(
            media.rtp.codecs
        )
        for ext in media.rtp.headerExtensions:
            if ext.uri == MID_URI:
                track.mid_extension_id = ext.id
                self._mid_extension_id = ext.id
            elif ext.uri == AUDIO_LEVEL_URI:
                track.audio_level_extension_id = ext.id
        rtx = {
            group.items[1]
            for group in media.ssrc_group
            if group.semantic == "FID" and len(group.items) == 2
        }
        for description in media.ssrc:
            if description.ssrc not in rtx:
                self._set_ssrc(track, description.ssrc)
                break
        for ssrc, bound in list(self._rtx_by_ssrc.items()):
            if bound is track:
                del self._rtx_by_ssrc[ssrc]
        if track.rtx_payload_types:
            for ssrc in rtx:
                if self._inbound_by_ssrc.get(ssrc) is None:
                    self._rtx_by_ssrc[ssrc] = track
        self._track_by_mid[transceiver.mid or ""] = track
        track.feedback_ssrc = transceiver.sender._ssrc
        track.send_upstream = self._send_rtcp
        track.sync_route()
        return switched

    def _note_codecs(
        self, track: PublishedTrack, transceiver: RTCRtpTransceiver, before: str | None
    ) -> bool:
        """Remember what an unrestricted offer's answer listed (the publisher's capability);
        on a switch of codec, make every subscriber's stream rebase on the new codec's first
        packet: continuous sequence numbers and timestamps whatever the publisher does with
        its own across the switch (aiortc restarts them, Chromium carries them on), and no
        packet forwarded before the new codec's key frame."""
        if track.kind != "video":
            return False
        if self._offered_limits.get(id(transceiver)) is None:
            self.video_capabilities[track.source] = frozenset(track.codecs.values())
        after = next(iter(track.codecs.values()), None)
        if before is None or after is None or before == after:
            return False
        for stream in track.subscribers:
            stream.in_ssrc = None  # the next packet of the track rebases it (forwarding.py)
        return True

    def _set_ssrc(self, track: PublishedTrack, ssrc: int) -> None:
        if track.ssrc is not None and self._inbound_by_ssrc.get(track.ssrc) is track:
            del self._inbound_by_ssrc[track.ssrc]
        track.ssrc = ssrc
        self._inbound_by_ssrc[ssrc] = track

    # -- transport

    def _hook_transport(self) -> None:
        if self.link is not None:
            return
        dtls = dtls_transport(self.pc)
        if dtls is None:
            return
        self.link = SrtpLink(dtls)
        self._sync_transport_cc()
        for stream in self.forwarded:
            stream.send = self.link.send_rtp  # straight to the link: one call less per send
            stream.out.link = self.link.native  # what fanout sends through
        for protocol in self.link.connection._protocols:
            if hasattr(protocol, "media_handler"):
                protocol.media_handler = self._on_media

    def _send_rtp(self, data: bytearray) -> None:
        link = self.link
        if link is not None:
            link.send_rtp(data)

    def _send_rtcp(self, data: bytes) -> None:
        link = self.link
        if link is not None and self.connected:
            link.send_rtcp(data)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected = True
            self.ever_connected = True
            self.last_heard = time.monotonic()
            if self.link is not None:
                self.link.bind()  # the nominated pair's socket, for fanout
                # gathering may have created protocols after the hook was installed
                for protocol in self.link.connection._protocols:
                    if hasattr(protocol, "media_handler"):
                        protocol.media_handler = self._on_media
            for stream in self.forwarded:
                stream.connected = True
                if stream.active and stream.track is not None:
                    # a new subscriber: video from the cached key frame, or one asked for now
                    stream.track.start_stream(stream)
        elif state in ("failed", "closed") and not self.closed:
            self.connected = False
            self._on_gone(self, "ice_failed" if state == "failed" else "connection_closed")

    def _on_media(self, data: bytes) -> None:
        """SRTP or SRTCP from the participant's socket; bad input is dropped and counted."""
        now = time.monotonic()
        self.last_heard = now
        # a participant that floods is cut off before any crypto (RelayConfig.max_participant_pps)
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._window_packets = 0
        self._window_packets += 1
        if self._window_packets > self._max_pps:
            self.drops.add("flood")
            return
        link = self.link
        if link is None or link.dtls._rx_srtp is None:
            self.drops.add("not_connected")
            return
        try:
            if len(data) > 1 and 191 < data[1] < 224:  # packets.is_rtcp, inlined: per packet
                plain = link.unprotect_rtcp(data)
                if plain is None:
                    self.drops.add("srtcp_unprotect")
                    return
                self.rtcp_received += 1
                self._on_rtcp(plain)
            else:
                if len(data) > MAX_RTP_SIZE + 64:
                    self.drops.add("oversized")
                    return
                # unprotect, parse, route and send to every subscriber in steady state, in C
                result = link.receiver.receive(data, now)
                if result.__class__ is tuple:
                    self.rtp_received += 1
                    track, plain, pending = result
                    track.after_fanout(plain, pending, now)
                    if now >= self._feedback_due:  # transport-cc
                        self._feedback_soon()
                    return
                if result is False:  # first packet: bind the receive path for the next ones
                    link.bind_receiver(self._inbound_by_ssrc)
                    result = link.unprotect_rtp(data)  # counts its own failures
                    if result is not None and self.transport_cc is not None:
                        result = self._take_transport_cc(result, now)  # as receive does
                elif result is None:
                    link.unprotect_errors += 1
                if result is None:
                    self.drops.add("srtp_unprotect")
                    return
                self.rtp_received += 1
                self._on_rtp(result, now)  # RTX, a new SSRC, another payload type, malformed
                if now >= self._feedback_due:
                    self._feedback_soon()
        except Exception:  # never into the event loop
            logger.exception("relay: packet from %s dropped", self.participant_id)
            self.drops.add("error")

    def _on_rtp(self, data: bytes, now: float | None = None) -> None:
        header = packets.parse_rtp_header(data)
        if header is None:
            self.drops.add("malformed_rtp")
            return
        track = self._inbound_by_ssrc.get(header.ssrc)
        if track is None:
            track = self._rtx_by_ssrc.get(header.ssrc) or self._learn_ssrc(data, header)
            if track is None:
                self.drops.add("unknown_ssrc")
                return
            if track.ssrc != header.ssrc:  # the track's RTX SSRC: only RTX belongs there
                self._on_other_payload(data, header, track, now)
                return
        if header.payload_type not in track.codecs:
            self._on_other_payload(data, header, track, now)
            return
        track.handle_rtp(data, header, time.monotonic() if now is None else now)

    def _on_other_payload(
        self, data: bytes, header: packets.RtpHeader, track: PublishedTrack, now: float | None
    ) -> None:
        """Not one of the track's codecs: RTX (RFC 4588 §4) is unwrapped — OSN to sequence
        number, apt payload type, the track's SSRC — and handled exactly like the original
        (forwarded, cached), so the publisher's answer to the relay's NACK reaches the
        subscribers that asked; anything else is dropped and counted."""
        apt = track.rtx_payload_types.get(header.payload_type)
        if apt is None or track.ssrc is None:
            self.drops.add(
                "unknown_rtx_payload_type"
                if self._rtx_by_ssrc.get(header.ssrc) is track
                else "unknown_payload_type"
            )
            return
        original = packets.unwrap_rtx(data, header, apt, track.ssrc)
        if original is None:
            # no room for the OSN: an RTX padding probe (bandwidth estimation) or truncated
            padding_only = header.payload_end == header.payload_start and data[0] & 0x20
            self.drops.add("rtx_padding" if padding_only else "rtx_truncated")
            return
        inner = packets.parse_rtp_header(original)
        if inner is None:  # cannot happen for a header parse_rtp_header accepted
            self.drops.add("rtx_truncated")
            return
        if now is None:
            now = time.monotonic()
        if track.cache.get(inner.sequence_number, now) is not None:
            # the relay has it (Chromium also probes bandwidth by resending old packets as
            # RTX): the subscribers had it too, and their SRTP would refuse it as a replay
            self.drops.add("rtx_duplicate")
            return
        track.rtx_received += 1
        track.handle_rtp(original, inner, now)

    def _learn_ssrc(self, data: bytes, header: packets.RtpHeader) -> PublishedTrack | None:
        """An SSRC the answer did not announce: bind it by the MID header extension (RFC 8843
        §15) — the case of a publisher that restarts its stream."""
        found = packets.find_extension(data, header, self._mid_extension_id)
        if found is None:
            return None
        mid = bytes(data[found[0] : found[0] + found[1]]).decode("ascii", "replace")
        track = self._track_by_mid.get(mid)
        if track is None:
            return None
        if header.payload_type in track.rtx_payload_types:
            # the RTX stream of the track (its answer announced no FID group): keep the
            # track's own SSRC and learn this one as its RTX SSRC
            self._rtx_by_ssrc[header.ssrc] = track
        else:
            self._set_ssrc(track, header.ssrc)
        return track

    def _on_rtcp(self, data: bytes) -> None:
        now = time.monotonic()
        parsed_any = False
        for item in packets.iter_rtcp(data):
            parsed_any = True
            kind = item.packet_type
            if kind == packets.RTCP_SR:
                report = packets.parse_sender_report(data, item)
                if report is not None:
                    track = self._inbound_by_ssrc.get(report.ssrc)
                    if track is not None:
                        track.handle_sender_report(report)
                self._handle_report_blocks(data, item)
            elif kind == packets.RTCP_RR:
                self._handle_report_blocks(data, item)
            elif kind == packets.RTCP_RTPFB and item.subtype == packets.RTPFB_NACK:
                stream = self._outbound_for(data, item)
                if stream is not None:
                    self.nacks_received += 1
                    stream.handle_nack(packets.parse_nack(data, item), now)
            elif kind == packets.RTCP_PSFB and item.subtype == packets.PSFB_PLI:
                stream = self._outbound_for(data, item)
                if stream is not None:
                    self.plis_received += 1
                    stream.handle_keyframe_request(now)
            elif kind == packets.RTCP_PSFB and item.subtype == packets.PSFB_FIR:
                for ssrc in packets.parse_fir_ssrcs(data, item):
                    stream = self._outbound_by_ssrc.get(ssrc)
                    if stream is not None:
                        self.plis_received += 1
                        stream.handle_keyframe_request(now)
            elif kind == packets.RTCP_PSFB and item.subtype == packets.PSFB_AFB:
                remb = packets.parse_remb(data, item)
                if remb is not None:
                    for ssrc in remb[1]:
                        stream = self._outbound_by_ssrc.get(ssrc)
                        if stream is not None:
                            stream.handle_remb(remb[0], now)
        if not parsed_any:
            self.drops.add("malformed_rtcp")

    # -- transport-wide congestion control (transport_cc.py)

    def _sync_transport_cc(self) -> None:
        """Follow the latest answer: record transport-wide sequence numbers (the receive path)
        and send Transport Feedback while an m-line the participant sends on kept the
        extension; stop when none does."""
        if self.link is not None:
            self.link.receiver.transport_cc_id = self.transport_cc_id
        if not self.transport_cc_id:
            self._feedback_due = math.inf
            return
        if self.transport_cc is None:
            self.transport_cc = FeedbackWindow()
        self._feedback_due = min(self._feedback_due, 0.0)

    def _take_transport_cc(self, data: bytes, now: float) -> bytes:
        """A packet the receive path did not see (the first one): note its sequence number and
        blank the element, as the receive path does (fastpath_py.Receiver)."""
        header = packets.parse_rtp_header(data)
        window = self.transport_cc
        if header is None or window is None:
            return data
        found = packets.find_extension(data, header, self.transport_cc_id)
        if found is None:
            return data
        if found[1] >= 2:
            window.add((data[found[0]] << 8) | data[found[0] + 1], now)
        return packets.strip_extension(data, header, found)

    def _feedback_track(self) -> PublishedTrack | None:
        """The track whose SSRC the feedback names as media source (Chromium takes feedback
        only for an SSRC it sends): video first."""
        tracks = [t for t in self.published.values() if t.transport_cc and t.ssrc is not None]
        tracks.sort(key=lambda track: track.kind != "video")
        return tracks[0] if tracks else None

    def _feedback_soon(self) -> None:
        """Send Transport Feedback once the packets already read are forwarded: the loop
        runs it before it waits for the socket again (uvloop reads a burst in one go)."""
        self._feedback_due = math.inf  # one at a time
        asyncio.get_running_loop().call_soon(self._feedback_now)

    def _feedback_now(self) -> None:
        self.send_transport_feedback(time.monotonic())

    def send_transport_feedback(self, now: float) -> int:
        """Report what arrived since the last Transport Feedback; how many packets went.
        Never raises (it runs on the receive path)."""
        window = self.transport_cc
        link = self.link
        if window is None or link is None or self.closed:
            self._feedback_due = math.inf
            return 0
        self._feedback_due = now + TRANSPORT_FEEDBACK_INTERVAL
        try:
            window.extend(link.receiver.drain_transport_cc())
            track = self._feedback_track()
            if not window.pending or not self.connected or track is None or track.ssrc is None:
                return 0  # kept for the next one
            feedback = window.build(track.feedback_ssrc, track.ssrc)
            for packet in feedback:
                self._send_rtcp(packet)
        except Exception:
            logger.exception("relay: transport feedback to %s failed", self.participant_id)
            return 0
        for published in self.published.values():
            if published.transport_cc:
                published.transport_feedback_sent += len(feedback)
        return len(feedback)

    def _outbound_for(self, data: bytes, item: packets.RtcpItem) -> ForwardedStream | None:
        ssrc = packets.feedback_media_ssrc(data, item)
        stream = self._outbound_by_ssrc.get(ssrc) if ssrc is not None else None
        if stream is None:
            self.drops.add("unknown_feedback_ssrc")
        return stream

    def _handle_report_blocks(self, data: bytes, item: packets.RtcpItem) -> None:
        for block in packets.parse_report_blocks(data, item):
            stream = self._outbound_by_ssrc.get(block.ssrc)
            if stream is not None:
                stream.handle_report(block)

    # -- periodic work (called by the room's tick)

    def tick(self, now: float, interval: float, ntp_now: int, send_reports: bool) -> None:
        for track in self.published.values():
            track.tick(now, interval)
        for stream in self.forwarded:
            stream.tick(interval)
        if self.transport_cc is not None and (send_reports or now >= self._feedback_due):
            # what arrived after the last feedback when nothing has come since; and with
            # every receiver report (the RTCP schedule)
            self.send_transport_feedback(now)
        if not send_reports or not self.connected or self.link is None:
            return
        self.link.bind()  # follows a change of the nominated pair
        for stream in self.forwarded:
            if stream.active:
                report = stream.sender_report(ntp_now)
                if report is not None:
                    self.link.send_rtcp(report)
        for track in self.published.values():
            block = track.receiver_report_block(now)
            if block is None:
                continue
            report = packets.build_receiver_report(track.feedback_ssrc, [block])
            if track.kind == "video":
                bitrate = track.estimated_bitrate(now)
                if bitrate is not None:
                    # RFC 4585 §3.1: feedback rides in a compound packet after a report
                    report += packets.build_remb(track.feedback_ssrc, bitrate, [block.ssrc])
            self._send_rtcp(report)

    # -- teardown

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.connected = False
        self._feedback_due = math.inf
        if self.link is not None:
            self.link.close_socket()
            self.link.receiver.unbind()
            for protocol in self.link.connection._protocols:
                if hasattr(protocol, "media_handler"):
                    protocol.media_handler = None
        for stream in self.forwarded:
            stream.detach()
            stream.send = self._send_rtp
            stream.out.link = None
        self._inbound_by_ssrc.clear()
        self._rtx_by_ssrc.clear()
        self._outbound_by_ssrc.clear()
        self._track_by_mid.clear()
        try:
            # shielded: aiortc shares one "closed" future between concurrent close() calls,
            # and cancelling one waiter would cancel it under the others
            await asyncio.shield(self.pc.close())
        except Exception:
            logger.exception("relay: closing %s failed", self.participant_id)
        self.pc.remove_all_listeners()
        self.link = None

    def _transport_cc_stats(self) -> dict[str, Any] | None:
        window = self.transport_cc
        if window is None:
            return None
        receiver = self.link.receiver if self.link is not None else None
        return {
            "extension_id": self.transport_cc_id,
            "packets": window.packets,
            "late": window.late,
            "duplicates": window.duplicates,
            "overflow": window.overflow
            + (int(receiver.transport_cc_overflow) if receiver is not None else 0),
            "feedback_sent": window.feedback_packets,
        }

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "negotiating": self.negotiating,
            "subscribe": self.subscribe,
            "rtp_received": self.rtp_received,
            "rtcp_received": self.rtcp_received,
            "nacks_received": self.nacks_received,
            "plis_received": self.plis_received,
            "dropped": dict(self.drops.counts),
            "transport_cc": self._transport_cc_stats(),
            "published": {
                source: {
                    **track.stats(),
                    "codec": next(iter(track.codecs.values()), None),
                    "codec_conflict": self.codec_conflicts.get(source, False),
                }
                for source, track in self.published.items()
            },
            "forwarded": [stream.stats() for stream in self.forwarded if stream.track is not None],
        }


def _token(value: str) -> str:
    """An SDP msid token (RFC 8830 §2: no spaces)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in value)
    return cleaned[:64] or "relay"
