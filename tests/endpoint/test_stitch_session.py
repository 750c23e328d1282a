"""Stitching a large sheet during a call, end to end with the real agent: the clerk asks for an
A2 sheet (`document_camera:stitch`), the agent guides him tile by tile
(`document_camera:stitch_progress`), the clerk (here: the test's hand) moves the sheet under
the camera as told, and the stitched sheet arrives in the expert's documents end-to-end
encrypted. The clerk can cancel; bad requests change nothing. (Tiles that do not fit:
tests/expert_console/test_clerk_stitch.py, where the clerk sees the reason.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from document_camera.rate_control import RatePolicy
from document_camera.sources import SheetUnderCamera
from document_camera.stitching import SHEETS_MM, TileGuide
from document_camera.synthetic import CameraEffects, make_tiles, render_plan_sheet
from endpoint.stitch_session import (
    TILE_SHARPNESS,
    SheetStill,
    StitchSession,
    difference,
    edge_sharpness,
    thumbnail,
)
from tests.document_camera.test_stitching import _aligned_ncc
from tests.expert_console.people import another_kiosk, office_agent
from tests.support.service import LiveService, make_live_service

PROGRESS = "document_camera:stitch_progress"


def plan_tiles(sheet_name: str, seed: int, dpi: float = 80.0) -> tuple[Any, list[Any]]:
    """A rendered plan sheet and the camera's views of it in the guide's grid (about a 1080p
    camera's worth of pixels per tile)."""
    guide = TileGuide.plan(sheet_name)
    short, long = sorted(SHEETS_MM[sheet_name])
    sheet = render_plan_sheet(dpi=dpi, size_mm=(long, short), seed=seed).image
    tiles = make_tiles(
        sheet,
        cols=guide.cols,
        rows=guide.rows,
        overlap=guide.overlap,
        seed=seed,
        tilt_deg=1.0,
        shift=0.02,
        effects=CameraEffects(light_falloff=0.2, blur_sigma=0.5, noise_sigma=0.0),
    )
    return sheet, tiles


class Clerk:
    """The clerk's socket (progress pushes) and hand (moves the sheet to the tile asked for)."""

    def __init__(self, client: Any, source: SheetUnderCamera) -> None:
        self.client = client
        self.source = source
        self.pushes: list[dict[str, Any]] = []
        self.finished: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.placed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        client.on(PROGRESS, self.on_progress)

    async def outcome(self, within: float) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.finished.get(), within)
        except TimeoutError:
            seen = [(p["state"], p["tile"]) for p in self.pushes]
            raise AssertionError(
                f"no outcome in {within} s ({self.source._frames} frames "
                f"read, showing {self.source.shown}): {seen}"
            ) from None

    async def on_progress(self, data: dict[str, Any]) -> None:
        self.pushes.append(data)
        if data["state"] == "place":
            await self.placed.put(data)
        if data["state"] == "place" and self.source.shown != data["tile"] - 1:
            self.source.show(data["tile"] - 1)
        if data["state"] in ("done", "refused", "cancelled", "failed"):
            await self.finished.put(data)


class Observer:
    def __init__(self) -> None:
        self.stills: list[Any] = []

    async def deliver(self, still: Any) -> None:
        self.stills.append(still)


@pytest_asyncio.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveService]:
    # Nobody joins the call's media here (the expert only receives documents): the watchdog
    # must not end the call as abandoned meanwhile.
    async with make_live_service(
        tmp_path, empty_call_seconds=600.0, expert_return_seconds=600.0
    ) as service:
        yield service


async def _ack(client: Any, event: str, data: Any) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(event, data, timeout=10)
    assert ack["ok"], (event, ack)
    return ack


async def _refused(client: Any, event: str, data: Any) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(event, data, timeout=10)
    assert ack["ok"] is False, (event, data, ack)
    return dict(ack["error"])


@pytest.mark.slow
async def test_the_clerk_stitches_an_a2_sheet_into_the_call(live: LiveService) -> None:
    sheet, tiles = plan_tiles("A2", seed=21)
    source = SheetUnderCamera(tiles, moving_seconds=0.25)
    observer = Observer()
    # (the track at 2 fps: nobody watches it here, and the stitch reads the camera itself)
    agent = office_agent(
        live,
        source,
        still_observer=observer,
        policy=RatePolicy(max_fps=2.0, bits_per_frame=100_000),
    )
    from endpoint.document_channel import DocumentChannel

    expert_docs: DocumentChannel | None = None
    try:
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        clerk_socket = await live.connect_user("sihteeri")
        await _ack(kiosk, "flow:sync", {})
        await _ack(expert, "flow:sync", {})
        await _ack(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
        call_id = int((await _ack(expert, "queue:take_next", {}))["call"]["id"])
        clerk = Clerk(clerk_socket, source)
        expert_pushes: list[dict[str, Any]] = []

        async def on_expert_progress(data: dict[str, Any]) -> None:
            expert_pushes.append(data)

        expert.on(PROGRESS, on_expert_progress)

        # No document camera in the call yet.
        error = await _refused(
            clerk_socket, "document_camera:stitch", {"call_id": call_id, "sheet": "A2"}
        )
        assert error["reason"] == "no_document_camera", error

        await agent.start()
        await asyncio.wait_for(agent.joined.wait(), 20)

        # Bad requests: a clear error, and nothing reaches the agent.
        for payload in (
            {"call_id": call_id, "sheet": "B5"},
            {"call_id": call_id, "sheet": "A3"},
            {"call_id": call_id},
            {"call_id": str(call_id), "sheet": "A2"},
            {"call_id": call_id, "sheet": "A2", "extra": 1},
            {"call_id": call_id, "sheet": "A2", "format": "gif"},
            [],
            "A2",
            None,
        ):
            assert (await _refused(clerk_socket, "document_camera:stitch", payload))[
                "code"
            ] == "invalid", payload
        assert (
            await _refused(
                clerk_socket, "document_camera:stitch", {"call_id": 999_999, "sheet": "A2"}
            )
        )["code"] == "not_found"
        assert (
            await _refused(kiosk, "document_camera:stitch", {"call_id": call_id, "sheet": "A2"})
        )["code"] == "forbidden"
        interpreter = await live.connect_user("tulkki")
        assert (
            await _refused(
                interpreter, "document_camera:stitch", {"call_id": call_id, "sheet": "A2"}
            )
        )["code"] == "forbidden"
        other_expert = await live.connect_user("rakennus")
        not_his = await _refused(
            other_expert, "document_camera:stitch", {"call_id": call_id, "sheet": "A2"}
        )
        assert not_his["reason"] == "not_your_call", not_his
        assert (
            await _refused(other_expert, "document_camera:stitch_cancel", {"call_id": call_id})
        )["reason"] == "not_your_call"
        # Progress may come only from the call's own document camera, well formed.
        good = {
            "call_id": call_id,
            "sheet": "A2",
            "state": "place",
            "tile": 2,
            "of": 9,
            "rows": 3,
            "cols": 3,
            "row": 0,
            "col": 1,
            "captured": 1,
        }
        assert (await _refused(expert, PROGRESS, good))["code"] == "forbidden"
        assert (await _refused(clerk_socket, PROGRESS, good))["code"] == "forbidden"
        other_kiosk = await another_kiosk(live, "Toinen kioski")
        assert (await _refused(other_kiosk, PROGRESS, good))["reason"] == "not_participant"
        for bad in (
            {**good, "of": 8},
            {**good, "row": 1},
            {**good, "tile": 10},
            {**good, "state": "refused"},
            {**good, "state": "exploded"},
            {**good, "code": "tiles_do_not_overlap", "detail": "x" * 301},
            {**good, "filename": "../../etc/passwd"},
            {**good, "tile": True},
        ):
            assert (await _refused(kiosk, PROGRESS, bad))["code"] == "invalid", bad
        await asyncio.sleep(0.3)
        assert agent.stitch is None and clerk.pushes == [] and expert_pushes == []

        expert_docs = DocumentChannel(expert, live.base_url, call_id)
        await expert_docs.start()

        # The clerk asks for an A2 sheet; his hand follows the instructions.
        assert (
            await _ack(clerk_socket, "document_camera:stitch", {"call_id": call_id, "sheet": "A2"})
        )["sheet"] == "A2"
        done = await clerk.outcome(60)
        assert done["state"] == "done", clerk.pushes
        places = [p["tile"] for p in clerk.pushes if p["state"] == "place"]
        assert places == list(range(1, 10)), places
        assert [p["state"] for p in clerk.pushes].count("stitching") == 1
        assert any(p["state"] == "hold_still" and p["code"] == "moving" for p in clerk.pushes)
        assert done["filename"].startswith("sheet-A2-") and done["filename"].endswith(".jpg")
        assert (done["rows"], done["cols"], done["captured"]) == (3, 3, 9)
        # Into the call: the expert's documents, end-to-end encrypted from the camera.
        received = await asyncio.wait_for(expert_docs.receive(), 30)
        assert received.verified
        assert received.sender.participant_id == agent.participant_id
        assert received.metadata.name == done["filename"]
        assert received.metadata.type == "image/jpeg"
        stitched = cv2.imdecode(np.frombuffer(received.content, np.uint8), cv2.IMREAD_COLOR)
        assert stitched is not None
        assert (stitched.shape[1], stitched.shape[0]) == (done["width"], done["height"])
        # The whole sheet at the camera's resolution, not one tile, not the track.
        h, w = sheet.shape[:2]
        assert abs(stitched.shape[1] - w) < 0.08 * w and abs(stitched.shape[0] - h) < 0.08 * h
        # ...and it is the drawing: registered onto it, it correlates well; with another
        # drawing of the same size it does not (tests/document_camera/test_stitching.py).
        other_sheet, _ = plan_tiles("A2", seed=24, dpi=60)
        other_sheet = cv2.resize(other_sheet, (w, h))
        assert _aligned_ncc(stitched, sheet) > 0.7
        assert _aligned_ncc(stitched, sheet, other_sheet) < 0.4
        assert isinstance(observer.stills[-1], SheetStill)
        assert expert_pushes and expert_pushes[-1]["state"] == "done"

        # The clerk cancels while the agent waits for a tile.
        clerk.pushes.clear()
        clerk.source = SheetUnderCamera(tiles)  # his hand stays still this time
        await _ack(clerk_socket, "document_camera:stitch", {"call_id": call_id, "sheet": "A1"})
        while not clerk.placed.empty():
            clerk.placed.get_nowait()
        first = await asyncio.wait_for(clerk.placed.get(), 10)
        assert first["tile"] == 1 and first["of"] == 16 and first["sheet"] == "A1", first
        # A new request replaces the one under way: its "cancelled" comes first.
        await _ack(clerk_socket, "document_camera:stitch", {"call_id": call_id, "sheet": "A2"})
        replaced = await clerk.outcome(10)
        assert (replaced["state"], replaced["sheet"]) == ("cancelled", "A1"), replaced
        first = await asyncio.wait_for(clerk.placed.get(), 10)
        assert (first["tile"], first["of"], first["sheet"]) == (1, 9, "A2"), first
        await _ack(clerk_socket, "document_camera:stitch_cancel", {"call_id": call_id})
        cancelled = await clerk.outcome(10)
        assert (cancelled["state"], cancelled["sheet"]) == ("cancelled", "A2"), cancelled
        assert clerk.finished.empty()
        assert len(observer.stills) == 1
    finally:
        if expert_docs is not None:
            await expert_docs.close()
        await agent.stop()


async def test_a_tile_is_taken_only_when_the_sheet_moved_lies_still_and_is_sharp() -> None:
    """The session alone, the camera's picture set by hand: the view before the request is no
    tile; a blurred sheet is no tile; the same tile twice is not two tiles."""
    _, tiles = plan_tiles("A2", seed=23)
    view = [tiles[0] // 3]  # the desk
    reports: list[dict[str, Any]] = []

    async def report(payload: dict[str, Any]) -> None:
        reports.append(payload)

    async def deliver(still: Any) -> None:
        raise AssertionError("nothing is delivered here")

    session = StitchSession(
        5, "A2", read=lambda: view[0].copy(), report=report, deliver=deliver, first_tile_grace=60.0
    )

    async def until(check: Any, within: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not check():
            assert asyncio.get_running_loop().time() < deadline, reports
            await asyncio.sleep(0.02)

    task = asyncio.ensure_future(session.run())
    try:
        await asyncio.sleep(0.8)  # the desk, unchanged: no tile (the grace is long here)
        assert session.tiles == [] and [r["state"] for r in reports] == ["place"]
        view[0] = cv2.blur(tiles[0], (41, 1))  # the sheet, steady but smeared
        await until(lambda: any(r["code"] == "blurred" for r in reports if "code" in r))
        assert session.tiles == []
        view[0] = tiles[0]
        await until(lambda: len(session.tiles) == 1)
        await asyncio.sleep(0.8)  # the same tile is not the next one
        assert len(session.tiles) == 1
        view[0] = tiles[1]
        await until(lambda: len(session.tiles) == 2)
        assert [r["tile"] for r in reports if r["state"] == "place"] == [1, 2, 3]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reports[-1]["state"] == "cancelled"
    assert difference(thumbnail(tiles[0]), thumbnail(tiles[0])) == 0.0
    # The tile sharpness (endpoint/stitch_session.py): lines sharp in both directions.
    sharp = edge_sharpness(tiles[4])
    assert sharp is not None and sharp >= TILE_SHARPNESS
    for blurred in (
        cv2.GaussianBlur(tiles[4], (0, 0), 2.0),
        cv2.blur(tiles[4], (5, 1)),
        cv2.blur(tiles[4], (1, 5)),
    ):
        value = edge_sharpness(blurred)
        assert value is not None and value < TILE_SHARPNESS, value
    assert edge_sharpness(np.full((300, 400, 3), 240, np.uint8)) is None
    with pytest.raises(ValueError, match="unknown sheet"):
        StitchSession(5, "B5", read=lambda: tiles[0], report=report, deliver=deliver)


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 20),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["A2", "A1", "place", "refused", "done", "tiles_do_not_overlap", "moving"]),
    st.lists(st.integers(0, 3), max_size=2),
)
_FIELDS = [
    "call_id",
    "sheet",
    "state",
    "tile",
    "of",
    "rows",
    "cols",
    "row",
    "col",
    "captured",
    "code",
    "detail",
    "filename",
    "width",
    "height",
    "extra",
]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELDS), _FIELD_VALUES, max_size=len(_FIELDS)))
def test_progress_reports_are_checked_whole(data: dict[str, Any]) -> None:
    """Whatever an endpoint sends as progress is refused with a validation error, or is a
    report whose grid adds up (signaling/in_call/stitch_requests.py); nothing else comes out."""
    from pydantic import ValidationError

    from signaling.in_call.stitch_requests import StitchProgress

    try:
        report = StitchProgress.model_validate(data)
    except ValidationError:
        return
    assert report.rows * report.cols == report.of
    assert (report.row, report.col) == divmod(report.tile - 1, report.cols)
    assert report.state != "refused" or report.code in (
        "tiles_do_not_overlap",
        "tiles_too_plain",
        "stitch_rejected",
    )


def test_a_good_progress_report_and_each_truncation_of_it() -> None:
    from pydantic import ValidationError

    from signaling.in_call.stitch_requests import StitchProgress

    good = {
        "call_id": 3,
        "sheet": "A1",
        "state": "refused",
        "tile": 16,
        "of": 16,
        "rows": 4,
        "cols": 4,
        "row": 3,
        "col": 3,
        "captured": 16,
        "code": "tiles_too_plain",
        "detail": "too little drawing to align tiles 6–7",
    }
    assert StitchProgress.model_validate(good).code == "tiles_too_plain"
    required = ["call_id", "sheet", "state", "tile", "of", "rows", "cols", "row", "col", "captured"]
    for name in required:
        with pytest.raises(ValidationError):
            StitchProgress.model_validate({k: v for k, v in good.items() if k != name})
    without_code = {k: v for k, v in good.items() if k != "code"}
    with pytest.raises(ValidationError, match="the stitching library's reason"):
        StitchProgress.model_validate(without_code)
