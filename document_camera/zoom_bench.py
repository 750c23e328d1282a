"""Gesture-to-detail latency of remote zoom, headless: for the benchmark.

`measure_zoom_latency` publishes a real DocumentTrack through an in-process `LocalRelay` (on
127.0.0.1) to an aiortc subscriber, as `etapalvelu bench document-camera` streams the page,
and for each of a few regions measures the time from `set_region` (what the agent does on the
`document_camera:region` push) to the first frame the subscriber *decoded* whose marker says
it shows that region. Socket.io's hop (console → server → agent, a few ms on loopback) and the
browser's paint are not in it; tests/expert_console/test_remote_zoom.py measures the whole path
with real Chromium and prints it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

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
    def max_ms(self) -> float | None:
        return max(self.latencies_ms) if self.latencies_ms else None


async def measure_zoom_latency(
    *,
    frame_size: tuple[int, int] = (3840, 2160),
    page: SyntheticPage | None = None,
    kind: str = "text",
    regions: tuple[Region, ...] = DEFAULT_REGIONS,
    size: tuple[int, int] = (1088, 1536),
    settle: float = 2.0,
    wait: float = 5.0,
) -> ZoomLatency:
    """Median and per-region gesture-to-detail latency (ms), camera → relay → subscriber.

    `page`/`kind`: what lies under the synthetic camera (a text page by default, "plan" for
    a plan sheet). `settle`: seconds of whole-page streaming first (key frames, REMB);
    `wait`: how long a region may take before it counts as a timeout.
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
        for region in regions:
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


def main() -> None:  # python -m document_camera.zoom_bench
    result = asyncio.run(measure_zoom_latency())
    print({"zoom_latency_ms": result.median_ms, "max_ms": result.max_ms,
           "all_ms": [round(v, 1) for v in result.latencies_ms], "timeouts": result.timeouts})


if __name__ == "__main__":
    main()
