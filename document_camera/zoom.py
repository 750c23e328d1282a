"""Remote zoom: the part of the page the expert looks at, from the camera's own pixels.

The expert's console sends the region of the page in view (`document_camera:view`, normalised
page coordinates, docs/signaling-events.md); the document track then sends that region taken
from the *full-resolution* page instead of the whole, downscaled page, so zooming in shows
what the camera resolved rather than enlarged track pixels.

    Region        what the console asks for: x, y, w, h in 0..1 of the rectified page
    PageRect      what a frame shows: the region widened to the frame's shape; may reach
                  past the page's edges
    crop_region   the offline form (benchmark): a region of an already rectified page
    PageZoom      the live form (track): a region straight from the camera frame through the
                  page's homography, lit and levelled like the whole page
    encode_marker / decode_marker
                  the strip at the bottom of every zoomed frame that tells the receiver which
                  PageRect the frame shows (expert_console/static/js/doccam-view.js reads it)

Only the region is rectified at native resolution: the homography from the camera frame to the
page is composed with the region's scaling, so one `warpPerspective` of the output's size does
it, whatever the camera's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from document_camera.illumination import contrast_lut, paper_background
from document_camera.images import Image, Quad
from document_camera.rectification import output_size, rectify

# The smallest region side anyone may ask for, as a share of the page. The console's deepest
# zoom is 8×, which never asks for less than 1/8; the track's 1536 px across 1/16 of a page
# would be 24,576 px across the page, more than any camera resolves (an 8K sensor has 7680):
# a smaller region asks for more than native pixels. A region smaller than the camera's native
# pixels is enlarged (and sharpened) to the track's size before encoding, which keeps fine print
# through the encoder better than enlarging the decoded picture would.
MIN_REGION_SIZE = 1.0 / 16.0
# Rounding slack for coordinates that went through JSON and JavaScript arithmetic.
EPSILON = 1e-9

# The marker strip: MARKER_HEIGHT rows at the bottom of a zoomed frame, two lines of 40 cells
# of MARKER_CELL × MARKER_CELL px, white = 1 (fits a frame 320 px wide). 80 bits: the magic
# byte, x, y, w, h as 16-bit values, CRC-8.
MARKER_HEIGHT = 16
MARKER_CELL = 8
MARKER_MAGIC = 0xA5
MARKER_BITS = 80
_MARKER_PER_LINE = MARKER_BITS // 2
# A PageRect coordinate v travels as round((v + 1) · 16384): −1 ≤ v < 3 in steps of 1/16384.
_MARKER_OFFSET = 1.0
_MARKER_SCALE = 16384.0
# Unsharp mask of an enlarged zoom (`sharpen`): amount, and radius in camera pixels.
SHARPEN_AMOUNT = 1.5
SHARPEN_SIGMA = 0.8
_BACKGROUND_WIDTH = 256  # the whole page's light model, as illumination.py estimates it
# picture pixel edges (0..width) → OpenCV's pixel-centre coordinates
_PIXEL_CENTRES = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], np.float64)


@dataclass(frozen=True)
class Region:
    """A region of the rectified page, in 0..1 of its width (x, w) and height (y, h)."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"region {name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError(f"region {name} must be a finite number")
        if self.x < 0 or self.y < 0:
            raise ValueError("region x and y must be at least 0")
        if self.w < MIN_REGION_SIZE - EPSILON or self.h < MIN_REGION_SIZE - EPSILON:
            raise ValueError(
                f"region w and h must be at least {MIN_REGION_SIZE:g} of the page"
                " (a smaller one asks for more than the camera's native pixels)")
        if self.x + self.w > 1 + EPSILON or self.y + self.h > 1 + EPSILON:
            raise ValueError("region must lie within the page: x + w and y + h at most 1")

    @classmethod
    def parse(cls, data: object) -> Region:
        """A region from its wire form `{x, y, w, h}`; ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("region must be an object {x, y, w, h}")
        keys = set(data)
        if keys != {"x", "y", "w", "h"}:
            missing = sorted({"x", "y", "w", "h"} - keys)
            extra = sorted(str(k) for k in keys - {"x", "y", "w", "h"})
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unknown {', '.join(extra)}"] if extra else [])
            raise ValueError(f"region must have exactly x, y, w, h ({'; '.join(parts)})")
        return cls(data["x"], data["y"], data["w"], data["h"])

    def to_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class PageRect:
    """The rectangle of the page a picture shows, in page units (0..1 = the page); unlike a
    Region it may reach past the page's edges, where the picture is black."""

    x: float
    y: float
    w: float
    h: float

    def contains(self, region: Region, slack: float = 1e-3) -> bool:
        return (self.x <= region.x + slack and self.y <= region.y + slack
                and self.x + self.w >= region.x + region.w - slack
                and self.y + self.h >= region.y + region.h - slack)


def frame_region(
    region: Region,
    page_px: tuple[float, float],
    out_size: tuple[int, int],
) -> PageRect:
    """What a picture of `out_size` (width, height) shows for `region` of a page `page_px`
    pixels large: the region widened about its centre to the picture's shape (never cut),
    then moved inside the page. A side longer than the page is centred on it."""
    pw, ph = page_px
    ow, oh = out_size
    rw, rh = region.w * pw, region.h * ph
    aspect = ow / oh
    if rw / rh < aspect:
        rw = rh * aspect
    else:
        rh = rw / aspect
    fw, fh = rw / pw, rh / ph
    cx, cy = region.x + region.w / 2, region.y + region.h / 2

    def place(centre: float, size: float) -> float:
        if size >= 1:
            return 0.5 - size / 2
        return min(max(centre - size / 2, 0.0), 1.0 - size)

    return PageRect(place(cx, fw), place(cy, fh), fw, fh)


def zoom_canvas(region: Region, quad: Quad, size: tuple[int, int]) -> tuple[int, int]:
    """The track's canvas (`size` either way round) turned to the region's shape on the page:
    landscape for a wide region, portrait for a tall one, so the region fills it best."""
    short, long = sorted(size)
    pw, ph = output_size(quad)
    return (long, short) if region.w * pw >= region.h * ph else (short, long)


def _page_to_picture(rect: PageRect, out_size: tuple[int, int]) -> Any:
    """3×3 affine: page units → picture pixels."""
    ow, oh = out_size
    sx, sy = ow / rect.w, oh / rect.h
    return np.array([[sx, 0, -rect.x * sx], [0, sy, -rect.y * sy], [0, 0, 1]], np.float64)


def _blacken_outside_page(image: Image, rect: PageRect) -> None:
    """Black where the picture reaches past the page (the picture is axis-aligned to it)."""
    oh, ow = image.shape[:2]
    left = math.ceil(max(0.0, -rect.x) / rect.w * ow - 0.5) if rect.x < 0 else 0
    right = math.floor((1.0 - rect.x) / rect.w * ow + 0.5) if rect.x + rect.w > 1 else ow
    top = math.ceil(max(0.0, -rect.y) / rect.h * oh - 0.5) if rect.y < 0 else 0
    bottom = math.floor((1.0 - rect.y) / rect.h * oh + 0.5) if rect.y + rect.h > 1 else oh
    image[:, :max(0, left)] = 0
    image[:, max(0, right):] = 0
    image[:max(0, top)] = 0
    image[max(0, bottom):] = 0


def crop_region(page: Image, region: Region, out_size: tuple[int, int]) -> Image:
    """`region` of a rectified `page` (its full-resolution pixels) as an `out_size` (width,
    height) picture: the region widened to the picture's shape about its centre and kept
    inside the page (`frame_region`); page pixels map linearly onto the picture, enlarged
    (cubic) or reduced (area-averaged, no aliasing) as the sizes require. Where the page is
    smaller than the picture's shape in one direction the rest is black."""
    ph, pw = page.shape[:2]
    rect = frame_region(region, (pw, ph), out_size)
    scale = out_size[0] / (rect.w * pw)
    source = page
    # page pixel (centre) coordinates: u = (px + 0.5) / pw
    to_page = np.array([[1 / pw, 0, 0.5 / pw], [0, 1 / ph, 0.5 / ph], [0, 0, 1]], np.float64)
    if scale < 0.75:
        # Reduce first with an averaging resize: a plain warp would alias small text.
        source = cv2.resize(page, None, fx=scale * 1.25, fy=scale * 1.25,
                            interpolation=cv2.INTER_AREA)
        sh, sw = source.shape[:2]
        to_page = np.array([[1 / sw, 0, 0.5 / sw], [0, 1 / sh, 0.5 / sh], [0, 0, 1]],
                           np.float64)
    matrix = _PIXEL_CENTRES @ _page_to_picture(rect, out_size) @ to_page
    interpolation = cv2.INTER_CUBIC if scale > 1.2 else cv2.INTER_LINEAR
    out = cv2.warpAffine(source, matrix[:2], out_size, flags=interpolation,
                         borderMode=cv2.BORDER_REPLICATE)
    _blacken_outside_page(out, rect)
    return out


def sharpen(picture: Image, magnify: float) -> Image:
    """Unsharp mask for a picture enlarged `magnify` times from the camera's pixels: the
    blur subtracted spans SHARPEN_SIGMA camera pixels, so it lifts what the optics and the
    interpolation softened, not the noise of the enlarged grain."""
    blurred = cv2.GaussianBlur(picture, (0, 0), SHARPEN_SIGMA * magnify)
    return cv2.addWeighted(picture, 1.0 + SHARPEN_AMOUNT, blurred, -SHARPEN_AMOUNT, 0.0)


class PageZoom:
    """The live zoom of the document track: a region of the page the camera sees, rendered
    straight from the camera frame at the camera's resolution.

    The light and levels come from the whole page (its paper model and contrast table, from
    a small rectified copy, cached while the page lies still), so a zoomed view is lit like
    the overview and a dark wall in a plan stays dark however far one zooms.
    """

    def __init__(self, *, flatten: bool = True, enhance: bool = True) -> None:
        self.flatten = flatten
        self.enhance = enhance
        self._model_key: bytes | None = None
        self._paper: Image | None = None
        self._lut: Image | None = None

    def new_scene(self) -> None:
        """The scene changed (the pipeline processed a new frame, not a reused one): estimate
        the page's light again, even when the page did not move (a shadow, the lamp)."""
        self._model_key = None

    def render(
        self, frame: Image, quad: Quad, region: Region, canvas: tuple[int, int]
    ) -> tuple[Image, PageRect]:
        """The `canvas`-sized (width, height) frame for `region`: the picture above, the
        marker strip at the bottom. Returns it with the PageRect it shows."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        width, height = canvas
        out_size = (width, height - MARKER_HEIGHT)
        page_px = output_size(quad)  # the page at native resolution (A-series snapped)
        rect = frame_region(region, page_px, out_size)
        to_unit = cv2.getPerspectiveTransform(
            quad.astype(np.float32), np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32))
        # camera pixel → page units → picture pixel, in one warp of the picture's size
        matrix = _PIXEL_CENTRES @ _page_to_picture(rect, out_size) @ to_unit.astype(np.float64)
        magnify = out_size[0] / (rect.w * page_px[0])
        if magnify > 1.2:
            # Enlarging: one warp straight from the camera's pixels to the picture, then an
            # unsharp mask scaled to the enlargement that restores the stroke edges the
            # camera's optics and the interpolation soften. Warping at the camera's scale
            # and then enlarging interpolates twice and blurs small print: 8 pt text from a
            # 1080p camera read at 7.9 % CER that way, 2.7 % with one cubic warp, 1.6 % with
            # one cubic warp and the mask, 1.1 % with one linear warp and the mask (three
            # pages; the linear warp costs half the cubic one).
            picture = cv2.warpPerspective(frame, matrix, out_size, flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE)
            picture = sharpen(picture, magnify)
        else:
            picture = cv2.warpPerspective(frame, matrix, out_size, flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE)
        if self.flatten or self.enhance:
            picture = self._light(frame, quad, page_px, picture, rect)
        _blacken_outside_page(picture, rect)
        out = np.empty((height, width, 3), np.uint8)
        out[:height - MARKER_HEIGHT] = picture
        out[height - MARKER_HEIGHT:] = encode_marker(rect, width)
        return out, rect

    def _light(self, frame: Image, quad: Quad, page_px: tuple[int, int], picture: Image,
               rect: PageRect) -> Image:
        key = np.round(quad, 1).tobytes() + bytes(f"{frame.shape}", "ascii")
        if key != self._model_key:
            small_size = (_BACKGROUND_WIDTH,
                          max(1, round(_BACKGROUND_WIDTH * page_px[1] / page_px[0])))
            small = rectify(frame, quad, small_size)
            gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
            paper = np.maximum(paper_background(gray), 16.0)
            flattened = np.clip(small.astype(np.float32) * (245.0 / paper)[..., None], 0, 255)
            self._paper = paper
            self._lut = contrast_lut(flattened.astype(np.uint8) if self.flatten else small)
            self._model_key = key
        out_size = (picture.shape[1], picture.shape[0])
        image = picture
        if self.flatten and self._paper is not None:
            paper = self._paper
            bh, bw = paper.shape
            # the model's pixel (as rectify() placed it) → page units → picture pixel
            from_small = np.array([[1 / bw, 0, 0], [0, 1 / bh, 0], [0, 0, 1]], np.float64)
            matrix = _PIXEL_CENTRES @ _page_to_picture(rect, out_size) @ from_small
            local = cv2.warpAffine(paper, matrix[:2], out_size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
            gain = np.asarray(245.0 / local, np.float32)
            image = cv2.multiply(image, cv2.merge([gain] * 3), dtype=cv2.CV_8U)
        if self.enhance and self._lut is not None:
            image = cv2.LUT(image, self._lut)
        return image


# -- the marker strip


def _crc8(data: bytes) -> int:
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def marker_bits(rect: PageRect) -> list[int]:
    """The 80 bits that say which PageRect a frame shows (MSB first)."""
    payload = bytearray([MARKER_MAGIC])
    for value in (rect.x, rect.y, rect.w, rect.h):
        n = round((value + _MARKER_OFFSET) * _MARKER_SCALE)
        if not 0 <= n <= 0xFFFF:
            raise ValueError(f"page coordinate {value} outside what the marker carries")
        payload += n.to_bytes(2, "big")
    payload.append(_crc8(bytes(payload)))
    return [(byte >> (7 - i)) & 1 for byte in payload for i in range(8)]


def rect_from_bits(bits: list[int]) -> PageRect | None:
    """The PageRect of 80 marker bits; None when they are not a marker (magic, CRC)."""
    if len(bits) < MARKER_BITS:
        return None
    payload = bytes(int("".join(str(b) for b in bits[i:i + 8]), 2)
                    for i in range(0, MARKER_BITS, 8))
    if payload[0] != MARKER_MAGIC or _crc8(payload[:9]) != payload[9]:
        return None
    values = [int.from_bytes(payload[1 + 2 * i:3 + 2 * i], "big") / _MARKER_SCALE
              - _MARKER_OFFSET for i in range(4)]
    if values[2] <= 0 or values[3] <= 0:
        return None
    return PageRect(*values)


def encode_marker(rect: PageRect, width: int) -> Image:
    """The MARKER_HEIGHT × width strip (BGR) carrying `rect`: bits 0–39 on the upper line of
    8 × 8 px cells, 40–79 on the lower, white = 1, black elsewhere. The cells fall on the
    encoder's block grid, so VP8 keeps them intact."""
    strip = np.zeros((MARKER_HEIGHT, width, 3), np.uint8)
    for i, bit in enumerate(marker_bits(rect)):
        if bit:
            line, col = divmod(i, _MARKER_PER_LINE)
            strip[line * MARKER_CELL:(line + 1) * MARKER_CELL,
                  col * MARKER_CELL:(col + 1) * MARKER_CELL] = 255
    return strip


def decode_marker(frame: Image) -> PageRect | None:
    """The PageRect a received frame shows when it is a zoomed one, else None (an overview
    frame has no marker). Reads the middle of each cell, so coding noise does not matter."""
    height, width = frame.shape[:2]
    if height <= MARKER_HEIGHT or width < _MARKER_PER_LINE * MARKER_CELL:
        return None
    strip = frame[height - MARKER_HEIGHT:]
    gray = cv2.cvtColor(strip, cv2.COLOR_BGR2GRAY) if strip.ndim == 3 else strip
    bits = []
    for i in range(MARKER_BITS):
        line, col = divmod(i, _MARKER_PER_LINE)
        cell = gray[line * MARKER_CELL + 2:(line + 1) * MARKER_CELL - 2,
                    col * MARKER_CELL + 2:(col + 1) * MARKER_CELL - 2]
        bits.append(1 if float(cell.mean()) >= 128 else 0)
    return rect_from_bits(bits)
