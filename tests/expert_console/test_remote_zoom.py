"""Remote zoom end to end: the expert zooms into small print in real Chromium, the console
sends the region (`document_camera:view`), the real endpoint agent's document track sends that
region from the 4K camera's own pixels through the real relay, and the console shows it 1:1
where it had magnified the page-wide frame. Prints the gesture-to-detail latency (`pytest -s`);
no timing is asserted here (performance lives in the benchmarks)."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from document_camera.ocr import character_error_rate, ocr_page
from document_camera.rate_control import RatePolicy
from document_camera.sources import SyntheticSource
from document_camera.synthetic import CameraEffects, render_text_page
from document_camera.zoom import Region, crop_region
from tests.expert_console.people import office_agent, open_console
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWER = "window.__etapalvelu.expert.panel.viewer"
# A small track makes the difference plain (and the test light): the overview has 768 px for
# the page's height, the 4K camera about 1900.
TRACK = (544, 768)
MARKER_VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "doccam-zoom-marker.json").read_text())


async def screen_image(page: Any) -> Any:
    """What the expert sees in the document view, as a BGR image."""
    url = await page.evaluate(f"() => {VIEWER}.screen.toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def sharpness(image: Any) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


async def wait_detail(page: Any, since: int, within: float = 20.0) -> dict[str, Any]:
    """The gesture's last region sent (zoom-log entries from `since` on), once its sharp frame
    arrived: a drag sends several, the camera answers the latest."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        log = await page.evaluate(f"() => [{VIEWER}.zoomLog, Boolean({VIEWER}.pending)]")
        sent = [e for e in log[0][since:] if e["region"]]
        if sent and sent[-1]["detailAt"] is not None and not log[1]:
            return dict(sent[-1])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no sharp frame for the region: {log[0][since:]}")


async def test_zooming_into_small_print_shows_the_cameras_pixels(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    printed = render_text_page(dpi=210, font_pt=7, seed=11)
    source = SyntheticSource(frame_size=(3840, 2160), seed=11, page=printed,
                             effects=CameraEffects(noise_sigma=2.0))
    agent = office_agent(live, source, size=TRACK, policy=RatePolicy(max_fps=8.0))
    try:
        expert = await open_console(browser, live, "/expert", "kela")
        kiosk = await live.connect_kiosk()
        assert (await kiosk.call("flow:sync", {}))["ok"]
        assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
        page = expert.page
        await page.wait_for_selector("#queues td.num")
        await page.click("#take-next")
        await page.wait_for_selector("#view-call:not([hidden])")
        await agent.start()
        await asyncio.wait_for(agent.joined.wait(), 20)
        await page.wait_for_selector("#doccam-viewport.has-video", timeout=20000)
        await page.click("#doccam-full")
        await page.wait_for_selector("#doccam.is-full")
        await page.wait_for_timeout(2000)  # frames flowing, the page found in them
        # The console's marker reader against the shared vectors (document_camera.zoom too).
        decoded = await page.evaluate("""(vectors) =>
            import('/static/console/js/doccam-view.js').then((m) => ({
              valid: vectors.valid.map((v) => m.rectFromBits([...v.bits].map(Number))),
              invalid: vectors.invalid.map((b) => m.rectFromBits([...b].map(Number))),
            }))""", MARKER_VECTORS)
        for got, case in zip(decoded["valid"], MARKER_VECTORS["valid"], strict=True):
            assert [got[k] for k in "xywh"] == pytest.approx(case["rect"], abs=1 / 16384)
        assert decoded["invalid"] == [None] * len(MARKER_VECTORS["invalid"])
        start = await page.evaluate(f"() => {VIEWER}.state()")
        assert start["frame"] is None and start["region"] is None, start
        assert start["page"]["orientation"] == "portrait", start

        # The local magnification only: remote zoom held back, 4× into the text's upper left.
        await page.evaluate(f"""() => {{
            const v = {VIEWER}; window.__send = v.send; v.setRemote(null);
            v.cx = 0.3; v.cy = 0.25; v.setZoom(4); }}""")
        await page.wait_for_timeout(1500)
        local_state = await page.evaluate(f"() => {VIEWER}.state()")
        assert local_state["frame"] is None, local_state  # nothing asked: page-wide frames
        local = await screen_image(page)
        region = Region.parse(local_state["region"])
        # (a portrait page in a landscape view: a quarter of its height, more of its width)
        assert region.h <= 0.26 and region.w < 0.6, region

        # Remote zoom on: the same view, now from the camera's pixels.
        since = len(await page.evaluate(f"() => {VIEWER}.zoomLog"))
        await page.evaluate(f"() => {VIEWER}.setRemote(window.__send)")
        first = await wait_detail(page, since)
        latencies = [first["detailAt"] - first["sentAt"]]
        assert first["region"] == pytest.approx(local_state["region"], abs=2e-3), first
        await page.wait_for_timeout(1500)  # a couple of refinements of the still page
        remote_state = await page.evaluate(f"() => {VIEWER}.state()")
        shown = remote_state["frame"]
        assert shown is not None, remote_state
        # The frame covers the region in view, and the view did not move or re-magnify.
        now = Region.parse(remote_state["region"])
        assert shown["x"] <= now.x + 2e-4 and shown["x"] + shown["w"] >= now.x + now.w - 2e-4
        assert shown["y"] <= now.y + 2e-4 and shown["y"] + shown["h"] >= now.y + now.h - 2e-4
        assert remote_state["region"] == pytest.approx(local_state["region"], abs=2e-3)
        assert remote_state["scale"] == local_state["scale"] == 4
        assert await page.get_attribute("#doccam-viewport", "data-detail") == "camera"
        remote = await screen_image(page)
        await screenshot(page, "expert-remote-zoom-detail")

        # Real detail: sharper, and tesseract reads the small print far better than from the
        # magnified overview (both against what the true page has in that region).
        h, w = remote.shape[:2]

        def read() -> tuple[float, float]:
            truth = ocr_page(crop_region(printed.image, region, (w, h)))
            return (character_error_rate(truth, ocr_page(local)),
                    character_error_rate(truth, ocr_page(remote)))

        # (off the event loop: the agent's socket and media run on it)
        cer_local, cer_remote = await asyncio.get_running_loop().run_in_executor(None, read)
        print(f"\nremote zoom 4x, 7 pt text, 4K camera, track {TRACK[0]}x{TRACK[1]}: "
              f"CER {cer_remote:.1%} (local magnification {cer_local:.1%}); Laplacian var "
              f"{sharpness(remote):.0f} vs {sharpness(local):.0f}")
        assert sharpness(remote) > 1.5 * sharpness(local)
        assert cer_remote < 0.5 * cer_local and cer_remote < 0.15, (cer_remote, cer_local)

        # Gestures keep working relative to the whole page: keyboard pans and zooms, a drag.
        viewport = page.locator("#doccam-viewport")
        await viewport.focus()
        for key in ("ArrowLeft", "ArrowDown", "+", "ArrowRight"):
            since = len(await page.evaluate(f"() => {VIEWER}.zoomLog"))
            await page.keyboard.press(key)
            entry = await wait_detail(page, since)
            latencies.append(entry["detailAt"] - entry["sentAt"])
            await page.wait_for_timeout(300)
        box = await viewport.bounding_box()
        assert box is not None
        since = len(await page.evaluate(f"() => {VIEWER}.zoomLog"))
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        await page.mouse.move(cx, cy)
        await page.mouse.down()
        for step in range(1, 6):
            await page.mouse.move(cx - 30 * step, cy - 20 * step)
            await page.wait_for_timeout(30)
        await page.mouse.up()
        entry = await wait_detail(page, since)
        latencies.append(entry["detailAt"] - entry["sentAt"])
        moved = await page.evaluate(f"() => {VIEWER}.state()")
        assert moved["region"]["x"] > remote_state["region"]["x"], (moved, remote_state)
        assert moved["scale"] == pytest.approx(5.0)

        # Zoomed out: the whole page again, from page-wide frames.
        await page.keyboard.press("0")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            back = await page.evaluate(f"() => {VIEWER}.state()")
            if back["frame"] is None:
                break
            await asyncio.sleep(0.1)
        assert back["frame"] is None and back["region"] is None, back
        assert agent._camera is not None and agent._camera.track.region is None
        print(f"gesture → sharp detail in the console (ms): median "
              f"{statistics.median(latencies):.0f}, max {max(latencies):.0f}, "
              f"all {[round(v) for v in latencies]}")
        expert.assert_no_errors()
    finally:
        await agent.stop()
