"""The administrator edits an office's service offer and hours in real Chromium (issue 17),
and the kiosk's `flow:sync` follows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from signaling.directory.service_hours import HELSINKI
from tests.expert_console.people import open_console
from tests.signaling.flow_support import call
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser]


async def test_admin_edits_hours_and_catalogue(browser: Any, live_service: LiveService) -> None:
    live = live_service
    live.services.clock = lambda: datetime(2026, 11, 26, 16, 0, tzinfo=HELSINKI)
    admin = await open_console(browser, live, "/admin", "admin", axe=True)
    page = admin.page
    try:
        await page.click(".console-nav [data-view=offices]")
        await page.wait_for_selector(
            f"#offer-office option[value='{live.demo.office_id}']", state="attached"
        )
        await page.select_option("#offer-office", str(live.demo.office_id))
        await page.wait_for_selector("#offer-panel:not([hidden]) #offer-table table")
        table = await page.text_content("#offer-table") or ""
        # The demo's dvv hours, closed at 16:00 on a Thursday.
        assert "mon-thu 09:00-15:00; fri 09:00-12:00" in table
        assert "Suljettu, avautuu" in table and "Aina avoinna" in table

        # Kela: weekly hours, a short day and a closed day.
        await page.select_option("#hours-authority", "kela")
        await page.fill("#hours-weekly", "ma-to 9-15\nfri 9-12")
        await page.fill("#hours-exceptions", "2026-12-23 09:00-12:00")
        await page.fill("#hours-closed", "2026-12-24")
        await page.click("#hours-form button[type=submit]")
        await page.wait_for_function(
            "() => document.querySelector('#offer-table').textContent"
            ".includes('2026-12-23 09:00-12:00')"
        )
        # A typo is refused with the reason, and nothing changes.
        await page.fill("#hours-weekly", "ma-to 9-15x")
        await page.click("#hours-form button[type=submit]")
        await page.wait_for_selector("text=is not a time")
        kiosk = await live.connect_kiosk()
        synced = await call(kiosk, "flow:sync")
        kela = next(a for a in synced["authorities"] if a["code"] == "kela")
        assert kela["hours"]["weekly"] == [
            {"days": [0, 1, 2, 3], "intervals": [["09:00", "15:00"]]},
            {"days": [4], "intervals": [["09:00", "12:00"]]},
        ]
        assert kela["hours"]["open_now"] is False

        # The catalogue: Police not offered at this office.
        await page.uncheck("input[name=catalogue-authority][value=poliisi]")
        await page.click("#catalogue-form button[type=submit]")
        await page.wait_for_function(
            "() => document.querySelector('#offer-table').textContent.includes('Ei tarjolla')"
        )
        await assert_axe_clean(page, "admin offices, offer and hours")
        await screenshot(page, "admin-offer-hours")
        synced = await call(kiosk, "flow:sync")
        codes = [a["code"] for a in synced["authorities"]]
        assert "poliisi" not in codes and "kela" in codes and len(codes) == 7

        # Back to always open.
        await page.select_option("#hours-authority", "kela")
        await page.click("#hours-clear")
        await page.wait_for_function(
            "() => !document.querySelector('#offer-table').textContent.includes('2026-12-23')"
        )
        synced = await call(kiosk, "flow:sync")
        kela = next(a for a in synced["authorities"] if a["code"] == "kela")
        assert kela["hours"]["always_open"] is True
        admin.assert_no_errors()
    finally:
        await admin.close()
