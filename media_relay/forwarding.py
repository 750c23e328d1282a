"""The hot path: one published track fanning out to its subscribers' streams.

`PublishedTrack` receives a publisher's plain RTP (already SRTP-unprotected), keeps it for
NACKs, and hands one bytearray to each `ForwardedStream`, which rewrites SSRC, sequence
number, timestamp and MID in place and sends. Per-subscriber offsets keep every outgoing
stream continuous: across a publisher reconnect (new SSRC), across packets dropped while a
subscriber waits for a key frame, and across a transceiver reused for another track.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from media_relay import packets
from media_relay.bandwidth import SlowSubscriberPolicy, choose_bitrate
from media_relay.fastpath import Output, Route, fanout
from media_relay.packet_cache import PacketCache
from media_relay.packets import ReportBlock, RtpHeader
from media_relay.rtx import RtxSender

# Key-frame requests to one publisher stream at most this often (Jitsi: 200 ms, Janus: 1 s);
# a request inside the interval is deferred to its end, not dropped.
KEYFRAME_REQUEST_INTERVAL = 0.3
# A new subscriber's video starts at once from the NACK cache when the publisher's latest key
# frame began at most this long ago (and within this many packets): the key frame and every
# packet since, so it decodes without a gap. Otherwise the publisher is asked at once, unless
# a request went out this recently (its key frame is on its way and serves this subscriber
# too). So joins cost a publisher at most one key frame per KEYFRAME_REPLAY_AGE or so.
KEYFRAME_REPLAY_AGE = 0.5
KEYFRAME_REPLAY_PACKETS = 160
KEYFRAME_IN_FLIGHT = 0.2
# A subscriber still waiting for a key frame this long after the last request: ask again
# (a lost key frame; the subscriber itself cannot ask, it has nothing to decode yet)
KEYFRAME_RETRY_INTERVAL = 1.0
# A subscriber's REMB counts for this long.
REMB_TTL = 5.0
# Whose REMB the publisher follows (bandwidth.py): the slowest subscriber's, unless it has
# been under half the others' median for 10 s
SLOW_SUBSCRIBER_POLICY = SlowSubscriberPolicy()
# RFC 6464 levels are −dBov; "speaking" is louder than −40 dBov.
SPEAKING_LEVEL = 40
MAX_RTP_SIZE = 1500

# (ForwardedStream has properties named `bytes` and `packets`: annotations inside it use these)
Datagram = bytes
Packet = bytes | bytearray
Sender = Callable[[bytes], None]
RtpSender = Callable[[bytearray], None]


def uint16_gt(a: int, b: int) -> bool:
    """a is after b in 16-bit sequence space (RFC 3550 A.1)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class DropCounters:
    """Packets dropped by reason; one instance per participant, read by stats and metrics."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n

    def total(self) -> int:
        return sum(self.counts.values())


class PublishedTrack:
    """A track one participant publishes (audio, camera, document or screen)."""

    def __init__(self, participant_id: str, source: str, kind: str) -> None:
        self.participant_id = participant_id
        self.source = source
        self.kind = kind
        self.clock_rate = 48000 if kind == "audio" else 90000
        self.ssrc: int | None = None
        # payload type -> "vp8" | "h264" | "opus" | other lower-case codec name
        self.codecs: dict[int, str] = {}
        self.mid_extension_id = 0
        self.audio_level_extension_id = 0
        self.subscribers: list[ForwardedStream] = []
        # the subscribers' outputs, MID extension ID and codecs, as `fanout` and the C receive
        # path (fastpath.Receiver) read them: see subscribers_changed and sync_route
        self.route = Route()
        # NACK history: video 2 s, at most 384 packets (3.5 s at 800 kbit/s, 1 s at 4 Mbit/s);
        # audio 1 s, at most 128 (2.5 s at 50 packets/s)
        self.cache = (
            PacketCache(1024, 2.0, hold=384) if kind == "video" else PacketCache(256, 1.0, hold=128)
        )
        # set by the publishing participant: writes RTCP to the publisher
        self.send_upstream: Sender | None = None
        self.feedback_ssrc = 1
        # statistics
        self.packets = 0
        self.bytes = 0
        self.max_seq: int | None = None
        self.seq_cycles = 0
        self.base_seq: int | None = None
        self.keyframes = 0
        self.keyframes_replayed = 0  # new subscribers started from the cache
        self.plis_sent = 0
        self.firs_sent = 0
        self.nacks_sent = 0
        self.last_packet_at = 0.0
        self.bitrate = 0.0
        self._bytes_at_tick = 0
        # RTX (RFC 4588), as the publisher's answer negotiated it: RTX payload type ->
        # associated payload type (RTX packets are unwrapped to the latter), and how many were
        # unwrapped and handled like originals
        self.rtx_payload_types: Mapping[int, int] = {}
        self.rtx_received = 0
        # key-frame requests; FIR (RFC 5104) instead of PLI when the publisher's answer kept
        # `ccm fir` for the codec it sends with, numbered per media SSRC
        self.uses_fir = False
        self._fir_ssrc: int | None = None
        self._fir_sequence = 0
        self._last_keyframe_request = -1e9
        self._keyframe_request_due: float | None = None
        self._keyframe_timer: asyncio.TimerHandle | None = None
        # RFC 3550 §6.4.1: the publisher's latest sender report (ssrc, ntp, rtp timestamp)
        self.sender_report: tuple[int, int, int] | None = None
        self._sender_report_at = 0.0
        self._expected_prior = 0
        self._received_prior = 0
        # RFC 6464 audio levels since the last speaker tick
        self.level_samples = 0
        self.loud_samples = 0
        # transport-wide congestion control (transport_cc.py): whether the publisher's answer
        # kept the header extension on this track's m-line, and the Transport Feedback
        # packets sent on the transport it arrives on since (the participant sends them)
        self.transport_cc = False
        self.transport_feedback_sent = 0
        # the REMB passed upstream (bandwidth.py): the figure, whose it is, who is ignored
        self.remb_upstream: int | None = None
        self.held_down_by: str | None = None
        self.ignored_subscribers: frozenset[str] = frozenset()
        self.ignored_slow_subscriber = 0  # times a subscriber started being ignored
        self._slow_since: dict[str, float] = {}

    # -- receive

    def handle_rtp(self, data: bytes, header: RtpHeader, now: float) -> None:
        """Forward one packet of this track to every subscriber; never raises on bad bytes.

        The sends come first: a key frame arrives as a burst, and the next packet of it waits
        in the socket until this one is done, so only what the sends need runs before them.
        `fanout` (C) sends to every subscriber in steady state; the rest (waiting for a key
        frame, a new publisher SSRC, not connected yet) go through `_forward_pending`.
        Statistics, the NACK cache and the audio level follow them.
        """
        mid_at = (
            packets.find_extension(data, header, self.mid_extension_id)
            if self.mid_extension_id
            else None
        )
        outputs = self.route.outputs
        pending = fanout(data, header, mid_at, outputs, now) if outputs else 0
        self._after_fanout(data, header, mid_at, pending, now)

    def after_fanout(self, data: bytes, pending: int, now: float) -> None:
        """The receive path (fastpath.Receiver) unprotected `data` and sent it to every
        subscriber in steady state: the rest of handle_rtp."""
        header = packets.parse_rtp_header(data)
        if header is None:  # the receive path parsed it the same way
            return
        mid_at = (
            packets.find_extension(data, header, self.mid_extension_id)
            if pending and self.mid_extension_id
            else None
        )
        self._after_fanout(data, header, mid_at, pending, now)

    def _after_fanout(
        self,
        data: bytes,
        header: RtpHeader,
        mid_at: tuple[int, int] | None,
        pending: int,
        now: float,
    ) -> None:
        if pending:
            self._forward_pending(data, header, mid_at, now)
        seq = header.sequence_number
        self.packets += 1
        self.bytes += len(data)
        self.last_packet_at = now
        max_seq = self.max_seq
        if max_seq is None or self.base_seq is None:
            self.base_seq = self.max_seq = seq
        elif uint16_gt(seq, max_seq):
            if seq < max_seq:
                self.seq_cycles += 1
            self.max_seq = seq
        self.cache.store(seq, data, now)
        if self.audio_level_extension_id and self.kind == "audio":
            level = packets.audio_level(data, header, self.audio_level_extension_id)
            if level is not None:
                self.level_samples += 1
                if level < SPEAKING_LEVEL:
                    self.loud_samples += 1

    def _forward_pending(
        self, data: bytes, header: RtpHeader, mid_at: tuple[int, int] | None, now: float
    ) -> None:
        """The subscribers `fanout` left to Python: rebase, wait for a key frame, resume."""
        keyframe: bool | None = True if self.kind == "audio" else None
        ssrc = header.ssrc
        for stream in self.subscribers:
            if not stream.out.pending or not stream.active:
                continue
            if stream.in_ssrc != ssrc:
                stream.rebase(header, now)
            if stream.waiting_keyframe:
                if keyframe is None:
                    keyframe = self._is_keyframe(self.codecs.get(header.payload_type), data, header)
                    if keyframe:
                        self.keyframes += 1
                if not keyframe:
                    stream.dropped_waiting += 1
                    continue
                stream.resume(header.sequence_number)
            stream.forward(data, header, mid_at, now)

    def subscribers_changed(self) -> None:
        """`subscribers` changed: the tuple `fanout` walks follows."""
        self.route.outputs = tuple(stream.out for stream in self.subscribers)

    def sync_route(self) -> None:
        """After the publisher's answer set codecs and extension IDs: tell the receive path."""
        self.route.mid_id = self.mid_extension_id
        self.route.set_payload_types(self.codecs)

    def _is_keyframe(self, codec: str | None, data: bytes, header: RtpHeader) -> bool:
        if codec == "vp8":
            return packets.is_vp8_keyframe_start(data, header.payload_start, header.payload_end)
        if codec == "h264":
            return packets.is_h264_keyframe_start(data, header.payload_start, header.payload_end)
        return codec is not None and codec not in ("vp8", "h264", "vp9", "av1")

    def handle_sender_report(self, report: packets.SenderReport) -> None:
        self.sender_report = (report.ssrc, report.ntp, report.rtp_timestamp)
        self._sender_report_at = time.monotonic()

    def receiver_report_block(self, now: float) -> packets.ReportBlock | None:
        """RFC 3550 §6.4.2 for the publisher: loss since the last report, and LSR/DLSR so
        it can measure its round trip to the relay."""
        if self.ssrc is None or self.max_seq is None or self.base_seq is None:
            return None
        extended = self.seq_cycles * 65536 + self.max_seq
        expected = extended - self.base_seq + 1
        expected_interval = expected - self._expected_prior
        received_interval = self.packets - self._received_prior
        self._expected_prior, self._received_prior = expected, self.packets
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lsr = dlsr = 0
        if self.sender_report is not None and self.sender_report[0] == self.ssrc:
            lsr = (self.sender_report[1] >> 16) & 0xFFFFFFFF
            dlsr = int((now - self._sender_report_at) * 65536) & 0xFFFFFFFF
        return packets.ReportBlock(
            self.ssrc, fraction, min(self.lost(), 0x7FFFFF), extended & 0xFFFFFFFF, 0, lsr, dlsr
        )

    # -- feedback to the publisher

    def start_stream(self, stream: ForwardedStream, now: float | None = None) -> None:
        """`stream` can be sent to now (connected and negotiated). Audio flows from the next
        packet; video that waits for a key frame starts from the cached one when it is recent
        (`_replay_keyframe`), else the publisher is asked for one at once."""
        if self.kind != "video" or not stream.waiting_keyframe or not stream.active:
            return
        if now is None:
            now = time.monotonic()
        if not self._replay_keyframe(stream, now):
            self.request_keyframe(now, new_subscriber=True)

    def _replay_keyframe(self, stream: ForwardedStream, now: float) -> bool:
        """Send `stream` the publisher's latest key frame and every packet since from the
        cache, rewritten as if forwarded live: sequence numbers continuous with what the
        stream sent before and with what follows. The frames before the newest get timestamps
        one tick apart just below the newest's, so the subscriber decodes them at once and
        plays the newest on time instead of replaying the last half second."""
        newest = self.max_seq
        if newest is None or self.ssrc is None:
            return False
        start: tuple[int, RtpHeader, float] | None = None
        for back in range(KEYFRAME_REPLAY_PACKETS):
            seq = (newest - back) & 0xFFFF
            entry = self.cache.entry(seq)
            if entry is None:
                continue  # lost on the way in: the subscriber NACKs it like any other
            data, arrived = entry
            if now - arrived > KEYFRAME_REPLAY_AGE:
                return False
            header = packets.parse_rtp_header(data)
            if header is None or header.ssrc != self.ssrc:
                return False
            if self._is_keyframe(self.codecs.get(header.payload_type), data, header):
                start = (seq, header, arrived)
                break
        if start is None:
            return False
        start_seq, first, arrived = start
        replay: list[tuple[bytes, RtpHeader]] = []
        for index in range(((newest - start_seq) & 0xFFFF) + 1):
            entry = self.cache.entry((start_seq + index) & 0xFFFF)
            if entry is None:
                continue
            header = packets.parse_rtp_header(entry[0])
            if header is not None and header.ssrc == self.ssrc:
                replay.append((entry[0], header))
        stream.rebase(first, arrived)  # continuous with what the stream sent before
        stream.waiting_keyframe = False
        live_offset = stream.ts_offset
        timestamps = list(dict.fromkeys(header.timestamp for _data, header in replay))
        newest_out = (timestamps[-1] + live_offset) & 0xFFFFFFFF
        last = len(timestamps) - 1
        stream.replayed_ts_offsets = {
            ts: (newest_out - (last - index) - ts) & 0xFFFFFFFF
            for index, ts in enumerate(timestamps)
        }
        try:
            for data, header in replay:
                stream.ts_offset = stream.replayed_ts_offsets[header.timestamp]
                mid_at = (
                    packets.find_extension(data, header, self.mid_extension_id)
                    if self.mid_extension_id
                    else None
                )
                stream.forward(data, header, mid_at, now)
        finally:
            stream.ts_offset = live_offset
        stream.replayed_packets += len(replay)
        self.keyframes_replayed += 1
        return True

    def request_keyframe(self, now: float | None = None, new_subscriber: bool = False) -> None:
        """Ask the publisher for a key frame (RFC 4585 §6.3.1 PLI, or RFC 5104 §4.3.1 FIR where
        its answer kept `ccm fir`), at most once per interval; for a new subscriber at once
        unless a request is in flight (KEYFRAME_IN_FLIGHT)."""
        if self.kind != "video":
            return
        if now is None:
            now = time.monotonic()
        since = now - self._last_keyframe_request
        if new_subscriber:
            if since >= KEYFRAME_IN_FLIGHT:
                self._send_pli(now)
            # else its key frame serves this subscriber too; tick() asks again if it is lost
            return
        if since >= KEYFRAME_REQUEST_INTERVAL:
            self._send_pli(now)
        elif self._keyframe_request_due is None:
            self._defer_pli(self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL, now)

    def _defer_pli(self, due: float, now: float) -> None:
        self._keyframe_request_due = due
        if self._keyframe_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (unit tests): tick() sends it
            self._keyframe_timer = loop.call_later(max(0.0, due - now), self._deferred_pli)

    def _deferred_pli(self) -> None:
        self._keyframe_timer = None
        if self._keyframe_request_due is not None:
            self._send_pli(time.monotonic())

    def tick(self, now: float, interval: float) -> None:
        """Periodic work: deferred key-frame requests, bitrate."""
        if self._keyframe_request_due is not None and now >= self._keyframe_request_due:
            self._send_pli(now)
        elif (
            self.kind == "video"
            and now - self._last_keyframe_request >= KEYFRAME_RETRY_INTERVAL
            and any(s.waiting_keyframe and s.active for s in self.subscribers)
        ):
            self.request_keyframe(now)
        self.bitrate = 8 * (self.bytes - self._bytes_at_tick) / interval if interval > 0 else 0.0
        self._bytes_at_tick = self.bytes

    def _send_pli(self, now: float) -> None:
        self._keyframe_request_due = None
        if self.ssrc is None or self.send_upstream is None:
            # the publisher is not connected yet: ask again shortly
            self._defer_pli(now + 0.25, now)
            return
        self._last_keyframe_request = now
        self.send_upstream(self._keyframe_request_packet(self.ssrc))

    def request_retransmission(self, lost: list[int]) -> None:
        """Lost packets the cache does not hold: NACK the publisher (RFC 4585 §6.2.1)."""
        if not lost or self.ssrc is None or self.send_upstream is None:
            return
        self.nacks_sent += 1
        self.send_upstream(packets.build_nack(self.feedback_ssrc, self.ssrc, lost[:64]))

    def estimated_bitrate(self, now: float) -> int | None:
        """REMB to pass upstream (called on the RTCP schedule): the slowest subscriber that
        reported recently, unless it has been far below the others for too long
        (bandwidth.choose_bitrate, SLOW_SUBSCRIBER_POLICY)."""
        estimates: dict[str, int] = {}
        for stream in self.subscribers:
            if stream.active and stream.remb is not None and now - stream.remb_at < REMB_TTL:
                key = stream.subscriber_id or f"ssrc:{stream.ssrc}"
                estimates[key] = min(stream.remb, estimates.get(key, stream.remb))
        choice = choose_bitrate(
            estimates, self._slow_since, self.ignored_subscribers, now, SLOW_SUBSCRIBER_POLICY
        )
        self._slow_since = choice.slow_since
        self.ignored_subscribers = choice.ignored
        self.ignored_slow_subscriber += len(choice.newly_ignored)
        self.held_down_by = choice.held_down_by
        self.remb_upstream = choice.bitrate
        return choice.bitrate

    # -- statistics

    def lost(self) -> int:
        if self.max_seq is None or self.base_seq is None:
            return 0
        expected = self.seq_cycles * 65536 + self.max_seq - self.base_seq + 1
        return max(0, expected - self.packets)

    def stats(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "source": self.source,
            "kind": self.kind,
            "ssrc": self.ssrc,
            "packets": self.packets,
            "bytes": self.bytes,
            "lost": self.lost(),
            "keyframes": self.keyframes,
            "keyframes_replayed": self.keyframes_replayed,
            "plis_sent": self.plis_sent,
            "firs_sent": self.firs_sent,
            "rtx_received": self.rtx_received,
            "nacks_sent": self.nacks_sent,
            "bitrate": round(self.bitrate),
            "subscribers": sum(1 for s in self.subscribers if s.active),
            "transport_cc": self.transport_cc,
            "transport_feedback_sent": self.transport_feedback_sent,
            "remb_upstream": self.remb_upstream,
            "held_down_by": self.held_down_by,
            "ignored_slow_subscriber": self.ignored_slow_subscriber,
            "ignored_subscribers": sorted(self.ignored_subscribers),
        }

    def close(self) -> None:
        if self._keyframe_timer is not None:
            self._keyframe_timer.cancel()
            self._keyframe_timer = None
        self._keyframe_request_due = None
        for stream in list(self.subscribers):
            stream.detach()
        self.subscribers.clear()
        self.subscribers_changed()
        self.cache.clear()
        self.send_upstream = None

    # -- FIR (RFC 5104), where the publisher's answer negotiated it

    def _keyframe_request_packet(self, media_ssrc: int) -> Datagram:
        """FIR where negotiated, else PLI; counted."""
        if self.uses_fir:
            self.firs_sent += 1
            return packets.build_fir(
                self.feedback_ssrc, media_ssrc, self._next_fir_sequence(media_ssrc)
            )
        self.plis_sent += 1
        return packets.build_pli(self.feedback_ssrc, media_ssrc)

    def _next_fir_sequence(self, media_ssrc: int) -> int:
        """RFC 5104 §4.3.1.2: one more for each new request to the same media SSRC (the
        publisher ignores a repeated number); a new SSRC (reconnect) starts again at 0."""
        if media_ssrc != self._fir_ssrc:
            self._fir_ssrc = media_ssrc
            self._fir_sequence = 0
        else:
            self._fir_sequence = (self._fir_sequence + 1) & 0xFF
        return self._fir_sequence


class ForwardedStream:
    """One outgoing stream to one subscriber: a send transceiver of the subscriber's connection.

    The per-packet state (SSRC, offsets, MID, latest position, counters) lives in `out`, the
    `Output` that `fanout` sends through; the properties below read and write it. Everything
    that decides whether `fanout` may send on its own is kept in sync by `_sync`.
    """

    def __init__(self, kind: str, ssrc: int, send: RtpSender, subscriber_id: str = "") -> None:
        self.kind = kind
        self.out = Output(ssrc)
        # the participant this stream goes to (REMB policy, statistics)
        self.subscriber_id = subscriber_id
        # the slow path (no Link bound yet, e.g. not connected): protect + send a plain packet
        self.send = send
        self.track: PublishedTrack | None = None
        self._payload_types: frozenset[int] = frozenset()
        self._negotiated = False
        self._connected = False
        self._waiting_keyframe = kind == "video"
        self.out.last_ts = random.getrandbits(32)
        self.first_seq = random.getrandbits(15)
        # retransmissions on the RTX SSRC, set by the participant when the subscriber's answer
        # kept RTX (else on the stream's own SSRC)
        self.rtx: RtxSender | None = None
        # the timestamp offsets a key-frame replay gave the frames before its newest (by the
        # publisher's timestamp), so a retransmission of one carries the timestamp sent
        self.replayed_ts_offsets: dict[int, int] = {}
        # statistics
        self.replayed_packets = 0
        self.dropped_waiting = 0
        self.nacks = 0
        self.retransmitted = 0
        self.plis = 0
        self.remb: int | None = None
        self.remb_at = 0.0
        self.fraction_lost = 0
        self.packets_lost = 0
        self.bitrate = 0.0
        self._bytes_at_tick = 0

    # -- state shared with the fast path

    def _sync(self) -> None:
        self.out.enabled = (
            self.track is not None
            and self._negotiated
            and self._connected
            and not self._waiting_keyframe
        )

    @property
    def active(self) -> bool:
        return self.track is not None and self._negotiated and self._connected

    @property
    def negotiated(self) -> bool:
        return self._negotiated

    @negotiated.setter
    def negotiated(self, value: bool) -> None:
        self._negotiated = value
        self._sync()

    @property
    def connected(self) -> bool:
        return self._connected

    @connected.setter
    def connected(self, value: bool) -> None:
        self._connected = value
        self._sync()

    @property
    def waiting_keyframe(self) -> bool:
        return self._waiting_keyframe

    @waiting_keyframe.setter
    def waiting_keyframe(self, value: bool) -> None:
        self._waiting_keyframe = value
        self._sync()

    @property
    def payload_types(self) -> frozenset[int]:
        return self._payload_types

    @payload_types.setter
    def payload_types(self, value: frozenset[int]) -> None:
        self._payload_types = frozenset(value)
        self.out.set_payload_types(self._payload_types)

    @property
    def ssrc(self) -> int:
        return self.out.ssrc

    @property
    def mid(self) -> bytes:
        return self.out.mid

    @mid.setter
    def mid(self, value: bytes) -> None:
        self.out.mid = value

    @property
    def hidden_extension_id(self) -> int:
        return self.out.hidden_extension_id

    @hidden_extension_id.setter
    def hidden_extension_id(self, value: int) -> None:
        self.out.hidden_extension_id = value

    @property
    def in_ssrc(self) -> int | None:
        return self.out.in_ssrc

    @in_ssrc.setter
    def in_ssrc(self, value: int | None) -> None:
        self.out.in_ssrc = value

    @property
    def seq_offset(self) -> int:
        return self.out.seq_offset

    @seq_offset.setter
    def seq_offset(self, value: int) -> None:
        self.out.seq_offset = value

    @property
    def ts_offset(self) -> int:
        return self.out.ts_offset

    @ts_offset.setter
    def ts_offset(self, value: int) -> None:
        self.out.ts_offset = value

    @property
    def last_seq(self) -> int | None:
        return self.out.last_seq

    @last_seq.setter
    def last_seq(self, value: int | None) -> None:
        self.out.last_seq = value

    @property
    def last_ts(self) -> int:
        return self.out.last_ts

    @last_ts.setter
    def last_ts(self, value: int) -> None:
        self.out.last_ts = value

    @property
    def last_sent_at(self) -> float:
        return self.out.last_sent_at

    @last_sent_at.setter
    def last_sent_at(self, value: float) -> None:
        self.out.last_sent_at = value

    @property
    def packets(self) -> int:
        return self.out.packets

    @property
    def bytes(self) -> int:
        return self.out.bytes

    @property
    def payload_bytes(self) -> int:
        return self.out.payload_bytes

    @property
    def dropped_codec(self) -> int:
        return self.out.dropped_codec

    def attach(self, track: PublishedTrack) -> None:
        if self.track is track:
            return
        self.detach()
        self.track = track
        self.in_ssrc = None  # rebase on the first packet
        self.remb = None
        track.subscribers.append(self)
        track.subscribers_changed()
        self.waiting_keyframe = self.kind == "video"

    def detach(self) -> None:
        if self.track is not None:
            if self in self.track.subscribers:
                self.track.subscribers.remove(self)
                self.track.subscribers_changed()
            self.track = None
        self.in_ssrc = None
        self._sync()

    # -- rewriting

    def rebase(self, header: RtpHeader, now: float) -> None:
        """The source SSRC changed (first packet, or the publisher reconnected): continue our
        sequence numbers, and advance our timestamp by the wall-clock gap (Janus does the same).
        """
        clock_rate = self.track.clock_rate if self.track is not None else 90000
        if self.last_seq is None:
            next_ts = self.last_ts
        else:
            gap = max(now - self.last_sent_at, 0.0)
            next_ts = self.last_ts + max(1, int(gap * clock_rate))
        self.ts_offset = (next_ts - header.timestamp) & 0xFFFFFFFF
        self.replayed_ts_offsets = {}
        self.in_ssrc = header.ssrc
        self.resume(header.sequence_number)
        self.waiting_keyframe = self.kind == "video"

    def resume(self, seq: int) -> None:
        """Make `seq` the next outgoing sequence number (nothing skipped, no gap to NACK)."""
        next_seq = self.first_seq if self.last_seq is None else (self.last_seq + 1) & 0xFFFF
        self.seq_offset = (next_seq - seq) & 0xFFFF
        self.waiting_keyframe = False

    def forward(
        self,
        data: Packet,
        header: RtpHeader,
        mid_at: tuple[int, int] | None,
        now: float,
        retransmission: bool = False,
    ) -> None:
        """Rewrite and send one packet to this subscriber (the slow path: `fanout` does the
        same for every subscriber in steady state); a retransmission leaves the stream's
        latest position where it is."""
        out = self.out
        if not out.accepts(header.payload_type):
            out.dropped_codec += 1
            return
        if out.send(data, header, mid_at, now, retransmission) < 0:  # no Link bound yet
            self.send(out.rewrite(data, header, mid_at, now, retransmission))

    # -- feedback from the subscriber

    def handle_nack(self, lost: list[int], now: float) -> None:
        """Resend what the cache holds; ask the publisher for the rest (RFC 4585 §6.2.1)."""
        track = self.track
        self.nacks += 1
        if track is None or self.in_ssrc is None:
            return
        missing: list[int] = []
        for out_seq in lost:
            in_seq = (out_seq - self.seq_offset) & 0xFFFF
            data = track.cache.get(in_seq, now)
            if data is None:
                missing.append(in_seq)
                continue
            header = packets.parse_rtp_header(data)
            if header is None or header.ssrc != self.in_ssrc:
                continue
            live_offset = self.ts_offset
            self.ts_offset = self.replayed_ts_offsets.get(header.timestamp, live_offset)
            try:
                self._resend(track, data, header, now)
            finally:
                self.ts_offset = live_offset
            self.retransmitted += 1
        track.request_retransmission(missing)

    def _resend(self, track: PublishedTrack, data: Packet, header: RtpHeader, now: float) -> None:
        rtx = self.rtx
        if rtx is not None and self._resend_rtx(rtx, data, header):
            return  # RFC 4588: on the RTX SSRC, where the subscriber negotiated it
        mid_at = (
            packets.find_extension(data, header, track.mid_extension_id)
            if track.mid_extension_id
            else None
        )
        self.forward(data, header, mid_at, now, retransmission=True)

    def handle_keyframe_request(self, now: float) -> None:
        self.plis += 1
        if self.track is not None:
            self.track.request_keyframe(now)

    def handle_remb(self, bitrate: int, now: float) -> None:
        self.remb = bitrate
        self.remb_at = now

    def handle_report(self, block: ReportBlock) -> None:
        self.fraction_lost = block.fraction_lost
        self.packets_lost = block.packets_lost

    def sender_report(self, now_ntp: int) -> Datagram | None:
        """RFC 3550 §6.4.1 for our SSRC, from the publisher's NTP↔RTP mapping shifted by our
        timestamp offset, so the subscriber can put audio and video on one clock."""
        track = self.track
        if track is None or track.sender_report is None or self.last_seq is None:
            return None
        ssrc, ntp, rtp_ts = track.sender_report
        if ssrc != self.in_ssrc:
            return None
        return packets.build_sender_report(
            self.ssrc, ntp, rtp_ts + self.ts_offset, self.packets, self.payload_bytes
        )

    def tick(self, interval: float) -> None:
        self.bitrate = 8 * (self.bytes - self._bytes_at_tick) / interval if interval > 0 else 0.0
        self._bytes_at_tick = self.bytes

    def stats(self) -> dict[str, Any]:
        track = self.track
        return {
            "ssrc": self.ssrc,
            "kind": self.kind,
            "mid": self.mid.decode("ascii", "replace"),
            "from_participant_id": track.participant_id if track else None,
            "source": track.source if track else None,
            "packets": self.packets,
            "bytes": self.bytes,
            "lost": self.packets_lost,
            "fraction_lost": self.fraction_lost / 256,
            "nacks": self.nacks,
            "retransmitted": self.retransmitted,
            "plis": self.plis,
            "remb": self.remb,
            "bitrate": round(self.bitrate),
            "dropped_waiting_keyframe": self.dropped_waiting,
            "replayed_packets": self.replayed_packets,
            "dropped_codec": self.dropped_codec,
            "rtx_ssrc": self.rtx.ssrc if self.rtx is not None else None,
            "retransmitted_rtx": self.rtx.packets if self.rtx is not None else 0,
        }

    # -- RTX (RFC 4588)

    def _resend_rtx(self, rtx: RtxSender, data: Packet, header: RtpHeader) -> bool:
        """Resend a cached packet on the RTX SSRC: rewritten as it was forwarded (SSRC,
        sequence number, timestamp, MID), then wrapped with that outgoing sequence number as
        OSN. False when the subscriber has no RTX payload type for it (then resend plainly)."""
        if header.payload_type not in self.payload_types:
            return False
        buffer = bytearray(data)
        seq = (header.sequence_number + self.seq_offset) & 0xFFFF
        ts = (header.timestamp + self.ts_offset) & 0xFFFFFFFF
        packets.rewrite_rtp(buffer, header.payload_type, header.marker, seq, ts, self.ssrc)
        track = self.track
        mid_id = track.mid_extension_id if track is not None else 0
        mid_at = packets.find_extension(data, header, mid_id) if mid_id else None
        if mid_at is not None:
            offset, length = mid_at
            if length == len(self.mid):
                buffer[offset : offset + length] = self.mid
            else:
                packets.retag_extension(buffer, header, offset, self.hidden_extension_id)
        packet = rtx.wrap(buffer, header)
        if packet is None:
            return False
        self.send(packet)
        return True
