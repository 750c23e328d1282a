"""Transfer to another authority's line from the expert console, and the kiosk starting in its
office's default language — both fed by `flow:sync` (real Chromium, real relay)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update

from signaling.store.models import Authority, Office
from tests.expert_console.people import (
    another_kiosk,
    open_console,
    open_kiosk,
    queue_numbers,
    wait_frames_growing,
)
from tests.expert_console.test_call_flow import take_kela_ticket
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KIOSK_TICKET_JS = "() => { const t = window.__etapalvelu.kiosk.ticket; return t && {...t}; }"


async def test_expert_transfers_customer_and_kiosk_ticket_follows(
    browser: Any, live_service: LiveService
) -> None:
    async with live_service.services.sessions() as session:
        vero = (
            await session.execute(select(Authority).where(Authority.code == "vero"))
        ).scalar_one()
        vero_id = vero.id
    kiosk = await open_kiosk(browser, live_service)
    expert = await open_console(browser, live_service, "/expert", "kela")
    number = await take_kela_ticket(kiosk)
    original = await kiosk.page.evaluate(KIOSK_TICKET_JS)
    assert original["authority_code"] == "kela" and original["status"] == "waiting"

    await expert.page.wait_for_selector(f"#queues td.num:text-is('{number}')")
    await expert.page.click("#take-next")
    await expert.page.wait_for_selector("#view-call:not([hidden])")
    await kiosk.page.wait_for_selector("#screen-call:not([hidden])")
    await wait_frames_growing(expert.page)

    # The kela expert has one authority of his own; the form lists every other enabled one.
    # Transfer is a button of the call-control bar; it opens the transfer form above it.
    await expert.page.click("#open-transfer")
    await expert.page.wait_for_selector("#transfer-form:not([hidden])")
    options = await expert.page.eval_on_selector_all(
        "#transfer-authority option", "os => os.map(o => [o.value, o.textContent])"
    )
    labels = dict(options)
    assert labels[str(vero_id)] == "Verohallinto"
    assert len(options) == 7  # the eight seeded authorities but his own
    await expert.page.select_option("#transfer-authority", str(vero_id))
    await screenshot(expert.page, "expert-transfer")
    await expert.page.click("#transfer-form button[type=submit]")

    # The kiosk leaves the call and shows the new ticket in the Tax Administration's line.
    await kiosk.page.wait_for_selector("#screen-ticket:not([hidden])")
    await kiosk.page.wait_for_selector("#ticket-authority:text-is('Verohallinto')")
    await kiosk.page.wait_for_selector("#ticket-position:text-matches('.+')")
    await screenshot(kiosk.page, "kiosk-transferred-ticket")
    moved = await kiosk.page.evaluate(KIOSK_TICKET_JS)
    assert moved["id"] != original["id"]
    assert moved["authority_code"] == "vero" and moved["authority_id"] == vero_id
    assert moved["status"] == "waiting" and moved["position"] == 1
    assert moved["queued_at"] == original["queued_at"]
    assert moved["queue_key"] == original["queue_key"]
    # The "thank you" screen's timer must not take the ticket screen away later.
    assert await kiosk.page.evaluate("() => window.__etapalvelu.kiosk.endedTimer") is None

    # The call ended as transferred: the expert's console moves on to its service record.
    await expert.page.wait_for_selector("#view-record:not([hidden])")
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_expert_transfers_waiting_customer_who_keeps_his_place_in_time(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    async with live.services.sessions() as session:
        vero_id = (
            await session.execute(select(Authority.id).where(Authority.code == "vero"))
        ).scalar_one()
    kiosk = await open_kiosk(browser, live)
    number = await take_kela_ticket(kiosk)
    original = await kiosk.page.evaluate(KIOSK_TICKET_JS)
    # Another customer comes later and queues for the Tax Administration.
    later = await another_kiosk(live, "Kallio kioski 2")
    updates: list[dict[str, Any]] = []
    later.on("ticket:update", lambda data: updates.append(data["ticket"]))
    taken = await later.call("ticket:take", {"authority": "vero", "language": "fin"})
    assert taken["ok"], taken
    assert taken["ticket"]["position"] == 1

    expert = await open_console(browser, live, "/expert", "kela")
    page = expert.page
    await page.wait_for_selector(f"#queues td.num:text-is('{number}')")
    row = f"#queues tr:has(td.num:text-is('{number}'))"
    await page.click(f"{row} button[data-transfer]")
    await page.wait_for_selector("#queue-transfer-dialog[open]")
    await page.select_option("#queue-transfer-authority", str(vero_id))
    await screenshot(page, "expert-queue-transfer-dialog")
    await page.click("#queue-transfer-form button[type=submit]")

    # The kiosk's ticket follows into the Tax Administration's line, ahead of the later one.
    await kiosk.page.wait_for_selector("#ticket-authority:text-is('Verohallinto')")
    await kiosk.page.wait_for_selector("#ticket-position:text-is('Olet seuraavana vuorossa.')")
    moved = await kiosk.page.evaluate(KIOSK_TICKET_JS)
    assert moved["authority_id"] == vero_id and moved["status"] == "waiting"
    assert moved["position"] == 1
    assert moved["queued_at"] == original["queued_at"]
    assert moved["queue_key"] == original["queue_key"]
    await screenshot(kiosk.page, "kiosk-ticket-after-queue-transfer")
    # The later customer is now second; the kela line is empty.
    deadline = asyncio.get_running_loop().time() + 10
    while not any(u["position"] == 2 for u in updates):
        assert asyncio.get_running_loop().time() < deadline, updates
        await asyncio.sleep(0.05)
    await page.wait_for_selector("#queues p.empty")
    assert await queue_numbers(page) == []
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_kiosk_of_swedish_office_starts_in_swedish(
    browser: Any, live_service: LiveService
) -> None:
    async with live_service.services.sessions() as session:
        await session.execute(
            update(Office)
            .where(Office.id == live_service.demo.office_id)
            .values(default_language="sv")
        )
        await session.commit()
    kiosk = await open_kiosk(browser, live_service)
    page = kiosk.page
    await page.wait_for_selector(
        "#start-title:text-is('Välkommen! Vilken myndighet vill du ha kontakt med?')"
    )
    assert await page.evaluate("() => document.documentElement.lang") == "sv"
    await screenshot(page, "kiosk-start-swedish")
    kiosk.assert_no_errors()
