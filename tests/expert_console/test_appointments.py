"""Appointments in real Chromium: the expert books a slot in his console, the customer checks
in at the kiosk with the booking code, and at its time the appointment is served before
walk-ins who came later."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.expert_console.people import another_kiosk, open_console, open_kiosk, queue_numbers
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The booked time: a few seconds ahead (enough for a slow, shared machine to send the form
# before that time), so the test sees it pass without a long wait.
BOOK_AHEAD_SECONDS = 8


async def test_appointment_served_at_its_time_before_later_walk_ins(
    browser: Any, live_service: LiveService
) -> None:
    expert = await open_console(browser, live_service, "/expert", "kela")
    page = expert.page
    await page.click(".console-nav [data-view=appointments]")
    await page.wait_for_selector("#view-appointments:not([hidden])")
    await page.select_option("#appt-authority", label="Kela")
    await page.fill("#appt-office", str(live_service.demo.office_id))
    # The form takes minutes; a test booking wants seconds, so let the field take them.
    local_time = await page.evaluate(
        """(ahead) => {
          const el = document.getElementById('appt-time');
          el.step = 'any';
          const t = new Date(Date.now() + ahead * 1000);
          const local = new Date(t.getTime() - t.getTimezoneOffset() * 60000);
          return [local.toISOString().slice(0, 19), t.getTime()];
        }""",
        BOOK_AHEAD_SECONDS,
    )
    local_time, booked_ms = local_time
    await page.fill("#appt-time", local_time)
    await page.select_option("#appt-language", "fin")
    await page.click("#appointment-form button[type=submit]")
    await page.wait_for_selector("#appointment-result[data-code]")
    code = await page.get_attribute("#appointment-result", "data-code")
    assert code and len(code) == 6
    await page.wait_for_selector(f"#appointment-list td:text-is('{code}')")
    await screenshot(page, "expert-appointments")

    kiosk = await open_kiosk(browser, live_service)
    await kiosk.page.click("#appointment-button")
    await kiosk.page.wait_for_selector("#screen-appointment:not([hidden])")
    # A wrong code is refused in plain words and changes nothing.
    await kiosk.page.fill("#booking-code", "AAAAAA" if code != "AAAAAA" else "CCCCCC")
    await kiosk.page.click("#appointment-form button[type=submit]")
    await kiosk.page.wait_for_selector("#appointment-error:not([hidden])")
    await screenshot(kiosk.page, "kiosk-appointment-wrong-code")
    # Lower case and a dash, as people type it.
    await kiosk.page.fill("#booking-code", f"{code[:3].lower()}-{code[3:].lower()}")
    await kiosk.page.click("#appointment-form button[type=submit]")
    await kiosk.page.wait_for_selector("#screen-ticket:not([hidden])")
    await kiosk.page.wait_for_selector("#ticket-appointment:not([hidden])")
    await screenshot(kiosk.page, "kiosk-appointment-checked-in")
    appointment_number = await kiosk.page.text_content("#ticket-number")

    # Walk-ins who come after the booked time queue behind the appointment.
    await asyncio.sleep(max(0.0, booked_ms / 1000 - time.time()) + 0.5)
    later = await another_kiosk(live_service, "Kallio kioski 2")
    ack = await later.call("ticket:take", {"authority": "kela", "language": "fin"})
    assert ack["ok"], ack
    walk_in_number = ack["ticket"]["number"]

    await page.click(".console-nav [data-view=queues]")
    await page.wait_for_selector(f"#queues td.num:text-is('{walk_in_number}')")
    assert await queue_numbers(page) == [appointment_number, walk_in_number]
    await screenshot(page, "expert-queue-appointment-first")

    await page.click("#take-next")
    await kiosk.page.wait_for_selector("#screen-call:not([hidden])")
    await page.wait_for_selector("#view-call:not([hidden])")
    assert "Ajanvaraus" in (await page.text_content("#call-info") or "")
    kiosk.assert_no_errors()
    expert.assert_no_errors()
