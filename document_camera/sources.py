"""Where document-camera frames come from: a V4L2 camera, an image or video file, or a
synthetic scene.

A source is blocking (OpenCV reads block), so callers run `read()` in an executor. Every
failure is a `SourceError` carrying a clerk-facing `Notice`; a source that fails mid-stream
can be `reopen()`ed.

    SourceError
     ├── SourceUnavailable   the device/file is absent or cannot be opened
     └── NotAnImage          the file exists but is neither an image nor a video
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from document_camera.images import Image
from document_camera.notices import Notice, NoticeCode
from document_camera.synthetic import (
    CameraEffects,
    SyntheticPage,
    photograph,
    random_quad,
    render_plan_sheet,
    render_text_page,
)


class SourceError(Exception):
    def __init__(self, notice: Notice) -> None:
        super().__init__(notice.detail or notice.text("en"))
        self.notice = notice


class SourceUnavailable(SourceError):
    pass


class NotAnImage(SourceError):
    pass


class FrameSource(Protocol):
    """A camera-like thing. `read()` blocks until the next frame (BGR) or raises SourceError."""

    description: str

    def read(self) -> Image: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...


class V4l2Source:
    """A UVC/V4L2 camera via OpenCV, asked for its largest resolution (document cameras
    are 4K and more); a camera that disappears raises SourceUnavailable from `read()`."""

    def __init__(self, device: str, size: tuple[int, int] = (3840, 2160)) -> None:
        self.device = device
        self.size = size
        self.description = f"v4l2:{device}"
        self._capture: cv2.VideoCapture | None = None
        self.reopen()

    def reopen(self) -> None:
        self.close()
        if not Path(self.device).exists():
            raise SourceUnavailable(Notice(NoticeCode.CAMERA_LOST, f"{self.device} is absent"))
        capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            raise SourceUnavailable(
                Notice(NoticeCode.CAMERA_LOST, f"{self.device} could not be opened"))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # always the latest frame, not a stale one
        self._capture = capture

    def read(self) -> Image:
        if self._capture is None:
            raise SourceUnavailable(Notice(NoticeCode.CAMERA_LOST, f"{self.device} is closed"))
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self.close()
            raise SourceUnavailable(
                Notice(NoticeCode.CAMERA_LOST, f"{self.device} returned no frame"))
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FileSource:
    """An image (shown as a still scene) or a video (looped) from a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = f"file:{self.path}"
        self._image: Image | None = None
        self._video: cv2.VideoCapture | None = None
        self.reopen()

    def reopen(self) -> None:
        self.close()
        if not self.path.is_file():
            raise SourceUnavailable(Notice(NoticeCode.CAMERA_LOST, f"{self.path}: no such file"))
        data = np.fromfile(str(self.path), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is not None:
            self._image = image
            return
        video = cv2.VideoCapture(str(self.path))
        ok = video.isOpened()
        frame = video.read()[1] if ok else None
        if frame is None:
            video.release()
            raise NotAnImage(Notice(
                NoticeCode.NOT_AN_IMAGE, f"{self.path}: neither an image nor a video"))
        video.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._video = video

    def read(self) -> Image:
        if self._image is not None:
            return self._image.copy()
        if self._video is None:
            raise SourceUnavailable(Notice(NoticeCode.CAMERA_LOST, f"{self.path} is closed"))
        ok, frame = self._video.read()
        if not ok:  # end of the video: loop
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._video.read()
            if not ok:
                raise SourceUnavailable(
                    Notice(NoticeCode.CAMERA_LOST, f"{self.path} stopped giving frames"))
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        self._image = None


class SyntheticSource:
    """A simulated document camera looking at a page on a desk.

    The page (text or a plan drawing) is photographed once per `scene` with a seeded pose;
    each `read()` adds fresh sensor noise, as a real camera's frames differ. `fail_after`
    makes the camera "disappear" after that many frames, for testing the unplugged cable.
    """

    def __init__(
        self,
        *,
        frame_size: tuple[int, int] = (1920, 1080),
        kind: str = "text",
        seed: int = 1,
        effects: CameraEffects | None = None,
        page: SyntheticPage | None = None,
        tilt: float = 0.05,
        fail_after: int | None = None,
    ) -> None:
        self.frame_size = frame_size
        self.description = f"synthetic:{kind}"
        self.effects = effects or CameraEffects()
        self.fail_after = fail_after
        self._frames = 0
        self._seed = seed
        self._lock = threading.Lock()
        if page is None:
            dpi = max(72.0, 1.3 * frame_size[1] * 0.88 / (297.0 / 25.4))
            page = render_text_page(dpi=dpi, seed=seed) if kind == "text" \
                else render_plan_sheet(dpi=dpi * 0.7, size_mm=(420.0, 297.0), seed=seed)
        self.page = page
        h, w = page.image.shape[:2]
        self.corners = random_quad(frame_size, w / h, random.Random(seed), fill=0.88, tilt=tilt)
        still = dataclasses.replace(self.effects, noise_sigma=0.0)  # noise is added per frame
        self._clean = photograph(page, self.corners, frame_size, effects=still, seed=seed).frame
        # A small bank of precomputed noise fields, cycled: fresh noise per 4K frame would
        # cost more than the whole processing pipeline.
        rng = np.random.default_rng(seed)
        self._noise: list[tuple[Image, Image]] = []
        for _ in range(3 if self.effects.noise_sigma > 0 else 0):
            field = rng.normal(0.0, self.effects.noise_sigma, self._clean.shape)
            field = np.clip(np.rint(field), -255, 255)
            self._noise.append((np.clip(field, 0, 255).astype(np.uint8),
                                np.clip(-field, 0, 255).astype(np.uint8)))

    def read(self) -> Image:
        with self._lock:
            self._frames += 1
            if self.fail_after is not None and self._frames > self.fail_after:
                raise SourceUnavailable(
                    Notice(NoticeCode.CAMERA_LOST, "synthetic camera unplugged"))
            if not self._noise:
                return self._clean.copy()
            up, down = self._noise[self._frames % len(self._noise)]
            return cv2.subtract(cv2.add(self._clean, up), down)

    def reopen(self) -> None:
        with self._lock:
            if self.fail_after is not None and self._frames > self.fail_after:
                raise SourceUnavailable(
                    Notice(NoticeCode.CAMERA_LOST, "synthetic camera still unplugged"))

    def plug_back(self) -> None:
        with self._lock:
            self.fail_after = None

    def close(self) -> None:
        pass


class SheetUnderCamera:
    """A large sheet under the document camera, moved by the clerk from tile to tile (tests and
    demos of the guided stitching, endpoint/stitch_session.py).

    `views` are what the camera sees with the sheet in each position (e.g. `make_tiles` of a
    `render_plan_sheet`), `start` what it sees before the first (by default the first view
    darkened: the desk). `show(k)` is the clerk's hand: for `moving_seconds` the camera sees
    the sheet on its way (the old and the new view mixed and smeared sideways), then view `k`
    lies still, with fresh sensor noise on every read.
    """

    def __init__(
        self,
        views: list[Image],
        *,
        start: Image | None = None,
        moving_seconds: float = 0.4,
        noise_sigma: float = 2.0,
        seed: int = 1,
    ) -> None:
        if not views:
            raise ValueError("a sheet needs at least one view")
        self.views = views
        self.description = "sheet-under-camera"
        self.moving_seconds = moving_seconds
        self.shown: int | None = None
        self._moving_until = 0.0
        self._current = start if start is not None else (views[0] // 3)
        self._moving: list[Image] = []
        self._frames = 0
        self._lock = threading.Lock()
        rng = np.random.default_rng(seed)
        self._noise: list[tuple[Image, Image]] = []
        if noise_sigma > 0:
            for _ in range(3):
                field = np.clip(np.rint(rng.normal(0.0, noise_sigma, views[0].shape)), -255, 255)
                self._noise.append((np.clip(field, 0, 255).astype(np.uint8),
                                    np.clip(-field, 0, 255).astype(np.uint8)))

    def show(self, index: int) -> None:
        """Move the sheet so that view `index` lies under the camera."""
        target = self.views[index]
        with self._lock:
            before = self._current
            moving = []
            for step in range(1, 4):
                mix = step / 4
                if before.shape == target.shape:
                    frame = cv2.addWeighted(before, 1 - mix, target, mix, 0.0)
                else:
                    frame = target.copy()
                moving.append(cv2.blur(frame, (31, 1)))  # smeared by the movement
            self._moving = moving
            self._moving_until = time.monotonic() + self.moving_seconds
            self._current = target
            self.shown = index

    def read(self) -> Image:
        with self._lock:
            self._frames += 1
            if self._moving and time.monotonic() < self._moving_until:
                return self._moving[self._frames % len(self._moving)].copy()
            frame = self._current
            if not self._noise or self._noise[0][0].shape != frame.shape:
                return frame.copy()
            up, down = self._noise[self._frames % len(self._noise)]
            return cv2.subtract(cv2.add(frame, up), down)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass

def open_source(spec: str) -> FrameSource:
    """`synthetic`, `synthetic:plan`, `file:PATH` or `v4l2:/dev/videoN`."""
    if spec == "synthetic" or spec == "synthetic:text":
        return SyntheticSource()
    if spec == "synthetic:plan":
        return SyntheticSource(kind="plan")
    if spec.startswith("file:"):
        return FileSource(spec[len("file:"):])
    if spec.startswith("v4l2:"):
        return V4l2Source(spec[len("v4l2:"):])
    raise ValueError(
        f"unknown source {spec!r}: use synthetic, synthetic:plan, file:PATH or v4l2:/dev/videoN")
