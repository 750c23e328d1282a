"""Flattening uneven light and enhancing contrast on a rectified page.

The paper's own brightness is estimated by removing the ink (a grey closing) and smoothing;
dividing by it makes the paper evenly white whatever the lamp did. A percentile stretch then
puts the paper at white and the ink near black.
"""

from __future__ import annotations

import cv2
import numpy as np

from document_camera.images import Image

BACKGROUND_WIDTH = 256  # the background model needs no detail; estimate it small and fast


def paper_background(gray: Image) -> Image:
    """The paper's own brightness (ink closed away, smoothed) at `gray`'s size, float32.

    Estimated small (BACKGROUND_WIDTH): the model needs no detail. Remote zoom
    (document_camera/zoom.py) samples the whole page's model for the region it shows.
    """
    h, w = gray.shape
    scale = min(1.0, BACKGROUND_WIDTH / w)
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    size = max(3, int(min(small.shape) * 0.06) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    paper = cv2.GaussianBlur(paper, (0, 0), size / 2)
    return cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def flatten_illumination(image: Image) -> Image:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    gain = 245.0 / np.maximum(paper_background(gray), 16.0)
    if image.ndim == 3:
        gain = gain[..., None]
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def enhance_contrast(
    image: Image, low_pct: float = 0.5, high_pct: float = 90.0
) -> Image:
    """Stretch levels so ink is dark and paper white.

    The high percentile sits inside the paper (most of a page is paper), so the paper maps to
    pure white and its sensor noise disappears, which also spares the video encoder's bits.
    """
    lut = contrast_lut(image, low_pct, high_pct)
    return image if lut is None else cv2.LUT(image, lut)


def contrast_lut(
    image: Image, low_pct: float = 0.5, high_pct: float = 90.0
) -> Image | None:
    """`enhance_contrast`'s level table for `image`; None for a blank or flat image."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    sample = gray[:: max(1, gray.shape[0] // 400), :: max(1, gray.shape[1] // 400)]
    low, high = np.percentile(sample, [low_pct, high_pct])
    if high - low < 16:  # a blank or flat image: nothing to stretch
        return None
    lut = np.clip((np.arange(256, dtype=np.float32) - low) * 255.0 / (high - low), 0, 255)
    return lut.astype(np.uint8)
