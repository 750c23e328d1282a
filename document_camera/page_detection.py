"""Finding the page in a camera frame, and knowing how sure the finding is.

A document camera looks down at a desk; the page is a large four-cornered region whose edges
are sharp steps from paper to desk. Two kinds of candidates are gathered on a downscaled copy:

* the quadrilateral of the brightest large region (Otsu), which is exact under even light;
* quadrilaterals of straight lines (Hough on edges of the *logarithm* of the brightness).
  A shadow multiplies the light, so in the logarithm it only shifts levels: the paper's edge
  is as strong inside a shadow as outside it, while the shadow's own edge is soft and gives
  no line. This is what keeps a shadow band across the page from splitting it in two.

Every candidate is scored by its outline: the share of each side along which the inside is
clearly brighter than the outside, by a ratio, just across the side and further out (past a
paper edge lies the desk; past a thick printed line, a plan's wall, paper again). The largest
candidate whose every side is such a step wins; its weakest side's share is the detection's
confidence. Before that, the best unsure candidates have each weak side moved onto the
nearest paper edge (`_DetectionView.polish`): an outline found on a printed rule just inside
the paper, or a bright region cut by a hand or a folded corner, is almost right.
Each side is then refitted at full resolution through the steepest brightness step across it,
which places the corners to about a pixel.

A shadow on the page is reported too (`PageDetection.shadow`): the paper's brightness, ink
removed, is compared with a smooth lamp falloff; a band well below it is a shadow.
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
# Paper against desk: inside brighter than outside by this ratio (as a log difference) just
# across the side. Paper on a dark desk is 3–4×; a shadow's soft edge, at this distance, well
# under 1.3×.
EDGE_STEP = float(np.log(1.3))
EDGE_OFFSET = 2.5  # pixels of the downscaled frame either side of the outline
# ...and further out, where a printed line (a plan's wall, ~2–5 px here) has ended.
FAR_OFFSETS = (6.0, 10.0)
POLISH_CANDIDATES = 6  # unsure candidates whose weak sides are searched for a nearby edge
POLISH_REACH = 0.07  # ...moved by up to this share of the frame's short side
CONFIDENT = 0.6  # every side a paper edge along at least this share of its length
SHADOW_DEPTH = float(np.log(1 / 0.72))  # paper this much darker than the smooth lamp falloff
SHADOW_AREA = 0.04  # ...over at least this share of the page


@dataclass(frozen=True)
class PageDetection:
    quad: Quad  # in full-resolution frame coordinates
    area_share: float  # page area / frame area
    confidence: float = 1.0  # the weakest side's share of clear paper edge, 0–1
    shadow: bool = False  # a band of shadow lies across the page

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT


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
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        return None
    view = _DetectionView(frame)
    candidates = [q for q in (_bright_region_quad(view.gray),) if q is not None]
    candidates += _line_quads(view)
    frame_area = float(view.gray.shape[0] * view.gray.shape[1])
    scored = []  # (quad, area share, side supports)
    for quad in candidates:
        area_share = abs(float(cv2.contourArea(quad))) / frame_area
        if MIN_AREA_SHARE <= area_share <= MAX_AREA_SHARE:
            scored.append((quad, area_share, view.side_support(quad)))
    for quad in _polished(view, scored):
        area_share = abs(float(cv2.contourArea(quad))) / frame_area
        if MIN_AREA_SHARE <= area_share <= MAX_AREA_SHARE:
            scored.append((quad, area_share, view.side_support(quad)))
    best: tuple[float, Quad, float] | None = None
    for quad, area_share, sides in scored:
        weakest, mean = float(min(sides)), float(np.mean(sides))
        if mean < 0.3:
            continue
        # A confident candidate always beats an unsure one; among equals, the larger.
        rank = (1.0 if weakest >= CONFIDENT else 0.0) * 10 + area_share * mean
        if best is None or rank > best[0]:
            best = (rank, quad, weakest)
    if best is None:
        return None
    _, small_quad, confidence = best
    quad = small_quad / view.scale
    full_gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    sharp = _refine_on_edges(full_gray, quad, search=3.0 / view.scale + 3.0)
    area_share = abs(float(cv2.contourArea(small_quad))) / frame_area
    return PageDetection(order_corners(sharp if sharp is not None else quad), area_share,
                         confidence, view.shadow_on(small_quad))


def edge_support(frame: Image, quad: Quad) -> float:
    """How well `quad` (full-resolution corners) still sits on a paper edge in `frame`:
    the weakest side's share of clear paper edge, 0–1. For checking a held quadrilateral."""
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        return 0.0
    view = _DetectionView(frame)
    return float(min(view.side_support(np.asarray(quad, np.float32) * view.scale)))


class _DetectionView:
    """The downscaled grey frame and its logarithm, shared by the candidates and scores."""

    def __init__(self, frame: Image) -> None:
        width = frame.shape[1]
        self.scale = min(1.0, DETECT_WIDTH / width)
        small = cv2.resize(frame, None, fx=self.scale, fy=self.scale,
                           interpolation=cv2.INTER_AREA) if self.scale < 1.0 else frame
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        self.gray = cv2.GaussianBlur(gray, (5, 5), 0)
        self.log = cv2.GaussianBlur(np.log1p(gray.astype(np.float32)), (0, 0), 1.0)

    def side_support(self, quad: Quad) -> list[float]:
        """Per side, the share of its length where the inside is brighter than the outside
        by the step, just across the side and further out (FAR_OFFSETS): past a paper edge
        lies the desk, past a dark line printed on the page (a plan's wall, a table's rule)
        paper again."""
        quad = order_corners(quad)
        centre = quad.mean(axis=0)
        shares = []
        zero = np.zeros(1, np.float32)
        for i in range(4):
            a, b = quad[i], quad[(i + 1) % 4]
            side = b - a
            length = float(np.hypot(*side))
            if length < 8:
                return [0.0] * 4
            normal = np.array([-side[1], side[0]], np.float32) / length
            if float(np.dot((a + b) / 2 - centre, normal)) < 0:
                normal = -normal
            steps = self._steps(a, b, zero, zero, normal)
            shares.append(float(np.mean(steps >= EDGE_STEP)))
        return shares

    def _steps(self, a: NDArray[np.float32], b: NDArray[np.float32],
               shifts_a: NDArray[np.float32], shifts_b: NDArray[np.float32],
               outward: NDArray[np.float32]) -> NDArray[np.float32]:
        """Paper-edge steps along the side a–b moved outward by (shift at a, shift at b),
        for every pair of shifts: shape (len(shifts), samples)."""
        ts = np.linspace(0.08, 0.92, 40, dtype=np.float32)
        side = b - a
        move = (1 - ts)[None, :] * shifts_a[:, None] + ts[None, :] * shifts_b[:, None]
        base = a[None, None, :] + ts[None, :, None] * side[None, None, :] + \
            move[..., None] * outward[None, None, :]
        offsets = (-EDGE_OFFSET, EDGE_OFFSET, *FAR_OFFSETS)
        pts = np.stack([base + o * outward for o in offsets]).astype(np.float32)
        flat = pts.reshape(1, -1, 2)
        values = cv2.remap(self.log, flat[..., 0].copy(), flat[..., 1].copy(), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).reshape(len(offsets), *move.shape)
        return np.min(values[0][None] - values[1:], axis=0)

    def polish(self, quad: Quad) -> Quad | None:
        """Each side not on a paper edge moved (shifted, then turned at either end, by up to
        POLISH_REACH of the frame) to where most of it is; None when nothing moved."""
        quad = order_corners(quad).astype(np.float32)
        reach = round(POLISH_REACH * min(self.log.shape))
        changed = False
        for _ in range(2):
            for i in range(4):
                a, b = quad[i], quad[(i + 1) % 4]
                length = float(np.hypot(*(b - a)))
                if length < 8:
                    return None
                outward = np.array([-(b - a)[1], (b - a)[0]], np.float32) / length
                if float(np.dot((a + b) / 2 - quad.mean(axis=0), outward)) < 0:
                    outward = -outward
                zero = np.zeros(1, np.float32)
                if float(np.mean(self._steps(a, b, zero, zero, outward) >= EDGE_STEP)) \
                        >= CONFIDENT:
                    continue
                shifts = np.arange(-reach, reach + 0.5, 1.0, dtype=np.float32)
                support = np.mean(self._steps(a, b, shifts, shifts, outward) >= EDGE_STEP, 1)
                best = float(shifts[int(np.argmax(support - 1e-3 * np.abs(shifts)))])
                turns = np.arange(-4.0, 4.5, 1.0, dtype=np.float32)
                da, db = np.meshgrid(best + turns, best + turns, indexing="ij")
                support = np.mean(self._steps(a, b, da.ravel(), db.ravel(), outward)
                                  >= EDGE_STEP, 1)
                k = int(np.argmax(support - 1e-3 * (np.abs(da.ravel() - best)
                                                     + np.abs(db.ravel() - best))))
                if float(support[k]) < CONFIDENT:
                    continue
                moved_a = a + float(da.ravel()[k]) * outward
                moved_b = b + float(db.ravel()[k]) * outward
                corners = _with_side(quad, i, moved_a, moved_b)
                if corners is None:
                    return None
                quad, changed = corners, True
        return quad if changed else None

    def shadow_on(self, quad: Quad) -> bool:
        """Is part of the page well darker than a smooth lamp falloff would make it?"""
        w, h = 64, 90
        if abs(np.hypot(*(quad[1] - quad[0]))) > abs(np.hypot(*(quad[3] - quad[0]))):
            w, h = h, w
        target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        matrix = cv2.getPerspectiveTransform(order_corners(quad), target)
        page = cv2.warpPerspective(self.gray, matrix, (w, h), flags=cv2.INTER_AREA)
        # Paper without the ink: the brightest nearby (text is dark and thin).
        paper = cv2.dilate(page, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5)))
        level = np.log1p(paper.astype(np.float64))[3:-3, 3:-3]
        ys, xs = np.mgrid[0:level.shape[0], 0:level.shape[1]]
        x, y = xs.ravel() / level.shape[1] - 0.5, ys.ravel() / level.shape[0] - 0.5
        basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
        # Fit the lamp to the brighter part, so a shadow does not pull the fit down.
        values = level.ravel()
        keep = values >= np.percentile(values, 40)
        coef, *_ = np.linalg.lstsq(basis[keep], values[keep], rcond=None)
        residual = values - basis @ coef
        return bool(np.mean(residual < -SHADOW_DEPTH) >= SHADOW_AREA)


def _polished(
    view: _DetectionView, scored: list[tuple[Quad, float, list[float]]]
) -> list[Quad]:
    """The most promising unsure candidates larger than every confident one, with each weak
    side moved onto the nearest paper edge. A line found on a printed rule inside the
    paper's edge (a plan's outer wall or frame, a dimension line), or a side of the bright
    region cut off by a folded corner or pulled by a hand, leaves an outline almost right;
    the step search puts it right."""
    confident = max((area for _, area, sides in scored if min(sides) >= CONFIDENT),
                    default=0.0)
    unsure = [(area * float(np.mean(sides)), quad) for quad, area, sides in scored
              if min(sides) < CONFIDENT <= max(sides) and area > confident]
    unsure.sort(key=lambda item: -item[0])
    out = []
    for _, quad in unsure[:POLISH_CANDIDATES]:
        polished = view.polish(quad)
        if polished is not None:
            out.append(polished)
    return out


def _bright_region_quad(gray: Image) -> Quad | None:
    """The quadrilateral of the brightest large region (downscaled coordinates)."""
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
    if not MIN_AREA_SHARE <= cv2.contourArea(contour) / frame_area <= MAX_AREA_SHARE:
        return None
    hull = cv2.convexHull(contour)
    rough = _four_corners(hull)
    if rough is None:
        return None
    # The blob must actually be a quadrilateral, not a blob with four extreme points.
    if cv2.contourArea(rough) < 0.9 * cv2.contourArea(hull):
        return None
    refined = _refine(contour.reshape(-1, 2).astype(np.float32), rough)
    return refined if refined is not None else rough


def _line_quads(view: _DetectionView, keep: int = 12) -> list[Quad]:
    """Quadrilaterals formed by pairs of roughly opposite straight edges."""
    h, w = view.log.shape
    scaled = np.clip(view.log * (255.0 / np.log(256.0)), 0, 255).astype(np.uint8)
    edges = cv2.Canny(scaled, 40, 100, L2gradient=True)
    short = min(h, w)
    segments = cv2.HoughLinesP(edges, 1, np.pi / 360, threshold=40,
                               minLineLength=int(0.1 * short), maxLineGap=10)
    if segments is None:
        return []
    # Merge segments into lines (normal form θ ∈ [0, π), ρ), weighted by their length.
    lines: list[list[float]] = []  # θ, ρ, support
    for x1, y1, x2, y2 in sorted(segments.reshape(-1, 4).astype(np.float64).tolist(),
                                 key=lambda s: -np.hypot(s[2] - s[0], s[3] - s[1])):
        length = float(np.hypot(x2 - x1, y2 - y1))
        theta = float(np.arctan2(x2 - x1, -(y2 - y1)))  # the normal's angle
        rho = x1 * np.cos(theta) + y1 * np.sin(theta)
        if theta < 0:
            theta, rho = theta + np.pi, -rho
        if theta >= np.pi:
            theta, rho = theta - np.pi, -rho
        for line in lines:
            dtheta = abs(line[0] - theta)
            same = dtheta < np.radians(3) and abs(line[1] - rho) < 6
            flipped = np.pi - dtheta < np.radians(3) and abs(line[1] + rho) < 6
            if same or flipped:
                line[2] += length
                break
        else:
            lines.append([theta, float(rho), length])
    lines = sorted(lines, key=lambda line: -line[2])[:keep]
    pairs = []
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            a, b = lines[i], lines[j]
            dtheta = abs(a[0] - b[0])
            dtheta = min(dtheta, np.pi - dtheta)
            if dtheta < np.radians(30):
                pairs.append((a, b, (a[0] + b[0]) / 2 if abs(a[0] - b[0]) < np.pi / 2
                              else (a[0] + b[0] + np.pi) / 2 % np.pi))
    quads = []
    for p in range(len(pairs)):
        for q in range(p + 1, len(pairs)):
            (a, b, ta), (c, d, tc) = pairs[p], pairs[q]
            dtheta = abs(ta - tc)
            if min(dtheta, np.pi - dtheta) < np.radians(45):
                continue
            corners = [_meet(a, c), _meet(c, b), _meet(b, d), _meet(d, a)]
            if any(corner is None for corner in corners):
                continue
            quad = order_corners(np.array(corners, np.float32))
            inside = (quad[:, 0] > -0.01 * w) & (quad[:, 0] < 1.01 * w) & \
                (quad[:, 1] > -0.01 * h) & (quad[:, 1] < 1.01 * h)
            if inside.all() and cv2.isContourConvex(quad.reshape(-1, 1, 2)):
                quads.append(quad)
    return quads


def _with_side(quad: Quad, i: int, a: NDArray[np.float32], b: NDArray[np.float32]
               ) -> Quad | None:
    """`quad` with side i (corner i to i+1) replaced by the line through a and b, its
    corners moved to where that line meets the neighbouring sides."""
    lines = []
    for k in range(4):
        p, q = (a, b) if k == i else (quad[k], quad[(k + 1) % 4])
        direction = (q - p).astype(np.float64)
        norm = float(np.hypot(*direction))
        if norm < 1e-6:
            return None
        lines.append((p.astype(np.float64), direction / norm))
    corners = _intersections(lines)
    if corners is None or not cv2.isContourConvex(corners.reshape(-1, 1, 2)):
        return None
    return corners


def _meet(a: list[float], b: list[float]) -> tuple[float, float] | None:
    matrix = np.array([[np.cos(a[0]), np.sin(a[0])], [np.cos(b[0]), np.sin(b[0])]])
    if abs(np.linalg.det(matrix)) < 1e-3:
        return None
    x, y = np.linalg.solve(matrix, np.array([a[1], b[1]]))
    return float(x), float(y)


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
