"""The expert console's call through failures, in real Chromium with the real service and relay.

The expert's browser closes and he logs in again while the call is on: he lands in the same
call with live video (frames decoding), and the kiosk's notice goes. His socket drops: his
console joins again by itself and keeps the call view and its documents panel. The customer's
kiosk goes away: the console says so over the customer's picture.

Timings are printed (`-s`), never asserted. The "customer left" wording needs the server
contract (`gone_reason` in `call:participants`).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.endpoint.test_kiosk_lifecycle import NOTICE as KIOSK_NOTICE
from tests.endpoint.test_kiosk_lifecycle import in_call
from tests.expert_console.people import open_console, wait_frames_growing
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]

CUSTOMER_NOTICE = "#tile-customer .tile-notice"


async def test_expert_relogin_gets_live_video(browser: Any, live_service: LiveService) -> None:
    kiosk, expert = await in_call(browser, live_service)
    call_id = await kiosk.page.evaluate("() => window.__etapalvelu.kiosk.call.id")
    started = time.monotonic()
    await expert.close()
    await kiosk.page.wait_for_selector(f"{KIOSK_NOTICE}:not([hidden])", timeout=15000)
    print(f"kiosk notice after {1000 * (time.monotonic() - started):.0f} ms")

    # He logs in again in a fresh browser: the same call, live video, no black picture.
    started = time.monotonic()
    again = await open_console(browser, live_service, "/expert", "kela")
    page = again.page
    await page.wait_for_selector("#view-call:not([hidden])", timeout=15000)
    assert await page.evaluate("() => window.__etapalvelu.expert.call.id") == call_id
    await wait_frames_growing(page)
    print(
        f"expert decodes the customer {1000 * (time.monotonic() - started):.0f} ms after "
        "opening the console"
    )
    await page.wait_for_selector("#tile-customer.has-video")
    assert not await page.is_visible(CUSTOMER_NOTICE)
    # The kiosk sees him again.
    await kiosk.page.wait_for_selector(KIOSK_NOTICE, state="hidden", timeout=15000)
    print(f"kiosk notice cleared {1000 * (time.monotonic() - started):.0f} ms after opening")
    await wait_frames_growing(kiosk.page)
    await page.wait_for_timeout(300)
    await screenshot(page, "expert-call-after-relogin")
    await screenshot(kiosk.page, "kiosk-call-after-expert-relogin")
    kiosk.assert_no_errors()
    again.assert_no_errors()


async def test_expert_socket_reconnect_rejoins(browser: Any, live_service: LiveService) -> None:
    kiosk, expert = await in_call(browser, live_service)
    page = expert.page
    await page.wait_for_selector("#document-panel-mount > *")
    await page.evaluate(
        "() => { document.querySelector('#document-panel-mount > *').dataset.keep = 'yes';"
        " window.__oldPc = window.__etapalvelu.pc; }"
    )
    started = time.monotonic()
    await page.evaluate("() => window.__etapalvelu.console.socket.io.engine.close()")
    await page.wait_for_function(
        "() => (window.__etapalvelu.rejoins || 0) >= 1 && "
        "window.__etapalvelu.mediaState === 'connected'",
        timeout=30000,
    )
    print(f"expert rejoined {1000 * (time.monotonic() - started):.0f} ms after the drop")
    assert await page.evaluate("() => window.__etapalvelu.pc !== window.__oldPc")
    await wait_frames_growing(page)
    await wait_frames_growing(kiosk.page)
    await page.wait_for_selector(CUSTOMER_NOTICE, state="hidden", timeout=10000)
    assert await page.is_visible("#view-call")
    assert await page.get_attribute("#document-panel-mount > *", "data-keep") == "yes"
    kinds = [n["kind"] for n in await page.evaluate("() => window.__etapalvelu.notices || []")]
    print(f"console notices during the reconnect: {kinds}")
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_console_says_when_the_customer_is_gone(
    browser: Any, live_service: LiveService
) -> None:
    kiosk, expert = await in_call(browser, live_service)
    page = expert.page
    started = time.monotonic()
    await kiosk.close()
    await page.wait_for_selector(f"{CUSTOMER_NOTICE}:not([hidden])", timeout=15000)
    kind = await page.get_attribute(CUSTOMER_NOTICE, "data-notice")
    print(f"console notice {kind!r} after {1000 * (time.monotonic() - started):.0f} ms")
    assert kind in ("media-lost", "participant-left")
    if kind == "media-lost":
        assert (
            await page.text_content(CUSTOMER_NOTICE)
            == "Yhteys asiakkaaseen katkesi — yhdistetään uudelleen…"
        )
    await screenshot(page, "expert-customer-media-lost")
    # Contract: call:participants says the customer's kiosk is gone (gone_reason).
    await page.wait_for_selector(
        f"{CUSTOMER_NOTICE}[data-notice=participant-left]:not([hidden])", timeout=30000
    )
    assert await page.text_content(CUSTOMER_NOTICE) == "Asiakas poistui puhelusta. Odotetaan hetki…"
    await page.click("#language-switcher button[data-lang=sv]")
    assert (
        await page.text_content(CUSTOMER_NOTICE) == "Kunden lämnade samtalet. Vi väntar en stund…"
    )
    await screenshot(page, "expert-customer-left-sv")
    expert.assert_no_errors()
