"""A large sheet stitched during a call: the office's endpoint agent guides the clerk through
the tiles of a `TileGuide` plan, takes each tile from the document camera when the sheet lies
still and sharp, joins them (`document_camera.stitching.stitch_tiles`, grid known) and sends the
result into the call as a still: end-to-end encrypted through the document channel, so the
expert gets it in his documents at full resolution (README "Large sheets").

The clerk (or the call's expert) asks with `document_camera:stitch {call_id, sheet}`; the
server pushes it to the agent (signaling/in_call/stitch_requests.py). Every step is reported back
with
`document_camera:stitch_progress` (the server passes it on to the office's clerks and the
call's expert):

    place       put tile `tile` of `of` under the camera (row, col of the grid)
    hold_still  the picture changed but is not usable yet: `code` "moving" or "blurred"
    stitching   all tiles taken, joining them
    done        the stitched sheet went into the call as `filename`
    refused     the tiles could not be joined: `code` is the library's notice code
                (tiles_do_not_overlap, tiles_too_plain, stitch_rejected), `detail` its reason
    cancelled   the clerk cancelled, or the call ended
    failed      `code` "timeout" (no usable tile in time), "no_camera" or "not_delivered"

Taking a tile: the session reads the camera itself, about 12 times a second (the document
track reads it only as fast as its receiver's estimate allows, down to 1 fps; the two reads
are serialized by `SerializedSource`). Frames are compared on a small blurred grey copy (mean
absolute difference, 0–255). A tile is taken when the picture (1) has changed from the last
tile taken (the clerk moved the sheet; for the first tile, from the view when the request
came, or it has lain unchanged FIRST_TILE_GRACE seconds: the sheet was ready before the
button was pressed), (2) has been steady for STEADY_FRAMES frames, and (3) is sharp.

Sharpness of a tile is measured on its strongest edges, in camera pixels, separately across
vertical and horizontal lines: the second derivative's share of the first (a step blurred over
more pixels has a flatter slope change), and the lower of the two, so movement in either
direction counts. A plan's lines are sharp steps; the re-blur measure the track uses for text
(`document_camera.sharpness`) judged sharp synthetic plan tiles anywhere between 0.9 and 4.6
times its limit, which would keep a clerk waiting on a good tile. Synthetic plan tiles at
80–110 dpi, noise σ 2: sharp 0.23–0.32; defocus σ 1 px 0.10–0.17, σ 2 px 0.05–0.10; 5 px of
movement 0.02–0.07 across it. A tile needs TILE_SHARPNESS.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from document_camera.images import Image
from document_camera.notices import Notice, NoticeCode
from document_camera.sources import FrameSource, SourceError
from document_camera.stills import MEDIA_TYPES, Still, StillMetadata
from document_camera.stitching import TileGuide, stitch_tiles

logger = logging.getLogger(__name__)

SHEETS = ("A2", "A1")  # what the clerk's console offers (TileGuide plans A3–A0)
THUMB_WIDTH = 160
STEADY_DIFF = 2.0  # grey levels: consecutive frames this close are the same picture
MOVED_DIFF = 6.0  # ...this far from the last tile: the sheet was moved
STEADY_FRAMES = 3
TILE_SHARPNESS = 0.12
EDGE_SHARE = 99.0  # percentile: the strongest 1 % of slopes are the edges measured
MIN_EDGE_SLOPE = 40.0  # Sobel units: fainter slopes are paper texture and noise
FIRST_TILE_GRACE = 4.0  # seconds
TILE_TIMEOUT = 180.0  # seconds for one tile before the session gives up
FRAME_GAP = 0.08  # seconds: the session looks at the camera at most ~12 times a second
NO_CAMERA = 10.0  # seconds without a camera frame: the session gives up
JPEG_QUALITY = 90

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None]]
FrameReader = Callable[[], Image]  # blocking, raises SourceError (FrameSource.read)
SheetDelivery = Callable[[Still], Awaitable[None]]


@dataclass(frozen=True)
class SheetStill(Still):
    """A stitched sheet, named so the consoles can tell it from a page still."""

    sheet: str = ""

    @property
    def filename(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.metadata.taken_at))
        suffix = "png" if self.metadata.media_type == "image/png" else "jpg"
        millis = int(self.metadata.taken_at * 1000) % 1000
        return f"sheet-{self.sheet}-{stamp}-{millis:03d}.{suffix}"


class SerializedSource:
    """A camera read by two: the document track and a stitch session. The track reads only
    when its encoder asks for a frame (as slowly as 1 fps when the receiver's estimate is low),
    and a tile must not wait for that, so the session reads the camera itself; this keeps the
    two reads from running at once (OpenCV's capture is not thread-safe)."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.description = source.description
        self._lock = threading.Lock()

    def read(self) -> Image:
        with self._lock:
            return self.source.read()

    def reopen(self) -> None:
        with self._lock:
            self.source.reopen()

    def close(self) -> None:
        with self._lock:
            self.source.close()


def thumbnail(frame: Image) -> NDArray[np.float32]:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    scale = THUMB_WIDTH / gray.shape[1]
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0), np.float32)


def difference(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    if a.shape != b.shape:
        return 255.0
    return float(np.abs(a - b).mean())


def edge_sharpness(frame: Image) -> float | None:
    """How sharp the tile's lines are, across both directions (see the module's docstring);
    None when it shows no lines at all (blank paper: the stitcher will say so)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    gray = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 0.7)  # sensor noise is no edge
    values = []
    for dx, dy in ((1, 0), (0, 1)):
        slope = np.abs(cv2.Sobel(gray, cv2.CV_32F, dx, dy, ksize=3))
        bend = np.abs(cv2.Sobel(gray, cv2.CV_32F, 2 * dx, 2 * dy, ksize=3))
        edges = slope >= max(float(np.percentile(slope, EDGE_SHARE)), MIN_EDGE_SLOPE)
        if int(edges.sum()) >= 50:
            values.append(float(bend[edges].mean() / slope[edges].mean()))
    return min(values) if values else None


def tile_is_sharp(frame: Image) -> bool:
    sharpness = edge_sharpness(frame)
    return sharpness is None or sharpness >= TILE_SHARPNESS


def encode_sheet(image: Image, sheet: str, image_format: str, source: str) -> SheetStill:
    """The stitched sheet as a still (blocking: use an executor)."""
    if image_format == "png":
        ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    elif image_format == "jpeg":
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        raise ValueError(f"unknown still format {image_format!r}: use png or jpeg")
    if not ok:
        raise RuntimeError("OpenCV could not encode the stitched sheet")
    height, width = image.shape[:2]
    metadata = StillMetadata(
        width=width,
        height=height,
        media_type=MEDIA_TYPES[image_format],
        taken_at=time.time(),
        page_found=True,
        sharpness=None,
        in_focus=None,
        corners=None,
        source=f"{source} stitched {sheet}",
    )
    return SheetStill(encoded.tobytes(), metadata, sheet)


class StitchSession:
    """One guided capture of `sheet` in call `call_id`; `run()` reports every step through
    `report` and returns the last state. Cancel it by cancelling the task that runs it."""

    def __init__(
        self,
        call_id: int,
        sheet: str,
        *,
        read: FrameReader,
        report: ProgressCallback,
        deliver: SheetDelivery,
        image_format: str = "jpeg",
        source: str = "",
        tile_timeout: float = TILE_TIMEOUT,
        first_tile_grace: float = FIRST_TILE_GRACE,
    ) -> None:
        self.call_id = call_id
        self.sheet = sheet
        self.guide = TileGuide.plan(sheet)  # ValueError for a sheet it has no plan for
        self.read = read
        self.report = report
        self.deliver = deliver
        self.image_format = image_format
        self.source = source
        self.tile_timeout = tile_timeout
        self.first_tile_grace = first_tile_grace
        self.tiles: list[Image] = []
        self.state = "place"
        self.result: Still | None = None

    async def run(self) -> str:
        try:
            return await self._run()
        except asyncio.CancelledError:
            await self._send("cancelled", len(self.tiles) + 1)
            raise

    async def _run(self) -> str:
        loop = asyncio.get_running_loop()
        steps = self.guide.steps()
        first = await self._frame()
        reference = (
            await loop.run_in_executor(None, thumbnail, first) if first is not None else None
        )
        for step in steps:
            await self._send("place", step.index + 1)
            try:
                frame = await self._wait_for_tile(step.index, reference)
            except SourceError as exc:
                return await self._send(
                    "failed", step.index + 1, code="no_camera", detail=str(exc)[:200]
                )
            if frame is None:
                return await self._send(
                    "failed",
                    step.index + 1,
                    code="timeout",
                    detail=f"no steady, sharp picture of tile "
                    f"{step.index + 1} in {self.tile_timeout:.0f} s",
                )
            self.tiles.append(frame)
            reference = await loop.run_in_executor(None, thumbnail, frame)
        await self._send("stitching", len(steps))
        guide = self.guide
        result = await loop.run_in_executor(
            None,
            lambda: stitch_tiles(
                self.tiles, rows=guide.rows, cols=guide.cols, overlap=guide.overlap
            ),
        )
        if result.image is None:
            notice = result.notice
            return await self._send(
                "refused",
                len(steps),
                code=str(notice.code) if notice else "stitch_rejected",
                detail=notice.detail if notice else "",
            )
        image = result.image
        still = await loop.run_in_executor(
            None, encode_sheet, image, self.sheet, self.image_format, self.source
        )
        try:
            await self.deliver(still)
        except Exception as exc:  # the channel's errors: the clerk may retry, the call goes on
            logger.exception("the stitched sheet could not be delivered")
            return await self._send(
                "failed", len(steps), code="not_delivered", detail=str(exc)[:200]
            )
        self.result = still
        return await self._send(
            "done",
            len(steps),
            filename=still.filename,
            width=still.metadata.width,
            height=still.metadata.height,
        )

    async def _wait_for_tile(
        self, index: int, reference: NDArray[np.float32] | None
    ) -> Image | None:
        """The next frame that is a new, steady, sharp picture (or None after the timeout)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.tile_timeout
        window: list[NDArray[np.float32]] = []
        moved = reference is None
        told = ""
        last_frame_at = loop.time()
        next_read = loop.time()
        while loop.time() < deadline:
            await asyncio.sleep(max(0.0, next_read - loop.time()))
            next_read = loop.time() + FRAME_GAP
            frame = await self._frame()
            if frame is None:
                if loop.time() - last_frame_at > NO_CAMERA:
                    raise SourceError(
                        Notice(NoticeCode.CAMERA_LOST, f"no camera frame for {NO_CAMERA:.0f} s")
                    )
                continue
            last_frame_at = loop.time()
            thumb = await loop.run_in_executor(None, thumbnail, frame)
            if not moved and reference is not None:
                if difference(thumb, reference) > MOVED_DIFF:
                    moved = True
                elif index == 0 and loop.time() - started >= self.first_tile_grace:
                    moved = True  # the sheet lay ready before the clerk pressed the button
                else:
                    continue  # still the last tile (or the view before): not moved yet
            window = [*window[-(STEADY_FRAMES - 1) :], thumb]
            steady = len(window) == STEADY_FRAMES and all(
                difference(t, thumb) < STEADY_DIFF for t in window
            )
            if not steady:
                if len(window) > 1 and told != "moving":
                    told = "moving"
                    await self._send("hold_still", index + 1, code="moving")
                continue
            if not await loop.run_in_executor(None, tile_is_sharp, frame):
                if told != "blurred":
                    told = "blurred"
                    await self._send("hold_still", index + 1, code="blurred")
                window = window[-1:]
                continue
            return frame
        return None

    async def _frame(self) -> Image | None:
        """A fresh camera frame, or None when the camera gives none just now."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.read)
        except SourceError as exc:
            logger.info("stitching: no camera frame (%s)", exc)
            return None

    async def _send(self, state: str, tile: int, **extra: Any) -> str:
        self.state = state
        step = min(max(tile, 1), self.guide.rows * self.guide.cols) - 1
        payload = {
            "call_id": self.call_id,
            "sheet": self.sheet,
            "state": state,
            "tile": step + 1,
            "of": self.guide.rows * self.guide.cols,
            "rows": self.guide.rows,
            "cols": self.guide.cols,
            "row": step // self.guide.cols,
            "col": step % self.guide.cols,
            "captured": len(self.tiles),
            **extra,
        }
        try:
            await self.report(payload)
        except Exception as exc:  # a lost report does not stop the capture
            logger.warning("stitch progress not reported: %s", exc)
        return state
