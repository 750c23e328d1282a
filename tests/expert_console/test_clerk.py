"""The office's service secretary (clerk): the kiosk's "call the service secretary" button
alerts him, he answers it, and he can ask the interpreting ring for an interpreter for a call
at his office."""

from __future__ import annotations

from typing import Any

import pytest

from tests.expert_console.people import open_console, open_kiosk
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser]


async def test_clerk_answers_the_kiosk_and_requests_an_interpreter(
    browser: Any, live_service: LiveService
) -> None:
    clerk = await open_console(browser, live_service, "/expert", "sihteeri")
    page = clerk.page
    await page.wait_for_selector("#view-clerk:not([hidden])")
    # Experts' tools are not a clerk's.
    assert not await page.is_visible(".console-nav")
    kiosk = await open_kiosk(browser, live_service)
    await kiosk.page.click("#secretary-button")
    await kiosk.page.wait_for_selector("#secretary-status:text-matches('.+')")
    await page.wait_for_selector("#secretary-alerts li[data-alert]")
    assert "Kallio kioski 1" in (await page.text_content("#secretary-alerts") or "")
    await screenshot(page, "clerk-alert")
    await page.click("#secretary-alerts li[data-alert] button")
    await page.wait_for_selector("#secretary-alerts li[data-alert]", state="detached")
    await kiosk.page.wait_for_selector("#secretary-status:text-matches('tulossa')")

    # A call at his office: he asks for an Arabic interpreter; the ring alerts the interpreter.
    interpreter = await live_service.connect_user("tulkki")
    assert (await interpreter.call("presence:set", {"status": "available"}))["ok"]
    alerts: list[dict[str, Any]] = []
    interpreter.on("interpreter:alert", lambda data: alerts.append(data))
    await kiosk.page.click("#authority-list button[data-authority=kela]")
    await kiosk.page.click("#service-language-list button[data-language=fin]")
    expert = await live_service.connect_user("kela")
    assert (await expert.call("queue:take_next", {}))["ok"]
    await page.wait_for_selector("#office-calls li[data-call] form")
    await page.select_option("#office-calls li[data-call] select[name=language]", "ara")
    await page.click("#office-calls li[data-call] form button")
    await page.wait_for_selector("#notice:not([hidden])")
    await screenshot(page, "clerk-call-interpreter-requested")
    for _ in range(50):
        if alerts:
            break
        await page.wait_for_timeout(100)
    assert alerts and alerts[0]["request"]["language"] == "ara"
    clerk.assert_no_errors()
    kiosk.assert_no_errors()
