"""The kiosk's queue screen says what the wait looks like in words (estimate_reason), in real
Chromium: nobody on duty, then "soon" the moment a Kela expert logs in, without the customer
touching anything; and the same in Swedish."""

from __future__ import annotations

from typing import Any

import pytest

from tests.expert_console.people import open_console, open_kiosk
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_the_wait_line_follows_the_experts_on_duty(
    browser: Any, live_service: LiveService
) -> None:
    kiosk = await open_kiosk(browser, live_service)
    expert = None
    try:
        page = kiosk.page
        await page.click("#authority-list button[data-authority=kela]")
        await page.wait_for_selector("#screen-language:not([hidden])")
        await page.click("#service-language-list button[data-language=fin]")
        await page.wait_for_selector("#screen-ticket:not([hidden])")
        # Nobody has logged in: no invented minutes, but what the customer can do.
        await page.wait_for_selector("#ticket-wait:has-text('Yksikään asiantuntija ei ole')")
        await screenshot(page, "kiosk-wait-no-expert")
        # A Kela expert logs in: the line changes by itself.
        expert = await open_console(browser, live_service, "/expert", "kela")
        await page.wait_for_selector("#ticket-wait:text-is('Asiantuntija vastaa pian.')",
                                     timeout=15000)
        # In Swedish (the switcher at the top), the same state in Swedish words.
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_selector("#ticket-wait:text-is('En sakkunnig svarar snart.')")
        await screenshot(page, "kiosk-wait-soon-sv")
        kiosk.assert_no_errors()
    finally:
        if expert is not None:
            await expert.close()
        await kiosk.close()
