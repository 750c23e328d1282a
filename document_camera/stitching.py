"""Large sheets (A2–A0): guided tile capture and stitching, with a check that rejects a bad
stitch instead of sending it.

The clerk is guided through a grid of overlapping shots (`TileGuide`). With the grid known
(guided mode, `rows` and `cols` given) the stitcher knows where each neighbour must lie:
to the right or below, sharing roughly the planned overlap. Feature detectors find few
distinctive corners on sparse line art (walls, hatching, thin dimension lines), so the
guided path matches *areas* instead: the neighbour's overlap strip is located in the tile by
normalised cross-correlation of ink images (lines made positive, the lamp's gradient removed,
blurred a little so a line one pixel off still correlates), only inside the window the grid
allows, and refined to an affine move by ECC (Evangelidis & Psarakis 2008). All pair moves are
then adjusted together (least squares over the grid), so the tiles agree with each other, and
blended with feathered edges.

A refusal names the real reason: a tile with too little drawing to align (TILES_TOO_PLAIN),
a pair whose overlap is not where the grid says, with enough drawing to tell
(TILES_DO_NOT_OVERLAP), a move no hand-held sheet makes, or pair moves that contradict each
other (STITCH_REJECTED, with the detail). Without a grid, ORB features and OpenCV's Stitcher
in SCANS mode join the tiles, with the same plausibility checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from document_camera.images import Image
from document_camera.notices import Notice, NoticeCode

SHEETS_MM = {"A4": (210, 297), "A3": (297, 420), "A2": (420, 594), "A1": (594, 841),
             "A0": (841, 1189)}
MIN_INLIERS = 40
MIN_INLIER_RATIO = 0.3
MATCH_WIDTH = 800  # tiles are matched at this width; enough for plan drawings
SCALE_RANGE = (0.8, 1.25)
MAX_ROTATION_DEG = 20.0
AREA_TOLERANCE = 0.35  # the stitched area may differ this much from the grid's estimate

# Guided (grid) mode.
GUIDED_WIDTH = 640  # tiles are aligned at this width: lines stay visible, matching is quick
MIN_CORRELATION = 0.35  # normalised cross-correlation of ink images for a found overlap
OVERLAP_SLACK = 0.15  # the real overlap may differ this much (share of a tile) from the plan
SEARCH_OVERLAP = (0.08, 0.65)  # overlap range searched when no plan is given
STRIP_SLACK = 0.08  # the matched strip is this much (share of a tile) narrower than planned
DRIFT = 0.12  # a neighbour may sit this much (share of a tile) off the grid sideways
MIN_DISTINCTION = 0.05  # the best match must beat any other place by this much
GUIDED_SCALE = (0.93, 1.07)  # tiles from one camera at one height: scale barely changes
MIN_INK = 0.012  # ink-image standard deviation below which a strip shows no drawing
MAX_DISAGREEMENT = 0.015  # pair moves may disagree by this share of a tile's diagonal


@dataclass(frozen=True)
class TileStep:
    index: int
    row: int
    col: int
    instruction: dict[str, str]  # fi / sv / en


@dataclass(frozen=True)
class TileGuide:
    """A grid of overlapping shots covering `sheet` with a camera field of `field_mm`."""

    sheet: str
    rows: int
    cols: int
    overlap: float

    @classmethod
    def plan(
        cls, sheet: str, field_mm: tuple[float, float] = (297.0, 210.0), overlap: float = 0.3
    ) -> TileGuide:
        if sheet not in SHEETS_MM:
            raise ValueError(f"unknown sheet {sheet!r}: use one of {', '.join(SHEETS_MM)}")
        if not 0.15 <= overlap <= 0.6:
            raise ValueError("overlap must be between 0.15 and 0.6")
        short, long = sorted(SHEETS_MM[sheet])
        # Lay the sheet landscape under a landscape camera field.
        sheet_w, sheet_h = long, short
        step_w, step_h = field_mm[0] * (1 - overlap), field_mm[1] * (1 - overlap)
        cols = max(1, int(np.ceil((sheet_w - field_mm[0]) / step_w)) + 1)
        rows = max(1, int(np.ceil((sheet_h - field_mm[1]) / step_h)) + 1)
        return cls(sheet, rows, cols, overlap)

    def steps(self) -> list[TileStep]:
        out = []
        for row in range(self.rows):
            for col in range(self.cols):
                index = row * self.cols + col
                number = f"{index + 1}/{self.rows * self.cols}"
                out.append(TileStep(index, row, col, {
                    "fi": f"Kuva {number}: rivi {row + 1}, sarake {col + 1}. "
                          "Siirrä arkkia niin, että edellinen kuva limittyy noin kolmanneksen.",
                    "sv": f"Bild {number}: rad {row + 1}, kolumn {col + 1}. "
                          "Flytta arket så att det överlappar förra bilden "
                          "med ungefär en tredjedel.",
                    "en": f"Shot {number}: row {row + 1}, column {col + 1}. "
                          "Move the sheet so it overlaps the previous shot by about a third.",
                }))
        return out


@dataclass
class PairCheck:
    first: int
    second: int
    matches: int
    inliers: int
    scale: float | None
    rotation_deg: float | None
    correlation: float | None = None  # guided mode: area match of the overlap strips
    plain: bool = False  # guided mode: a strip with too little drawing to align
    move: NDArray[np.float64] | None = None  # guided mode: 2×3 affine, second → first tile

    @property
    def overlaps(self) -> bool:
        """The two tiles share an area: an area match (guided mode), or enough consistent
        feature matches."""
        if self.correlation is not None and self.move is not None:
            return self.correlation >= MIN_CORRELATION
        return (
            self.inliers >= MIN_INLIERS
            and self.matches > 0
            and self.inliers / self.matches >= MIN_INLIER_RATIO
        )

    @property
    def plausible(self) -> bool:
        """Overlapping, and related by a move a hand-held sheet can make."""
        return (
            self.overlaps
            and self.scale is not None
            and SCALE_RANGE[0] <= self.scale <= SCALE_RANGE[1]
            and self.rotation_deg is not None
            and abs(self.rotation_deg) <= MAX_ROTATION_DEG
        )


@dataclass
class StitchResult:
    image: Image | None  # None when rejected
    notice: Notice | None
    pairs: list[PairCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.image is not None


def check_pair(first: Image, second: Image, i: int = 0, j: int = 1) -> PairCheck:
    """Do two tiles overlap consistently? ORB features, ratio test, RANSAC similarity."""
    scale_a = min(1.0, MATCH_WIDTH / first.shape[1])
    scale_b = min(1.0, MATCH_WIDTH / second.shape[1])
    a = _gray(cv2.resize(first, None, fx=scale_a, fy=scale_a, interpolation=cv2.INTER_AREA))
    b = _gray(cv2.resize(second, None, fx=scale_b, fy=scale_b, interpolation=cv2.INTER_AREA))
    orb = cv2.ORB.create(nfeatures=3000)
    kp_a, des_a = orb.detectAndCompute(a, None)
    kp_b, des_b = orb.detectAndCompute(b, None)
    if des_a is None or des_b is None or len(kp_a) < 8 or len(kp_b) < 8:
        return PairCheck(i, j, 0, 0, None, None)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = []
    for pair in matcher.knnMatch(des_a, des_b, k=2):
        if len(pair) == 2 and pair[0].distance < 0.75 * pair[1].distance:
            good.append(pair[0])
    if len(good) < 4:
        return PairCheck(i, j, len(good), 0, None, None)
    src = np.array([kp_a[m.queryIdx].pt for m in good], np.float32) / scale_a
    dst = np.array([kp_b[m.trainIdx].pt for m in good], np.float32) / scale_b
    matrix, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                               ransacReprojThreshold=4.0)
    if matrix is None or mask is None:
        return PairCheck(i, j, len(good), 0, None, None)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    rotation = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
    return PairCheck(i, j, len(good), int(mask.sum()), scale, rotation)


def stitch_tiles(
    tiles: list[Image], *, rows: int | None = None, cols: int | None = None,
    overlap: float | None = None,
) -> StitchResult:
    """Join tiles taken in row-major grid order (guided mode) into one image, or refuse.

    With the grid given, every horizontal and vertical neighbour pair must overlap; without
    it, the tiles must at least form one connected overlap graph.
    """
    if len(tiles) < 2:
        return StitchResult(None, Notice(NoticeCode.STITCH_REJECTED, "need at least 2 tiles"))
    if rows is not None and cols is not None and rows * cols != len(tiles):
        raise ValueError(f"{len(tiles)} tiles do not fill a {rows}×{cols} grid")
    if rows is not None and cols is not None:
        return stitch_grid(tiles, rows=rows, cols=cols, overlap=overlap)
    pairs = _neighbour_pairs(len(tiles), rows, cols)
    checks = [check_pair(tiles[i], tiles[j], i, j) for i, j in pairs]
    if rows is not None and cols is not None:
        missing = [c for c in checks if not c.overlaps]
        if missing:
            detail = ", ".join(f"{c.first + 1}–{c.second + 1} ({c.inliers} inliers)"
                               for c in missing)
            return StitchResult(
                None, Notice(NoticeCode.TILES_DO_NOT_OVERLAP, f"no overlap: {detail}"), checks)
        odd = [c for c in checks if not c.plausible]
        if odd:
            detail = ", ".join(
                f"{c.first + 1}–{c.second + 1} (scale {c.scale:.2f}, "
                f"rotation {c.rotation_deg:.1f}°)" for c in odd)
            return StitchResult(
                None, Notice(NoticeCode.STITCH_REJECTED, f"implausible move: {detail}"), checks)
    elif not _connected(len(tiles), [c for c in checks if c.plausible]):
        return StitchResult(
            None, Notice(NoticeCode.TILES_DO_NOT_OVERLAP, "tiles form no connected overlap"),
            checks)

    stitcher = cv2.Stitcher.create(cv2.Stitcher_SCANS)
    stitcher.setPanoConfidenceThresh(0.5)
    status, pano = stitcher.stitch(tiles)
    if status == cv2.Stitcher_ERR_NEED_MORE_IMGS:
        return StitchResult(
            None, Notice(NoticeCode.TILES_DO_NOT_OVERLAP, "the stitcher found no overlap"),
            checks)
    if status != cv2.Stitcher_OK or pano is None:
        return StitchResult(
            None, Notice(NoticeCode.STITCH_REJECTED, f"stitcher status {status}"), checks)
    problem = _implausible_size(pano, tiles, rows, cols, overlap)
    if problem:
        return StitchResult(None, Notice(NoticeCode.STITCH_REJECTED, problem), checks)
    return StitchResult(_crop_black(pano), None, checks)


def _gray(image: Image) -> Image:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def _neighbour_pairs(n: int, rows: int | None, cols: int | None) -> list[tuple[int, int]]:
    if rows is None or cols is None:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    pairs = []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c
            if c + 1 < cols:
                pairs.append((k, k + 1))
            if r + 1 < rows:
                pairs.append((k, k + cols))
    return pairs


def _connected(n: int, edges: list[PairCheck]) -> bool:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for edge in edges:
        parent[find(edge.first)] = find(edge.second)
    return len({find(i) for i in range(n)}) == 1


def _implausible_size(
    pano: Image, tiles: list[Image], rows: int | None, cols: int | None, overlap: float | None
) -> str | None:
    h, w = pano.shape[:2]
    tile_h = float(np.median([t.shape[0] for t in tiles]))
    tile_w = float(np.median([t.shape[1] for t in tiles]))
    # Whatever the grid, the result cannot be smaller than one tile nor larger than all.
    if w * h < 0.8 * tile_w * tile_h or w * h > 1.2 * tile_w * tile_h * len(tiles):
        return (f"stitched size {w}×{h} is implausible for {len(tiles)} tiles "
                f"of {tile_w:.0f}×{tile_h:.0f}")
    if rows is not None and cols is not None and overlap is not None:
        expect_w = tile_w * (cols - (cols - 1) * overlap)
        expect_h = tile_h * (rows - (rows - 1) * overlap)
        if abs(w * h - expect_w * expect_h) > AREA_TOLERANCE * expect_w * expect_h:
            return f"stitched size {w}×{h}, expected about {expect_w:.0f}×{expect_h:.0f}"
    return None


def _crop_black(image: Image) -> Image:
    """Trim the empty border the warps leave around the stitched sheet."""
    mask = _gray(image) > 8
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return image
    return image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


# -- guided mode: the grid says where each neighbour lies


def stitch_grid(
    tiles: list[Image], *, rows: int, cols: int, overlap: float | None = None
) -> StitchResult:
    """Join a rows×cols grid of tiles (row-major) using where the guide put them."""
    if rows * cols != len(tiles):
        raise ValueError(f"{len(tiles)} tiles do not fill a {rows}×{cols} grid")
    if len(tiles) < 2:
        return StitchResult(None, Notice(NoticeCode.STITCH_REJECTED, "need at least 2 tiles"))
    small = [k for k, t in enumerate(tiles) if min(t.shape[:2]) < 32]
    if small:
        t = tiles[small[0]]
        return StitchResult(None, Notice(
            NoticeCode.STITCH_REJECTED,
            f"tile {small[0] + 1} is only {t.shape[1]}×{t.shape[0]} pixels"))
    width = float(np.median([t.shape[1] for t in tiles]))
    scale = min(1.0, GUIDED_WIDTH / width)
    inks = [_ink_image(t, scale) for t in tiles]
    checks: list[PairCheck] = []
    for i, j in _neighbour_pairs(len(tiles), rows, cols):
        across = j == i + 1  # else j is below i
        check = _match_neighbour(inks[i], inks[j], i, j, across, overlap, scale)
        if not check.overlaps and not check.plain:
            # No area match: do features see an overlap with an impossible move (a zoom,
            # a turn)? That is a different thing to tell the clerk than "no overlap".
            features = check_pair(tiles[i], tiles[j], i, j)
            if features.overlaps and not features.plausible:
                check = features
        checks.append(check)
    odd = [c for c in checks if c.overlaps and not c.plausible]
    if odd:
        detail = ", ".join(
            f"{c.first + 1}–{c.second + 1} (scale {c.scale or 0:.2f}, "
            f"rotation {c.rotation_deg or 0:.1f}°)" for c in odd)
        return StitchResult(
            None, Notice(NoticeCode.STITCH_REJECTED, f"implausible move: {detail}"), checks)
    # A pair without a match (a blank stretch of paper, hatching that fooled the match) is
    # left out as long as the other pairs still tie every tile in; the least-squares placement
    # then shows which pair contradicts its loop, and that one is left out too.
    edges = [c for c in checks if c.overlaps]
    dropped: dict[tuple[int, int], str] = {}
    diagonal = float(np.hypot(*tiles[0].shape[:2]))
    while True:
        if not _connected(len(tiles), edges):
            return StitchResult(None, _why_apart(len(tiles), checks, edges, dropped), checks)
        placements, disagreement = _place(tiles, edges)
        (a, b), px = max(disagreement, key=lambda item: item[1])
        if px <= MAX_DISAGREEMENT * diagonal:
            break
        dropped[(a, b)] = f"{a + 1}–{b + 1} disagree with their other neighbours by {px:.0f} px"
        edges = [c for c in edges if (c.first, c.second) != (a, b)]
    pano = _blend(tiles, placements)
    problem = _implausible_size(pano, tiles, rows, cols, overlap)
    if problem:
        return StitchResult(None, Notice(NoticeCode.STITCH_REJECTED, problem), checks)
    return StitchResult(pano, None, checks)


def _why_apart(
    n: int, checks: list[PairCheck], edges: list[PairCheck], dropped: dict[tuple[int, int], str]
) -> Notice:
    """The real reason some tiles cannot be tied to the rest."""
    kept = {(c.first, c.second) for c in edges}
    failed = [c for c in checks if (c.first, c.second) not in kept]
    plain = [c for c in failed if c.plain]
    apart = [c for c in failed if not c.plain and (c.first, c.second) not in dropped]
    if dropped and not apart and not plain:
        return Notice(NoticeCode.STITCH_REJECTED, "; ".join(dropped.values()))
    if plain and not apart:
        detail = ", ".join(f"{c.first + 1}–{c.second + 1}" for c in plain)
        return Notice(NoticeCode.TILES_TOO_PLAIN, f"too little drawing to align tiles {detail}")
    detail = ", ".join(
        f"{c.first + 1}–{c.second + 1} (best match {c.correlation or 0:.2f} where the grid "
        f"puts it)" for c in apart)
    return Notice(NoticeCode.TILES_DO_NOT_OVERLAP, f"no overlap: {detail}")


def _ink_image(tile: Image, scale: float) -> NDArray[np.float32]:
    """Relative darkness of the drawing: lines positive, paper 0, the lamp's gradient and a
    shadow divided out; blurred so lines a pixel or two apart still correlate."""
    gray = _gray(tile)
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    size = max(5, round(gray.shape[1] / 40) | 1)
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE,
                             cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
    paper = cv2.GaussianBlur(paper, (0, 0), size / 2).astype(np.float32)
    ink = np.clip(1.0 - gray.astype(np.float32) / np.maximum(paper, 8.0), 0.0, 1.0)
    return np.asarray(cv2.GaussianBlur(ink, (0, 0), 1.5), np.float32)


def _match_neighbour(
    first: NDArray[np.float32], second: NDArray[np.float32], i: int, j: int, across: bool,
    overlap: float | None, scale: float,
) -> PairCheck:
    """Where is `second` (right of or below `first`)? Area match inside the grid's window,
    then an ECC affine refinement. Works on transposed images for vertical neighbours."""
    a, b = (first, second) if across else (first.T.copy(), second.T.copy())
    wa = a.shape[1]
    hb, wb = b.shape
    low, high = SEARCH_OVERLAP if overlap is None else (
        max(0.05, overlap - OVERLAP_SLACK), min(0.85, overlap + OVERLAP_SLACK))
    # The strip of `second` surely inside the overlap (a little less than planned).
    share = low if overlap is None else max(low, overlap - STRIP_SLACK)
    strip_w = max(8, int(share * wb))
    margin = int(DRIFT * hb)
    template = b[margin:hb - margin, :strip_w]
    x0 = max(0, int(wa * (1.0 - high)))
    region = a[:, x0:]
    if template.shape[0] < 8 or region.shape[1] < strip_w or region.shape[0] < template.shape[0]:
        return PairCheck(i, j, 0, 0, None, None, 0.0)  # sizes that no grid of one camera gives
    if float(template.std()) < MIN_INK or float(region.std()) < MIN_INK:
        return PairCheck(i, j, 0, 0, None, None, 0.0, True)
    # Matched separately on vertical and on horizontal strokes, a place must fit both: long
    # walls alone fit anywhere along their length.
    result = np.minimum(
        cv2.matchTemplate(_strokes(region, 1, 0), _strokes(template, 1, 0),
                          cv2.TM_CCOEFF_NORMED),
        cv2.matchTemplate(_strokes(region, 0, 1), _strokes(template, 0, 1),
                          cv2.TM_CCOEFF_NORMED))
    _, peak, _, (px, py) = cv2.minMaxLoc(result)
    # A match must be unique: a long wall or regular hatching correlates as well a little
    # further along, and then the position is a guess.
    radius = max(6, int(0.05 * max(a.shape)))
    elsewhere = result.copy()
    elsewhere[max(0, py - radius):py + radius + 1, max(0, px - radius):px + radius + 1] = -1.0
    runner_up = float(elsewhere.max()) if elsewhere.size else -1.0
    correlation = float(peak) if float(peak) - runner_up >= MIN_DISTINCTION else \
        min(float(peak), runner_up - MIN_DISTINCTION)
    tx, ty = float(x0 + px), float(py - margin)  # second's origin in first's coordinates
    move = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty]])
    move, _ = _refine_ecc(a, b, move)
    if not across:
        move = _transpose_affine(move)
    # back to full-resolution pixels (both tiles were scaled alike)
    move[:, 2] /= scale
    linear = move[:, :2]
    s = float(np.sqrt(abs(np.linalg.det(linear))))
    rotation = float(np.degrees(np.arctan2(linear[1, 0], linear[0, 0])))
    axes = np.hypot(linear[0], linear[1])  # x and y scale: a match must not stretch
    if not all(GUIDED_SCALE[0] <= v <= GUIDED_SCALE[1] for v in (s, *axes)):
        correlation = min(correlation, 0.0)  # ECC slid onto something else: no match
    return PairCheck(i, j, 0, 0, s, rotation, correlation, False, move)


def _strokes(ink: NDArray[np.float32], dx: int, dy: int) -> NDArray[np.float32]:
    return np.abs(cv2.Sobel(ink, cv2.CV_32F, dx, dy, ksize=3))


def _refine_ecc(
    a: NDArray[np.float32], b: NDArray[np.float32], move: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float]:
    """ECC on the shared area: `move` maps b's pixels into a's; returns it refined and the
    correlation of the two inked overlaps (or the move unchanged and −1 when ECC fails)."""
    ha, wa = a.shape
    tx, ty = move[0, 2], move[1, 2]
    cx0, cy0 = int(max(0.0, tx)) + 2, int(max(0.0, ty)) + 2
    cx1, cy1 = int(min(wa, tx + b.shape[1])) - 2, int(min(ha, ty + b.shape[0])) - 2
    if cx1 - cx0 < 16 or cy1 - cy0 < 16:
        return move, -1.0
    crop = np.ascontiguousarray(a[cy0:cy1, cx0:cx1])
    # warp: crop pixel → b pixel = inverse of move, shifted by the crop's origin
    inverse = cv2.invertAffineTransform(move)
    warp = inverse.copy()
    warp[:, 2] = inverse[:, :2] @ np.array([cx0, cy0]) + inverse[:, 2]
    warp = warp.astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)
    try:
        correlation, warp = cv2.findTransformECC(crop, b, warp, cv2.MOTION_AFFINE, criteria,
                                                 None)
    except cv2.error:
        return move, -1.0
    warp64 = warp.astype(np.float64)
    # crop → b:  b = W·[x − c0] ; so a → b: linear W, offset W₂ − W·c0
    a_to_b = warp64.copy()
    a_to_b[:, 2] = warp64[:, 2] - warp64[:, :2] @ np.array([cx0, cy0])
    refined = cv2.invertAffineTransform(a_to_b).astype(np.float64)
    # ECC may wander off on repetitive hatching; trust it only near the area match.
    if np.hypot(refined[0, 2] - tx, refined[1, 2] - ty) > 0.05 * max(a.shape):
        return move, -1.0
    return refined, float(correlation)


def _transpose_affine(move: NDArray[np.float64]) -> NDArray[np.float64]:
    """An affine found on transposed images, for the untransposed ones (swap x and y)."""
    out = np.empty_like(move)
    out[0, 0], out[0, 1], out[0, 2] = move[1, 1], move[1, 0], move[1, 2]
    out[1, 0], out[1, 1], out[1, 2] = move[0, 1], move[0, 0], move[0, 2]
    return out


def _place(
    tiles: list[Image], checks: list[PairCheck]
) -> tuple[list[NDArray[np.float64]], list[tuple[tuple[int, int], float]]]:
    """One affine per tile into the first tile's frame, least squares over all pair moves.

    Each pair contributes points of the second tile's overlap: placed through the first tile
    and placed directly, they must land on the same spot. Returns the placements and, per
    pair, how far apart (largest, pixels) they still land: a pair that disagrees with the
    loop around it is a bad match.
    """
    n = len(tiles)
    rows_eq: list[NDArray[np.float64]] = []
    rhs: list[float] = []
    samples: list[tuple[PairCheck, NDArray[np.float64]]] = []
    for check in checks:
        assert check.move is not None
        a, b = check.first, check.second
        hb, wb = tiles[b].shape[:2]
        ha, wa = tiles[a].shape[:2]
        gx, gy = np.meshgrid(np.linspace(0, wb, 9), np.linspace(0, hb, 9))
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        mapped = pts @ check.move[:, :2].T + check.move[:, 2]
        inside = (mapped[:, 0] >= 0) & (mapped[:, 0] <= wa) & (mapped[:, 1] >= 0) & \
            (mapped[:, 1] <= ha)
        pts, mapped = pts[inside], mapped[inside]
        samples.append((check, pts))
        for p, q in zip(pts, mapped, strict=True):
            for axis in range(2):
                row = np.zeros(6 * (n - 1))
                value = 0.0
                if a == 0:
                    value -= q[axis]
                else:
                    row[6 * (a - 1) + 3 * axis: 6 * (a - 1) + 3 * axis + 3] = [q[0], q[1], 1.0]
                if b == 0:
                    value += p[axis]
                else:
                    row[6 * (b - 1) + 3 * axis: 6 * (b - 1) + 3 * axis + 3] = [-p[0], -p[1],
                                                                               -1.0]
                rows_eq.append(row)
                rhs.append(value)
    solution, *_ = np.linalg.lstsq(np.array(rows_eq), np.array(rhs), rcond=None)
    placements = [np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])]
    placements += [solution[6 * k: 6 * k + 6].reshape(2, 3) for k in range(n - 1)]
    disagreement = []
    for check, pts in samples:
        assert check.move is not None
        through = pts @ check.move[:, :2].T + check.move[:, 2]
        ga, gb = placements[check.first], placements[check.second]
        via_first = through @ ga[:, :2].T + ga[:, 2]
        direct = pts @ gb[:, :2].T + gb[:, 2]
        worst = float(np.max(np.hypot(*(via_first - direct).T))) if len(pts) else 0.0
        disagreement.append(((check.first, check.second), worst))
    return placements, disagreement


def _blend(tiles: list[Image], placements: list[NDArray[np.float64]]) -> Image:
    """Warp every tile into one canvas; overlaps fade from one tile to the next."""
    corners = []
    for tile, g in zip(tiles, placements, strict=True):
        h, w = tile.shape[:2]
        box = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
        corners.append(box @ g[:, :2].T + g[:, 2])
    everything = np.concatenate(corners)
    origin = np.floor(everything.min(axis=0))
    size = np.ceil(everything.max(axis=0) - origin).astype(int)
    width, height = int(size[0]), int(size[1])
    channels = 3 if tiles[0].ndim == 3 else 1
    total = np.zeros((height, width, channels), np.float32)
    weights = np.zeros((height, width, 1), np.float32)
    for tile, g, box in zip(tiles, placements, corners, strict=True):
        h, w = tile.shape[:2]
        x0, y0 = (np.floor(box.min(axis=0)) - origin).astype(int)
        x1, y1 = (np.ceil(box.max(axis=0)) - origin).astype(int)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(width, x1), min(height, y1)
        shifted = g.copy()
        shifted[:, 2] -= origin + np.array([x0, y0])
        mask = np.zeros((h, w), np.uint8)
        mask[1:-1, 1:-1] = 255
        feather = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        feather = np.minimum(feather, 0.1 * min(h, w)) + 1e-3
        feather[mask == 0] = 0
        out = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(tile.astype(np.float32), shifted, out, flags=cv2.INTER_LINEAR)
        weight = cv2.warpAffine(feather, shifted, out, flags=cv2.INTER_LINEAR)[..., None]
        if warped.ndim == 2:
            warped = warped[..., None]
        total[y0:y1, x0:x1] += warped * weight
        weights[y0:y1, x0:x1] += weight
    covered = weights > 1e-6
    pano = np.where(covered, total / np.maximum(weights, 1e-6), 255.0)
    pano = np.clip(pano, 0, 255).astype(np.uint8)
    return pano if channels == 3 else pano[..., 0]
