"""What the expert can read, per condition and camera: the document-camera reading benchmark.

For every condition of `bench_scenes` and every camera resolution, pages the project renders
itself (`synthetic.py`: text at 8 pt and 11 pt with every word's box, an A3 plan with its
dimension numbers and their boxes) are photographed and run through `DocumentPipeline`:

- **page finding**: found, and right (every corner within 5 % of the page diagonal of the
  truth). A found page that is wrong and came without a page notice (shadow / unsure) is a
  *silent wrong crop*: a failure. A wrong crop with a notice is told, not silent.
- **blur message**: on the blurred conditions, the share of frames for which the pipeline
  raised OUT_OF_FOCUS or MOTION_BLUR; on the sharp ones, the false alarms. Twice: the frame
  on its own, and after the same page steady and sharp (`bench_scenes.shoot(steady=True)`),
  as the clerk's camera sees it; the pipeline holds a page to its own recent sharpness.
- **reading on the track**: the rectified page as the track carries it (pipeline at the
  track's 1536 px long side, fitted onto the track's canvas, turned to follow the page), OCRed
  with tesseract. The VP8 encoding is not in this measurement (the streaming part of the
  benchmark, `--streaming`, measures that separately; a still page refines to near-lossless).
- **reading with remote zoom**: regions that together cover the page, each rendered from the
  camera frame by the track's own live zoom (`document_camera.zoom.PageZoom`, at the track's
  resolution, as the endpoint agent sends it when the expert zooms); each region is OCRed.
  Words are scored in the region whose core holds their centre; a region
  overlaps its neighbours so that every word lies whole in its region.
- CER: edit distance / length of the true text of the scored words (in reading order).
  Plan dimensions: share of the numbers OCR found, exactly, where they are printed.

OCR reads what a person reads less forgivingly; it is the stand-in for legibility here.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from document_camera.bench_scenes import CONDITIONS, RESOLUTIONS, Condition, shoot
from document_camera.images import Image, Quad
from document_camera.notices import NoticeCode
from document_camera.rectification import output_size
from document_camera.synthetic import (
    SyntheticPage,
    TextLabel,
    render_dimensioned_plan,
    render_text_page,
)

TRACK_SIZE = (1088, 1536)  # the document track's canvas (document_camera.track.DEFAULT_SIZE)
WRONG_CROP_SHARE = 0.05  # a corner further off than this share of the diagonal: wrong crop
PAGE_NOTICES = {NoticeCode.SHADOW_ON_PAGE, NoticeCode.PAGE_UNCERTAIN, NoticeCode.NO_PAGE}
BLUR_NOTICES = {NoticeCode.OUT_OF_FOCUS, NoticeCode.MOTION_BLUR}
TEXT_LINES = 8  # lines per text page: enough words, bounded OCR time
TEXT_ZOOM = 2.5  # remote zoom used to read text (region = 1/zoom of the page each way)
PLAN_ZOOM = 2.0
OCR_PX_PER_MM = 10.0  # views coarser than this are upscaled for tesseract (its best size)


@dataclass(frozen=True)
class Region:
    """A part of the rectified page, normalised 0..1 (document_camera.zoom.Region's shape)."""

    x: float
    y: float
    w: float
    h: float


ZOOM_BACKEND = ("document_camera.zoom.PageZoom (the track's live zoom, straight from the "
                "camera frame)")


def live_zoom(frame: Image, quad: Quad) -> Callable[[Region, tuple[int, int]], tuple[Image,
                                                                                     Region]]:
    """The track's remote zoom of `frame` (the page at `quad`): a region rendered from the
    camera's own pixels by `zoom.PageZoom`, as the endpoint agent sends it (the marker strip
    cut off). Returns the picture and the part of the page it shows."""
    from document_camera import zoom

    renderer = zoom.PageZoom()

    def render(region: Region, out_size: tuple[int, int]) -> tuple[Image, Region]:
        canvas = (out_size[0], out_size[1] + zoom.MARKER_HEIGHT)
        picture, rect = renderer.render(
            frame, quad, zoom.Region(region.x, region.y, region.w, region.h), canvas)
        return picture[:out_size[1]], Region(rect.x, rect.y, rect.w, rect.h)
    return render


# ---- pages ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def text_page(font_pt: float, seed: int) -> SyntheticPage:
    # Printed at 300 dpi: every camera here subsamples it, as it subsamples real print.
    return render_text_page(dpi=300.0, font_pt=font_pt, seed=seed, max_lines=TEXT_LINES)


@functools.lru_cache(maxsize=2)
def plan_page(seed: int) -> SyntheticPage:
    return render_dimensioned_plan(dpi=240.0, size_mm=(420.0, 297.0), seed=seed, font_pt=7.0)


# ---- page finding --------------------------------------------------------------------------


@dataclass
class Finding:
    found: bool
    wrong: bool  # found, and a corner off by more than WRONG_CROP_SHARE of the diagonal
    told: bool  # a page notice was raised (shadow, unsure, no page)
    blur_told: bool  # the frame on its own (no earlier frame of the page)
    error_share: float | None
    notices: list[str]
    # ...seen as a sequence: the same page steady and sharp first (bench_scenes.shoot
    # steady=True), then this frame, through one pipeline.
    blur_told_in_sequence: bool | None = None


def corner_error(found: Quad, truth: Quad) -> float:
    """Largest corner distance as a share of the true page's diagonal."""
    diagonal = float(np.hypot(*(truth[2] - truth[0])))
    return float(np.max(np.hypot(*(found - truth).T))) / diagonal


def judge(result: Any, truth: Quad, sequence: Any = None) -> Finding:
    codes = {notice.code for notice in result.notices}
    in_sequence = None if sequence is None else bool(
        {notice.code for notice in sequence.notices} & BLUR_NOTICES)
    error = corner_error(result.quad, truth) if result.quad is not None else None
    return Finding(
        found=result.quad is not None,
        wrong=error is not None and error > WRONG_CROP_SHARE,
        told=bool(codes & PAGE_NOTICES),
        blur_told=bool(codes & BLUR_NOTICES),
        error_share=error,
        notices=sorted(str(c) for c in codes),
        blur_told_in_sequence=in_sequence,
    )


# ---- reading -------------------------------------------------------------------------------


@dataclass
class View:
    """An image the expert sees, and where on the page (normalised) its pixels come from."""

    image: Image
    region: Region  # the page part shown
    placed: tuple[int, int, int, int]  # x, y, w, h of that part inside `image`
    core: Region  # words whose centre lies here are scored in this view
    px_per_mm: float


@dataclass
class Word:
    text: str
    u: float  # centre, normalised page coordinates
    v: float


def ocr_words(view: View, *, sparse: bool) -> list[Word]:
    """Tesseract's words in reading order, with their centres on the page."""
    import pytesseract

    gray = cv2.cvtColor(view.image, cv2.COLOR_BGR2GRAY) if view.image.ndim == 3 else view.image
    scale = min(3.0, max(1.0, OCR_PX_PER_MM / view.px_per_mm))
    if scale > 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    data = pytesseract.image_to_data(
        gray, lang="eng", config=f"--psm {11 if sparse else 6}",
        output_type=pytesseract.Output.DICT)
    x, y, w, h = view.placed
    words = []
    for k, text in enumerate(data["text"]):
        text = text.strip()
        if not text:
            continue
        cx = (data["left"][k] + data["width"][k] / 2) / scale
        cy = (data["top"][k] + data["height"][k] / 2) / scale
        u = view.region.x + (cx - x) / w * view.region.w
        v = view.region.y + (cy - y) / h * view.region.h
        words.append(Word(text, u, v))
    return words


def _centre(label: TextLabel, size: tuple[int, int]) -> tuple[float, float]:
    x0, y0, x1, y1 = label.box
    return (x0 + x1) / 2 / size[0], (y0 + y1) / 2 / size[1]


def _inside(region: Region, u: float, v: float) -> bool:
    return region.x <= u < region.x + region.w and region.y <= v < region.y + region.h


def text_errors(views: Iterable[View], page: SyntheticPage) -> tuple[int, int]:
    """(edit distance, true characters) over the views: each word scored in its core."""
    from document_camera.ocr import edit_distance

    size = (page.image.shape[1], page.image.shape[0])
    errors = chars = 0
    for view in views:
        truth = [label for label in page.labels if _inside(view.core, *_centre(label, size))]
        if not truth:
            continue
        truth.sort(key=lambda label: (label.line, label.box[0]))
        expected = " ".join(label.text for label in truth)
        read = " ".join(w.text for w in ocr_words(view, sparse=False)
                        if _inside(view.core, w.u, w.v))
        errors += edit_distance(expected, read)
        chars += len(expected)
    return errors, chars


def _clean(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text)


def dimensions_read(views: Iterable[View], page: SyntheticPage) -> tuple[int, int]:
    """(numbers read, numbers printed). Each number is looked at where it is printed, as a
    reader of the drawing looks at it: its box with some surroundings (the dimension line,
    hatching) is cut from the view whose core holds it and read as one line. Tesseract's
    page layout drops small numbers among line art even when they are crisp, so reading the
    whole view would measure its layout analysis, not what the picture carries."""
    import pytesseract

    size = (page.image.shape[1], page.image.shape[0])
    read = 0
    views = list(views)
    for label in page.labels:
        u, v = _centre(label, size)
        view = next((view for view in views if _inside(view.core, u, v)
                     and _whole_in(view.region, label, size)), None)
        if view is None:
            continue
        x0, y0, x1, y1 = label.box
        (ax, ay), (bx, by) = _to_view(view, x0 / size[0], y0 / size[1]), \
            _to_view(view, x1 / size[0], y1 / size[1])
        pad = 0.6 * (by - ay) + 2
        crop = view.image[max(0, int(ay - pad)):int(by + pad) + 1,
                          max(0, int(ax - pad)):int(bx + pad) + 1]
        if crop.size == 0:
            continue
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        # Upscale to a cap height tesseract reads best (~32 px).
        scale = min(8.0, max(1.0, 32.0 / max(1.0, by - ay)))
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        gray = cv2.copyMakeBorder(gray, 16, 16, 16, 16, cv2.BORDER_REPLICATE)
        text = pytesseract.image_to_string(gray, lang="eng", config="--psm 7")
        if label.text in {_clean(token) for token in text.split()}:
            read += 1
    return read, len(page.labels)


def _to_view(view: View, u: float, v: float) -> tuple[float, float]:
    ox, oy, pw, ph = view.placed
    return (ox + (u - view.region.x) / view.region.w * pw,
            oy + (v - view.region.y) / view.region.h * ph)


def _whole_in(region: Region, label: TextLabel, size: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = label.box
    return (region.x <= x0 / size[0] and x1 / size[0] <= region.x + region.w
            and region.y <= y0 / size[1] and y1 / size[1] <= region.y + region.h)


def track_view(page_image: Image, page_mm: tuple[float, float]) -> View:
    """The rectified page on the track's canvas, turned to follow it, as track.py sends it."""
    from document_camera.pipeline import canvas_for, fit_to_canvas

    size = canvas_for(page_image, TRACK_SIZE)
    canvas = fit_to_canvas(page_image, size)
    h, w = page_image.shape[:2]
    scale = min(size[0] / w, size[1] / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    placed = ((size[0] - new_w) // 2, (size[1] - new_h) // 2, new_w, new_h)
    whole = Region(0.0, 0.0, 1.0, 1.0)
    return View(canvas, whole, placed, whole, new_w / page_mm[0])


def zoom_views(
    render: Callable[[Region, tuple[int, int]], tuple[Image, Region]],
    page_px: tuple[int, int], page_mm: tuple[float, float], zoom: float, margin: float,
    wanted: Callable[[Region], bool] | None = None,
) -> list[View]:
    """Regions of 1/zoom of the page each way, overlapping so that their cores (the region
    less `margin` each side) tile the page; each rendered at the track's resolution by
    `render` (`live_zoom`) for a page of `page_px` native pixels."""
    side = 1.0 / zoom
    count = max(1, math.ceil(1.0 / max(1e-3, side - 2 * margin)))
    w, h = page_px
    short, long = sorted(TRACK_SIZE)
    views = []
    for row in range(count):
        for col in range(count):
            core = Region(col / count, row / count, 1 / count, 1 / count)
            if wanted is not None and not wanted(core):
                continue
            x = min(max(0.0, core.x + core.w / 2 - side / 2), 1.0 - side)
            y = min(max(0.0, core.y + core.h / 2 - side / 2), 1.0 - side)
            region = Region(x, y, side, side)
            # The region keeps the page's aspect, on the track's canvas turned to follow it.
            rw, rh = side * w, side * h
            cw, ch = (long, short) if rw >= rh else (short, long)
            fit = min(cw / rw, ch / rh)
            out = (max(1, round(rw * fit)), max(1, round(rh * fit)))
            image, shown = render(region, out)
            views.append(View(image, shown, (0, 0, image.shape[1], image.shape[0]), core,
                              image.shape[1] / (shown.w * page_mm[0])))
    return views


# ---- one cell: a condition at a resolution ---------------------------------------------------


@dataclass
class Cell:
    condition: str
    resolution: str
    findings: list[Finding] = field(default_factory=list)
    text: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # pt → view → e/c
    plan: dict[str, tuple[int, int]] = field(default_factory=dict)  # view → read/printed
    seconds: float = 0.0


def _pipelines() -> tuple[Any, Any]:
    from document_camera.pipeline import DocumentPipeline, PipelineOptions

    track = DocumentPipeline(PipelineOptions(long_side=max(TRACK_SIZE), reuse_unchanged=False))
    full = DocumentPipeline(PipelineOptions(long_side=None, reuse_unchanged=False))
    return track, full


def in_sequence(page: SyntheticPage, cond: Condition, frame_size: tuple[int, int],
                seed: int, frame: Image) -> Any:
    """The pipeline's result for `frame` after it saw the same page steady and sharp."""
    from document_camera.pipeline import DocumentPipeline, PipelineOptions

    pipe = DocumentPipeline(PipelineOptions(long_side=max(TRACK_SIZE), reuse_unchanged=False))
    pipe.process(shoot(page, cond, frame_size, seed, steady=True).frame)
    return pipe.process(frame)


def run_cell(
    condition: str, resolution: str, *, seeds: int, text_sizes: tuple[float, ...],
    plans: bool, read_seeds: int = 1,
) -> Cell:
    """Page finding over `seeds` shots of text and plan pages; reading on the first
    `read_seeds` of them."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    started = time.perf_counter()
    cond: Condition = CONDITIONS[condition]
    frame_size = RESOLUTIONS[resolution]
    cell = Cell(condition, resolution)
    track_pipe = _pipelines()[0]
    a4 = (210.0, 297.0)
    for seed in range(seeds):
        for pt in text_sizes or (10.0,):
            page = text_page(pt, seed)
            shot = shoot(page, cond, frame_size, seed)
            track_pipe.forget_page()
            result = track_pipe.process(shot.frame)
            cell.findings.append(judge(result, shot.corners, in_sequence(
                page, cond, frame_size, seed, shot.frame)))
            if seed >= read_seeds or not text_sizes:
                continue
            views = cell.text.setdefault(f"{pt:g}", {})
            if result.quad is None:
                # Nothing rectified: the expert sees the uncropped camera view; score it.
                views["track"] = _add(views.get("track"), _uncropped_text(page, result.image))
                views["zoom"] = _add(views.get("zoom"), _uncropped_text(page, result.image))
                continue
            views["track"] = _add(views.get("track"),
                                  text_errors([track_view(result.image, a4)], page))
            zoomed = zoom_views(live_zoom(shot.frame, result.quad), output_size(result.quad),
                                a4, TEXT_ZOOM, 0.07,
                                wanted=functools.partial(_overlaps, _text_block(page)))
            views["zoom"] = _add(views.get("zoom"), text_errors(zoomed, page))
        if plans:
            page = plan_page(seed)
            a3 = (420.0, 297.0)
            shot = shoot(page, cond, frame_size, seed + 100)
            track_pipe.forget_page()
            result = track_pipe.process(shot.frame)
            cell.findings.append(judge(result, shot.corners, in_sequence(
                page, cond, frame_size, seed + 100, shot.frame)))
            if seed >= read_seeds:
                continue
            if result.quad is None:
                cell.plan["track"] = _add(cell.plan.get("track"), (0, len(page.labels)))
                cell.plan["zoom"] = _add(cell.plan.get("zoom"), (0, len(page.labels)))
                continue
            cell.plan["track"] = _add(cell.plan.get("track"),
                                      dimensions_read([track_view(result.image, a3)], page))
            zoomed = zoom_views(live_zoom(shot.frame, result.quad), output_size(result.quad),
                                a3, PLAN_ZOOM, 0.04)
            cell.plan["zoom"] = _add(cell.plan.get("zoom"), dimensions_read(zoomed, page))
    cell.seconds = time.perf_counter() - started
    return cell


def _add(a: tuple[int, int] | None, b: tuple[int, int]) -> tuple[int, int]:
    return b if a is None else (a[0] + b[0], a[1] + b[1])


def _uncropped_text(page: SyntheticPage, _image: Image) -> tuple[int, int]:
    # Scored as all wrong: the page could not be cut out, so it is not read as a page.
    chars = len(" ".join(label.text for label in page.labels))
    return chars, chars


def _text_block(page: SyntheticPage) -> Region:
    h, w = page.image.shape[:2]
    xs = [v for label in page.labels for v in (label.box[0], label.box[2])]
    ys = [v for label in page.labels for v in (label.box[1], label.box[3])]
    return Region(min(xs) / w, min(ys) / h, (max(xs) - min(xs)) / w, (max(ys) - min(ys)) / h)


def _overlaps(a: Region, b: Region) -> bool:
    return not (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y)


# ---- stitching -----------------------------------------------------------------------------


@dataclass
class StitchRun:
    sheet: str
    run: int
    ok: bool
    correct: bool  # ok, and the stitched image matches the sheet
    reason: str


def stitch_run(sheet_name: str, run: int) -> StitchRun:
    """One guided capture of a plan sheet (the grid TileGuide plans), tiles turned up to 2°,
    off the grid by up to 4 %, each lit and exposed on its own; then `stitch_tiles`."""
    from document_camera.stitching import SHEETS_MM, TileGuide, stitch_tiles
    from document_camera.synthetic import make_tiles, render_plan_sheet

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    guide = TileGuide.plan(sheet_name)
    short, long = sorted(SHEETS_MM[sheet_name])
    sheet = render_plan_sheet(dpi=60, size_mm=(long, short), seed=1000 + run).image
    tiles = make_tiles(sheet, cols=guide.cols, rows=guide.rows, overlap=guide.overlap,
                       seed=500 + run, tilt_deg=2.0, shift=0.04,
                       effects=_tile_effects(run))
    result = stitch_tiles(tiles, rows=guide.rows, cols=guide.cols, overlap=guide.overlap)
    if result.image is None:
        notice = result.notice
        return StitchRun(sheet_name, run, False, False,
                         f"{notice.code}: {notice.detail}" if notice else "refused")
    ncc = aligned_ncc(result.image, sheet)
    return StitchRun(sheet_name, run, True, ncc > 0.7, f"ncc {ncc:.2f}")


def _tile_effects(run: int) -> Any:
    from document_camera.synthetic import CameraEffects

    return CameraEffects(light_falloff=0.15 + 0.02 * (run % 5), blur_sigma=0.8,
                         noise_sigma=3.0)


def aligned_ncc(stitched: Image, sheet: Image) -> float:
    """Register the stitch onto the sheet (ORB + RANSAC homography) and correlate them at a
    few pixels' scale; 0 when it cannot be registered or covers under 85 % of the sheet."""
    a = cv2.cvtColor(stitched, cv2.COLOR_BGR2GRAY)
    b = cv2.cvtColor(sheet, cv2.COLOR_BGR2GRAY)
    orb = cv2.ORB.create(nfeatures=4000)
    ka, da = orb.detectAndCompute(a, None)
    kb, db = orb.detectAndCompute(b, None)
    if da is None or db is None:
        return 0.0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 8:
        return 0.0
    src = np.array([ka[m.queryIdx].pt for m in matches], np.float32)
    dst = np.array([kb[m.trainIdx].pt for m in matches], np.float32)
    matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if matrix is None:
        return 0.0
    warped = cv2.warpPerspective(a, matrix, (b.shape[1], b.shape[0]))
    mask = cv2.warpPerspective(np.full_like(a, 255), matrix, (b.shape[1], b.shape[0])) > 0
    mask &= warped > 10
    if mask.mean() < 0.85:
        return 0.0
    x = cv2.GaussianBlur(warped, (0, 0), 3)[mask].astype(np.float64)
    y = cv2.GaussianBlur(b, (0, 0), 3)[mask].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


# ---- zoom latency --------------------------------------------------------------------------


async def zoom_latency_ms(repeats: int = 6) -> list[float]:
    """Agent side of remote zoom: `DocumentTrack.set_region` → the track's next frame showing
    that region (zoomed, from the 4K camera frame), repeated between overview and regions.
    Covers the track's wake-up, the camera read, the pipeline and the zoom render and the YUV
    conversion; not signaling, the encoder, the network or the browser's decoder."""
    from document_camera.sources import SyntheticSource
    from document_camera.track import DocumentTrack
    from document_camera.zoom import Region as ZoomRegion

    source = SyntheticSource(frame_size=(3840, 2160), seed=3)
    track = DocumentTrack(source)
    try:
        for _ in range(3):
            await track.recv()  # warm: page found, held
        times = []
        for k in range(repeats):
            region = ZoomRegion(0.1 + 0.1 * (k % 4), 0.1 + 0.05 * (k % 3), 0.4, 0.4)
            started = time.perf_counter()
            track.set_region(region)
            while True:
                await track.recv()
                shown = getattr(track.status, "zoom", None)
                if shown is not None and shown.contains(region):
                    break
                if time.perf_counter() - started > 5:
                    raise RuntimeError("the track never showed the region")
            times.append((time.perf_counter() - started) * 1000.0)
            track.set_region(None)
            await track.recv()
        return times
    finally:
        track.stop()


def zoom_latency_summary(out: Callable[[str], None] = print, rounds: int = 2
                         ) -> dict[str, Any]:
    """(f): the agent side, then gesture-to-detail through the relay (`rounds` times through
    zoom_bench's regions); prints both with the load average, returns the summary's keys."""
    import asyncio

    summary: dict[str, Any] = {}
    load = os.getloadavg()[0]
    latencies = asyncio.run(zoom_latency_ms())
    summary["zoom_latency_agent_ms"] = round(statistics_median(latencies), 1)
    out(f"(f) zoom latency, agent side (set_region → the track's first frame showing the "
        f"region, 4K synthetic camera; not encoder, network or decoder): median "
        f"{summary['zoom_latency_agent_ms']:.0f} ms, max {max(latencies):.0f} ms over "
        f"{len(latencies)}")
    summary["zoom_latency_ms"] = summary["zoom_latency_agent_ms"]
    try:
        from document_camera.zoom_bench import measure_zoom_latency
    except ImportError:
        out("    (document_camera.zoom_bench absent: zoom_latency_ms is the agent side)")
        return summary
    measured = asyncio.run(measure_zoom_latency(rounds=rounds))
    if measured.median_ms is not None:
        summary["zoom_latency_ms"] = round(measured.median_ms, 1)
        summary["zoom_latency_p90_ms"] = round(measured.p90_ms or 0.0, 1)
    summary["zoom_latency_load"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    out(f"    gesture-to-detail through the relay (document_camera.zoom_bench: "
        f"set_region → first frame decoded by an aiortc subscriber that completes a frame at "
        f"its last packet as a browser does, showing the region; LocalRelay on 127.0.0.1; "
        f"not socket.io or the browser): median {_ms(summary.get('zoom_latency_ms'))}, p90 "
        f"{_ms(summary.get('zoom_latency_p90_ms'))}, max {_ms(measured.max_ms)} over "
        f"{len(measured.latencies_ms)}, {measured.timeouts} timeout(s); load average "
        f"{load:.1f} → {os.getloadavg()[0]:.1f} — target ≤ 300 ms")
    return summary


# ---- the run -------------------------------------------------------------------------------

TARGETS = {
    "plan_dimensions_read": "A3 plan dimension numbers ≥ 90 % with remote zoom at 4K",
    "cer": "8 pt text ≤ 2 % CER with remote zoom at 1080p and at 4K",
    "silent_wrong_crops": "no silent wrong crop",
    "stitch_success": "A2 and A1 stitch in ≥ 9 of 10 runs",
    "zoom_latency_ms": "remote zoom, gesture to detail ≤ 300 ms on loopback (median)",
}


@dataclass(frozen=True)
class ReadingOptions:
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    resolutions: tuple[str, ...] = ("1080p", "4k")
    seeds: int = 3  # shots per page kind per cell for page finding and blur
    text_sizes: tuple[float, ...] = (8.0, 11.0)
    plans: bool = True
    stitch_runs: int = 10
    jobs: int = 2
    latency: bool = True


def _share(pair: tuple[int, int] | None) -> float | None:
    return None if not pair or not pair[1] else pair[0] / pair[1]


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{value * 100:5.1f}%"


def run_reading(options: ReadingOptions, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Everything above for the chosen conditions and resolutions; prints per-condition lines
    and the targets, returns the summary (the benchmark's last line)."""
    from concurrent.futures import ProcessPoolExecutor

    unknown = [c for c in options.conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}: use {', '.join(CONDITIONS)}")
    bad = [r for r in options.resolutions if r not in RESOLUTIONS]
    if bad:
        raise ValueError(f"unknown resolution(s) {', '.join(bad)}: use {', '.join(RESOLUTIONS)}")
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    backend = ZOOM_BACKEND
    out(f"(c) reading per condition: pages rendered by synthetic.py (text {TEXT_LINES} lines at "
        f"{', '.join(f'{p:g}' for p in options.text_sizes)} pt; A3 plan, 7 pt dimensions), "
        f"{options.seeds} shot(s) per page for finding/blur, reading on the first; "
        f"track = pipeline at 1536 px on the {TRACK_SIZE[0]}x{TRACK_SIZE[1]} canvas turned to "
        f"the page (before VP8); remote zoom = {backend}, text at {TEXT_ZOOM:g}x, plans at "
        f"{PLAN_ZOOM:g}x; OCR tesseract; {options.jobs} worker process(es)")
    cells: list[Cell] = []
    started = time.perf_counter()
    jobs = [(c, r) for c in options.conditions for r in options.resolutions]
    stitch_jobs = [(s, k) for s in ("A2", "A1") for k in range(options.stitch_runs)]
    with ProcessPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = [pool.submit(run_cell, c, r, seeds=options.seeds,
                               text_sizes=options.text_sizes, plans=options.plans)
                   for c, r in jobs]
        stitch_futures = [pool.submit(stitch_run, s, k) for s, k in stitch_jobs]
        header = (f"    {'condition':<9} {'camera':>6} {'found':>6} {'wrong':>5} {'silent':>6} "
                  f"{'blur msg':>8} {'in seq':>6}" + "".join(
                      f" {f'{p:g}pt trk':>9} {f'{p:g}pt zoom':>9}" for p in options.text_sizes)
                  + (f" {'dims trk':>8} {'dims zoom':>9}" if options.plans else ""))
        out(header)
        for future in futures:
            cell = future.result()
            cells.append(cell)
            found = sum(f.found for f in cell.findings)
            wrong = sum(f.wrong for f in cell.findings)
            silent = sum(f.wrong and not f.told for f in cell.findings)
            blur = sum(f.blur_told for f in cell.findings)
            in_seq = sum(bool(f.blur_told_in_sequence) for f in cell.findings)
            n = len(cell.findings)
            line = (f"    {cell.condition:<9} {cell.resolution:>6} {found:>3}/{n:<2} {wrong:>5} "
                    f"{silent:>6} {blur:>4}/{n:<3} {in_seq:>3}/{n:<2}")
            for pt in options.text_sizes:
                views = cell.text.get(f"{pt:g}", {})
                line += (f" {_pct(_share(views.get('track'))):>9}"
                         f" {_pct(_share(views.get('zoom'))):>9}")
            if options.plans:
                line += (f" {_pct(_share(cell.plan.get('track'))):>8}"
                         f" {_pct(_share(cell.plan.get('zoom'))):>9}")
            out(line + f"   ({cell.seconds:.0f} s)")
        out("    (found: page found / frames; wrong: corners off > 5 % of the diagonal; silent: "
            "wrong and no page notice; blur msg: frames with a blur notice on their own; in seq: "
            "...after the same page steady and sharp; text: CER; dims: "
            "share of dimension numbers read)")
        stitches = [f.result() for f in stitch_futures]
    elapsed = time.perf_counter() - started

    summary = summarise(cells, stitches, options)
    for sheet in ("A2", "A1"):
        runs = [s for s in stitches if s.sheet == sheet]
        if not runs:
            continue
        from document_camera.stitching import TileGuide

        guide = TileGuide.plan(sheet)
        refused = [f"run {s.run}: {s.reason}" for s in runs if not s.ok]
        mismatched = [f"run {s.run}: {s.reason}" for s in runs if s.ok and not s.correct]
        out(f"(d) stitching {sheet} ({guide.rows}x{guide.cols} tiles, overlap "
            f"{guide.overlap:g}, tiles turned ≤ 2°, off grid ≤ 4 %): "
            f"{sum(s.correct for s in runs)}/{len(runs)} stitched and matching the sheet"
            + (f"; refused: {'; '.join(refused)}" if refused else "")
            + (f"; stitched wrong: {'; '.join(mismatched)}" if mismatched else ""))
    blur = summary["blur_message_rate"]
    out(f"(e) blur message: {_pct(blur['blurred'])} of blurred frames told "
        f"({blur['blurred_frames']} frames), false alarms on sharp frames "
        f"{_pct(blur['false_alarm'])} ({blur['sharp_frames']} frames); seen after the same page "
        f"steady and sharp: {_pct(blur['blurred_in_sequence'])} told, "
        f"{_pct(blur['false_alarm_in_sequence'])} false alarms")
    if options.latency:
        summary.update(zoom_latency_summary(out))
    else:
        summary["zoom_latency_ms"] = None
    out("targets (issue 16):")
    for verdict in verdicts(summary):
        out(f"    {verdict}")
    summary["seconds"] = round(elapsed, 1)
    return summary


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def statistics_median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values))


def summarise(cells: list[Cell], stitches: list[StitchRun], options: ReadingOptions
              ) -> dict[str, Any]:
    def total(pairs: Iterable[tuple[int, int] | None]) -> tuple[int, int]:
        a = b = 0
        for pair in pairs:
            if pair:
                a, b = a + pair[0], b + pair[1]
        return a, b

    cer: dict[str, dict[str, dict[str, float | None]]] = {}
    dims: dict[str, dict[str, float | None]] = {}
    for resolution in options.resolutions:
        at = [c for c in cells if c.resolution == resolution]
        cer[resolution] = {}
        for pt in options.text_sizes:
            key = f"{pt:g}pt"
            cer[resolution][key] = {
                view: _round(_share(total(c.text.get(f"{pt:g}", {}).get(view) for c in at)))
                for view in ("track", "zoom")}
            flat = [c for c in at if c.condition == "flat"]
            cer[resolution][key].update({
                f"{view}_flat": _round(_share(total(
                    c.text.get(f"{pt:g}", {}).get(view) for c in flat)))
                for view in ("track", "zoom")})
        if options.plans:
            dims[resolution] = {view: _round(_share(total(c.plan.get(view) for c in at)))
                                for view in ("track", "zoom")}
            dims[resolution].update({f"{view}_flat": _round(_share(total(
                c.plan.get(view) for c in at if c.condition == "flat")))
                for view in ("track", "zoom")})
    findings = [f for c in cells for f in c.findings]
    blurred = [f for c in cells for f in c.findings if CONDITIONS[c.condition].blurred]
    sharp = [f for c in cells for f in c.findings if not CONDITIONS[c.condition].blurred]
    by_condition = {}
    for name in options.conditions:
        mine = [f for c in cells if c.condition == name for f in c.findings]
        by_condition[name] = _round(sum(f.found for f in mine) / len(mine)) if mine else None
    stitch: dict[str, Any] = {}
    for sheet in ("A2", "A1"):
        runs = [s for s in stitches if s.sheet == sheet]
        stitch[sheet] = f"{sum(s.correct for s in runs)}/{len(runs)}"
    return {
        "benchmark": "document-camera",
        "cer": cer,
        "plan_dimensions_read": dims,
        "stitch_success": stitch,
        "silent_wrong_crops": sum(f.wrong and not f.told for f in findings),
        "wrong_crops_told": sum(f.wrong and f.told for f in findings),
        "frames": len(findings),
        "page_found_rate": _round(sum(f.found for f in findings) / max(1, len(findings))),
        "page_found_by_condition": by_condition,
        "blur_message_rate": {
            "blurred": _round(sum(f.blur_told for f in blurred) / len(blurred)) if blurred
            else None,
            "false_alarm": _round(sum(f.blur_told for f in sharp) / len(sharp)) if sharp
            else None,
            "blurred_in_sequence": _round(
                sum(bool(f.blur_told_in_sequence) for f in blurred) / len(blurred)) if blurred
            else None,
            "false_alarm_in_sequence": _round(
                sum(bool(f.blur_told_in_sequence) for f in sharp) / len(sharp)) if sharp
            else None,
            "blurred_frames": len(blurred), "sharp_frames": len(sharp)},
        "conditions": list(options.conditions),
        "resolutions": list(options.resolutions),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def verdicts(summary: dict[str, Any]) -> list[str]:
    """One line per target of issue 16: the figure, and meets / MISSES / not measured."""
    lines = []

    def line(name: str, value: Any, ok: bool | None) -> None:
        state = "not measured" if ok is None else ("meets" if ok else "MISSES")
        lines.append(f"{name}: {value} — {state}")

    dims = summary["plan_dimensions_read"].get("4k", {}).get("zoom_flat")
    line(TARGETS["plan_dimensions_read"] + " (flat)", _pct(dims).strip(),
         None if dims is None else dims >= 0.9)
    for resolution in ("1080p", "4k"):
        cer = summary["cer"].get(resolution, {}).get("8pt", {}).get("zoom_flat")
        line(f"{TARGETS['cer']}: {resolution} (flat)", _pct(cer).strip(),
             None if cer is None else cer <= 0.02)
    silent = summary["silent_wrong_crops"]
    line(TARGETS["silent_wrong_crops"], f"{silent} of {summary['frames']} frames", silent == 0)
    for sheet, value in summary["stitch_success"].items():
        done, runs = (int(x) for x in value.split("/"))
        line(f"{TARGETS['stitch_success']}: {sheet}", value,
             None if runs == 0 else done >= math.ceil(0.9 * runs))
    if "zoom_latency_p90_ms" in summary:  # measured through the relay
        latency = summary["zoom_latency_ms"]
        line(TARGETS["zoom_latency_ms"], f"{latency:.0f} ms (p90 "
             f"{summary['zoom_latency_p90_ms']:.0f}, load {summary['zoom_latency_load'][0]})",
             latency <= 300)
    return lines
