"""Perspective rectification: the page quadrilateral warped to an upright rectangle."""

from __future__ import annotations

import cv2
import numpy as np

from document_camera.images import Image, Quad

ISO_RATIO = float(np.sqrt(2.0))  # A-series paper: height / width
ISO_SNAP = 0.08  # a measured ratio within 8 % of √2 is taken to be an A-series sheet


def page_size(quad: Quad) -> tuple[float, float]:
    """Width and height of the page in frame pixels (mean of opposite sides)."""
    tl, tr, br, bl = quad.astype(np.float64)
    width = (np.hypot(*(tr - tl)) + np.hypot(*(br - bl))) / 2
    height = (np.hypot(*(bl - tl)) + np.hypot(*(br - tr))) / 2
    return float(width), float(height)


def output_size(quad: Quad, long_side: int | None = None) -> tuple[int, int]:
    """Pixel size of the rectified page: native resolution, or scaled so the long side fits.

    Perspective foreshortens one side; A-series paper is by far the common case at an office,
    so a ratio near √2 is snapped to exactly √2.
    """
    width, height = page_size(quad)
    ratio = height / width
    for iso in (ISO_RATIO, 1 / ISO_RATIO):
        if abs(ratio - iso) / iso < ISO_SNAP:
            ratio = iso
    if long_side is None:
        long_side = round(max(width, height))
    if ratio >= 1:
        return max(1, round(long_side / ratio)), long_side
    return long_side, max(1, round(long_side * ratio))


def rectify(
    frame: Image, quad: Quad, size: tuple[int, int]
) -> Image:
    """Warp the quadrilateral to an upright `size` (width, height) image."""
    w, h = size
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    # Shrinking a lot with a plain bilinear warp aliases small text: pre-shrink the frame.
    src_w, src_h = page_size(quad)
    shrink = min(w / src_w, h / src_h)
    if shrink < 0.6:
        frame = cv2.resize(frame, None, fx=shrink * 1.25, fy=shrink * 1.25,
                           interpolation=cv2.INTER_AREA)
        scaled = quad * (shrink * 1.25)
        matrix = cv2.getPerspectiveTransform(scaled.astype(np.float32), target)
    return cv2.warpPerspective(frame, matrix, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
