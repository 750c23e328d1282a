"""`etapalvelu bench document-camera --guidance`: which camera resolution reads what.

For each camera resolution (720p, 1080p, 1440p, 4K) a flat, evenly lit page (condition
`flat` of bench_scenes) is read on the track and with remote zoom (bench_reading): text at
6–12 pt, and an A3 plan's 7 pt dimension numbers. Prints the smallest text size read with
≤ 2 % CER and the share of dimension numbers read, as a markdown table, and the figures that
document_camera/guidance.py's MEASURED table holds. Last line JSON.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from document_camera.bench_reading import run_cell
from document_camera.guidance import LEGIBLE_CER

SIZES = (6.0, 7.0, 8.0, 9.0, 10.0, 12.0)
RESOLUTIONS = ("720p", "1080p", "1440p", "4k")


def _smallest(cer: dict[float, float | None]) -> float | None:
    # The smallest size from which every larger size measured is legible too.
    legible = None
    for pt in sorted(cer, reverse=True):
        value = cer[pt]
        if value is None or value > LEGIBLE_CER:
            break
        legible = pt
    return legible


def main(resolutions: list[str] | None = None, jobs: int = 2, seeds: int = 1) -> int:
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    chosen = [r.lower() for r in (resolutions or RESOLUTIONS)]
    print(f"camera guidance: flat page, text {', '.join(f'{p:g}' for p in SIZES)} pt and an A3 "
          f"plan (7 pt dimensions), on the track and with remote zoom; legible = CER ≤ "
          f"{LEGIBLE_CER * 100:g} %")
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {r: pool.submit(run_cell, "flat", r, seeds=seeds, text_sizes=SIZES,
                                  plans=True, read_seeds=seeds) for r in chosen}
        cells = {r: f.result() for r, f in futures.items()}
    rows: dict[str, Any] = {}
    print("| camera | smallest legible text, track | with remote zoom | A3 plan dimensions "
          "(7 pt) read, track | with remote zoom | CER by size, track / zoom |")
    print("|---|---|---|---|---|---|")
    for r in chosen:
        cell = cells[r]
        cer: dict[str, dict[float, float | None]] = {"track": {}, "zoom": {}}
        for pt in SIZES:
            for view in ("track", "zoom"):
                pair = cell.text.get(f"{pt:g}", {}).get(view)
                cer[view][pt] = None if not pair or not pair[1] else pair[0] / pair[1]
        plan = {view: (lambda p: None if not p or not p[1] else p[0] / p[1])(
            cell.plan.get(view)) for view in ("track", "zoom")}
        small = {view: _smallest(cer[view]) for view in ("track", "zoom")}
        rows[r] = {"smallest_pt": small, "plan_dimensions_read": plan,
                   "cer": {view: {f"{pt:g}": None if v is None else round(v, 4)
                                  for pt, v in cer[view].items()} for view in cer}}
        detail = ", ".join(
            f"{pt:g}: {_fmt(cer['track'][pt])}/{_fmt(cer['zoom'][pt])}" for pt in SIZES)
        print(f"| {r} | {_points(small['track'])} | {_points(small['zoom'])} | "
              f"{_fmt(plan['track'])} | {_fmt(plan['zoom'])} | {detail} |")
    print(json.dumps({"benchmark": "document-camera-guidance", "resolutions": rows},
                     sort_keys=True))
    return 0


def _points(value: float | None) -> str:
    return f"none of {SIZES[0]:g}–{SIZES[-1]:g} pt" if value is None else f"{value:g} pt"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"
