"""Large sheets (A2–A0): guided tile capture and stitching, with a check that rejects a bad
stitch instead of sending it.

The clerk is guided through a grid of overlapping shots (`TileGuide`). Before stitching,
neighbouring tiles are matched (ORB features, RANSAC): a neighbour pair that does not share
enough consistent features means the tiles do not overlap, and the clerk is told so. OpenCV's
Stitcher in SCANS mode (affine model, for flat documents) then joins them, and the result is
checked: every pair transform must be a plausible camera move (scale near 1, small rotation
and shear) and the stitched size must match what the grid implies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

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

    @property
    def overlaps(self) -> bool:
        """Enough consistent feature matches to say the two tiles share an area."""
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
