"""Small media helpers for the TURN call tests: a synthetic video track and ICE probes."""

from __future__ import annotations

import asyncio
import fractions
import time

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from av import VideoFrame

VIDEO_CLOCK = 90_000
# A colour that survives VP8 and is unlike black or green (what a broken path shows).
FILL_YUV = (150, 60, 200)


class ColourTrack(MediaStreamTrack):
    """160×120 frames of one colour at 15 fps: cheap to encode on a busy machine."""

    kind = "video"

    def __init__(self, width: int = 160, height: int = 120, fps: int = 15) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = VideoFrame(self.width, self.height, "yuv420p")
        y, u, v = FILL_YUV
        for plane, value in zip(frame.planes, (y, u, v), strict=True):
            plane.update(np.full(plane.buffer_size, value, dtype=np.uint8).tobytes())
        frame.pts = self._count * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame


def looks_like_fill(frame: VideoFrame) -> bool:
    planes = frame.to_ndarray(format="yuv420p")
    height = frame.height
    y = float(planes[:height].mean())
    return abs(y - FILL_YUV[0]) < 20


def selected_local_candidate_types(pc: RTCPeerConnection) -> set[str]:
    """Types of the local candidates ICE nominated, per transport of `pc`.

    aiortc has no public selected-pair API; aioice keeps it in Connection._nominated.
    """
    types: set[str] = set()
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        if id(ice) in seen:
            continue
        seen.add(id(ice))
        for pair in ice._connection._nominated.values():
            types.add(pair.local_candidate.type)
    return types


def sdp_candidate_types(sdp: str) -> set[str]:
    return {
        line.split(" typ ")[1].split()[0]
        for line in sdp.splitlines()
        if line.startswith("a=candidate:")
    }
