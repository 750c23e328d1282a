"""The document camera as an aiortc video track: one fixed, high resolution at a low rate.

Each frame: read the source, run the pipeline (rectified, flattened page), fit it onto the
fixed canvas, hand it to the encoder. All CPU work runs in an executor. The pace comes from
the `RateController` (5–10 fps, fewer when the bandwidth estimate drops; never a smaller
picture).

Remote zoom (`set_region`, document_camera/zoom.py): while the expert looks at a region of the
page, each frame is that region rendered from the camera's full-resolution pixels, with a
marker strip saying which part of the page it shows; a new region is sent at once rather than
at the next frame time, rendered from the camera frame the track already has (the page lies
still while the expert looks; the next frame reads the camera again).

When the camera fails mid-call the track does not end: it shows the last page dimmed with the
message on it, tells the clerk once (`on_notice`), tries to reopen the camera every few
seconds and carries on when it is back. The call never notices.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.frame import VideoFrame
from numpy.typing import NDArray

from document_camera.images import Image, Quad
from document_camera.notices import Notice, NoticeCode
from document_camera.pipeline import (
    DocumentPipeline,
    PipelineOptions,
    canvas_for,
    fit_to_canvas,
)
from document_camera.rate_control import RateController
from document_camera.sources import FrameSource, SourceError
from document_camera.zoom import PageRect, PageZoom, Region, zoom_canvas

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
# A4 portrait at ~130 dpi; both sides multiples of 16 for the encoder's macroblocks.
DEFAULT_SIZE = (1088, 1536)
REOPEN_INTERVAL = 2.0
# A new zoom region is rendered at once, but frames never come closer than this.
MIN_FRAME_GAP = 0.04


@dataclass
class TrackStatus:
    """What the clerk's screen shows about the document camera right now."""

    camera_ok: bool = True
    page_found: bool = False
    sharpness: float | None = None
    in_focus: bool | None = None
    frame_rate: float = 0.0
    target_bitrate: int = 0
    frames_sent: int = 0
    zoom: PageRect | None = None  # what the last frame showed when it was a zoomed one


NoticeCallback = Callable[[Notice], None]


class DocumentTrack(MediaStreamTrack):
    kind = "video"

    def __init__(
        self,
        source: FrameSource,
        *,
        size: tuple[int, int] = DEFAULT_SIZE,
        controller: RateController | None = None,
        pipeline: DocumentPipeline | None = None,
        on_notice: NoticeCallback | None = None,
        reopen_interval: float = REOPEN_INTERVAL,
    ) -> None:
        super().__init__()
        self.source = source
        self.size = size
        self.controller = controller or RateController()
        self.pipeline = pipeline or DocumentPipeline(PipelineOptions(long_side=max(size)))
        self.on_notice = on_notice
        self.reopen_interval = reopen_interval
        self.status = TrackStatus()
        self.last_raw: Image | None = None  # the latest camera frame, for stills
        self._last_image: Image | None = None
        self._last_page: Image | None = None
        self._yuv_of: Image | None = None
        self._yuv: NDArray[np.uint8] = np.zeros((0,), np.uint8)
        self._active: set[NoticeCode] = set()
        self._start: float | None = None
        self._next_at = 0.0
        self._next_reopen = 0.0
        self.region: Region | None = None  # remote zoom: the part of the page asked for
        self._zoom = PageZoom(flatten=self.pipeline.options.flatten_illumination,
                              enhance=self.pipeline.options.enhance_contrast)
        self._last_region: Region | None = None
        # the camera frame last processed, its page and outline: what a new region is cut from
        self._scene: tuple[Image, Image, Quad] | None = None
        self._region_changed = asyncio.Event()
        self._last_frame_at = 0.0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self._next_at = now
        elif self._next_at > now and not self._region_changed.is_set():
            try:
                await asyncio.wait_for(self._region_changed.wait(), self._next_at - now)
            except TimeoutError:
                pass
        gap = self._last_frame_at + MIN_FRAME_GAP - time.monotonic()
        if gap > 0:
            await asyncio.sleep(gap)
        changed = self._region_changed.is_set()
        self._region_changed.clear()
        self._last_frame_at = time.monotonic()
        frame_rate = self.controller.frame_rate
        self._next_at = max(self._next_at + 1.0 / frame_rate, time.monotonic() - 0.5)
        if changed:
            # A new region: one more frame soon after. The encoder's first frame of new
            # content is coarse (its rate control), and a receiver that knows a frame is
            # complete only when the next one starts (aiortc's jitter buffer) shows it then.
            self._next_at = min(self._next_at, time.monotonic() + 2 * MIN_FRAME_GAP)
        loop = asyncio.get_running_loop()
        video_frame = await loop.run_in_executor(None, self._produce, changed)
        video_frame.pts = int((time.monotonic() - self._start) * VIDEO_CLOCK_RATE)
        video_frame.time_base = TIME_BASE
        self.status.frame_rate = frame_rate
        self.status.target_bitrate = self.controller.target_bitrate
        self.status.frames_sent += 1
        return video_frame

    def set_region(self, region: Region | None) -> None:
        """Show `region` of the page (remote zoom), or the whole page again (None). Call it
        on the event loop; the next frame follows without waiting for its turn."""
        if region != self.region:
            self.region = region
            self._region_changed.set()

    # -- runs in the executor

    def _produce(self, region_changed: bool = False) -> VideoFrame:
        canvas = self._reframe() if region_changed else None
        if canvas is None:
            canvas = self._next_canvas()
        if canvas is not self._yuv_of:
            # A page lying still gives the same canvas object: convert it once.
            self._yuv = np.ascontiguousarray(
                cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
            self._yuv_of = canvas
        return VideoFrame.from_ndarray(self._yuv, format="yuv420p")

    def _next_canvas(self) -> Image:
        if not self.status.camera_ok:
            if time.monotonic() < self._next_reopen:
                return self._lost_canvas()
            try:
                self.source.reopen()
            except SourceError:
                self._next_reopen = time.monotonic() + self.reopen_interval
                return self._lost_canvas()
        try:
            raw = self.source.read()
        except SourceError as exc:
            logger.warning("document camera failed: %s", exc)
            self.status.camera_ok = False
            self._next_reopen = time.monotonic() + self.reopen_interval
            self._raise_notice(exc.notice)
            return self._lost_canvas()
        if not self.status.camera_ok or NoticeCode.CAMERA_LOST in self._active:
            self.status.camera_ok = True
            self._active.discard(NoticeCode.CAMERA_LOST)
            self._emit(Notice(NoticeCode.CAMERA_BACK))
        self.last_raw = raw
        result = self.pipeline.process(raw)
        self.status.page_found = result.page_found
        self.status.sharpness = result.sharpness
        self.status.in_focus = result.in_focus
        current = {notice.code for notice in result.notices}
        for notice in result.notices:
            self._raise_notice(notice)
        for code in (NoticeCode.NO_PAGE, NoticeCode.OUT_OF_FOCUS, NoticeCode.MOTION_BLUR,
                     NoticeCode.SHADOW_ON_PAGE, NoticeCode.PAGE_UNCERTAIN):
            if code not in current:
                self._active.discard(code)
        self._scene = (raw, result.image, result.quad) if result.quad is not None else None
        return self._compose(raw, result.image, result.quad)

    def _reframe(self) -> Image | None:
        """The canvas for a new region from the camera frame already processed, or None when
        there is none to use (no page found, camera lost). Reading a new 4K frame and letting
        the pipeline look at it first made the region's frame take 28 ms instead of 17 (median
        at load 2.5; 198 against 139 ms at load 20)."""
        scene = self._scene
        if scene is None or not self.status.camera_ok:
            return None
        return self._compose(*scene)

    def _compose(self, raw: Image, page: Image, quad: Quad | None) -> Image:
        region = self.region if quad is not None else None
        if page is self._last_page and region == self._last_region \
                and self._last_image is not None:
            return self._last_image  # unchanged scene: the same canvas as last time
        if page is not self._last_page:
            self._zoom.new_scene()
        if region is not None and quad is not None:
            # Remote zoom: the region from the camera's own pixels, not from the page image.
            canvas, shown = self._zoom.render(raw, quad, region,
                                              zoom_canvas(region, quad, self.size))
            self.status.zoom = shown
        else:
            # The canvas follows the page: a landscape plan goes out landscape, not
            # letterboxed.
            canvas = fit_to_canvas(page, canvas_for(page, self.size))
            self.status.zoom = None
        self._last_page = page
        self._last_region = region
        self._last_image = canvas
        return canvas

    def _lost_canvas(self) -> Image:
        width, height = self.size
        if self._last_image is not None:
            canvas = (self._last_image.astype(np.uint16) * 2 // 5).astype(np.uint8)
        else:
            canvas = np.full((height, width, 3), 40, np.uint8)
        notice = Notice(NoticeCode.CAMERA_LOST)
        scale = width / 1400.0
        y = height // 2 - int(60 * scale)
        for language in ("fi", "sv", "en"):
            # Hershey fonts have no ä/ö: the clerk's UI shows the real text; this is a hint.
            text = notice.text(language).encode("ascii", "replace").decode()
            for line in _wrap(text, 48):
                cv2.putText(canvas, line, (int(40 * scale), y), cv2.FONT_HERSHEY_SIMPLEX,
                            scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
                y += int(48 * scale)
            y += int(24 * scale)
        return canvas

    def _raise_notice(self, notice: Notice) -> None:
        if notice.code in self._active:
            return
        self._active.add(notice.code)
        self._emit(notice)

    def _emit(self, notice: Notice) -> None:
        if self.on_notice is not None:
            try:
                self.on_notice(notice)
            except Exception:  # a broken UI callback must not stop the camera
                logger.exception("document camera notice callback failed")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines
