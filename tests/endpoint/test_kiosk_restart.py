"""The kiosk across a server restart, and its language switch, in real Chromium.

The restart runs the service twice on the same port and data folder (SQLite): customers
waiting before the restart are in line afterwards, in the same order, and the kiosk page
reconnects by itself and shows the same ticket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.expert_console.people import (
    KIOSK_VIEWPORT,
    another_kiosk,
    open_console,
    open_kiosk,
    queue_numbers,
)
from tests.support.browser import screenshot
from tests.support.net import free_port
from tests.support.service import LiveService, make_live_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_queue_intact_after_server_restart(browser: Any, tmp_path: Path) -> None:
    port = free_port()  # both runs on one port and data folder (tmp_path / "data")
    async with make_live_service(tmp_path, port=port) as live:
        kiosk = await open_kiosk(browser, live)
        await kiosk.page.click("#authority-list button[data-authority=kela]")
        await kiosk.page.click("#service-language-list button[data-language=fin]")
        await kiosk.page.wait_for_selector("#screen-ticket:not([hidden])")
        first = await kiosk.page.text_content("#ticket-number")
        other = await another_kiosk(live, "Kallio kioski 2")
        ack = await other.call("ticket:take", {"authority": "kela", "language": "fin"})
        assert ack["ok"], ack
        second = ack["ticket"]["number"]
        expert = await open_console(browser, live, "/expert", "kela")
        await expert.page.wait_for_selector(f"#queues td.num:text-is('{second}')")
        assert await queue_numbers(expert.page) == [first, second]

    # Down: both pages notice.
    await kiosk.page.wait_for_selector("#status:not([hidden])")
    await screenshot(kiosk.page, "kiosk-reconnecting")

    async with make_live_service(tmp_path, port=port) as live:
        # Both pages reconnect on their own; the line is as it was.
        await expert.page.wait_for_selector("#status", state="hidden", timeout=20000)
        await expert.page.wait_for_selector(f"#queues td.num:text-is('{second}')")
        assert await queue_numbers(expert.page) == [first, second]
        await kiosk.page.wait_for_selector("#status", state="hidden", timeout=20000)
        assert await kiosk.page.is_visible("#screen-ticket")
        assert await kiosk.page.text_content("#ticket-number") == first
        await screenshot(expert.page, "expert-queues-after-restart")
        # A reload of the kiosk page shows the same ticket too.
        await kiosk.page.reload()
        await kiosk.page.wait_for_selector("#screen-ticket:not([hidden])")
        assert await kiosk.page.text_content("#ticket-number") == first
        await screenshot(kiosk.page, "kiosk-ticket-after-restart")
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_kiosk_language_switch(browser: Any, live_service: LiveService) -> None:
    kiosk = await open_kiosk(browser, live_service)
    page = kiosk.page
    assert await page.get_attribute("html", "lang") == "fi"
    assert "Tervetuloa" in (await page.text_content("#start-title") or "")
    kela_fi = await page.text_content("#authority-list button[data-authority=poliisi]")

    await page.click("#language-switcher button[data-lang=sv]")
    assert await page.get_attribute("html", "lang") == "sv"
    assert "Välkommen" in (await page.text_content("#start-title") or "")
    assert (
        await page.get_attribute("#language-switcher button[data-lang=sv]", "aria-pressed")
        == "true"
    )
    # Authority names follow the language too (Poliisi → Polisen).
    assert await page.text_content("#authority-list button[data-authority=poliisi]") != kela_fi
    await screenshot(page, "kiosk-start-sv")

    await page.click("#language-switcher button[data-lang=en]")
    assert "Welcome" in (await page.text_content("#start-title") or "")
    await page.click("#authority-list button[data-authority=kela]")
    await page.wait_for_selector("#screen-language:not([hidden])")
    # The customer's own language is offered first, under its own name.
    first = await page.text_content("#service-language-list button >> nth=0")
    assert first and first.startswith("English")
    await screenshot(page, "kiosk-language-en")

    # Large touch targets at the kiosk: every button at least 64 px high.
    heights = await page.eval_on_selector_all(
        "#screen-language:not([hidden]) button, .kiosk-header button, .kiosk-footer button",
        "els => els.map(e => e.getBoundingClientRect().height)",
    )
    assert heights and min(heights) >= 64, heights
    assert KIOSK_VIEWPORT["width"] >= 1024
    kiosk.assert_no_errors()
