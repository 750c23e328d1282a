"""The pipeline's unchanged-scene shortcut: a page lying still is processed once."""

from __future__ import annotations

import cv2

from document_camera.pipeline import DocumentPipeline, PipelineOptions, fit_to_canvas
from document_camera.sources import SyntheticSource


def test_still_page_is_processed_once_and_a_finger_is_noticed() -> None:
    source = SyntheticSource(frame_size=(1920, 1080), seed=3)
    pipeline = DocumentPipeline(PipelineOptions(long_side=1024))
    first = pipeline.process(source.read())
    again = [pipeline.process(source.read()) for _ in range(3)]  # fresh sensor noise each
    assert pipeline.reused == 3
    assert all(r.image is first.image and list(r.timings_ms) == ["unchanged"] for r in again)
    # A fingertip on the page is a change: processed anew.
    frame = source.read()
    cv2.circle(frame, (960, 540), 30, (150, 170, 210), -1)
    touched = pipeline.process(frame)
    assert pipeline.reused == 3
    assert "detect" in touched.timings_ms
    # A different output size is never answered from the cache.
    assert pipeline.process(frame, long_side=512).image.shape[0] == 512


def test_shortcut_can_be_switched_off() -> None:
    source = SyntheticSource(frame_size=(1280, 720), seed=3)
    pipeline = DocumentPipeline(PipelineOptions(reuse_unchanged=False))
    pipeline.process(source.read())
    pipeline.process(source.read())
    assert pipeline.reused == 0


def test_fit_to_canvas_keeps_aspect_and_size() -> None:
    source = SyntheticSource(frame_size=(1280, 720), seed=3)
    canvas = fit_to_canvas(source.read(), (1088, 1536))
    assert canvas.shape == (1536, 1088, 3)
    # Landscape frame in a portrait canvas: black bars above and below.
    assert canvas[:100].max() == 0 and canvas[-100:].max() == 0


async def test_process_async_runs_off_the_loop_with_the_same_result() -> None:
    import threading

    source = SyntheticSource(frame_size=(1280, 720), seed=3)
    frame = source.read()
    seen: list[str] = []
    pipeline = DocumentPipeline(PipelineOptions(long_side=512, reuse_unchanged=False))
    original = pipeline._process

    def spy(image, long_side):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return original(image, long_side)

    pipeline._process = spy  # type: ignore[method-assign]
    result = await pipeline.process_async(frame)
    assert result.page_found and result.image.shape[0] == 512
    assert seen and seen[0] != threading.main_thread().name
