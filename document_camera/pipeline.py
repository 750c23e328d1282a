"""The document camera's processing pipeline: find, rectify, crop, flatten, enhance, score.

Each step can be switched off. `DocumentPipeline.process` is synchronous CPU work (OpenCV);
`process_async` runs it in an executor so the event loop never waits on it. A frame with no
page in it is a normal result carrying a NO_PAGE notice, never an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from document_camera.illumination import enhance_contrast, flatten_illumination
from document_camera.images import Image, Quad
from document_camera.notices import Notice, NoticeCode
from document_camera.page_detection import CONFIDENT, edge_support, find_page
from document_camera.rectification import output_size, rectify
from document_camera.sharpness import MOTION_ANISOTROPY, Blur, measure_blur

# A new quadrilateral that moved less than this share of the page diagonal is jitter of the
# detector, not a moved page: keeping the old one gives the encoder an unchanging picture.
QUAD_HOLD_SHARE = 0.004
# A frame whose thumbnail differs from the last processed one by less than these (grey levels:
# mean and largest single thumbnail pixel; sensor noise averages out in a thumbnail) shows the
# same scene: its result is reused. A page lying still then costs one thumbnail per frame
# instead of the whole pipeline, and the encoder gets an unchanging picture to refine.
UNCHANGED_MEAN_LEVELS = 1.5
UNCHANGED_MAX_LEVELS = 10.0
THUMBNAIL_WIDTH = 240
# Blur relative to the page itself. What is printed moves the re-blur measure more than a
# little blur does (sharp plans measure more than slightly blurred text), so no one limit
# tells 3 px of movement on every page. The same page is its own yardstick: the clerk lays
# it, it is sharp, then it moves or the focus drifts. A frame is blurred when it measures
# RELATIVE_RISE times, and RELATIVE_MARGIN more than, the sharpest this page measured in the
# last REFERENCE_SECONDS (sensor noise between frames of a still page moves it ≤ 0.002;
# 3 px of movement raised it by 0.014–0.06 at 1080p and 4K, bench_scenes).
RELATIVE_RISE = 1.06
RELATIVE_MARGIN = 0.010
REFERENCE_SECONDS = 10.0
# "The same page": the page's long side within this share of the reference's (a page lifted
# nearer the camera gets more pixels per millimetre and measures differently) and its coarse
# look (a 48 px wide thumbnail of the rectified page) correlating at least this much with the
# previous frame's (blur of 12 px keeps 0.94 and more; another page, or a shadow moving over
# it, starts a new reference).
SAME_PAGE_SIZE_SHARE = 0.10
SAME_PAGE_CORRELATION = 0.90
PAGE_LOOK_WIDTH = 48
# A corner moving less than this share of the page's diagonal between two frames: at rest.
REST_SHARE = 0.01
# A blurred result is not reused for a still scene for longer than this many frames: the page
# that came to rest after moving looks the same in the thumbnail but is sharp again.
BLUR_RECHECK_FRAMES = 4


@dataclass(frozen=True)
class PipelineOptions:
    detect_page: bool = True
    rectify: bool = True  # and crop to the page
    flatten_illumination: bool = True
    enhance_contrast: bool = True
    score_sharpness: bool = True
    long_side: int | None = None  # rectified page's long side in pixels; None = native
    reuse_unchanged: bool = True  # skip the work for a scene that has not changed


@dataclass
class ProcessedFrame:
    image: Image  # the page (rectified when found) or the whole frame
    quad: Quad | None  # the page's corners in the input frame, when found
    sharpness: float | None
    in_focus: bool | None
    notices: list[Notice] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def page_found(self) -> bool:
        return self.quad is not None


class DocumentPipeline:
    def __init__(
        self, options: PipelineOptions | None = None, *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or PipelineOptions()
        self._held_quad: Quad | None = None
        self._last: tuple[Image, int | None, ProcessedFrame] | None = None
        self.reused = 0  # frames answered from the unchanged-scene cache
        self._clock = clock
        # The page's recent blur measures (time, worst), its size and its coarse look.
        self._page_blur: deque[tuple[float, float]] = deque()
        self._page_size = 0.0
        self._page_look: np.ndarray | None = None
        self._page_quad: Quad | None = None  # where the reference was measured
        self._previous_quad: Quad | None = None
        self._reused_blurred = 0

    def process(self, frame: Image, *, long_side: int | None = None) -> ProcessedFrame:
        if not self.options.reuse_unchanged:
            return self._process(frame, long_side)
        started = time.perf_counter()
        thumb = _thumbnail(frame)
        last = self._last
        blurred = last is not None and any(
            n.code in (NoticeCode.MOTION_BLUR, NoticeCode.OUT_OF_FOCUS) for n in last[2].notices)
        if blurred:
            self._reused_blurred += 1
        if last is not None and last[1] == long_side and _same_scene(last[0], thumb) and not (
                blurred and self._reused_blurred >= BLUR_RECHECK_FRAMES):
            self.reused += 1
            if not blurred and self._page_blur:
                # Still there and as sharp: the page's reference stays current while it lies
                # still, so movement after a long look is still told.
                self._page_blur.append((self._clock(), self._page_blur[-1][1]))
                self._expire_reference()
            previous = last[2]
            return ProcessedFrame(
                previous.image, previous.quad, previous.sharpness, previous.in_focus,
                list(previous.notices),
                {"unchanged": (time.perf_counter() - started) * 1000.0})
        self._reused_blurred = 0
        result = self._process(frame, long_side)
        self._last = (thumb, long_side, result)
        return result

    def _process(self, frame: Image, long_side: int | None) -> ProcessedFrame:
        opts = self.options
        timings: dict[str, float] = {}
        notices: list[Notice] = []
        started = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal started
            now = time.perf_counter()
            timings[name] = (now - started) * 1000.0
            started = now

        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        quad: Quad | None = None
        if opts.detect_page:
            detection = find_page(frame)
            lap("detect")
            if detection is None:
                self._held_quad = None
                notices.append(Notice(NoticeCode.NO_PAGE))
            elif detection.confident:
                quad = self._steady(detection.quad)
            else:
                # Unsure: keep the last good outline if the paper's edge is still under it,
                # otherwise show the whole camera view. Never a silent guess.
                held = self._held_quad
                if held is not None and edge_support(frame, held) >= CONFIDENT:
                    quad = held
                else:
                    code = NoticeCode.SHADOW_ON_PAGE if detection.shadow \
                        else NoticeCode.PAGE_UNCERTAIN
                    notices.append(Notice(code, f"page confidence {detection.confidence:.2f}"))
            if detection is not None and detection.shadow and quad is not None:
                notices.append(Notice(NoticeCode.SHADOW_ON_PAGE, "page cropped; shadow on it"))
        image = frame
        if quad is not None and opts.rectify:
            size = output_size(quad, long_side or opts.long_side)
            image = rectify(frame, quad, size)
            lap("rectify")
        sharpness: float | None = None
        in_focus: bool | None = None
        if opts.score_sharpness:
            # Measured on the camera's own pixels of the region shown, before flattening and
            # stretching, which would amplify noise into "detail".
            blur = measure_blur(frame, quad)
            if blur is not None:
                sharpness, in_focus = blur.sharpness, blur.in_focus
                if quad is not None and not in_focus:
                    code = NoticeCode.MOTION_BLUR if blur.motion else NoticeCode.OUT_OF_FOCUS
                    notices.append(Notice(code, f"blur {blur.worst:.2f} (limit {blur.limit:.2f},"
                                                f" sharpest direction {blur.best:.2f})"))
            else:
                sharpness, in_focus = 0.0, False
            relative = self._relative_blur(blur, quad, image if quad is not None else None)
            if relative is not None:
                in_focus = False
                notices.append(relative)
            lap("sharpness")
        if opts.flatten_illumination and quad is not None:
            image = flatten_illumination(image)
            lap("flatten")
        if opts.enhance_contrast and quad is not None:
            image = enhance_contrast(image)
            lap("enhance")
        return ProcessedFrame(image, quad, sharpness, in_focus, notices, timings)

    async def process_async(
        self, frame: Image, *, long_side: int | None = None
    ) -> ProcessedFrame:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, lambda: self.process(frame, long_side=long_side))

    def forget_page(self) -> None:
        """Drop the page's blur reference: the next frame is judged on its own."""
        self._page_blur.clear()
        self._page_look = self._page_quad = self._previous_quad = None

    def _expire_reference(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        while self._page_blur and now - self._page_blur[0][0] > REFERENCE_SECONDS:
            self._page_blur.popleft()

    def _relative_blur(self, blur: Blur | None, quad: Quad | None,
                       page: Image | None) -> Notice | None:
        """A blur notice when this frame is clearly blurrier than the same page was in the
        last REFERENCE_SECONDS (None when it is not, when the absolute limit already told, or
        when there is no reference yet); keeps the page's reference up to date."""
        if blur is None or quad is None or page is None:
            self.forget_page()
            return None
        now = self._clock()
        size = _long_side(quad)
        look = _page_look(page)
        previous, previous_quad = self._page_look, self._previous_quad
        same = (previous is not None and previous.shape == look.shape
                and abs(size - self._page_size) <= SAME_PAGE_SIZE_SHARE * self._page_size
                and float((previous * look).mean()) >= SAME_PAGE_CORRELATION)
        self._page_look, self._previous_quad = look, quad.copy()
        # A page at rest (where it was in the previous frame) somewhere else than where its
        # reference was measured has been moved and laid down: the tilt and the pixels per
        # millimetre there are its own, so its reference starts again. While it moves, and
        # at rest where it was, it is held to its reference (movement blurs; focus drifts).
        at_rest = previous_quad is not None and _moved(previous_quad, quad) <= REST_SHARE
        if not same or (at_rest and self._page_quad is not None
                        and _moved(self._page_quad, quad) > REST_SHARE):
            self._page_blur.clear()
            self._page_size = size
            self._page_quad = quad.copy()
        self._expire_reference(now)
        reference = min((worst for _, worst in self._page_blur), default=None)
        if not blur.in_focus:
            return None  # told by the absolute limit; not a reference either
        self._page_blur.append((now, blur.worst))
        if reference is None or blur.worst < max(reference * RELATIVE_RISE,
                                                 reference + RELATIVE_MARGIN):
            return None
        code = NoticeCode.MOTION_BLUR if blur.best < MOTION_ANISOTROPY * blur.worst \
            else NoticeCode.OUT_OF_FOCUS
        return Notice(code, f"blur {blur.worst:.3f}, this page measured {reference:.3f} "
                            f"within {REFERENCE_SECONDS:g} s (sharpest direction {blur.best:.3f})")

    def _steady(self, quad: Quad) -> Quad:
        held = self._held_quad
        if held is not None:
            diagonal = float(np.hypot(*(held[2] - held[0])))
            moved = float(np.max(np.hypot(*(quad - held).T)))
            if moved < QUAD_HOLD_SHARE * diagonal:
                return held
        self._held_quad = quad
        return quad


def _long_side(quad: Quad) -> float:
    sides = [float(np.hypot(*(quad[(i + 1) % 4] - quad[i]))) for i in range(4)]
    return max(sides[0] + sides[2], sides[1] + sides[3]) / 2


def _moved(a: Quad, b: Quad) -> float:
    """The largest corner move from `a` to `b`, as a share of `a`'s diagonal."""
    diagonal = float(np.hypot(*(a[2] - a[0])))
    return float(np.max(np.hypot(*(b - a).T))) / max(diagonal, 1.0)


def _page_look(page: Image) -> np.ndarray:
    """The rectified page's coarse look: a small thumbnail, zero mean and unit spread."""
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) if page.ndim == 3 else page
    h, w = gray.shape[:2]
    small = cv2.resize(gray, (PAGE_LOOK_WIDTH, max(1, round(h * PAGE_LOOK_WIDTH / w))),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    small -= small.mean()
    return small / max(float(small.std()), 1e-3)


def _same_scene(a: Image, b: Image) -> bool:
    if a.shape != b.shape:
        return False
    diff = cv2.absdiff(a, b)
    return float(diff.mean()) < UNCHANGED_MEAN_LEVELS and float(diff.max()) < UNCHANGED_MAX_LEVELS


def _thumbnail(frame: Image) -> Image:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    # An averaging resize: each thumbnail pixel is the mean of many, so noise averages out.
    scale = THUMBNAIL_WIDTH / max(1, gray.shape[1])
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
        if scale < 1 else gray


def canvas_for(image: Image, size: tuple[int, int]) -> tuple[int, int]:
    """The track's canvas turned to follow the picture: `size` (either way round) landscape
    for a landscape picture, portrait for a portrait one, so an A-series page fills it."""
    short, long = sorted(size)
    h, w = image.shape[:2]
    return (long, short) if w > h else (short, long)


def fit_to_canvas(image: Image, size: tuple[int, int], background: int = 0) -> Image:
    """Scale `image` to fit inside `size` (width, height), centred, keeping its aspect.

    The document track keeps one resolution whatever it shows, so receivers and the encoder
    never have to re-adapt.
    """
    width, height = size
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    if resized.ndim == 2:
        resized = cv2.cvtColor(resized, cv2.COLOR_GRAY2BGR)
    canvas = np.full((height, width, 3), background, np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    canvas[y0:y0 + new_h, x0:x0 + new_w] = resized
    return canvas
