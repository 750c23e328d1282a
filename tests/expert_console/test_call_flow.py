"""A walk-in customer served end to end in real Chromium, and an interpreter joining the call.

Kiosk and expert (and interpreter) are separate browser contexts with Chromium's fake camera;
media goes through the real relay on 127.0.0.1. "Sees the other's video" means the inbound
video's framesDecoded (RTCPeerConnection.getStats, exposed as window.__etapalvelu.pc) grows.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.expert_console.people import (
    frames_by_mid,
    open_console,
    open_kiosk,
    wait_frames_growing,
)
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def take_kela_ticket(kiosk: Any) -> str:
    page = kiosk.page
    await page.click("#authority-list button[data-authority=kela]")
    await page.wait_for_selector("#screen-language:not([hidden])")
    await page.click("#service-language-list button[data-language=fin]")
    await page.wait_for_selector("#screen-ticket:not([hidden])")
    number = await page.text_content("#ticket-number")
    assert number
    return number


async def verify_chain(live: LiveService) -> dict[str, Any]:
    import aiohttp

    token = await live.login("admin")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{live.base_url}/api/log/verify", headers={"authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_walk_in_call_end_to_end(browser: Any, live_service: LiveService) -> None:
    kiosk = await open_kiosk(browser, live_service)
    await screenshot(kiosk.page, "kiosk-start")
    expert = await open_console(browser, live_service, "/expert", "kela")

    number = await take_kela_ticket(kiosk)
    await kiosk.page.wait_for_selector("#ticket-position:text-matches('.+')")
    await screenshot(kiosk.page, "kiosk-ticket")

    # The expert sees the customer in his live queue, then takes him.
    await expert.page.wait_for_selector(f"#queues td.num:text-is('{number}')")
    await screenshot(expert.page, "expert-queues")
    await expert.page.click("#take-next")
    await expert.page.wait_for_selector("#view-call:not([hidden])")
    await kiosk.page.wait_for_selector("#screen-call:not([hidden])")

    await wait_frames_growing(expert.page)
    await wait_frames_growing(kiosk.page)
    await kiosk.page.wait_for_selector("#tile-expert.has-video")
    await expert.page.wait_for_selector("#tile-customer.has-video")
    # The connection-quality indicator says so in words on both sides (loopback: good).
    await kiosk.page.wait_for_selector("#call-quality[data-level=good]")
    await expert.page.wait_for_selector("#call-quality[data-level=good]")
    await screenshot(kiosk.page, "kiosk-call")
    # The documents widget at the kiosk receives only: no file picker in front of the
    # customer (sending is clerk-assisted), and its buttons are kiosk-sized touch targets.
    await kiosk.page.wait_for_selector("#documents")
    assert await kiosk.page.locator("#documents input[type=file]").count() == 0
    heights = await kiosk.page.eval_on_selector_all(
        "#documents button",
        "els => els.filter(e => e.offsetParent).map(e => e.getBoundingClientRect().height)",
    )
    assert all(h >= 64 for h in heights), heights
    await screenshot(expert.page, "expert-call")

    # Either side reloading its page rejoins the same call, and the video flows again.
    await kiosk.page.reload()
    await kiosk.page.wait_for_selector("#screen-call:not([hidden])")
    await wait_frames_growing(kiosk.page)
    await expert.page.reload()
    await expert.page.wait_for_selector("#view-call:not([hidden])")
    await wait_frames_growing(expert.page)
    await wait_frames_growing(kiosk.page)

    # The expert ends the call: the kiosk thanks the customer, the expert files the record.
    await expert.page.click("#end-call")
    await expert.page.wait_for_selector("#view-record:not([hidden])")
    await kiosk.page.wait_for_selector("#screen-ended:not([hidden])")
    await screenshot(kiosk.page, "kiosk-ended")
    await screenshot(expert.page, "expert-record-form")
    await expert.page.check("#outcome-resolved")
    service_type = await expert.page.eval_on_selector(
        "#record-service-type", "s => s.options[0] && s.options[0].value"
    )
    assert service_type
    await expert.page.click("#record-form button[type=submit]")
    await expert.page.wait_for_selector("#view-queues:not([hidden])")

    await expert.page.click(".console-nav [data-view=history]")
    await expert.page.wait_for_selector("#history table tbody tr")
    await screenshot(expert.page, "expert-history")

    chain = await verify_chain(live_service)
    assert chain["ok"] is True
    assert chain["entries"] >= 1

    from signaling.records.service_log import entry_view, iter_entries

    async with live_service.services.sessions() as session:
        entries = [entry_view(e) async for e in iter_entries(session)]
    services = [e for e in entries if e["kind"] == "service"]
    assert services, "no service record in the log"
    body = services[-1]["body"]
    assert body["authority_code"] == "kela"
    assert body["service_type"] == service_type
    assert body["outcome"] == "resolved"
    assert body["kind"] == "walk_in"
    # Signed in the expert's browser with his non-extractable key; anyone holding the public
    # key verifies it without our server.
    from signaling.records.record_signing import verify_record

    entry = services[-1]
    assert entry["signature"] and entry["signer_public_key"]
    verify_record(body, entry["signature"], entry["signer_public_key"])
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_interpreter_joins_and_leaves(browser: Any, live_service: LiveService) -> None:
    interpreter = await open_console(browser, live_service, "/interpreter", "tulkki")
    await interpreter.page.click("#presence button[data-presence=available]")
    await interpreter.page.wait_for_selector(
        "#presence button[data-presence=available][aria-pressed=true]"
    )
    # The same interpreter in a second console (another tab or device).
    other_tab = await open_console(browser, live_service, "/interpreter", "tulkki")
    kiosk = await open_kiosk(browser, live_service)
    expert = await open_console(browser, live_service, "/expert", "kela")
    await take_kela_ticket(kiosk)
    await expert.page.wait_for_selector("#queues td.num")
    await expert.page.click("#take-next")
    await wait_frames_growing(expert.page)
    await wait_frames_growing(kiosk.page)

    # Sign-language interpreter requested: the interpreter is alerted and accepts.
    await expert.page.click("#open-interpreter")  # the control bar's interpreter panel
    await expert.page.select_option("#interpreter-language", "fse")
    await expert.page.click("#interpreter-form button[type=submit]")
    await interpreter.page.wait_for_selector("#alerts li[data-request]")
    await other_tab.page.wait_for_selector("#alerts li[data-request]")
    await screenshot(interpreter.page, "interpreter-alert")
    await interpreter.page.click("#alerts li[data-request] button")
    await interpreter.page.wait_for_selector("#view-call:not([hidden])")
    # His other console drops the ring he took, quietly (interpreter:accepted_elsewhere).
    await other_tab.page.wait_for_selector("#alerts li[data-request]", state="detached")
    assert await other_tab.page.is_hidden("#notice")
    assert await other_tab.page.is_visible("#view-alerts")
    other_tab.assert_no_errors()
    await other_tab.close()

    # Three-way video: everyone decodes two incoming videos.
    await wait_frames_growing(interpreter.page, streams=2)
    await wait_frames_growing(kiosk.page, streams=2)
    await wait_frames_growing(expert.page, streams=2)
    await kiosk.page.wait_for_selector(
        "#call-stage[data-spotlight=true] #tile-interpreter.has-video"
    )
    await kiosk.page.wait_for_timeout(300)
    await screenshot(kiosk.page, "kiosk-call-interpreter")
    await screenshot(interpreter.page, "interpreter-call")
    await screenshot(expert.page, "expert-call-interpreter")

    # The sign-language video is sent motion-first, at least CIF and 20 fps.
    sender = await interpreter.page.evaluate(
        """() => {
          const pc = window.__etapalvelu.pc;
          const s = pc.getSenders().find((x) => x.track && x.track.kind === 'video');
          const settings = s.track.getSettings();
          return {hint: s.track.contentHint, pref: s.getParameters().degradationPreference,
                  width: settings.width, height: settings.height, fps: settings.frameRate};
        }"""
    )
    assert sender["hint"] == "motion"
    assert sender["pref"] == "maintain-framerate"
    assert sender["width"] >= 352 and sender["height"] >= 288
    assert sender["fps"] >= 20

    # The interpreter leaves; the call goes on between kiosk and expert.
    await interpreter.page.click("#leave-call")
    await interpreter.page.wait_for_selector("#view-alerts:not([hidden])")
    await kiosk.page.wait_for_selector("#tile-interpreter", state="hidden")
    before = await frames_by_mid(expert.page)
    await expert.page.wait_for_timeout(1000)
    after = await frames_by_mid(expert.page)
    assert any(after.get(mid, 0) > count for mid, count in before.items() if count > 0)
    assert await kiosk.page.is_visible("#screen-call")
    for person in (kiosk, expert, interpreter):
        person.assert_no_errors()


async def test_expert_is_told_when_the_last_alerted_interpreter_is_lost(
    browser: Any, live_service: LiveService
) -> None:
    """The lease sweeper (signaling/flow/leases.py) finds the only alerted interpreter's process
    dead: the ring stays open, and the expert's console says nobody hears it. The hook the
    sweeper calls (`interpreter_lost`) runs here as the sweeper runs it."""
    from signaling.flow.interpreters import interpreter_lost

    interpreter = await open_console(browser, live_service, "/interpreter", "tulkki")
    await interpreter.page.click("#presence button[data-presence=available]")
    await interpreter.page.wait_for_selector(
        "#presence button[data-presence=available][aria-pressed=true]"
    )
    kiosk = await open_kiosk(browser, live_service)
    expert = await open_console(browser, live_service, "/expert", "kela")
    try:
        await take_kela_ticket(kiosk)
        await expert.page.wait_for_selector("#queues td.num")
        await expert.page.click("#take-next")
        await expert.page.wait_for_selector("#view-call:not([hidden])")
        await expert.page.click("#open-interpreter")
        await expert.page.select_option("#interpreter-language", "fse")
        await expert.page.click("#interpreter-form button[type=submit]")
        await interpreter.page.wait_for_selector("#alerts li[data-request]")
        none = "Tulkkeja ei tavoitettu juuri nyt."
        assert (await expert.page.text_content("#notice") or "") != none
        await interpreter_lost(live_service.services, "user", live_service.demo.user_ids["tulkki"])
        await expert.page.wait_for_selector(f"#notice:not([hidden]):text-is('{none}')")
        kiosk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        for person in (interpreter, kiosk, expert):
            await person.close()
