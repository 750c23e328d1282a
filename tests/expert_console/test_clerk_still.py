"""The clerk takes a still of the page under the office's document camera, and it arrives in
the call: the expert's documents list gets it, end-to-end encrypted through the document
channel (nothing goes to the agent's disk). `--stills-dir`, which used to divert stills to
the agent's disk, is refused with an explanation.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from document_camera.sources import SyntheticSource
from document_camera.stills import Still
from tests.expert_console.people import office_agent, open_console
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean, assert_in_viewport, page_overflows_horizontally

ROOT = Path(__file__).resolve().parents[2]


class Observer:
    """Sees each still after the agent sent it into the call."""

    def __init__(self) -> None:
        self.stills: asyncio.Queue[Still] = asyncio.Queue()

    async def deliver(self, still: Still) -> None:
        await self.stills.put(still)


@pytest.mark.browser
@pytest.mark.slow
async def test_clerk_takes_a_still_into_the_call(browser: Any, live_service: LiveService) -> None:
    live = live_service
    observer = Observer()
    camera = SyntheticSource(frame_size=(960, 540), seed=5)
    agent = office_agent(live, camera, still_observer=observer)
    try:
        clerk = await open_console(browser, live, "/expert", "sihteeri", axe=True)
        page = clerk.page
        await page.wait_for_selector("#view-clerk:not([hidden])")
        expert = await open_console(browser, live, "/expert", "kela")
        kiosk = await live.connect_kiosk()
        assert (await kiosk.call("flow:sync", {}))["ok"]
        assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
        await expert.page.wait_for_selector("#queues td.num")
        await expert.page.click("#take-next")
        await expert.page.wait_for_selector("#document-panel-mount > *")

        # The clerk's row of the call: no document camera yet, so no still.
        row = "#office-calls li[data-call]"
        await page.wait_for_selector(f"{row} [data-doccam=off]")
        assert await page.is_disabled(f"{row} button.take-still-row")

        await agent.start()
        await asyncio.wait_for(agent.joined.wait(), 20)
        # The clerk's view re-reads the office's calls (at most every 10 s).
        await page.wait_for_selector(f"{row} [data-doccam=on]", timeout=20000)
        await page.wait_for_selector(f"{row} button.take-still-row:not([disabled])")

        # His live preview of the camera: the camera's picture only (no faces, no voices).
        await page.click(f"{row} button.preview-row")
        await page.wait_for_selector("#clerk-preview:not([hidden])")
        await page.wait_for_selector("#clerk-preview-state[data-state=showing]", timeout=20000)
        await page.wait_for_function(
            """async () => {
                const pc = window.__etapalvelu.previewPc;
                if (!pc) return false;
                const stats = [...(await pc.getStats()).values()];
                const inbound = stats.filter((r) => r.type === "inbound-rtp");
                return inbound.length === 1 && inbound[0].kind === "video"
                    && inbound[0].framesDecoded > 10;
            }""",
            timeout=20000,
        )
        # ...and shows it (the element has the camera's picture, not a black box).
        await page.wait_for_function(
            "() => document.getElementById('clerk-preview-video').videoWidth > 0", timeout=10000
        )
        await screenshot(page, "console-clerk-preview")
        for size, viewport in (
            ("1920x1080", {"width": 1920, "height": 1080}),
            ("1280x800", {"width": 1280, "height": 800}),
            ("390x844", {"width": 390, "height": 844}),
        ):
            await page.set_viewport_size(viewport)
            await page.wait_for_timeout(200)
            await screenshot(page, f"console-clerk-call-{size}")
            await assert_axe_clean(page, f"clerk call {size}")
            await assert_in_viewport(page, [f"{row} button.take-still-row"], f"clerk {size}")
            assert not await page_overflows_horizontally(page), size

        before = await expert.page.locator("[data-testid=documents-item]").count()
        # The still from the preview's own button (the row's is checked above).
        await page.click("#clerk-preview-still")
        await page.wait_for_selector("#notice:not([hidden])")
        assert "asiakirjoihin" in (await page.text_content("#notice") or "")
        still = await asyncio.wait_for(observer.stills.get(), 30)
        assert still.metadata.media_type == "image/png"
        # Into the call: the expert's documents list gets the still.
        await expert.page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=documents-item]').length > n",
            arg=before,
            timeout=30000,
        )
        names = await expert.page.eval_on_selector_all(
            "[data-testid=documents-item] .documents-name", "els => els.map(e => e.textContent)"
        )
        assert still.filename in names, (still.filename, names)
        await screenshot(expert.page, "console-expert-still-received")
        await screenshot(page, "console-clerk-still-taken")
        # Closing the preview leaves the relay room: the call's people are as before.
        await page.click("#clerk-preview-close")
        await page.wait_for_selector("#clerk-preview", state="hidden")
        await page.wait_for_selector(f"{row} button.preview-row[aria-pressed=false]")
        clerk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        await agent.stop()


def test_stills_dir_is_refused_with_a_reason(tmp_path: Path) -> None:
    credential = tmp_path / "kiosk.secret"
    credential.write_text("x\n", encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "signaling",
            "endpoint",
            "--server",
            "http://127.0.0.1:9",
            "--endpoint-id",
            "1",
            "--credential-file",
            str(credential),
            "--stills-dir",
            str(tmp_path / "stills"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 2, run
    assert "stills always go into the call" in run.stderr, run.stderr
    assert not (tmp_path / "stills").exists()
