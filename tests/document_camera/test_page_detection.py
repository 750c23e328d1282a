"""Finding and rectifying the page: corner accuracy against synthetic ground truth."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from document_camera.illumination import enhance_contrast, flatten_illumination
from document_camera.notices import NoticeCode
from document_camera.page_detection import find_page, order_corners
from document_camera.pipeline import DocumentPipeline
from document_camera.rectification import ISO_RATIO, output_size, rectify
from document_camera.synthetic import CameraEffects, synthetic_capture

MAX_CORNER_ERROR_PX = 2.0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("frame_size", [(1920, 1080), (1280, 720)])
def test_corners_found_within_two_pixels(seed: int, frame_size: tuple[int, int]) -> None:
    capture = synthetic_capture(frame_size=frame_size, seed=seed)
    detection = find_page(capture.frame)
    assert detection is not None
    error = np.hypot(*(detection.quad - capture.corners).T)
    assert float(error.max()) < MAX_CORNER_ERROR_PX, error


def test_corners_found_in_4k_frame() -> None:
    capture = synthetic_capture(frame_size=(3840, 2160), seed=7, tilt=0.08)
    detection = find_page(capture.frame)
    assert detection is not None
    assert float(np.hypot(*(detection.quad - capture.corners).T).max()) < MAX_CORNER_ERROR_PX


def test_corners_found_under_harsh_light_and_noise() -> None:
    effects = CameraEffects(light_falloff=0.55, blur_sigma=1.5, noise_sigma=8.0)
    capture = synthetic_capture(frame_size=(1920, 1080), seed=11, effects=effects)
    detection = find_page(capture.frame)
    assert detection is not None
    assert float(np.hypot(*(detection.quad - capture.corners).T).max()) < 3.0


def test_rectified_page_matches_the_printed_page() -> None:
    capture = synthetic_capture(frame_size=(1920, 1080), seed=3)
    detection = find_page(capture.frame)
    assert detection is not None
    size = output_size(detection.quad, 1000)
    assert size == (round(1000 / ISO_RATIO), 1000)  # snapped to A-series proportions
    truth = cv2.cvtColor(cv2.resize(capture.page.image, size, interpolation=cv2.INTER_AREA),
                         cv2.COLOR_BGR2GRAY)

    def similarity(quad: np.ndarray) -> float:
        page = enhance_contrast(flatten_illumination(rectify(capture.frame, quad, size)))
        return _ncc(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY), truth)

    found = similarity(detection.quad)
    # Control: the same warp from corners 4 px off. Text lines no longer line up.
    off = similarity(detection.quad + np.float32([4, 0]))
    assert found > 0.72
    assert found > off + 0.2


def test_frame_without_page_is_a_result_not_an_exception() -> None:
    rng = np.random.default_rng(0)
    desk = rng.integers(40, 90, (1080, 1920, 3)).astype(np.uint8)
    assert find_page(desk) is None
    result = DocumentPipeline().process(desk)
    assert not result.page_found
    assert [n.code for n in result.notices] == [NoticeCode.NO_PAGE]
    assert result.image.shape == desk.shape  # the clerk still sees what the camera sees
    assert "Asiakirjaa ei löydy" in result.notices[0].text("fi")


def test_white_wall_and_round_blob_are_not_pages() -> None:
    assert find_page(np.full((720, 1280, 3), 230, np.uint8)) is None
    disc = np.full((720, 1280, 3), 50, np.uint8)
    cv2.circle(disc, (640, 360), 300, (240, 240, 240), -1)
    assert find_page(disc) is None


def test_tiny_and_single_pixel_frames() -> None:
    assert find_page(np.zeros((1, 1, 3), np.uint8)) is None
    assert find_page(np.zeros((16, 16, 3), np.uint8)) is None
    assert DocumentPipeline().process(np.zeros((2, 2), np.uint8)).quad is None


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(4))))
def test_order_corners_ignores_input_order(order: list[int]) -> None:
    quad = np.array([[100, 80], [900, 120], [880, 700], [60, 650]], np.float32)
    assert np.array_equal(order_corners(quad[order]), quad)


def test_pipeline_steps_can_be_switched_off() -> None:
    from document_camera.pipeline import PipelineOptions

    capture = synthetic_capture(frame_size=(1280, 720), seed=2)
    raw = DocumentPipeline(PipelineOptions(
        detect_page=False, rectify=False, flatten_illumination=False, enhance_contrast=False,
        score_sharpness=False)).process(capture.frame)
    assert raw.image is capture.frame
    assert raw.sharpness is None and raw.quad is None and raw.notices == []
    found = DocumentPipeline(PipelineOptions(rectify=False)).process(capture.frame)
    assert found.page_found and found.image.shape == capture.frame.shape
    steps = DocumentPipeline().process(capture.frame).timings_ms
    assert set(steps) == {"detect", "rectify", "flatten", "sharpness", "enhance"}
    assert all(itertools.starmap(lambda _k, v: v >= 0, steps.items()))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    x = a.astype(np.float64) - a.mean()
    y = b.astype(np.float64) - b.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 200), st.integers(1, 200), st.integers(0, 2**32 - 1),
    st.sampled_from(["noise", "blocks", "flat"]),
)
def test_any_frame_gives_a_result(width: int, height: int, seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        frame = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    elif kind == "blocks":
        frame = np.kron(rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3)),
                        np.ones((8, 8, 1))).astype(np.uint8)
    else:
        frame = np.full((height, width, 3), int(rng.integers(0, 256)), np.uint8)
    result = DocumentPipeline().process(frame)
    assert result.image.ndim == 3 and result.image.size > 0
    assert result.page_found == (result.quad is not None)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_shadow_band_does_not_split_the_page_and_is_told(seed: int) -> None:
    """A band of shadow taking half the light across the page: corners still right, and the
    clerk hears about the shadow (the old bright-region finder was 30–70 % of the diagonal
    off here, silently)."""
    capture = synthetic_capture(frame_size=(1920, 1080), seed=seed,
                                effects=CameraEffects(shadow=0.5))
    result = DocumentPipeline().process(capture.frame)
    assert result.quad is not None
    assert float(np.hypot(*(result.quad - capture.corners).T).max()) < 3.0
    assert NoticeCode.SHADOW_ON_PAGE in [n.code for n in result.notices]
    assert "Varjo sivun päällä" in next(
        n for n in result.notices if n.code == NoticeCode.SHADOW_ON_PAGE).text("fi")


def test_unsure_page_is_not_cropped_silently() -> None:
    """Paper on a desk as bright as itself: no clear edge. Either no crop with a notice, or a
    crop that is right."""
    capture = synthetic_capture(frame_size=(1280, 720), seed=3)
    frame = capture.frame.copy()
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, capture.corners.astype(np.int32), 255)
    frame[mask == 0] = 235  # a white desk
    result = DocumentPipeline().process(frame)
    if result.quad is not None:
        assert float(np.hypot(*(result.quad - capture.corners).T).max()) < 5.0
    else:
        assert [n.code for n in result.notices] in (
            [NoticeCode.PAGE_UNCERTAIN], [NoticeCode.NO_PAGE], [NoticeCode.SHADOW_ON_PAGE])


@pytest.mark.parametrize(("condition", "resolution", "seed"), [
    ("hand", "4k", 2),  # fingers over the left edge of an A3 plan
    ("curl", "1080p", 2),  # the plan's bottom-right corner folded over
])
def test_plan_with_a_hand_or_a_folded_corner_is_cropped_right(
    condition: str, resolution: str, seed: int
) -> None:
    """Before: the outline of the plan's outer walls (every side a dark step, ~30 % of the
    diagonal inside the paper's edge) was taken for the page, and nothing was said. A side
    of the page must have desk beyond it, not paper again past a printed line; the weak
    sides of an almost-right outline are then moved onto the paper's edge."""
    from document_camera.bench_reading import PAGE_NOTICES, corner_error, plan_page
    from document_camera.bench_scenes import CONDITIONS, RESOLUTIONS, shoot

    shot = shoot(plan_page(seed), CONDITIONS[condition], RESOLUTIONS[resolution], seed + 100)
    result = DocumentPipeline().process(shot.frame)
    # Right (measured 0.5–0.6 % of the diagonal), and no page notice on a clear page. (With
    # the desk check alone the outline is unsure and the clerk is told; with neither, the
    # walls are cropped silently.)
    assert result.quad is not None, [n.code for n in result.notices]
    assert corner_error(result.quad, shot.corners) < 0.02
    assert not {n.code for n in result.notices} & PAGE_NOTICES
