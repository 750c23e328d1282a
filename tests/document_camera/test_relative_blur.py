"""Blur told relative to the page itself: the same page seen sharp, then blurred.

No one limit tells 3 px of movement on every page (what is printed moves the measure more),
so the pipeline holds each page to the sharpest it measured a moment ago
(`pipeline.RELATIVE_RISE`, `REFERENCE_SECONDS`).
"""

from __future__ import annotations

import numpy as np
import pytest

from document_camera.bench_reading import text_page
from document_camera.bench_scenes import CONDITIONS, RESOLUTIONS, shoot
from document_camera.notices import NoticeCode
from document_camera.pipeline import (
    BLUR_RECHECK_FRAMES,
    REFERENCE_SECONDS,
    DocumentPipeline,
    PipelineOptions,
    ProcessedFrame,
)

BLUR = {NoticeCode.MOTION_BLUR, NoticeCode.OUT_OF_FOCUS}


def _blur_told(result: ProcessedFrame) -> bool:
    return bool({n.code for n in result.notices} & BLUR)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pipeline(clock: Clock | None = None, *, reuse: bool = False) -> DocumentPipeline:
    return DocumentPipeline(
        PipelineOptions(long_side=1536, reuse_unchanged=reuse), clock=clock or Clock()
    )


@pytest.mark.parametrize("resolution", ["1080p", "4k"])
def test_three_px_of_movement_is_told_after_the_page_was_seen_sharp(resolution: str) -> None:
    page = text_page(8.0, 1)
    size = RESOLUTIONS[resolution]
    motion = CONDITIONS["motion3"]
    steady = shoot(page, motion, size, 1, steady=True).frame
    moved = shoot(page, motion, size, 1).frame
    # On its own the frame passes the absolute limit: that is why the page is its own yardstick.
    assert not _blur_told(_pipeline().process(moved))
    pipe = _pipeline()
    assert not _blur_told(pipe.process(steady))
    assert _blur_told(pipe.process(moved))
    # Sharp again: nothing to tell, and another sharp frame (other sensor noise) is no alarm.
    assert not _blur_told(pipe.process(shoot(page, CONDITIONS["flat"], size, 1).frame))
    pipe = _pipeline()
    pipe.process(steady)
    assert not _blur_told(pipe.process(shoot(page, motion, size, 1, steady=True).frame))


def test_the_reference_expires_and_a_page_laid_elsewhere_starts_its_own() -> None:
    page = text_page(8.0, 1)
    size = RESOLUTIONS["1080p"]
    motion = CONDITIONS["motion3"]
    steady = shoot(page, motion, size, 1, steady=True).frame
    moved = shoot(page, motion, size, 1).frame
    clock = Clock()
    pipe = _pipeline(clock)
    pipe.process(steady)
    clock.now = 1.0
    assert _blur_told(pipe.process(moved))
    clock.now = 2.0 + REFERENCE_SECONDS  # no sharper frame of it since: judged on its own
    assert not _blur_told(pipe.process(moved))
    # A page lying still stays its own reference however long the expert looks at it.
    still = _pipeline(clock, reuse=True)
    clock.now = 0.0
    still.process(steady)
    for clock.now in (5.0, 9.0, 13.0, 17.0):
        assert not _blur_told(still.process(steady))
    assert still.reused == 4
    # Moving: the page is a little further on in the frame (a thumbnail showing the same
    # scene would be answered from the cache).
    assert _blur_told(still.process(np.roll(moved, 12, axis=1)))
    # Laid down again elsewhere, turned: measured at rest there, it is its own reference.
    tilt = CONDITIONS["tilt"]
    pipe = _pipeline(clock)
    first = pipe.process(shoot(page, tilt, size, 7).frame)
    other = shoot(page, tilt, size, 1).frame  # measures 1.4 times seed 7's
    pipe.process(other)  # moving (the page jumped): may be told
    at_rest = pipe.process(other)
    assert first.in_focus and at_rest.in_focus and not _blur_told(at_rest)


def test_a_still_page_after_movement_is_not_left_reported_as_blurred() -> None:
    """A sharp frame looking like the blurred one in the thumbnail used to reuse its result,
    notice and all, for as long as the page lay still."""
    page = text_page(8.0, 1)
    size = RESOLUTIONS["1080p"]
    motion = CONDITIONS["motion12"]
    pipe = _pipeline(reuse=True)
    assert _blur_told(pipe.process(shoot(page, motion, size, 1).frame))
    sharp = shoot(page, motion, size, 1, steady=True).frame
    results = [pipe.process(sharp) for _ in range(BLUR_RECHECK_FRAMES + 1)]
    assert not _blur_told(results[-1])
    assert pipe.reused >= 1  # a still, sharp page is still answered from the cache
    assert not _blur_told(pipe.process(sharp))
