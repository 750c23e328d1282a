"""Full-resolution stills of the page, handed to whatever carries documents.

The document track is tuned for reading live; a still is the page at the camera's full
resolution (rectified, flattened), encoded losslessly (PNG) or as high-quality JPEG, with
metadata. It goes to a `StillSink`: the encrypted document channel
(`endpoint/document_channel.py`) implements that protocol; `FileStillSink` writes files.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2

from document_camera.images import Image
from document_camera.pipeline import DocumentPipeline, PipelineOptions

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class StillMetadata:
    width: int
    height: int
    media_type: str
    taken_at: float  # Unix time
    page_found: bool
    sharpness: float | None
    in_focus: bool | None
    corners: list[list[float]] | None  # the page's corners in the camera frame
    source: str
    notices: list[str] = field(default_factory=list)  # notice codes, e.g. ["out_of_focus"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Still:
    data: bytes
    metadata: StillMetadata

    @property
    def filename(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.metadata.taken_at))
        suffix = "png" if self.metadata.media_type == "image/png" else "jpg"
        return f"document-{stamp}-{int(self.metadata.taken_at * 1000) % 1000:03d}.{suffix}"


class StillSink(Protocol):
    """Receives stills; the document channel encrypts and sends them into the call."""

    async def deliver(self, still: Still) -> None: ...


class FileStillSink:
    """Writes each still and its metadata (`.json`) into a folder."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.delivered: list[Path] = []

    async def deliver(self, still: Still) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._write, still)

    def _write(self, still: Still) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / still.filename
        path.write_bytes(still.data)
        path.with_suffix(".json").write_text(still.metadata.to_json(), encoding="utf-8")
        self.delivered.append(path)


def make_still(
    frame: Image,
    *,
    image_format: str = "png",
    options: PipelineOptions | None = None,
    source: str = "",
    jpeg_quality: int = 92,
) -> Still:
    """Process `frame` at its native resolution and encode it (blocking: use an executor)."""
    if image_format not in MEDIA_TYPES:
        raise ValueError(f"unknown still format {image_format!r}: use png or jpeg")
    pipeline = DocumentPipeline(options or PipelineOptions(long_side=None))
    result = pipeline.process(frame, long_side=None)
    if image_format == "png":
        ok, encoded = cv2.imencode(".png", result.image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        ok, encoded = cv2.imencode(".jpg", result.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the still")
    height, width = result.image.shape[:2]
    corners: list[list[float]] | None = None
    if result.quad is not None:
        corners = [[float(x), float(y)] for x, y in result.quad]
    metadata = StillMetadata(
        width=width, height=height, media_type=MEDIA_TYPES[image_format],
        taken_at=time.time(), page_found=result.page_found, sharpness=result.sharpness,
        in_focus=result.in_focus, corners=corners, source=source,
        notices=[str(n.code) for n in result.notices])
    return Still(encoded.tobytes(), metadata)


async def take_still(
    frame: Image, sink: StillSink, *, image_format: str = "png", source: str = ""
) -> Still:
    """Make a still off the event loop and deliver it."""
    loop = asyncio.get_running_loop()
    still = await loop.run_in_executor(
        None, lambda: make_still(frame, image_format=image_format, source=source))
    await sink.deliver(still)
    return still


def metadata_dict(still: Still) -> dict[str, Any]:
    return asdict(still.metadata)
