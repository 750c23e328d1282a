"""The expert console's "take still" button in real Chromium, with the real endpoint agent
publishing the document camera: the button appears with the document track and its request
reaches the agent, which takes the still."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from document_camera.sources import SyntheticSource
from document_camera.stills import Still
from tests.expert_console.people import office_agent, open_console
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class CollectingSink:
    """Sees each still the agent took (after it went into the call)."""

    def __init__(self) -> None:
        self.stills: asyncio.Queue[Still] = asyncio.Queue()

    async def deliver(self, still: Still) -> None:
        await self.stills.put(still)


async def test_take_still_button_reaches_the_agent(browser: Any, live_service: LiveService) -> None:
    live = live_service
    sink = CollectingSink()
    agent = office_agent(live, SyntheticSource(frame_size=(960, 540), seed=3), still_observer=sink)
    try:
        expert = await open_console(browser, live, "/expert", "kela")
        kiosk = await live.connect_kiosk()
        assert (await kiosk.call("flow:sync", {}))["ok"]
        taken = await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"})
        assert taken["ok"], taken
        page = expert.page
        await page.wait_for_selector("#queues td.num")
        # No document camera yet: no button.
        await page.click("#take-next")
        await page.wait_for_selector("#view-call:not([hidden])")
        assert await page.is_hidden("#take-still")

        # The office's document camera comes up during the call and joins it.
        await agent.start()
        await asyncio.wait_for(agent.joined.wait(), 20)
        await page.wait_for_selector("#doccam-viewport.has-video")
        await page.wait_for_selector("#take-still:visible")
        assert (await page.text_content("#take-still")) == "Ota kuva"
        await screenshot(page, "expert-call-take-still")
        await page.click("#take-still")
        still = await asyncio.wait_for(sink.stills.get(), 30)
        assert still.metadata.media_type == "image/png"
        assert still.metadata.height > 300  # the camera's resolution of the page
        expert.assert_no_errors()
    finally:
        await agent.stop()
