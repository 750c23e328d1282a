"""Focus measure: how sharp the page is, so the clerk can be told to refocus.

Variance of the Laplacian, normalised by the image's own contrast (its grey-level variance)
and measured at a fixed scale, so the score depends on focus rather than on the resolution
or on how much ink there is. A slight Gaussian first keeps sensor noise from passing for
detail (without it a badly blurred, noisy page scores like a sharp one). Measured on the
rectified page before illumination flattening, which would amplify noise in dark corners.

On synthetic 10 pt pages (tests/document_camera/test_sharpness.py) a sharp page scores
0.1–0.5, a page blurred by σ = 1.5 px of a 1080p frame (text going soft) about 0.013, and
heavier blur less; IN_FOCUS_THRESHOLD sits between. Pages that are mostly photograph score
lower when sharp; the threshold is for text and drawings.
"""

from __future__ import annotations

import cv2
import numpy as np

from document_camera.images import Image

MEASURE_WIDTH = 1000  # pixels: the scale at which the score is defined
IN_FOCUS_THRESHOLD = 0.02
NOISE_SIGMA = 0.8  # pixels at MEASURE_WIDTH


def sharpness_score(image: Image) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    scale = MEASURE_WIDTH / gray.shape[1]
    gray = cv2.resize(gray, None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    values = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), NOISE_SIGMA)
    contrast = float(values.var())
    if contrast < 4.0:  # a blank field: nothing to focus on
        return 0.0
    laplacian = cv2.Laplacian(values, cv2.CV_32F)
    return float(laplacian.var() / contrast)


def is_in_focus(score: float) -> bool:
    return score >= IN_FOCUS_THRESHOLD
