"""The administrator's pages in real Chromium: live queues and calls, statistics per
authority / office / month, the CSV export for cost compensation, and the directory."""

from __future__ import annotations

from typing import Any

import pytest

from tests.expert_console.people import another_kiosk, open_console
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.signing import file_signed_over_socket, register_key_over_socket

pytestmark = [pytest.mark.browser]


async def serve_one_customer(live: LiveService) -> None:
    """A Kela walk-in served and recorded over socket.io (no media needed for statistics)."""
    kiosk = await another_kiosk(live, "Kallio kioski 2")
    expert = await live.connect_user("kela")
    assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
    taken = await expert.call("queue:take_next", {})
    assert taken["ok"], taken
    call_id = taken["call"]["id"]
    assert (await expert.call("call:end", {"call_id": call_id}))["ok"]
    sync = await expert.call("flow:sync", {})
    service_type = sync["authorities"][0]["service_types"][0]["code"]
    key = await register_key_over_socket(expert, live.demo.user_ids["kela"])
    filed = await file_signed_over_socket(
        expert, key, {"call_id": call_id, "service_type": service_type, "outcome": "resolved"}
    )
    assert filed["ok"], filed


async def test_admin_pages(browser: Any, live_service: LiveService) -> None:
    await serve_one_customer(live_service)
    waiting = await another_kiosk(live_service, "Kallio kioski 3")
    ack = await waiting.call("ticket:take", {"authority": "poliisi", "language": "swe"})
    assert ack["ok"], ack

    admin = await open_console(browser, live_service, "/admin", "admin")
    page = admin.page
    # Live: the waiting Police customer's line.
    await page.wait_for_selector("#live-queues table")
    assert "Poliisi" in (await page.text_content("#live-queues") or "")
    await screenshot(page, "admin-live")

    # Statistics per authority, office and month.
    await page.click(".console-nav [data-view=stats]")
    await page.wait_for_selector("#stats-table table")
    assert "Kela" in (await page.text_content("#stats-table") or "")
    await screenshot(page, "admin-stats-authority")
    for by, expected in (("office", "Kirjasto Kallio"), ("month", "-")):
        await page.select_option("#stats-by", by)
        await page.click("#stats-form button[type=submit]")
        await page.wait_for_function(
            "(text) => (document.querySelector('#stats-table td') || {}).textContent"
            " && document.querySelector('#stats-table').textContent.includes(text)",
            arg=expected,
        )
    await screenshot(page, "admin-stats-month")

    # CSV for cost compensation: a header row and the served customer.
    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    download = await download_info.value
    csv_text = open(await download.path(), encoding="utf-8").read()  # noqa: ASYNC230
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("month,authority_code")
    assert any(",kela," in line for line in lines[1:])

    # Directory: add an office and a kiosk device; the kiosk's address is shown once.
    await page.click(".console-nav [data-view=offices]")
    await page.wait_for_selector("#offices-table table")
    await page.fill("#office-name", "Kirjasto Kannelmäki")
    await page.fill("#office-municipality", "Helsinki")
    await page.select_option("#office-language", "sv")
    await page.click("#office-form button[type=submit]")
    await page.wait_for_selector("#offices-table td:text-is('Kirjasto Kannelmäki')")
    await screenshot(page, "admin-offices")
    await page.click(".console-nav [data-view=endpoints]")
    await page.select_option("#endpoint-office", label="Kirjasto Kannelmäki")
    await page.fill("#endpoint-name", "Kannelmäki kioski 1")
    await page.click("#endpoint-form button[type=submit]")
    await page.wait_for_selector("#endpoint-credential:not([hidden])")
    assert "/kiosk#endpoint=" in (await page.text_content("#endpoint-credential") or "")
    await page.wait_for_selector("#endpoints-table td:text-is('Kannelmäki kioski 1')")
    await screenshot(page, "admin-endpoints")
    await page.click(".console-nav [data-view=users]")
    await page.wait_for_selector("#users-table td:text-is('kela')")
    await screenshot(page, "admin-users")
    admin.assert_no_errors()
