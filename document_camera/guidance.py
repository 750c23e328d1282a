"""Camera guidance: which document-camera resolution reads what, and the warning when the
office's camera cannot carry what the office needs.

`MEASURED` is what `etapalvelu bench document-camera --guidance` measured (flat, evenly lit
page filling ~88 % of the frame's height; OCR as the reader; see README "Camera guidance"):
per camera resolution, the smallest text size read with at most 2 % character errors and
the share of an A3 plan's 7 pt dimension numbers read, on the document track and with remote
zoom. A camera carries a target when a measured resolution no larger than it carries the
target with remote zoom (the expert can always zoom). The office configures its target on
the endpoint agent (`--camera-target`); the default, 10 pt text, is an ordinary form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from document_camera.notices import Notice, NoticeCode

LEGIBLE_CER = 0.02  # text is legible at this character error rate or less
PLAN_SHARE = 0.90  # a plan is legible when this share of its dimension numbers is read


@dataclass(frozen=True)
class Measured:
    """One camera resolution in the guidance run."""

    label: str
    size: tuple[int, int]
    text_pt_track: float | None  # smallest legible text size on the track (None: none)
    text_pt_zoom: float | None  # ... with remote zoom
    plan_track: float  # share of an A3 plan's 7 pt dimension numbers read on the track
    plan_zoom: float  # ... with remote zoom


# `etapalvelu bench document-camera --guidance`, one run (one seed, flat page; text at
# 6/7/8/9/10/12 pt; 720p read none of them within 2 %: 12 pt had 9.6 % / 6.1 % CER), with
# remote zoom warping the region in one step and sharpening it (1080p: 8 pt 1.0 % CER zoomed,
# 6.1 % before).
MEASURED: tuple[Measured, ...] = (
    Measured("720p", (1280, 720), None, None, 0.03, 0.03),
    Measured("1080p", (1920, 1080), 9.0, 8.0, 0.28, 0.31),
    Measured("1440p", (2560, 1440), 6.0, 6.0, 0.75, 0.84),
    Measured("4K", (3840, 2160), 6.0, 6.0, 0.69, 0.91),
)


@dataclass(frozen=True)
class CameraTarget:
    """What the office's documents need the expert to read: text down to `text_pt`, or the
    dimension numbers of plans."""

    name: str
    text_pt: float | None = None
    plans: bool = False

    def carried_by(self, measured: Measured) -> bool:
        if self.plans:
            return measured.plan_zoom >= PLAN_SHARE
        assert self.text_pt is not None
        return measured.text_pt_zoom is not None and measured.text_pt_zoom <= self.text_pt

    def describe(self) -> str:
        return "plan dimension numbers (7 pt)" if self.plans else f"{self.text_pt:g} pt text"


DEFAULT_TARGET = "text-10pt"
_NAMED = {"plans": CameraTarget("plans", plans=True)}


def parse_target(value: str) -> CameraTarget:
    """`plans`, `text-8pt` (any size `text-<pt>pt`), or a bare point size `8`."""
    text = value.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    match = re.fullmatch(r"(?:text-)?(\d+(?:\.\d+)?)(?:pt)?", text)
    if match is None:
        raise ValueError(f"unknown camera target {value!r}: use plans, text-8pt, text-10pt "
                         "(any text-<points>pt) or a point size")
    pt = float(match.group(1))
    if not 4.0 <= pt <= 72.0:
        raise ValueError(f"camera target {pt:g} pt is out of range (4–72 pt)")
    return CameraTarget(f"text-{pt:g}pt", text_pt=pt)


def required_size(target: CameraTarget) -> tuple[int, int] | None:
    """The smallest measured camera resolution that carries `target`; None when none did."""
    for measured in sorted(MEASURED, key=lambda m: min(m.size)):
        if target.carried_by(measured):
            return measured.size
    return None


def check_camera(frame_size: tuple[int, int], target: CameraTarget) -> Notice | None:
    """CAMERA_TOO_COARSE when a camera delivering `frame_size` (width, height) frames is below
    the smallest resolution that was measured to carry `target`; None when it is enough.

    Compared on the short side (the page's height in the frame sets what is resolved), so
    a camera turned to portrait is judged the same."""
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"camera frame size {width}x{height} is not a picture")
    needed = required_size(target)
    have = f"{width}x{height}"
    if needed is None:
        return Notice(NoticeCode.CAMERA_TOO_COARSE,
                      f"camera {have}; no measured camera reads {target.describe()}")
    if min(width, height) >= min(needed):
        return None
    return Notice(NoticeCode.CAMERA_TOO_COARSE,
                  f"camera {have}; {target.describe()} needs {needed[0]}x{needed[1]}")
