"""Gesture-to-detail latency of remote zoom, headless: for the benchmark.

`measure_zoom_latency` publishes a real DocumentTrack through an in-process `LocalRelay` (on
127.0.0.1) to an aiortc subscriber, as `etapalvelu bench document-camera` streams the page,
and for each of a few regions measures the time from `set_region` (what the agent does on the
`document_camera:region` push) to the first frame the subscriber *decoded* whose marker says
it shows that region. Socket.io's hop (console → server → agent, a few ms on loopback) and the
browser's paint are not in it; tests/expert_console/test_remote_zoom.py measures the whole path
with real Chromium and prints it.

The subscriber stands in for the expert's browser, so it takes a frame as complete when its
last packet arrives (the RTP marker bit, RFC 7741 §4.1), as libwebrtc's packet buffer does.
aiortc's own jitter buffer only knows a frame is complete when the *next* frame's first packet
arrives, which added the whole of the following frame (its wait, camera read, encoding) to
every figure; `frame_end=False` measures that way.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from document_camera.synthetic import SyntheticPage
from document_camera.zoom import Region, decode_marker

DEFAULT_REGIONS = (
    Region(0.1, 0.1, 0.3, 0.2),
    Region(0.5, 0.4, 0.25, 0.25),
    Region(0.2, 0.6, 0.5, 0.3),
    Region(0.6, 0.05, 0.35, 0.2),
)


@dataclass
class ZoomLatency:
    latencies_ms: list[float] = field(default_factory=list)  # one per region, in order
    timeouts: int = 0  # regions whose detail never arrived within the timeout

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None

    @property
    def p90_ms(self) -> float | None:
        values = sorted(self.latencies_ms)
        if len(values) < 2:
            return values[0] if values else None
        return statistics.quantiles(values, n=10, method="inclusive")[-1]

    @property
    def max_ms(self) -> float | None:
        return max(self.latencies_ms) if self.latencies_ms else None


class FrameEndJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer that also hands out a frame as soon as all its packets are
    there, from the first after the previous frame to the one with the marker bit, as a
    browser does; when one is missing, aiortc's own rule applies."""

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity, prefetch, is_video)
        self._ends: dict[int, int] = {}  # RTP timestamp → sequence number of its last packet

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if packet.marker:
            self._ends[packet.timestamp] = packet.sequence_number
            if len(self._ends) > 16:  # frames handed out by aiortc's rule, or lost
                del self._ends[next(iter(self._ends))]
        if frame is None and packet.timestamp in self._ends:
            frame = self._take(packet.timestamp)
        return pli, frame

    def _take(self, timestamp: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:
            return None
        end = self._ends[timestamp]
        parts: list[bytes] = []
        for count in range(self.capacity):
            packet = self._packets[(origin + count) % self.capacity]
            if packet is None or packet.timestamp != timestamp:
                return None  # a packet missing, or an older frame still incomplete
            if count == 0 and not _starts_vp8_frame(packet.payload):
                return None  # the frame's first packets are missing (joined mid-frame)
            parts.append(packet._data)  # type: ignore[attr-defined]  # set by the receiver
            if packet.sequence_number == end:
                self.remove(count + 1)
                del self._ends[timestamp]
                return JitterFrame(data=b"".join(parts), timestamp=timestamp)
        return None


def _starts_vp8_frame(payload: bytes) -> bool:
    """The VP8 payload descriptor says: start of partition 0 (RFC 7741 §4.2, S = 1, PID = 0)."""
    return bool(payload) and payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0


def complete_frames_at_their_end(receiver: Any) -> None:
    """Give an aiortc video receiver a FrameEndJitterBuffer (before its media flows)."""
    slot = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, slot, None)
    if not isinstance(current, JitterBuffer):
        raise RuntimeError("aiortc's RTCRtpReceiver has no jitter buffer slot: aiortc changed")
    setattr(receiver, slot, FrameEndJitterBuffer(capacity=current.capacity, is_video=True))


async def measure_zoom_latency(
    *,
    frame_size: tuple[int, int] = (3840, 2160),
    page: SyntheticPage | None = None,
    kind: str = "text",
    regions: tuple[Region, ...] = DEFAULT_REGIONS,
    size: tuple[int, int] = (1088, 1536),
    settle: float = 2.0,
    wait: float = 5.0,
    rounds: int = 1,
    frame_end: bool = True,
) -> ZoomLatency:
    """Median and per-region gesture-to-detail latency (ms), camera → relay → subscriber.

    `page`/`kind`: what lies under the synthetic camera (a text page by default, "plan" for
    a plan sheet). `settle`: seconds of whole-page streaming first (key frames, REMB);
    `wait`: how long a region may take before it counts as a timeout; `rounds`: times the
    regions are gone through; `frame_end`: the subscriber completes a frame at its last packet
    as a browser does (False: aiortc's jitter buffer, at the next frame's first packet).
    """
    from document_camera.encoder import DetailVp8Encoder, install_encoder
    from document_camera.rate_control import RateController, RatePolicy
    from document_camera.sources import SyntheticSource
    from document_camera.track import DocumentTrack
    from media_relay.aiortc_client import RelayPeerClient
    from media_relay.control import LocalRelay, RelayConfig

    loop = asyncio.get_running_loop()
    source = await loop.run_in_executor(
        None, lambda: SyntheticSource(frame_size=frame_size, kind=kind, seed=3, page=page))
    controller = RateController(RatePolicy(max_fps=8.0))
    track = DocumentTrack(source, size=size, controller=controller)
    encoder = DetailVp8Encoder(controller)
    relay = LocalRelay(RelayConfig(listen_address="127.0.0.1",
                                   announced_addresses=["127.0.0.1"]))
    await relay.start()
    got_track: asyncio.Future[Any] = loop.create_future()
    publisher = RelayPeerClient({"document": track}, ice_servers=[],
                                host_addresses=["127.0.0.1"])

    def on_track(remote_track: Any, _meta: dict[str, Any]) -> None:
        if frame_end:
            complete_frames_at_their_end(next(
                t.receiver for t in subscriber.pc.getTransceivers()
                if t.receiver.track is remote_track))
        if not got_track.done():
            got_track.set_result(remote_track)

    subscriber = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"],
                                 on_track=on_track)
    clients = {"doccam-1": publisher, "user-1": subscriber}

    class Listener:
        async def on_offer(self, room_id: str, pid: str, offer: dict[str, Any]) -> None:
            client = clients.get(pid)
            if client is not None:
                await relay.answer(room_id, pid, await client.handle_offer(offer))

        async def on_participant_gone(self, room_id: str, pid: str, reason: str) -> None:
            pass

        async def on_active_speaker(self, room_id: str, pid: str) -> None:
            pass

    relay.set_listener(Listener())
    result = ZoomLatency()
    try:
        offer = await relay.join("zoom", "user-1", [])
        await relay.answer("zoom", "user-1", await subscriber.handle_offer(offer))
        offer = await relay.join("zoom", "doccam-1", ["document"])
        sdp = await publisher.handle_offer(offer)
        sender = next(t.sender for t in publisher.pc.getTransceivers()
                      if t.sender.track is track)
        install_encoder(sender, encoder)
        await relay.answer("zoom", "doccam-1", sdp)
        remote = await asyncio.wait_for(got_track, 20)
        until = time.monotonic() + settle
        while time.monotonic() < until:
            await asyncio.wait_for(remote.recv(), 10)
        for region in regions * rounds:
            asked = time.monotonic()
            track.set_region(region)
            while True:
                left = asked + wait - time.monotonic()
                if left <= 0:
                    result.timeouts += 1
                    break
                try:
                    frame = await asyncio.wait_for(remote.recv(), left)
                except TimeoutError:
                    result.timeouts += 1
                    break
                image = frame.to_ndarray(format="bgr24")
                shown = decode_marker(image)
                if shown is not None and shown.contains(region, slack=2e-4):
                    result.latencies_ms.append((time.monotonic() - asked) * 1000.0)
                    break
            # look at it a moment, as a person would, before the next gesture
            await asyncio.sleep(0.3)
    finally:
        await publisher.close()
        await subscriber.close()
        await relay.stop()
        track.stop()
    return result


def main() -> None:  # python -m document_camera.zoom_bench [--aiortc-jitter] [--rounds N]
    import argparse

    parser = argparse.ArgumentParser(prog="python -m document_camera.zoom_bench")
    parser.add_argument("--rounds", type=int, default=1, help="times through the regions")
    parser.add_argument("--aiortc-jitter", action="store_true",
                        help="complete frames as aiortc's jitter buffer does (at the next "
                        "frame) instead of at their last packet")
    args = parser.parse_args()
    result = asyncio.run(measure_zoom_latency(rounds=args.rounds,
                                              frame_end=not args.aiortc_jitter))
    print({"zoom_latency_ms": result.median_ms, "p90_ms": result.p90_ms, "max_ms": result.max_ms,
           "all_ms": [round(v, 1) for v in result.latencies_ms], "timeouts": result.timeouts})


if __name__ == "__main__":
    main()
