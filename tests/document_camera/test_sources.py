"""Frame sources: files that are not images, cameras that are absent or disappear."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from document_camera.notices import NoticeCode
from document_camera.sources import (
    FileSource,
    NotAnImage,
    SourceError,
    SourceUnavailable,
    SyntheticSource,
    V4l2Source,
    open_source,
)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hakemus ja liitteet", encoding="utf-8")
    with pytest.raises(NotAnImage) as caught:
        FileSource(path)
    assert str(caught.value) == f"{path}: neither an image nor a video"
    assert caught.value.notice.code == NoticeCode.NOT_AN_IMAGE
    assert caught.value.notice.text("sv") == "Filen är varken en bild eller en video."


def test_empty_and_truncated_images_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(NotAnImage):
        FileSource(empty)
    ok, png = cv2.imencode(".png", np.full((50, 60, 3), 128, np.uint8))
    assert ok
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png.tobytes()[:40])
    with pytest.raises(NotAnImage):
        FileSource(truncated)


def test_missing_file_and_absent_camera(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no such file"):
        FileSource(tmp_path / "nowhere.jpg")
    with pytest.raises(SourceUnavailable, match="is absent") as caught:
        V4l2Source(str(tmp_path / "video9"))
    assert caught.value.notice.code == NoticeCode.CAMERA_LOST


def test_image_file_reads_repeatedly(tmp_path: Path) -> None:
    image = np.zeros((90, 120, 3), np.uint8)
    image[:, 60:] = (10, 200, 30)
    path = tmp_path / "page.jpg"
    assert cv2.imwrite(str(path), image)
    source = open_source(f"file:{path}")
    first, second = source.read(), source.read()
    assert first.shape == (90, 120, 3)
    assert np.array_equal(first, second)
    first[:] = 0  # callers may scribble on frames; the source keeps its own
    assert source.read().any()


def test_video_file_loops(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            img = np.full((48, 64, 3), 60 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    source = FileSource(path)
    frames = [source.read() for _ in range(7)]  # more than the clip holds: it loops
    assert all(f.shape == (48, 64, 3) for f in frames)


def test_unknown_source_spec() -> None:
    with pytest.raises(ValueError, match="unknown source 'usb'"):
        open_source("usb")


def test_synthetic_camera_unplugged_and_back() -> None:
    source = SyntheticSource(frame_size=(320, 240), fail_after=2)
    source.read()
    source.read()
    with pytest.raises(SourceUnavailable):
        source.read()
    with pytest.raises(SourceUnavailable):
        source.reopen()
    source.plug_back()
    source.reopen()
    assert source.read().shape == (240, 320, 3)


def test_synthetic_frames_differ_only_by_noise() -> None:
    source = SyntheticSource(frame_size=(320, 240))
    a, b = source.read().astype(int), source.read().astype(int)
    assert not np.array_equal(a, b)
    assert np.abs(a - b).mean() < 8


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=512))
def test_garbage_files_give_a_source_error_or_an_image(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(data)
    try:
        source = FileSource(path)
    except SourceError:
        return
    assert source.read().ndim == 3
