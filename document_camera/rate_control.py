"""Bitrate and frame-rate policy of the document track: keep the resolution, trade frames.

A reader needs every pixel of a page, not motion. When the bandwidth estimate falls, the
track keeps its resolution and per-frame quality and sends fewer frames per second:

    frame_rate = clamp(target_bitrate / bits_per_frame, min_fps, max_fps)

Note: a receiver's estimate follows what it receives, and a page lying still needs few bits,
so a still page settles below `max_fps`; that costs no readability (the page is still) and a
new page shows within one frame interval.

`target_bitrate` starts at `max_bitrate` (the cap), follows the receiver's estimate (REMB,
RFC draft-alvestrand-rmcat-remb, as aiortc's RTCRtpSender delivers it to the encoder's
`target_bitrate`) and never exceeds the cap. aiortc's own VP8 encoder clamps any estimate to
250 kbit/s – 1.5 Mbit/s and starts at 500 kbit/s; the document track's encoder
(`document_camera.encoder`) uses this policy instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class RatePolicy:
    max_bitrate: int = 2_000_000
    min_bitrate: int = 100_000
    max_fps: float = 8.0
    min_fps: float = 1.0
    # Bits one frame of the page needs to stay sharp: 2 Mbit/s reaches the full 8 fps.
    bits_per_frame: int = 250_000

    def __post_init__(self) -> None:
        if not 0 < self.min_bitrate <= self.max_bitrate:
            raise ValueError("need 0 < min_bitrate <= max_bitrate")
        if not 0 < self.min_fps <= self.max_fps:
            raise ValueError("need 0 < min_fps <= max_fps")


class RateController:
    """Shared by the track (which paces frames) and the encoder (which hears REMB)."""

    def __init__(self, policy: RatePolicy | None = None) -> None:
        self.policy = policy or RatePolicy()
        self._lock = threading.Lock()  # the encoder runs in an executor thread
        self._target = self.policy.max_bitrate
        self.estimates_received = 0

    @property
    def target_bitrate(self) -> int:
        with self._lock:
            return self._target

    def on_estimate(self, bitrate: int) -> None:
        """A receiver's bandwidth estimate in bit/s."""
        policy = self.policy
        with self._lock:
            self._target = max(policy.min_bitrate, min(int(bitrate), policy.max_bitrate))
            self.estimates_received += 1

    @property
    def frame_rate(self) -> float:
        policy = self.policy
        fps = self.target_bitrate / policy.bits_per_frame
        return max(policy.min_fps, min(fps, policy.max_fps))
