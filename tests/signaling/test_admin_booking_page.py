"""The administrator sets an expert's hours for appointments and an authority's slot length in
real Chromium (issue 17), and the public free-slot listing follows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest

from signaling.directory.service_hours import HELSINKI
from tests.expert_console.people import open_console
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser]


async def _slots(live: LiveService) -> list[datetime]:
    url = (
        f"{live.base_url}/api/public/booking/slots?office={live.demo.office_id}"
        "&authority=kela&language=fin&days=14"
    )
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body = await response.json()
    assert body["ok"], body
    return [datetime.fromisoformat(s["starts_at"]).astimezone(HELSINKI) for s in body["slots"]]


async def test_admin_edits_availability_and_slot_length(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    assert await _slots(live) == []  # nobody takes bookings yet
    admin = await open_console(browser, live, "/admin", "admin", axe=True)
    page = admin.page
    kela_id = str(live.demo.user_ids["kela"])
    try:
        await page.click(".console-nav [data-view=booking]")
        await page.wait_for_selector(
            f"#availability-expert option[value='{kela_id}']", state="attached"
        )
        await page.select_option("#availability-expert", kela_id)
        await page.select_option("#availability-authority", "kela")
        await page.fill("#availability-weekly", "ma-pe 9-11")
        await page.click("#availability-form button[type=submit]")
        await page.wait_for_function(
            "() => document.querySelector('#availability-table').textContent"
            ".includes('mon-fri 09:00-11:00')"
        )
        slots = await _slots(live)
        # Four half-hour times a weekday, Kela open at all times at the demo office.
        assert slots and {s.strftime("%H:%M") for s in slots} <= {
            "09:00",
            "09:30",
            "10:00",
            "10:30",
        }
        assert all(s.weekday() < 5 for s in slots)

        # One hour a time for Kela: half as many times, on the hour.
        await page.select_option("#slot-authority", "kela")
        await page.fill("#slot-minutes", "60")
        await page.click("#slot-form button[type=submit]")
        await page.wait_for_function(
            "() => document.querySelector('#slot-length-table').textContent.includes('60 min')"
        )
        hourly = await _slots(live)
        assert {s.strftime("%H:%M") for s in hourly} <= {"09:00", "10:00"}
        # (Today's times depend on the hour the test runs: compared from tomorrow on.)
        today = datetime.now(HELSINKI).date()
        assert len([s for s in hourly if s.date() > today]) * 2 == len(
            [s for s in slots if s.date() > today]
        )

        # A typo is refused with the reason, and nothing changes.
        await page.fill("#availability-weekly", "ma-pe 9-11x")
        await page.click("#availability-form button[type=submit]")
        await page.wait_for_selector("text=is not a time")
        assert await _slots(live) == hourly

        await assert_axe_clean(page, "admin booking settings")
        await screenshot(page, "admin-booking-availability")
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_selector("text=Mottagningstider per vecka")
        await page.click("#language-switcher button[data-lang=en]")
        await page.wait_for_selector("text=Length of a booked time")
        await page.click("#language-switcher button[data-lang=fi]")

        # No bookings any more: the slots go.
        await page.click("#availability-clear")
        await page.wait_for_selector("#availability-table p.help")
        assert await _slots(live) == []
        admin.assert_no_errors()
    finally:
        await admin.close()


async def test_interpreter_sees_his_reservations(browser: Any, live_service: LiveService) -> None:
    from datetime import timedelta

    from signaling.booking import booking
    from signaling.booking.booking import BookingRules
    from signaling.db import utcnow
    from signaling.store.models import Office
    from tests.signaling.test_booking import _set_availability, kela_request

    live = live_service
    await _set_availability(live.services.sessions, "kela", ["mon-sun 00:00-24:00"])
    now = utcnow()
    rules = BookingRules(slot_minutes=30, min_lead_minutes=0, days_ahead=28)
    interpreter = await open_console(browser, live, "/interpreter", "tulkki", axe=True)
    page = interpreter.page
    try:
        await page.wait_for_selector("#reservations li.empty")
        async with live.services.sessions() as session:
            office = await session.get(Office, live.demo.office_id)
            kela = await booking.find_authority(session, "kela")
            assert office is not None
            free = await booking.slots_for(
                session, office, kela, "fin", now, now + timedelta(days=7), now, rules, "ara"
            )
            request = kela_request(
                live.demo.office_id,
                free[0].starts_at,
                contact_email="asiakas@example.fi",
                interpreting="ara",
            )
            made = await booking.book_slot(session, request, now, rules)
        # The console is told (the push of the booking API) and lists it.
        from signaling.booking.booking_api import after_booking

        await after_booking(live.services, made.appointment.id, "confirmation")
        await page.wait_for_selector("#reservations li[data-reservation]")
        text = await page.text_content("#reservations") or ""
        assert "Kela" in text and "Kirjasto Kallio" in text, text
        await assert_axe_clean(page, "interpreter console with a reservation")
        await screenshot(page, "interpreter-reservations")
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_selector("text=Bokade tolkningar")
        interpreter.assert_no_errors()
    finally:
        await interpreter.close()
