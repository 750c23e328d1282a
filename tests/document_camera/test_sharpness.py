"""The focus measure tells a sharp page from a blurred one, whatever the resolution."""

from __future__ import annotations

import numpy as np
import pytest

from document_camera.notices import NoticeCode
from document_camera.pipeline import DocumentPipeline, PipelineOptions
from document_camera.sharpness import IN_FOCUS_THRESHOLD, is_in_focus, sharpness_score
from document_camera.synthetic import CameraEffects, synthetic_capture


def _score(blur: float, frame_size: tuple[int, int] = (1920, 1080), seed: int = 3) -> float:
    effects = CameraEffects(blur_sigma=blur)
    capture = synthetic_capture(frame_size=frame_size, seed=seed, effects=effects)
    result = DocumentPipeline(PipelineOptions(long_side=1536)).process(capture.frame)
    assert result.sharpness is not None
    return result.sharpness


@pytest.mark.parametrize("frame_size", [(1920, 1080), (3840, 2160)])
def test_sharp_page_is_in_focus_and_blurred_is_not(frame_size: tuple[int, int]) -> None:
    sharp = _score(0.6, frame_size)
    blurred = _score(2.0 * frame_size[0] / 1920, frame_size)
    assert sharp > IN_FOCUS_THRESHOLD > blurred
    assert sharp > 1.5 * blurred


def test_score_falls_as_blur_grows() -> None:
    scores = [_score(b, seed=4) for b in (0.0, 0.6, 1.0, 1.5, 2.5, 5.0)]
    assert scores == sorted(scores, reverse=True)


def test_blurred_page_tells_the_clerk() -> None:
    capture = synthetic_capture(frame_size=(1920, 1080), seed=5,
                                effects=CameraEffects(blur_sigma=3.5))
    result = DocumentPipeline().process(capture.frame)
    assert result.page_found
    assert result.in_focus is False
    assert NoticeCode.OUT_OF_FOCUS in [n.code for n in result.notices]


def test_blank_field_scores_zero() -> None:
    assert sharpness_score(np.full((300, 400, 3), 200, np.uint8)) == 0.0
    assert not is_in_focus(0.0)


@pytest.mark.parametrize("effects", [CameraEffects(blur_sigma=2.0), CameraEffects(motion_px=12)])
def test_blur_at_4k_tells_the_clerk(effects: CameraEffects) -> None:
    """Measured on the camera's own pixels: 4K defocus and movement are reported."""
    capture = synthetic_capture(frame_size=(3840, 2160), seed=2, effects=effects)
    result = DocumentPipeline(PipelineOptions(long_side=1536)).process(capture.frame)
    codes = [n.code for n in result.notices]
    assert NoticeCode.OUT_OF_FOCUS in codes or NoticeCode.MOTION_BLUR in codes
    sharp = synthetic_capture(frame_size=(3840, 2160), seed=2)
    clean = DocumentPipeline(PipelineOptions(long_side=1536)).process(sharp.frame)
    assert clean.in_focus and clean.notices == []
