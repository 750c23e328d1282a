"""Blur measure: how blurred the page is where the track shows it, and whether by movement.

Measured on the camera's own pixels inside the region the track shows (the page, or the
zoomed part of it), never on a downscaled copy: downscaling hides blur, and a 4K camera's
picture is read at full resolution when the expert zooms in.

The measure is the re-blur test of Crete et al. (2007, "The blur effect: perception and
estimation with a new no-reference perceptual blur metric"): blur the picture again with a
long box along one direction and see how much of its pixel-to-pixel variation survives. A
sharp picture loses most of it, a blurred one little: 0 is sharp, 1 all blur. It is taken
along four directions; movement blurs one direction much more than the one across it, the
lens blurs all. It runs on the few most textured patches of the region, so it costs the
same at 1080p and at 4K, and a light Gaussian first keeps sensor noise from passing for
detail.

The same blur is more of the letter when the letters are fewer pixels tall, so the limit is
set by how many camera pixels a millimetre of the page gets (measured from the page's
outline, taking its long side as an A-series 297 mm, A4; a larger sheet is then held to a
slightly stricter limit). On synthetic pages (tests/document_camera/test_sharpness.py,
the bench's blur conditions) sharp pages measure 0.12–0.17 at 1080p (3.2 px/mm) and
0.19–0.26 at 4K (6.4 px/mm); defocus of σ 1.5 px, 0.22 and 0.35.

That limit cannot tell small blur on every page (sharp plans measure more than text moved by
3 px), so `pipeline.DocumentPipeline` also holds each page to the sharpest it measured a
moment before (RELATIVE_RISE there).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from document_camera.images import Image, Quad

PATCH = 96  # camera pixels, square
PATCHES = 8  # the most textured ones are measured
GRID = 7  # candidate patches per side of the region
REBLUR = 15  # pixels: the box of the re-blur
NOISE_SIGMA = 0.7
PAGE_LONG_MM = 297.0
# The limit at 3.2 px/mm (an A4 page filling a 1080p frame), rising by LIMIT_PER_OCTAVE for
# every doubling of the pixel density.
LIMIT_AT_REFERENCE = 0.20
REFERENCE_PX_PER_MM = 3.2
LIMIT_PER_OCTAVE = 0.10
MOTION_ANISOTROPY = 0.33  # sharpest / blurriest direction below this: a movement
IN_FOCUS_THRESHOLD = 1.0  # of sharpness_score: the blur's share of its own limit, inverted


@dataclass(frozen=True)
class Blur:
    worst: float  # the re-blur measure in the blurriest direction, 0–1
    best: float  # ...in the sharpest direction
    limit: float  # the largest `worst` that still reads at this pixel density

    @property
    def in_focus(self) -> bool:
        return self.worst < self.limit

    @property
    def motion(self) -> bool:
        """Blurred, and much more in one direction than across it."""
        return not self.in_focus and self.best < MOTION_ANISOTROPY * self.worst

    @property
    def sharpness(self) -> float:
        """limit / measure: above 1 is in focus (the `sharpness` the track reports)."""
        return self.limit / max(self.worst, 1e-3)


def blur_limit(px_per_mm: float) -> float:
    octaves = np.log2(max(px_per_mm, 0.5) / REFERENCE_PX_PER_MM)
    return float(LIMIT_AT_REFERENCE + LIMIT_PER_OCTAVE * octaves)


def measure_blur(
    image: Image, region: Quad | None = None, *, px_per_mm: float | None = None
) -> Blur | None:
    """Blur of `image` (camera pixels) inside `region` (its corners in `image`; default the
    whole image, taken as a page), or None when the region shows nothing to measure.
    `px_per_mm`: the page's pixel density; by default from the region's long side."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = gray.shape[:2]
    if region is None:
        region = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    region = np.asarray(region, np.float64)
    if px_per_mm is None:
        sides = [float(np.hypot(*(region[(i + 1) % 4] - region[i]))) for i in range(4)]
        px_per_mm = max((sides[0] + sides[2]) / 2, (sides[1] + sides[3]) / 2) / PAGE_LONG_MM
    patches = _textured_patches(gray, region)
    if not patches:
        return None
    values = [_reblur(patch) for patch in patches]
    per_direction = np.median(np.array(values), axis=0)
    return Blur(float(per_direction.max()), float(per_direction.min()), blur_limit(px_per_mm))


def _reblur(patch: Image) -> list[float]:
    p = cv2.GaussianBlur(patch.astype(np.float32), (0, 0), NOISE_SIGMA)
    # Divide out the paper's own level (a shadow's soft edge is not blur of the print).
    paper = cv2.morphologyEx(p, cv2.MORPH_CLOSE, cv2.getStructuringElement(
        cv2.MORPH_RECT, (REBLUR, REBLUR)))
    paper = cv2.GaussianBlur(paper, (0, 0), REBLUR / 2)
    p = p / np.maximum(paper, 8.0) * 255.0
    k = REBLUR
    boxes = (np.ones((1, k), np.float32), np.ones((k, 1), np.float32),
             np.eye(k, dtype=np.float32), np.fliplr(np.eye(k, dtype=np.float32)).copy())
    out = []
    for direction, box in enumerate(boxes):
        b = cv2.filter2D(p, -1, box / k, borderType=cv2.BORDER_REFLECT)
        df, db = _steps(p, direction), _steps(b, direction)
        df, db = df[k:-k, k:-k], db[k:-k, k:-k]
        total = float(df.sum())
        kept = float(np.maximum(0.0, df - db).sum())
        out.append((total - kept) / total if total > 1e-6 else 1.0)
    return out


def _steps(p: np.ndarray, direction: int) -> np.ndarray:
    if direction == 0:
        return np.abs(p[:-1, 1:] - p[:-1, :-1])
    if direction == 1:
        return np.abs(p[1:, :-1] - p[:-1, :-1])
    if direction == 2:
        return np.abs(p[1:, 1:] - p[:-1, :-1])
    return np.abs(p[1:, :-1] - p[:-1, 1:])


def _textured_patches(gray: Image, region: np.ndarray) -> list[Image]:
    h, w = gray.shape[:2]
    if h < PATCH or w < PATCH:
        return []
    candidates = []
    for u in np.linspace(0.1, 0.9, GRID):
        for v in np.linspace(0.1, 0.9, GRID):
            top = region[0] + u * (region[1] - region[0])
            bottom = region[3] + u * (region[2] - region[3])
            cx, cy = top + v * (bottom - top)
            x0, y0 = int(cx - PATCH / 2), int(cy - PATCH / 2)
            if 0 <= x0 and 0 <= y0 and x0 + PATCH <= w and y0 + PATCH <= h:
                patch = gray[y0:y0 + PATCH, x0:x0 + PATCH]
                candidates.append((float(patch.std()), patch))
    candidates.sort(key=lambda item: -item[0])
    # Blank paper (or a flat patch) has nothing to measure.
    return [patch for spread, patch in candidates[:PATCHES] if spread >= 12.0]


def sharpness_score(image: Image) -> float:
    """`Blur.sharpness` of the whole image taken as a page (0 for a blank field)."""
    blur = measure_blur(image)
    return 0.0 if blur is None else blur.sharpness


def is_in_focus(score: float) -> bool:
    return score >= IN_FOCUS_THRESHOLD
