"""The scenes of the document-camera benchmark: conditions a real office desk produces.

Each `Condition` turns a flat page (`synthetic.SyntheticPage`) into one camera frame with the
page's true corners known: a flat evenly lit page, tilt and rotation, uneven light, a shadow
band, a folded-up corner, motion blur, defocus, sensor noise, clutter on the desk and a hand
holding the page. Everything is seeded, so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from document_camera.images import Image, Quad
from document_camera.synthetic import (
    CameraEffects,
    SyntheticCapture,
    SyntheticPage,
    photograph,
    random_quad,
)

RESOLUTIONS: dict[str, tuple[int, int]] = {
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
}

_DESK = CameraEffects(light_falloff=0.2, blur_sigma=0.7, noise_sigma=3.0)


@dataclass(frozen=True)
class Condition:
    name: str
    description: str
    effects: CameraEffects = _DESK
    tilt: float = 0.04  # corner wander, share of the page size (keystone)
    rotation_deg: float = 0.0  # the page turned on the desk by up to this much
    curl: bool = False  # one corner folded up
    clutter: bool = False  # things on the desk around the page
    hand: bool = False  # fingers over one edge of the page
    blurred: bool = False  # the clerk must be told (motion, defocus)
    defocus_1080p: float = 0.0  # Gaussian sigma at 1080p, scaled with the resolution

    def effects_at(self, frame_size: tuple[int, int]) -> CameraEffects:
        if not self.defocus_1080p:
            return self.effects
        return dataclasses.replace(
            self.effects, blur_sigma=self.defocus_1080p * frame_size[1] / 1080.0)


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("flat", "flat, even light",
              CameraEffects(light_falloff=0.05, blur_sigma=0.6, noise_sigma=2.0), tilt=0.015),
    Condition("tilt", "keystone 10 % and turned up to 12°", tilt=0.10, rotation_deg=12.0),
    Condition("uneven", "lamp falloff 60 %",
              CameraEffects(light_falloff=0.6, blur_sigma=0.7, noise_sigma=3.0)),
    Condition("shadow", "a band of shadow taking half the light",
              CameraEffects(light_falloff=0.2, blur_sigma=0.7, noise_sigma=3.0, shadow=0.5)),
    Condition("curl", "a corner folded up (10 % of the width)", curl=True),
    Condition("motion3", "motion blur 3 px", dataclasses.replace(_DESK, motion_px=3.0),
              blurred=True),
    Condition("motion6", "motion blur 6 px", dataclasses.replace(_DESK, motion_px=6.0),
              blurred=True),
    Condition("motion12", "motion blur 12 px", dataclasses.replace(_DESK, motion_px=12.0),
              blurred=True),
    Condition("defocus", "defocus (sigma 2 px at 1080p, scaled)", blurred=True,
              defocus_1080p=2.0),
    Condition("noise", "sensor noise sigma 9",
              CameraEffects(light_falloff=0.2, blur_sigma=0.7, noise_sigma=9.0)),
    Condition("clutter", "pen, phone, card and mug on the desk", clutter=True),
    Condition("hand", "fingers over one edge", hand=True),
)}


def shoot(
    page: SyntheticPage, condition: Condition, frame_size: tuple[int, int], seed: int,
    *, steady: bool = False,
) -> SyntheticCapture:
    """One camera frame of `page` under `condition`. `steady`: the frame of the same scene
    (page, place, light, desk) a moment earlier, before the blur: as the clerk laid it, still
    and in focus, with the sensor's noise of another frame. A blur condition is then seen
    as a sequence, sharp first, which is how the clerk's camera sees it."""
    rng = random.Random(seed * 1009 + 17)
    h, w = page.image.shape[:2]
    fill = 0.80 if condition.rotation_deg else 0.88
    quad = random_quad(frame_size, w / h, rng, fill=fill, tilt=condition.tilt)
    if condition.rotation_deg:
        quad = _turn(quad, rng.choice((-1, 1)) * rng.uniform(0.5, 1.0) * condition.rotation_deg,
                     frame_size)
    alpha = None
    if condition.curl:
        page, alpha = _fold_corner(page, rng)
    scene: Callable[[Image], Image] | None = None
    if condition.clutter:
        scene = lambda frame: _clutter(frame, quad, rng)  # noqa: E731
    elif condition.hand:
        scene = lambda frame: _hand(frame, quad, rng)  # noqa: E731
    effects = condition.effects_at(frame_size)
    if steady:
        effects = dataclasses.replace(effects, motion_px=0.0,
                                      blur_sigma=min(effects.blur_sigma, _DESK.blur_sigma))
    return photograph(page, quad, frame_size, effects=effects,
                      seed=seed + 7919 if steady else seed, page_alpha=alpha, scene=scene)


def _turn(quad: Quad, degrees: float, frame_size: tuple[int, int]) -> Quad:
    centre = quad.mean(axis=0)
    angle = np.radians(degrees)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = (quad - centre) @ turn.T + centre
    fw, fh = frame_size
    # Shrink about the centre until the whole page is in the frame.
    lo, hi = turned.min(axis=0), turned.max(axis=0)
    room = min(1.0, (centre[0] - 4) / max(1e-6, centre[0] - lo[0]),
               (fw - 5 - centre[0]) / max(1e-6, hi[0] - centre[0]),
               (centre[1] - 4) / max(1e-6, centre[1] - lo[1]),
               (fh - 5 - centre[1]) / max(1e-6, hi[1] - centre[1]))
    return ((turned - centre) * room + centre).astype(np.float32)


def _fold_corner(page: SyntheticPage, rng: random.Random) -> tuple[SyntheticPage, Image]:
    """The page with one corner folded over onto itself: the corner's triangle is gone (the
    desk shows) and its back, a little grey and shaded, lies on the page."""
    h, w = page.image.shape[:2]
    leg = 0.10 * w
    corner = rng.randrange(4)
    origin = np.array([(0, 0), (w, 0), (w, h), (0, h)][corner], np.float64)
    sx = 1 if corner in (0, 3) else -1
    sy = 1 if corner in (0, 1) else -1
    a = origin + np.array((sx * leg, 0.0))
    b = origin + np.array((0.0, sy * leg * rng.uniform(0.8, 1.2)))
    # The corner reflected across the fold line a–b.
    d = (b - a) / np.linalg.norm(b - a)
    v = origin - a
    mirrored = a + 2 * (v @ d) * d - v
    alpha = np.full((h, w), 255, np.uint8)
    cv2.fillPoly(alpha, [np.round([origin, a, b]).astype(np.int32)], 0)
    image = page.image.copy()
    flap = np.round([a, b, mirrored]).astype(np.int32)
    shade = np.round([a, b, mirrored + (mirrored - (a + b) / 2) * 0.15]).astype(np.int32)
    cv2.fillPoly(image, [shade], (150, 150, 150))  # the flap's shadow on the page
    cv2.fillPoly(image, [flap], (214, 216, 218))  # the back of the paper
    return dataclasses.replace(page, image=image), alpha


def _outside(quad: Quad, x: float, y: float, radius: float) -> bool:
    distance = cv2.pointPolygonTest(quad.reshape(-1, 1, 2).astype(np.float32),
                                    (float(x), float(y)), True)
    return distance < -radius


def _clutter(frame: Image, quad: Quad, rng: random.Random) -> Image:
    """A pen, a phone, a white card and a mug on the desk, never on the page."""
    fh, fw = frame.shape[:2]
    unit = fh / 1080.0
    placed = 0
    for kind in ("pen", "phone", "card", "mug", "card"):
        for _ in range(60):
            x, y = rng.uniform(0, fw), rng.uniform(0, fh)
            size = {"pen": 140, "phone": 90, "card": 70, "mug": 70}[kind] * unit
            if not _outside(quad, x, y, size + 12 * unit):
                continue
            angle = rng.uniform(0, 180)
            if kind == "pen":
                box = cv2.boxPoints(((x, y), (2 * size, 12 * unit), angle))
                cv2.fillPoly(frame, [np.round(box).astype(np.int32)], (90, 40, 20))
            elif kind == "phone":
                box = cv2.boxPoints(((x, y), (1.1 * size, 2 * size), angle))
                cv2.fillPoly(frame, [np.round(box).astype(np.int32)], (25, 25, 28))
            elif kind == "card":
                box = cv2.boxPoints(((x, y), (1.7 * size, size), angle))
                cv2.fillPoly(frame, [np.round(box).astype(np.int32)], (225, 232, 236))
            else:
                cv2.circle(frame, (round(x), round(y)), round(size), (205, 210, 215), -1)
                cv2.circle(frame, (round(x), round(y)), round(size * 0.8), (40, 60, 90), -1)
            placed += 1
            break
    return frame


def _hand(frame: Image, quad: Quad, rng: random.Random) -> Image:
    """A hand holding the page down: palm off the page, four fingers over one side."""
    side = rng.choice((1, 2, 3))  # right, bottom, left (the clerk is not above the page)
    p, q = quad[side], quad[(side + 1) % 4]
    t = rng.uniform(0.35, 0.65)
    at = p + (q - p) * t
    along = (q - p) / np.linalg.norm(q - p)
    centre = quad.mean(axis=0)
    normal = np.array([along[1], -along[0]])
    if normal @ (at - centre) < 0:
        normal = -normal  # pointing away from the page
    page_w = float(np.linalg.norm(quad[1] - quad[0]))
    skin = (120, 150, 200)
    palm = at + normal * 0.16 * page_w
    axes = (round(0.11 * page_w), round(0.09 * page_w))
    angle = float(np.degrees(np.arctan2(along[1], along[0])))
    cv2.ellipse(frame, (round(palm[0]), round(palm[1])), axes, angle, 0, 360, skin, -1)
    finger = max(3, round(0.028 * page_w))
    for k in range(4):
        base = palm + along * (k - 1.5) * 0.045 * page_w - normal * 0.05 * page_w
        tip = at + along * (k - 1.5) * 0.04 * page_w - normal * rng.uniform(0.04, 0.08) * page_w
        cv2.line(frame, (round(base[0]), round(base[1])), (round(tip[0]), round(tip[1])),
                 tuple(int(c * 0.95) for c in skin), finger, cv2.LINE_AA)
    return frame
