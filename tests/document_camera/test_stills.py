"""Full-resolution stills and the file sink the document channel will replace."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from document_camera.stills import FileStillSink, Still, StillSink, make_still, take_still
from document_camera.synthetic import synthetic_capture


def test_still_is_the_rectified_page_at_native_resolution() -> None:
    capture = synthetic_capture(frame_size=(3840, 2160), seed=2)
    still = make_still(capture.frame, image_format="png", source="synthetic")
    image = cv2.imdecode(np.frombuffer(still.data, np.uint8), cv2.IMREAD_COLOR)
    meta = still.metadata
    assert image.shape[:2] == (meta.height, meta.width)
    # Native resolution: the page's long side as the camera saw it (~1900 px in 4K).
    assert meta.height > 1800
    assert abs(meta.height / meta.width - np.sqrt(2)) < 0.01
    assert meta.page_found and meta.in_focus
    assert meta.media_type == "image/png"
    assert meta.corners is not None
    assert np.abs(np.array(meta.corners) - capture.corners).max() < 2.0


def test_jpeg_still_and_bad_format() -> None:
    capture = synthetic_capture(frame_size=(1280, 720), seed=1)
    still = make_still(capture.frame, image_format="jpeg")
    assert still.data[:2] == b"\xff\xd8"
    assert still.filename.endswith(".jpg")
    with pytest.raises(ValueError, match="unknown still format 'gif'"):
        make_still(capture.frame, image_format="gif")


def test_still_without_page_says_so() -> None:
    still = make_still(np.full((480, 640, 3), 60, np.uint8))
    assert not still.metadata.page_found
    assert still.metadata.notices == ["no_page"]


async def test_file_sink_writes_still_and_metadata(tmp_path: Path) -> None:
    sink: StillSink = FileStillSink(tmp_path / "stills")
    capture = synthetic_capture(frame_size=(1280, 720), seed=4)
    still = await take_still(capture.frame, sink, source="synthetic")
    assert isinstance(still, Still)
    written = sorted((tmp_path / "stills").iterdir())
    assert [p.suffix for p in written] == [".json", ".png"]
    assert written[1].read_bytes() == still.data
    meta = json.loads(written[0].read_text(encoding="utf-8"))
    assert meta["width"] == still.metadata.width and meta["source"] == "synthetic"
