"""The clerk stitches a large plan sheet during a call, in real Chromium with the real agent:
he picks A2 and presses "Stitch a large sheet" on the call's row, the console tells him tile
by tile which part of the sheet to lay under the camera (the test's hand moves the sheet as it
says), and the expert's console receives the stitched sheet in its documents, labelled, and
opens it in a viewer that zooms to its full resolution. Tiles that do not fit are refused
with the library's reason, shown to the clerk, who can capture again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from document_camera.rate_control import RatePolicy
from document_camera.sources import SheetUnderCamera
from document_camera.stills import Still
from tests.endpoint.test_stitch_session import plan_tiles
from tests.expert_console.people import office_agent, open_console
from tests.expert_console.test_console_screens import console_tables
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

BOX = "#clerk-stitch"
VIEWER = "window.__etapalvelu.sheetViewer"


class Observer:
    def __init__(self) -> None:
        self.stills: list[Still] = []

    async def deliver(self, still: Still) -> None:
        self.stills.append(still)


async def follow(
    page: Any, source: SheetUnderCamera, *, within: float = 60.0, on_tile: Any = None
) -> tuple[str, list[int]]:
    """Be the clerk's hand: move the sheet to the tile the console asks for, until the
    stitch ends. Returns the final state and the tiles asked for, in order."""
    asked: list[int] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state, tile = await page.evaluate(
            f"() => {{ const b = document.querySelector('{BOX}');"
            " return [b.dataset.state || '', Number(b.dataset.tile || 0)]; }"
        )
        if state in ("done", "refused", "failed", "cancelled"):
            return state, asked
        if state == "place" and tile and (not asked or asked[-1] != tile):
            asked.append(tile)
            if on_tile is not None:
                await on_tile(tile)
            source.show(tile - 1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the stitch did not end in {within} s; tiles asked {asked}")


@pytest.mark.browser
@pytest.mark.slow
async def test_clerk_stitches_a_plan_sheet_and_the_expert_zooms_into_it(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    _, tiles = plan_tiles("A2", seed=31)
    # The first attempt's middle tile is of another drawing: those tiles do not fit.
    _, others = plan_tiles("A2", seed=32)
    source = SheetUnderCamera([*tiles[:4], others[4], *tiles[5:]], moving_seconds=0.2)
    observer = Observer()
    # (the track at 4 fps keeps the machine's two cores for the stitching)
    agent = office_agent(
        live,
        source,
        still_observer=observer,
        policy=RatePolicy(max_fps=4.0, bits_per_frame=100_000),
    )
    try:
        expert = await open_console(browser, live, "/expert", "kela", axe=True)
        kiosk = await live.connect_kiosk()
        assert (await kiosk.call("flow:sync", {}))["ok"]
        assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
        await expert.page.wait_for_selector("#queues td.num")
        await expert.page.click("#take-next")
        await expert.page.wait_for_selector("#document-panel-mount > *")
        await agent.start()
        await asyncio.wait_for(agent.joined.wait(), 20)

        # The clerk's console, with the camera already in the call.
        clerk = await open_console(browser, live, "/expert", "sihteeri", axe=True)
        page = clerk.page
        row = "#office-calls li[data-call]"
        await page.wait_for_selector(f"{row} [data-doccam=on]", timeout=20000)
        await page.wait_for_selector(f"{row} button.stitch-row:not([disabled])")
        assert await page.input_value(f"{row} select.stitch-sheet") == "A2"
        await screenshot(page, "console-clerk-stitch-row")

        async def at_tile(tile: int) -> None:
            if tile != 2:
                return
            # Tile 2 of 9: the instruction names it, the diagram highlights it, tile 1 ticked.
            await page.wait_for_selector(f"{BOX} .stitch-cell.current[data-tile='2']")
            text = await page.text_content("#clerk-stitch-instruction") or ""
            assert text.startswith("Kuva 2/9: ylhäällä keskellä (rivi 1, sarake 2)"), text
            assert await page.text_content(f"{BOX} .stitch-cell[data-tile='1']") == "✓"
            await screenshot(page, "console-clerk-stitch-tile")
            await assert_axe_clean(page, "clerk stitching a sheet")

        # Tiles that do not fit: the library's reason is shown, nothing is sent, and he
        # can capture again.
        await page.click(f"{row} button.stitch-row")
        await page.wait_for_selector(f"{BOX}:not([hidden])")
        state, asked = await follow(page, source, on_tile=at_tile)
        assert state == "refused", await page.text_content(BOX)
        assert asked == list(range(1, 10)), asked
        reason = page.locator(f"{BOX} .stitch-reason")
        assert await reason.get_attribute("data-code") == "tiles_do_not_overlap"
        assert "Osakuvat eivät limity" in (await reason.text_content() or "")
        detail = await page.text_content(f"{BOX} .stitch-detail") or ""
        assert "no overlap" in detail and "5" in detail, detail
        await page.wait_for_selector(f"{row} button.stitch-row:not([disabled])")
        await screenshot(page, "console-clerk-stitch-refused")
        await assert_axe_clean(page, "clerk's stitch refused")
        assert observer.stills == []
        # In Swedish and English too, the library's reason included; nothing left in Finnish.
        tables = console_tables()
        finnish_only = (
            set(tables["fi"].values()) - set(tables["sv"].values()) - set(tables["en"].values())
        )
        for lang, words in (("sv", "Delbilderna överlappar inte"), ("en", "do not overlap")):
            await page.click(f"#language-switcher button[data-lang={lang}]")
            await page.wait_for_function(
                "w => document.querySelector('#clerk-stitch .stitch-reason').textContent"
                ".includes(w)",
                arg=words,
            )
            shown = await page.evaluate(
                "() => [...document.querySelectorAll("
                "'#clerk-stitch, #office-calls .stitch-controls')]"
                ".map(e => e.innerText).join('\\n')"
            )
            assert not [t for t in finnish_only if len(t) > 4 and t in shown], shown
        await screenshot(page, "console-clerk-stitch-refused-en")
        await page.click("#language-switcher button[data-lang=fi]")

        # The sheet laid right this time: "Capture again".
        source.views = tiles
        await page.click("#clerk-stitch-retry")
        await page.wait_for_selector(f"{BOX}[data-state=place]")
        state, asked = await follow(page, source)
        assert state == "done", await page.text_content(BOX)
        assert asked == list(range(1, 10)), asked
        status = await page.text_content("#clerk-stitch-status") or ""
        assert "lähetettiin puhelun asiakirjoihin" in status, status
        still = observer.stills[-1]
        assert f"{still.metadata.width} × {still.metadata.height}" in status, status
        await screenshot(page, "console-clerk-stitch-done")

        # The expert: the sheet in his documents, labelled, opened at its full resolution.
        epage = expert.page
        item = "[data-testid=documents-item].documents-sheet"
        await epage.wait_for_selector(item, timeout=30000)
        assert await epage.text_content(f"{item} .documents-sheet-label") == "Yhdistetty arkki A2"
        names = await epage.eval_on_selector_all(
            f"{item} .documents-name", "els => els.map(e => e.textContent)"
        )
        assert names == [still.filename], names
        await epage.click(f"{item} button.documents-sheet-open")
        assert await epage.evaluate(f"() => {VIEWER}.ready") is True
        size = await epage.evaluate(f"() => [{VIEWER}.naturalWidth, {VIEWER}.naturalHeight]")
        assert size == [still.metadata.width, still.metadata.height], size
        fitted = await epage.evaluate(f"() => {VIEWER}.visible()")
        assert fitted["scale"] < 1 and fitted["w"] >= size[0] - 1, fitted  # the whole sheet
        await screenshot(epage, "console-expert-sheet-viewer")
        await epage.keyboard.press("1")  # full resolution: one image pixel per screen pixel
        await epage.keyboard.press("+")
        await epage.keyboard.press("ArrowRight")
        zoomed = await epage.evaluate(f"() => {VIEWER}.visible()")
        assert zoomed["scale"] == pytest.approx(1.25), zoomed
        assert zoomed["w"] < 0.8 * fitted["w"] and zoomed["x"] > fitted["x"], (zoomed, fitted)
        level = await epage.text_content(".sheet-viewer .sheet-zoom-level") or ""
        assert level.startswith("125 %"), level
        await screenshot(epage, "console-expert-sheet-zoomed")
        await assert_axe_clean(epage, "expert's sheet viewer")
        await epage.click(".sheet-viewer .sheet-close")
        await epage.wait_for_selector(".sheet-viewer", state="detached")

        assert len(observer.stills) == 1
        await page.wait_for_selector("#clerk-stitch-close")
        await page.click("#clerk-stitch-close")
        await page.wait_for_selector(BOX, state="hidden")
        assert await epage.locator("[data-testid=documents-item]").count() == 1
        clerk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        await agent.stop()
