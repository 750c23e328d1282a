"""Synthetic document-camera scenes with known ground truth, for tests, demos and benchmarks.

A page is rendered flat first (text at a true 10 pt on A4, or a building-plan-like drawing),
then photographed by a simulated camera: placed in perspective on a dark desk, lit unevenly,
blurred and given sensor noise. The page's text and its four corners in the frame are known
exactly, so rectification, OCR and stitching can be measured rather than eyeballed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from document_camera.images import Image, Quad

A4_MM = (210.0, 297.0)
MM_PER_INCH = 25.4
POINTS_PER_INCH = 72.0

# Everyday words of a service office's paperwork; ASCII only so that the OCR measurement is
# about the picture, not about the OCR engine's language model.
_WORDS = (
    "application decision benefit housing allowance office customer service address postal "
    "code number date signature municipality residence permit income tax card employer period "
    "month year payment account reference statement appendix page section paragraph request "
    "review appeal notice deadline received processed approved amount total euro rent family "
    "child member health insurance pension unemployment registration building plan permit "
    "floor area lot owner applicant contact phone email street road city district zone "
    "certificate identity passport document copy original attached required optional form"
).split()

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


@dataclass(frozen=True)
class TextLabel:
    """One printed word or number and its box on the flat page, in page pixels."""

    text: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    line: int = 0  # reading order: line, then x


@dataclass(frozen=True)
class SyntheticPage:
    """A flat page as printed: its pixels, its true text (None for drawings) and its scale.

    `labels` places the printed words (text pages) or dimension numbers (dimensioned plans)
    on the page, so a reader of any part of it can be scored against what is really there.
    """

    image: Image  # BGR
    text: str | None
    dpi: float
    labels: tuple[TextLabel, ...] = ()


@dataclass(frozen=True)
class SyntheticCapture:
    """One camera frame of a page with the page's true corners in that frame."""

    frame: Image  # BGR
    corners: Quad
    page: SyntheticPage


@dataclass(frozen=True)
class CameraEffects:
    """How imperfect the simulated camera is. Zero everywhere gives a perfect photograph."""

    light_falloff: float = 0.35  # fraction of brightness lost in the darkest corner
    blur_sigma: float = 0.8  # Gaussian blur in frame pixels (focus, lens)
    noise_sigma: float = 3.0  # sensor noise, in 8-bit levels
    shadow: float = 0.0  # share of the light a band of shadow (an arm, a head) takes
    motion_px: float = 0.0  # length of a straight motion blur, frame pixels


def page_pixels(dpi: float, size_mm: tuple[float, float] = A4_MM) -> tuple[int, int]:
    """Width and height in pixels of a page of `size_mm` printed at `dpi`."""
    return (round(size_mm[0] / MM_PER_INCH * dpi), round(size_mm[1] / MM_PER_INCH * dpi))


def sample_text(seed: int, words: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(words):
        word = rng.choice(_WORDS)
        if rng.random() < 0.12:
            word = word.capitalize()
        if rng.random() < 0.08:
            word = str(rng.randint(1, 99999))
        if i % 11 == 10:
            word += "."
        out.append(word)
    return out


@lru_cache(maxsize=8)
def _font(size_px: int) -> object:
    from PIL import ImageFont

    for path in _FONT_CANDIDATES:
        if Path(path).exists():
            return ImageFont.truetype(path, size_px)
    return ImageFont.load_default(size=size_px)


def render_text_page(
    *, dpi: float = 200.0, font_pt: float = 10.0, seed: int = 1, max_lines: int | None = None
) -> SyntheticPage:
    """An A4 page of running text at `font_pt` (true size at A4 scale), 20 mm margins.

    The returned `text` is exactly what is printed, line by line.
    """
    from PIL import Image as PilImage
    from PIL import ImageDraw

    width, height = page_pixels(dpi)
    font_px = max(6, round(font_pt / POINTS_PER_INCH * dpi))
    font = _font(font_px)
    margin = round(20.0 / MM_PER_INCH * dpi)
    line_height = round(font_px * 1.35)
    usable = width - 2 * margin
    lines_fit = (height - 2 * margin) // line_height
    if max_lines is not None:
        lines_fit = min(lines_fit, max_lines)

    words = sample_text(seed, 40 * lines_fit)
    canvas = PilImage.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    lines: list[str] = []
    current: list[str] = []
    for word in words:
        candidate = " ".join([*current, word])
        if current and draw.textlength(candidate, font=font) > usable:  # type: ignore[arg-type]
            lines.append(" ".join(current))
            current = [word]
            if len(lines) == lines_fit:
                break
        else:
            current.append(word)
    labels: list[TextLabel] = []
    for row, line in enumerate(lines):
        top = margin + row * line_height
        draw.text((margin, top), line, fill=20, font=font)  # type: ignore[arg-type]
        prefix = ""
        for word in line.split(" "):
            x0 = margin + draw.textlength(prefix, font=font)  # type: ignore[arg-type]
            x1 = x0 + draw.textlength(word, font=font)  # type: ignore[arg-type]
            labels.append(TextLabel(word, (int(x0), top, int(np.ceil(x1)), top + font_px), row))
            prefix += word + " "
    gray = np.asarray(canvas, dtype=np.uint8)
    return SyntheticPage(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), "\n".join(lines), dpi,
                         tuple(labels))


def render_plan_sheet(
    *, dpi: float = 50.0, size_mm: tuple[float, float] = (594.0, 420.0), seed: int = 1
) -> SyntheticPage:
    """A building-plan-like drawing (rooms, walls, doors, dimension text, hatching).

    Deliberately irregular so that overlapping tiles of it have distinctive features to match.
    """
    rng = random.Random(seed)
    width, height = page_pixels(dpi, size_mm)
    img = np.full((height, width, 3), 250, np.uint8)
    thin = max(1, round(dpi / 50))
    wall = max(2, round(dpi / 12))
    # An outer wall and a recursive split into rooms.
    margin = round(min(width, height) * 0.05)
    cv2.rectangle(img, (margin, margin), (width - margin, height - margin), (30, 30, 30), wall)

    def split(x0: int, y0: int, x1: int, y1: int, depth: int) -> None:
        if depth == 0 or (x1 - x0) < width * 0.12 or (y1 - y0) < height * 0.12:
            _furnish(img, x0, y0, x1, y1, rng, thin)
            return
        if (x1 - x0) > (y1 - y0):
            cut = rng.randint(x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3)
            cv2.line(img, (cut, y0), (cut, y1), (30, 30, 30), wall)
            door = rng.randint(y0 + wall * 3, max(y0 + wall * 3 + 1, y1 - wall * 8))
            cv2.line(img, (cut, door), (cut, door + wall * 5), (250, 250, 250), wall + 2)
            cv2.ellipse(img, (cut, door), (wall * 5, wall * 5), 0, 0, 90, (80, 80, 80), thin)
            split(x0, y0, cut, y1, depth - 1)
            split(cut, y0, x1, y1, depth - 1)
        else:
            cut = rng.randint(y0 + (y1 - y0) // 3, y1 - (y1 - y0) // 3)
            cv2.line(img, (x0, cut), (x1, cut), (30, 30, 30), wall)
            door = rng.randint(x0 + wall * 3, max(x0 + wall * 3 + 1, x1 - wall * 8))
            cv2.line(img, (door, cut), (door + wall * 5, cut), (250, 250, 250), wall + 2)
            cv2.ellipse(img, (door, cut), (wall * 5, wall * 5), 0, 90, 180, (80, 80, 80), thin)
            split(x0, y0, x1, cut, depth - 1)
            split(x0, cut, x1, y1, depth - 1)

    split(margin, margin, width - margin, height - margin, 4)
    # Title block in the lower right corner, as on real drawings.
    tb_w, tb_h = width // 4, height // 10
    x0, y0 = width - margin - tb_w, height - margin - tb_h
    cv2.rectangle(img, (x0, y0), (width - margin, height - margin), (30, 30, 30), thin * 2)
    scale = dpi / 80.0
    cv2.putText(img, "ASEMAPIIRROS 1:100", (x0 + 8, y0 + tb_h // 2),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), thin, cv2.LINE_AA)
    return SyntheticPage(img, None, dpi)


def render_dimensioned_plan(
    *, dpi: float = 240.0, size_mm: tuple[float, float] = (420.0, 297.0), seed: int = 1,
    font_pt: float = 7.0, interior: int = 12,
) -> SyntheticPage:
    """A plan sheet (`render_plan_sheet`) with dimension chains along its four outer walls and
    `interior` dimensions inside, numbers in millimetres at 1:100 set at a true `font_pt`.

    `labels` holds every dimension number and its box, so the share read can be measured.
    Numbers are set horizontal, also on the vertical chains (drawings often turn those 90°;
    a reader then turns his head, OCR would need a second pass): the measure is legibility.
    """
    from PIL import Image as PilImage
    from PIL import ImageDraw

    base = render_plan_sheet(dpi=dpi, size_mm=size_mm, seed=seed)
    rng = random.Random(seed * 31 + 7)
    pil = PilImage.fromarray(cv2.cvtColor(base.image, cv2.COLOR_BGR2RGB))
    draw = ImageDraw.Draw(pil)
    font = _font(max(6, round(font_pt / POINTS_PER_INCH * dpi)))
    height, width = base.image.shape[:2]
    px_per_mm = dpi / MM_PER_INCH
    thin = max(1, round(dpi / 100))
    margin = round(min(width, height) * 0.05)
    ink = (25, 25, 25)
    taken: list[tuple[int, int, int, int]] = []
    labels: list[TextLabel] = []

    def put(value: str, cx: float, cy: float, *, clear: bool) -> None:
        x0, y0, x1, y1 = draw.textbbox((0, 0), value, font=font)  # type: ignore[arg-type]
        w, h = round(x1 - x0), round(y1 - y0)
        left, top = round(cx - w / 2), round(cy - h / 2)
        box = (left - 2, top - 2, left + w + 2, top + h + 2)
        if any(not (box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1])
               for b in taken):
            return  # never print one number over another
        if clear:  # a drawing masks the lines under its text
            draw.rectangle(box, fill=(250, 250, 250))
        draw.text((left - x0, top - y0), value, fill=ink, font=font)  # type: ignore[arg-type]
        taken.append(box)
        labels.append(TextLabel(value, (left, top, left + w, top + h), len(labels)))

    def mm(px: float) -> str:
        return str(round(px / px_per_mm * 100 / 10.0) * 10)  # 1:100, to 10 mm

    def chain(start: int, end: int, at: int, horizontal: bool) -> None:
        cuts = sorted(rng.sample(range(start + (end - start) // 12, end - (end - start) // 12),
                                 rng.randint(3, 5)))
        points = [start, *cuts, end]
        tick = max(4, round(1.2 * px_per_mm))
        if horizontal:
            draw.line([(start, at), (end, at)], fill=ink, width=thin)
        else:
            draw.line([(at, start), (at, end)], fill=ink, width=thin)
        for p in points:
            if horizontal:
                draw.line([(p - tick, at + tick), (p + tick, at - tick)], fill=ink, width=thin)
            else:
                draw.line([(at - tick, p + tick), (at + tick, p - tick)], fill=ink, width=thin)
        for a, b in itertools.pairwise(points):
            if horizontal:
                put(mm(b - a), (a + b) / 2, at - 2.2 * px_per_mm, clear=False)
            else:
                put(mm(b - a), at, (a + b) / 2, clear=True)

    chain(margin, width - margin, round(margin * 0.45), True)
    chain(margin, width - margin, height - round(margin * 0.25), True)
    chain(margin, height - margin, round(margin * 0.45), False)
    chain(margin, height - margin, width - round(margin * 0.45), False)
    title = (width - margin - width // 4, height - margin - height // 10)
    outer = len(labels)
    for _ in range(interior * 4):
        if len(labels) >= outer + interior:
            break
        cx = rng.uniform(margin * 2.5, width - margin * 2.5)
        cy = rng.uniform(margin * 2.5, height - margin * 2.5)
        if cx > title[0] - margin and cy > title[1] - margin:
            continue
        span = rng.uniform(0.06, 0.2) * width
        y = round(cy + 1.6 * px_per_mm)
        draw.line([(cx - span / 2, y), (cx + span / 2, y)], fill=ink, width=thin)
        put(mm(span), cx, cy, clear=True)
    image = cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR)
    return SyntheticPage(image, None, dpi, tuple(labels))


def _furnish(
    img: Image, x0: int, y0: int, x1: int, y1: int, rng: random.Random, thin: int
) -> None:
    """Room contents: hatching, a fixture or two, and a dimension label."""
    w, h = x1 - x0, y1 - y0
    kind = rng.randint(0, 3)
    if kind == 0:  # tiled floor hatching
        step = max(6, w // rng.randint(8, 16))
        for x in range(x0 + step, x1, step):
            cv2.line(img, (x, y0 + 4), (x, y1 - 4), (170, 170, 170), thin)
    elif kind == 1:  # diagonal hatch
        step = max(6, w // rng.randint(6, 12))
        for k in range(-h, w, step):
            cv2.line(img, (x0 + max(k, 0), y0 + max(-k, 0)),
                     (x0 + min(k + h, w), y0 + min(h, w - k)), (190, 190, 190), thin)
    for _ in range(rng.randint(1, 3)):
        cx, cy = rng.randint(x0 + w // 5, x1 - w // 5), rng.randint(y0 + h // 5, y1 - h // 5)
        r = max(4, min(w, h) // rng.randint(6, 10))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, (60, 60, 60), thin)
        else:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), (60, 60, 60), thin)
    label = f"{rng.randint(4, 40)}.{rng.randint(0, 9)} m2"
    scale = max(0.3, min(w, h) / 300.0)
    cv2.putText(img, label, (x0 + w // 8, y0 + h // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (40, 40, 40), thin, cv2.LINE_AA)


def page_corners(size: tuple[int, int]) -> Quad:
    w, h = size
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def random_quad(
    frame_size: tuple[int, int],
    page_aspect: float,
    rng: random.Random,
    *,
    fill: float = 0.85,
    tilt: float = 0.06,
) -> Quad:
    """Quad of a page (width/height = `page_aspect`) seen slightly off-axis.

    `fill` is the page height's share of the frame height, `tilt` how far (as a share of the
    page size) each corner may wander: enough keystone and rotation to need rectifying.
    """
    fw, fh = frame_size
    ph = fh * fill
    pw = ph * page_aspect
    if pw > fw * fill:
        pw = fw * fill
        ph = pw / page_aspect
    cx = fw / 2 + rng.uniform(-0.5, 0.5) * (fw - pw) * 0.5
    cy = fh / 2 + rng.uniform(-0.5, 0.5) * (fh - ph) * 0.5
    base = np.array(
        [[cx - pw / 2, cy - ph / 2], [cx + pw / 2, cy - ph / 2],
         [cx + pw / 2, cy + ph / 2], [cx - pw / 2, cy + ph / 2]], np.float64)
    jitter = np.array(
        [[rng.uniform(-tilt, tilt) * pw, rng.uniform(-tilt, tilt) * ph] for _ in range(4)])
    quad = base + jitter
    quad[:, 0] = np.clip(quad[:, 0], 2, fw - 3)
    quad[:, 1] = np.clip(quad[:, 1], 2, fh - 3)
    return quad.astype(np.float32)


def photograph(
    page: SyntheticPage,
    corners: Quad,
    frame_size: tuple[int, int],
    *,
    effects: CameraEffects | None = None,
    seed: int = 0,
    page_alpha: Image | None = None,
    scene: Callable[[Image], Image] | None = None,
) -> SyntheticCapture:
    """The page as a camera would see it with its corners at `corners` in the frame.

    `page_alpha` (page-sized, 0–255) lets the desk show through where the page is not (a
    folded-back corner); `scene` draws on the frame after the page is laid down and before
    light, blur and noise (things on the desk, a hand).
    """
    effects = effects or CameraEffects()
    fw, fh = frame_size
    rng = np.random.default_rng(seed)
    h, w = page.image.shape[:2]
    homography = cv2.getPerspectiveTransform(page_corners((w, h)), corners.astype(np.float32))
    desk = _desk(frame_size)
    if page_alpha is None:
        frame = cv2.warpPerspective(
            page.image, homography, (fw, fh), dst=desk, flags=cv2.INTER_AREA,
            borderMode=cv2.BORDER_TRANSPARENT)
    else:
        laid = cv2.warpPerspective(page.image, homography, (fw, fh), flags=cv2.INTER_AREA)
        alpha = cv2.warpPerspective(page_alpha, homography, (fw, fh), flags=cv2.INTER_LINEAR)
        weight = (alpha.astype(np.float32) / 255.0)[..., None]
        frame = (laid * weight + desk * (1.0 - weight)).astype(np.uint8)
    if scene is not None:
        frame = scene(frame)
    if effects.light_falloff > 0:
        frame = _uneven_light(frame, effects.light_falloff)
    if effects.shadow > 0:
        frame = _shadow_band(frame, corners, effects.shadow, random.Random(seed * 7 + 1))
    if effects.blur_sigma > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), effects.blur_sigma)
    if effects.motion_px > 0:
        frame = _motion_blur(frame, effects.motion_px, random.Random(seed * 7 + 2))
    if effects.noise_sigma > 0:
        noise = np.asarray(rng.normal(0.0, effects.noise_sigma, frame.shape), np.float32)
        frame = np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return SyntheticCapture(frame, corners.astype(np.float32), page)


@lru_cache(maxsize=4)
def _desk_cached(frame_size: tuple[int, int]) -> Image:
    fw, fh = frame_size
    rng = np.random.default_rng(7)
    small = rng.integers(50, 80, (max(2, fh // 40), max(2, fw // 40), 3)).astype(np.uint8)
    desk = cv2.resize(small, (fw, fh), interpolation=cv2.INTER_CUBIC)
    desk[..., 2] = np.clip(desk[..., 2].astype(np.int16) + 18, 0, 255).astype(np.uint8)  # wood
    return desk


def _desk(frame_size: tuple[int, int]) -> Image:
    return _desk_cached(frame_size).copy()


@lru_cache(maxsize=4)
def _light_gain(frame_size: tuple[int, int], falloff: float) -> Quad:
    fw, fh = frame_size
    ys, xs = np.mgrid[0:fh, 0:fw].astype(np.float32)
    # A lamp up and to the left: brightness falls off with distance from it.
    dist = np.hypot(xs / fw - 0.15, ys / fh - 0.1) / np.hypot(0.85, 0.9)
    return (1.0 - falloff * np.clip(dist, 0, 1) ** 1.5)[..., None].astype(np.float32)


def _uneven_light(frame: Image, falloff: float) -> Image:
    h, w = frame.shape[:2]
    gain = _light_gain((w, h), falloff)
    return np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _shadow_band(frame: Image, corners: Quad, strength: float, rng: random.Random) -> Image:
    """A soft-edged band of shadow across the page, as an arm or a head leaning over casts:
    a straight band through a random point of the page at a random angle, 12–30 % of the
    frame's height wide, its edges blurred over about 2 % of the frame."""
    h, w = frame.shape[:2]
    centre = corners.mean(axis=0)
    spread = corners.max(axis=0) - corners.min(axis=0)
    cx = centre[0] + rng.uniform(-0.3, 0.3) * spread[0]
    cy = centre[1] + rng.uniform(-0.3, 0.3) * spread[1]
    angle = rng.uniform(0, np.pi)
    half = rng.uniform(0.06, 0.15) * h
    soft = 0.02 * h
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    distance = np.abs((xs - cx) * np.sin(angle) - (ys - cy) * np.cos(angle))
    inside = 1.0 / (1.0 + np.exp((distance - half) / (soft / 4)))  # 1 in the band, 0 outside
    gain = (1.0 - strength * inside)[..., None]
    return np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _motion_blur(frame: Image, length: float, rng: random.Random) -> Image:
    """A straight movement of `length` pixels in a random direction during the exposure."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, np.pi)
    centre = size // 2
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 4))):
        x, y = centre + t * np.cos(angle), centre + t * np.sin(angle)
        xi, yi = int(np.clip(round(x), 0, size - 1)), int(np.clip(round(y), 0, size - 1))
        kernel[yi, xi] += 1.0
    kernel /= kernel.sum()
    return cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def synthetic_capture(
    *,
    frame_size: tuple[int, int] = (1920, 1080),
    seed: int = 1,
    effects: CameraEffects | None = None,
    page: SyntheticPage | None = None,
    tilt: float = 0.06,
    fill: float = 0.88,
) -> SyntheticCapture:
    """A text page photographed at a random (seeded) angle: the one-call test fixture."""
    rng = random.Random(seed)
    if page is None:
        page = render_text_page(dpi=_dpi_for(frame_size, fill), seed=seed)
    h, w = page.image.shape[:2]
    corners = random_quad(frame_size, w / h, rng, fill=fill, tilt=tilt)
    return photograph(page, corners, frame_size, effects=effects, seed=seed)


def _dpi_for(frame_size: tuple[int, int], fill: float) -> float:
    """A print resolution a little above what the frame resolves, so the camera subsamples."""
    page_height_px = frame_size[1] * fill
    return max(72.0, 1.3 * page_height_px / (A4_MM[1] / MM_PER_INCH))


def make_tiles(
    sheet: Image,
    *,
    cols: int,
    rows: int,
    overlap: float,
    seed: int = 0,
    effects: CameraEffects | None = None,
    tilt_deg: float = 0.0,
    shift: float = 0.0,
) -> list[Image]:
    """Overlapping camera shots of a large sheet, in row-major order, as the guided mode takes.

    Each tile is a slightly rotated, slightly scaled view with its own lighting and noise,
    like a hand-positioned document camera; `overlap` is the shared share of each tile.
    `tilt_deg` turns each shot by up to that angle and `shift` moves it off the planned grid
    by up to that share of a tile: a clerk never places the sheet exactly.
    """
    effects = effects or CameraEffects(light_falloff=0.15, blur_sigma=0.5, noise_sigma=2.0)
    rng = random.Random(seed)
    h, w = sheet.shape[:2]
    tile_w = w / (cols - (cols - 1) * overlap) if cols > 1 else float(w)
    tile_h = h / (rows - (rows - 1) * overlap) if rows > 1 else float(h)
    tiles: list[Image] = []
    for r in range(rows):
        for c in range(cols):
            x0 = c * tile_w * (1 - overlap)
            y0 = r * tile_h * (1 - overlap)
            src = np.array([[x0, y0], [x0 + tile_w, y0], [x0 + tile_w, y0 + tile_h],
                            [x0, y0 + tile_h]], np.float32)
            jitter = np.array([[rng.uniform(-1, 1) * tile_w * 0.01,
                                rng.uniform(-1, 1) * tile_h * 0.01] for _ in range(4)],
                              np.float32)
            if tilt_deg or shift:
                angle = np.radians(rng.uniform(-tilt_deg, tilt_deg))
                centre = src.mean(axis=0)
                turn = np.array([[np.cos(angle), -np.sin(angle)],
                                 [np.sin(angle), np.cos(angle)]], np.float32)
                src = (src - centre) @ turn.T + centre
                src += np.array([rng.uniform(-shift, shift) * tile_w,
                                 rng.uniform(-shift, shift) * tile_h], np.float32)
            out_size = (round(tile_w), round(tile_h))
            homography = cv2.getPerspectiveTransform(src + jitter, page_corners(out_size))
            tile = cv2.warpPerspective(sheet, homography, out_size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE)
            page = SyntheticPage(tile, None, 0.0)
            shot = photograph(page, page_corners(out_size), out_size, effects=effects,
                              seed=seed * 100 + r * cols + c)
            tiles.append(shot.frame)
    return tiles
