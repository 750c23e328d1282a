"""The kiosk's authority tiles say the service hours (issue 17), in real Chromium.

The demo office has hours for the Digital and Population Data Services Agency (dvv: Mon–Thu
9–15, Fri 9–12, signaling/server/demo.py); the others are open at all times. The service's clock is
set, not waited for: the server's "now" decides what the kiosk shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from signaling.directory.service_hours import HELSINKI
from tests.expert_console.people import KIOSK_VIEWPORT, Person, _open
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser]

DVV_TILE = "#authority-list button[data-authority=dvv]"
THURSDAY_EVENING = datetime(2026, 11, 26, 16, 0, tzinfo=HELSINKI)
THURSDAY_MORNING = datetime(2026, 11, 26, 10, 0, tzinfo=HELSINKI)


def text(value: str | None) -> str:
    """The words as a reader sees them: no word joiners, plain spaces."""
    return (value or "").replace("\u2060", "").replace("\u00a0", " ")


def at(live: LiveService, moment: datetime) -> None:
    live.services.clock = lambda: moment


async def open_kiosk(browser: Any, live: LiveService) -> Person:
    """The kiosk page with axe-core allowed in (people.open_kiosk keeps the CSP)."""
    url = f"{live.base_url}/kiosk{live.demo.kiosk_fragment()}"
    person = await _open(browser, url, KIOSK_VIEWPORT, axe=True)
    await person.page.wait_for_selector("#screen-start:not([hidden]) #authority-list button")
    return person


async def test_outside_hours_the_tile_says_when_it_opens(
    browser: Any, live_service: LiveService
) -> None:
    at(live_service, THURSDAY_EVENING)
    kiosk = await open_kiosk(browser, live_service)
    page = kiosk.page
    try:
        tile = page.locator(DVV_TILE)
        await tile.locator(".hours-state").wait_for()
        assert await tile.get_attribute("class") == "closed"
        assert text(await tile.locator(".hours-line").text_content()) == (
            "Digi- ja väestötietovirasto palvelee tässä pisteessä ma–to 9–15, pe 9–12."
        )
        assert (await tile.locator(".hours-state").text_content()) == (
            "Suljettu nyt. Avautuu huomenna klo 9.00."
        )
        # Kela has no hours: no hours line, an ordinary tile.
        kela = page.locator("#authority-list button[data-authority=kela]")
        assert await kela.locator(".hours-line").count() == 0
        await assert_axe_clean(page, "kiosk start, dvv closed")
        await screenshot(page, "kiosk-hours-closed-fi")

        await tile.click()
        await page.wait_for_selector("#screen-closed:not([hidden])")
        assert (await page.text_content("#closed-title")) == (
            "Digi- ja väestötietovirasto ei palvele nyt tässä pisteessä"
        )
        assert (await page.text_content("#closed-opens")) == ("Palvelu avautuu huomenna klo 9.00.")
        assert "pyydä palvelusihteeriä varaamaan sinulle aika" in (
            await page.text_content("#screen-closed") or ""
        )
        await assert_axe_clean(page, "kiosk closed screen")
        await screenshot(page, "kiosk-hours-closed-screen-fi")

        # Swedish: the same in Swedish words and days.
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_selector("#closed-opens:text-is('Servicen öppnar i morgon kl. 9.00.')")
        await screenshot(page, "kiosk-hours-closed-screen-sv")
        await page.click("#screen-closed [data-back=start]")
        await page.wait_for_selector("#screen-start:not([hidden])")
        assert text(await tile.locator(".hours-line").text_content()) == (
            "Myndigheten för digitalisering och befolkningsdata betjänar vid den här "
            "servicepunkten mån–tors 9–15, fre 9–12."
        )
        assert (await tile.locator(".hours-state").text_content()) == (
            "Stängt nu. Öppnar i morgon kl. 9.00."
        )
        await screenshot(page, "kiosk-hours-closed-sv")

        # The booking way out: the appointment code screen.
        await tile.click()
        await page.click("#closed-appointment")
        await page.wait_for_selector("#screen-appointment:not([hidden])")
        kiosk.assert_no_errors()
    finally:
        await kiosk.close()


async def test_inside_hours_and_closing_while_choosing(
    browser: Any, live_service: LiveService
) -> None:
    at(live_service, THURSDAY_MORNING)
    kiosk = await open_kiosk(browser, live_service)
    page = kiosk.page
    try:
        tile = page.locator(DVV_TILE)
        await tile.locator(".hours-line").wait_for()
        assert await tile.locator(".hours-state").count() == 0
        assert not await tile.get_attribute("class")
        await screenshot(page, "kiosk-hours-open-fi")
        await tile.click()
        await page.wait_for_selector("#screen-language:not([hidden])")
        # The hours end while the customer chooses his language: the server says `closed`
        # and the kiosk shows when service opens, as the tile would.
        at(live_service, datetime(2026, 11, 27, 12, 0, tzinfo=HELSINKI))  # Friday noon
        await page.click("#service-language-list button[data-language=fin]")
        await page.wait_for_selector("#screen-closed:not([hidden])")
        assert (await page.text_content("#closed-opens")) == ("Palvelu avautuu ma 30.11. klo 9.00.")
        await screenshot(page, "kiosk-hours-refused-fi")
        kiosk.assert_no_errors()
    finally:
        await kiosk.close()
