"""The expert shares his screen into the call (issue 18), in real Chromium through the real
relay: the kiosk shows it large with the expert's face beside it, sent for detail; stopping
returns the kiosk to the expert's face. Chromium's fake desktop capture stands in for a
screen (`--use-fake-ui-for-media-stream` picks it without a dialog)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.expert_console.people import open_console, open_kiosk, wait_frames_growing
from tests.expert_console.test_call_flow import take_kela_ticket
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREEN_SENDER = """() => {
  const pc = window.__etapalvelu.pc;
  const senders = pc.getSenders().filter((s) => s.track && s.track.kind === 'video');
  const screen = senders.find((s) => s.track.label !== '' && s.track.contentHint === 'detail');
  return screen ? {hint: screen.track.contentHint,
                   pref: screen.getParameters().degradationPreference} : null;
}"""


async def test_the_expert_shares_his_screen_and_stops(
    browser: Any, live_service: LiveService
) -> None:
    kiosk = await open_kiosk(browser, live_service)
    expert = await open_console(browser, live_service, "/expert", "kela")
    try:
        await take_kela_ticket(kiosk)
        await expert.page.wait_for_selector("#queues td.num")
        await expert.page.click("#take-next")
        await wait_frames_growing(expert.page)
        await wait_frames_growing(kiosk.page)
        await kiosk.page.wait_for_selector("#tile-expert.has-video")
        assert await kiosk.page.is_hidden("#tile-screen")
        # The kiosk never shares its screen: it has no control for it.
        assert await kiosk.page.locator("#share-screen").count() == 0

        await expert.page.click("#share-screen")
        await expert.page.wait_for_selector("#share-screen[aria-pressed=true]", timeout=15000)
        sender = await expert.page.evaluate(SCREEN_SENDER)
        assert sender == {"hint": "detail", "pref": "maintain-resolution"}, sender
        # The kiosk: the screen large, the expert's face still there beside it.
        await kiosk.page.wait_for_selector("#tile-screen.has-video:not([hidden])", timeout=15000)
        await kiosk.page.wait_for_function(
            "() => document.querySelector('#tile-screen video').videoWidth > 0", timeout=15000
        )
        assert await kiosk.page.get_attribute("#call-stage", "data-screen") == "true"
        assert await kiosk.page.is_visible("#tile-expert.has-video")
        boxes = await kiosk.page.evaluate(
            """() => ['tile-screen', 'tile-expert'].map((id) => {
                const r = document.getElementById(id).getBoundingClientRect();
                return r.width * r.height; })"""
        )
        assert boxes[0] > 2 * boxes[1], boxes
        await screenshot(kiosk.page, "kiosk-call-expert-screen")
        await screenshot(expert.page, "expert-call-sharing-screen")
        await assert_axe_clean(kiosk.page, "kiosk with the expert's screen")

        # He stops: the kiosk returns to his face.
        await expert.page.click("#share-screen")
        await expert.page.wait_for_selector("#share-screen[aria-pressed=false]")
        await kiosk.page.wait_for_selector("#tile-screen", state="hidden", timeout=15000)
        assert await kiosk.page.get_attribute("#call-stage", "data-screen") == "false"
        await kiosk.page.wait_for_selector("#tile-expert.has-video")
        await wait_frames_growing(kiosk.page)
        kiosk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        await kiosk.close()
        await expert.close()
