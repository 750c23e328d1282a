"""Finding the page in a camera frame: the quadrilateral of the brightest large region.

A document camera looks down at a desk; the page is the large, bright, four-cornered region.
Detection runs on a downscaled copy for speed; each side of the rough polygon is then refitted
as a straight line through the contour points along it, and the corners are the intersections
of those lines, which places them to about a pixel at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from document_camera.images import Image, Quad

DETECT_WIDTH = 960  # pixels; enough for a page filling a good part of the frame
MIN_AREA_SHARE = 0.08  # a page smaller than this share of the frame is "no page"
MAX_AREA_SHARE = 0.995


@dataclass(frozen=True)
class PageDetection:
    quad: Quad  # in full-resolution frame coordinates
    area_share: float  # page area / frame area


def order_corners(points: Quad) -> Quad:
    """Top-left, top-right, bottom-right, bottom-left, whatever the input order."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise in image coordinates, starting top-left-ish
    start = int(np.argmin(pts.sum(axis=1)))  # top-left has the smallest x + y
    return np.roll(pts, -start, axis=0).astype(np.float32)


def find_page(frame: Image) -> PageDetection | None:
    """The page's quadrilateral, or None when no page-like region is in view."""
    width = frame.shape[1]
    scale = min(1.0, DETECT_WIDTH / width)
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) \
        if scale < 1.0 else frame
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    gray = cv2.GaussianBlur(gray, (5, 5), 0)
    # Paper is bright and low in saturation; Otsu splits it from the desk even under
    # uneven light. Closing fills the dark text so the page is one solid blob.
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    frame_area = float(gray.shape[0] * gray.shape[1])
    area_share = cv2.contourArea(contour) / frame_area
    if not MIN_AREA_SHARE <= area_share <= MAX_AREA_SHARE:
        return None
    hull = cv2.convexHull(contour)
    rough = _four_corners(hull)
    if rough is None:
        return None
    # The blob must actually be a quadrilateral, not a blob with four extreme points.
    if cv2.contourArea(rough) < 0.9 * cv2.contourArea(hull):
        return None
    refined = _refine(contour.reshape(-1, 2).astype(np.float32), rough)
    quad = (refined if refined is not None else rough) / scale
    full_gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    sharp = _refine_on_edges(full_gray, quad, search=3.0 / scale + 3.0)
    return PageDetection(order_corners(sharp if sharp is not None else quad), float(area_share))


def _refine_on_edges(
    gray: Image, quad: Quad, search: float, samples: int = 48
) -> Quad | None:
    """Place each side on the strongest brightness step across it, at full resolution.

    The mask contour is only as good as the downscaled threshold; the true paper edge is
    where the grey level changes fastest across the side. Profiles across each side are
    sampled (bilinear), the step located to a sub-pixel by a parabola through the gradient
    peak, and a robust line fitted through those points.
    """
    image = cv2.GaussianBlur(gray, (0, 0), 1.0).astype(np.float32)
    centre = quad.mean(axis=0)
    offsets = np.arange(-search, search + 0.5, 0.5, dtype=np.float32)
    lines: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        side = b - a
        length = float(np.hypot(*side))
        if length < 16:
            return None
        direction = side / length
        normal = np.array([-direction[1], direction[0]], np.float32)
        if float(np.dot((a + b) / 2 - centre, normal)) < 0:
            normal = -normal  # point outwards: paper is on the negative side
        ts = np.linspace(0.12, 0.88, samples, dtype=np.float32)
        base = a[None, :] + ts[:, None] * side[None, :]
        pts = base[:, None, :] + offsets[None, :, None] * normal[None, None, :]
        profiles = cv2.remap(image, pts[..., 0].copy(), pts[..., 1].copy(), cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        grads = profiles[:, :-2] - profiles[:, 2:]  # paper (bright) inside → positive step
        peak = np.argmax(grads, axis=1)
        ok = (peak > 0) & (peak < grads.shape[1] - 1)
        rows = np.nonzero(ok)[0]
        if rows.size < samples // 3:
            return None
        g0 = grads[rows, peak[rows] - 1]
        g1 = grads[rows, peak[rows]]
        g2 = grads[rows, peak[rows] + 1]
        denom = g0 - 2 * g1 + g2
        frac = np.where(np.abs(denom) > 1e-6, 0.5 * (g0 - g2) / denom, 0.0)
        # gradient index k sits between offsets k and k+2: its centre is offset k+1
        step = 0.5
        where = offsets[0] + (peak[rows] + 1 + np.clip(frac, -0.5, 0.5)) * step
        edge = base[rows] + where[:, None] * normal[None, :]
        vx, vy, x0, y0 = cv2.fitLine(edge.astype(np.float32), cv2.DIST_HUBER, 0, 0.01,
                                     0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    corners = _intersections(lines)
    if corners is None or float(np.max(np.hypot(*(corners - quad).T))) > 2 * search + 2:
        return None
    return corners


def _intersections(
    lines: list[tuple[NDArray[np.float64], NDArray[np.float64]]],
) -> Quad | None:
    corners = []
    for i in range(4):
        p1, d1 = lines[(i - 1) % 4]
        p2, d2 = lines[i]
        matrix = np.array([d1, -d2]).T
        if abs(np.linalg.det(matrix)) < 1e-6:
            return None
        t = np.linalg.solve(matrix, p2 - p1)
        corners.append(p1 + t[0] * d1)
    return np.array(corners, np.float32)


def _four_corners(hull: Image) -> Quad | None:
    perimeter = cv2.arcLength(hull, True)
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4:
            return order_corners(approx.reshape(4, 2).astype(np.float32))
        if len(approx) < 4:
            return None
    return None


def _refine(points: Quad, rough: Quad) -> Quad | None:
    """Refit each side as a line through the contour points near it; intersect neighbours."""
    lines: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    for i in range(4):
        a, b = rough[i].astype(np.float64), rough[(i + 1) % 4].astype(np.float64)
        side = b - a
        length = float(np.hypot(*side))
        if length < 8:
            return None
        direction = side / length
        normal = np.array([-direction[1], direction[0]])
        rel = points.astype(np.float64) - a
        along = rel @ direction
        across = np.abs(rel @ normal)
        # Only the middle of the side, away from the (rounded, blurred) corners.
        near = (across < max(3.0, 0.01 * length)) & (along > 0.1 * length) & \
            (along < 0.9 * length)
        if near.sum() < 10:
            return None
        vx, vy, x0, y0 = cv2.fitLine(points[near], cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    refined = _intersections(lines)
    if refined is None:
        return None
    # A refit that moved a corner far from the rough polygon means a bad fit; keep the rough.
    if float(np.max(np.hypot(*(refined - rough).T))) > 0.05 * cv2.arcLength(rough, True):
        return None
    return refined
