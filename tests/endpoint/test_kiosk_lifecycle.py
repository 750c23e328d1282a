"""The kiosk's call through failures, in real Chromium with the real service and relay.

Kiosk and expert are separate browser contexts with Chromium's fake camera; media goes through
the in-process relay on 127.0.0.1. "Video flows" means the inbound video's framesDecoded grows
on the page's current RTCPeerConnection (window.__etapalvelu.pc, replaced at every rejoin).

What the customer sees is asserted as elements becoming visible; how long it took is printed
(`-s` shows it), never asserted: the machine may be loaded.

Parts that need the server side of "calls that survive failures" (docs/signaling-events.md:
`gone_reason` in `call:participants`, `call:end` by the kiosk, `call:ended` reason
`expert_lost` and `ticket:requeue`) are marked in the tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from signaling.config import Settings
from tests.expert_console.people import (
    Person,
    open_console,
    open_kiosk,
    wait_frames_growing,
)
from tests.support.browser import screenshot
from tests.support.service import LiveService, make_live_service

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]

# The fold the End call button must never fall below.
FOLD = {"width": 1280, "height": 800}
NOTICE = "#tile-expert .tile-notice"


def lifecycle_settings(**wanted: Any) -> dict[str, Any]:
    """The server settings of the contract that this server has (all of them once it lands)."""
    return {k: v for k, v in wanted.items() if k in Settings.model_fields}


async def take_kela_ticket(page: Any) -> None:
    await page.click("#authority-list button[data-authority=kela]")
    await page.click("#service-language-list button[data-language=fin]")
    await page.wait_for_selector("#screen-ticket:not([hidden])")


async def in_call(browser: Any, live: LiveService) -> tuple[Person, Person]:
    """A kiosk (at 1280×800) and the Kela expert in a call, video flowing both ways."""
    kiosk = await open_kiosk(browser, live)
    await kiosk.page.set_viewport_size(FOLD)
    expert = await open_console(browser, live, "/expert", "kela")
    await take_kela_ticket(kiosk.page)
    await expert.page.wait_for_selector("#queues td.num")
    await expert.page.click("#take-next")
    await kiosk.page.wait_for_selector("#screen-call:not([hidden])")
    await wait_frames_growing(kiosk.page)
    await wait_frames_growing(expert.page)
    await kiosk.page.wait_for_selector("#tile-expert.has-video")
    assert not await kiosk.page.is_visible(NOTICE)
    return kiosk, expert


async def debug(page: Any, name: str) -> Any:
    return await page.evaluate(f"() => (window.__etapalvelu || {{}})[{name!r}]")


async def notice_kind(page: Any) -> str:
    return str(await page.get_attribute(NOTICE, "data-notice") or "")


async def test_media_stall_notice_and_language(browser: Any, live_service: LiveService) -> None:
    """The expert's picture stops (his camera track taken off the sender): within moments the
    kiosk covers the frozen frame with a notice, in the language on screen; when frames come
    again, it goes."""
    kiosk, expert = await in_call(browser, live_service)
    page = kiosk.page
    started = time.monotonic()
    await expert.page.evaluate(
        """() => {
          const pc = window.__etapalvelu.pc;
          const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
          window.__savedSender = sender;
          window.__savedTrack = sender.track;
          return sender.replaceTrack(null);
        }"""
    )
    await page.wait_for_selector(f"{NOTICE}:not([hidden])", timeout=10000)
    print(f"media-lost notice after {1000 * (time.monotonic() - started):.0f} ms")
    assert await notice_kind(page) == "media-lost"
    text = await page.text_content(NOTICE)
    assert text == "Yhteys asiantuntijaan katkesi — yhdistetään uudelleen…"
    await screenshot(page, "kiosk-notice-media-lost-fi")

    await page.click("#language-switcher button[data-lang=sv]")
    assert await page.text_content(NOTICE) == "Anslutningen till experten bröts — ansluter igen…"
    await screenshot(page, "kiosk-notice-media-lost-sv")
    await page.click("#language-switcher button[data-lang=en]")
    assert await page.text_content(NOTICE) == "Connection to the expert lost — reconnecting…"
    await page.click("#language-switcher button[data-lang=fi]")

    # The expert's own tile of the customer is not affected.
    assert not await expert.page.is_visible("#tile-customer .tile-notice")
    started = time.monotonic()
    await expert.page.evaluate("() => window.__savedSender.replaceTrack(window.__savedTrack)")
    await page.wait_for_selector(NOTICE, state="hidden", timeout=10000)
    print(f"notice cleared {1000 * (time.monotonic() - started):.0f} ms after frames resumed")
    await wait_frames_growing(page)
    kinds = [n["kind"] for n in await debug(page, "notices")]
    assert "media-lost" in kinds, kinds
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_kiosk_socket_reconnect_rejoins(browser: Any, live_service: LiveService) -> None:
    """The kiosk's socket.io connection drops: the kiosk joins the call again on the new
    socket (a fresh peer connection) and video flows both ways again; the documents panel
    and the call screen stay as they were."""
    kiosk, expert = await in_call(browser, live_service)
    page = kiosk.page
    await page.wait_for_selector("#document-panel-mount > *")
    await page.evaluate(
        "() => { document.querySelector('#document-panel-mount > *').dataset.keep = 'yes'; }"
    )
    old_pc_id = await page.evaluate("() => { window.__oldPc = window.__etapalvelu.pc; return 1; }")
    assert old_pc_id == 1
    assert (await debug(page, "rejoins")) in (None, 0)

    started = time.monotonic()
    await page.evaluate("() => window.__etapalvelu.kiosk.socket.io.engine.close()")
    await page.wait_for_function(
        "() => (window.__etapalvelu.rejoins || 0) >= 1 && "
        "window.__etapalvelu.mediaState === 'connected'",
        timeout=30000,
    )
    print(f"rejoined and connected {1000 * (time.monotonic() - started):.0f} ms after the drop")
    assert await page.evaluate("() => window.__etapalvelu.pc !== window.__oldPc")
    await wait_frames_growing(page)
    await wait_frames_growing(expert.page)
    await page.wait_for_selector(NOTICE, state="hidden", timeout=10000)
    # Same call screen, same documents panel (not mounted afresh).
    assert await page.is_visible("#screen-call")
    assert await page.get_attribute("#document-panel-mount > *", "data-keep") == "yes"
    assert await page.is_visible("#end-call")
    kinds = [n["kind"] for n in await debug(page, "notices") or []]
    print(f"kiosk notices during the reconnect: {kinds}")
    await screenshot(page, "kiosk-call-after-rejoin")
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_kiosk_rejoins_when_relay_link_is_lost(
    browser: Any, live_service: LiveService
) -> None:
    """The relay drops the kiosk's media session (as when it gives a participant up): the
    kiosk's peer connection goes disconnected/failed and the kiosk joins afresh by itself,
    without a socket reconnect."""
    kiosk, expert = await in_call(browser, live_service)
    page = kiosk.page
    room_id = await page.evaluate("() => window.__etapalvelu.kiosk.call.room_id")
    participant_id = await page.evaluate("() => window.__etapalvelu.kiosk.media.participantId")
    relay = live_service.services.relay
    assert relay is not None
    started = time.monotonic()
    await relay.leave(room_id, participant_id)
    await page.wait_for_function("() => (window.__etapalvelu.rejoins || 0) >= 1", timeout=30000)
    reason = await debug(page, "lastRejoinReason")
    print(
        f"rejoin ({reason}) {1000 * (time.monotonic() - started):.0f} ms after the relay "
        "dropped the session"
    )
    assert reason in ("ice_failed", "ice_disconnected", "connect_timeout")
    await page.wait_for_function(
        "() => window.__etapalvelu.mediaState === 'connected'", timeout=30000
    )
    await wait_frames_growing(page)
    await wait_frames_growing(expert.page)
    await page.wait_for_selector(NOTICE, state="hidden", timeout=10000)
    kinds = [n["kind"] for n in await debug(page, "notices") or []]
    print(f"kiosk notices: {kinds}")
    assert "connection-lost" in kinds, kinds
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_kiosk_end_call_button(browser: Any, live_service: LiveService) -> None:
    """ "Lopeta puhelu" is always in sight at 1280×800, asks once, and ends the call: the
    customer gets the thank-you screen, the expert sees that the customer ended it.
    Needs the server contract: `call:end` allowed for the call's own kiosk."""
    kiosk, expert = await in_call(browser, live_service)
    page = kiosk.page
    box = await page.locator("#end-call").bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= FOLD["height"], box
    assert box["height"] >= 64, box
    assert await page.text_content("#end-call") == "Lopeta puhelu"
    await screenshot(page, "kiosk-call-end-button")

    # "Ei" keeps the call.
    await page.click("#end-call")
    await page.wait_for_selector("#end-call-dialog[open]")
    assert await page.text_content("#end-call-question") == "Haluatko lopettaa puhelun?"
    await screenshot(page, "kiosk-end-call-confirm")
    await page.click("#end-call-no")
    await page.wait_for_selector("#end-call-dialog", state="hidden")
    assert await page.is_visible("#screen-call")

    # "Kyllä" ends it.
    await page.click("#end-call")
    await page.click("#end-call-yes")
    await page.wait_for_selector("#screen-ended:not([hidden])", timeout=10000)
    await screenshot(page, "kiosk-ended-by-customer")
    await expert.page.wait_for_selector("#view-record:not([hidden])", timeout=10000)
    notice = await expert.page.text_content("#notice")
    print(f"expert's notice: {notice!r}")
    assert notice == "Asiakas lopetti puhelun."
    await screenshot(expert.page, "expert-call-ended-by-customer")
    kiosk.assert_no_errors()
    expert.assert_no_errors()


async def test_expert_page_closed_then_expert_lost(browser: Any, tmp_path: Path) -> None:
    """The expert's browser closes mid-call. The kiosk says at once that the picture stopped,
    then that the expert left, and when he does not come back the customer may go on in the
    line at its head. The last two steps need the server contract (`gone_reason`,
    `expert_lost`, `ticket:requeue`)."""
    settings = lifecycle_settings(
        expert_return_seconds=3, empty_call_seconds=30, call_watch_interval=0.5
    )
    async with make_live_service(tmp_path, **settings) as live:
        kiosk, expert = await in_call(browser, live)
        page = kiosk.page
        name = await page.evaluate(
            "() => window.__etapalvelu.kiosk.participants.find(p => p.role === 'expert').name"
        )
        started = time.monotonic()
        await expert.close()
        await page.wait_for_selector(f"{NOTICE}:not([hidden])", timeout=15000)
        first = await notice_kind(page)
        print(f"first notice {first!r} after {1000 * (time.monotonic() - started):.0f} ms")
        assert first in ("media-lost", "participant-left")
        await screenshot(page, "kiosk-expert-gone-first-notice")

        # Contract: call:participants says the expert is gone (gone_reason).
        await page.wait_for_selector(
            f"{NOTICE}[data-notice=participant-left]:not([hidden])", timeout=30000
        )
        print(f"expert-left notice after {1000 * (time.monotonic() - started):.0f} ms")
        text = await page.text_content(NOTICE)
        assert text == f"Asiantuntija {name} poistui puhelusta. Odotetaan hetki…"
        await screenshot(page, "kiosk-expert-left")

        # Contract: after expert_return_seconds the call ends with reason expert_lost.
        await page.wait_for_selector("#screen-lost:not([hidden])", timeout=30000)
        print(f"expert_lost screen after {1000 * (time.monotonic() - started):.0f} ms")
        assert await page.text_content("#lost-title") == "Asiantuntija ei palannut puheluun."
        assert await page.text_content("#lost-requeue") == "Jatka jonossa — olet jonon kärjessä"
        await screenshot(page, "kiosk-expert-lost")

        # A reload (or a kiosk that missed the push) gets the offer again from flow:sync.
        await page.reload()
        await page.wait_for_selector("#screen-lost:not([hidden])", timeout=15000)

        # Contract: ticket:requeue puts him first in the line.
        await page.click("#lost-requeue")
        await page.wait_for_selector("#screen-ticket:not([hidden])", timeout=10000)
        position = await page.evaluate("() => window.__etapalvelu.kiosk.ticket.position")
        assert position == 1
        assert await page.text_content("#ticket-position") == "Olet seuraavana vuorossa."
        await screenshot(page, "kiosk-requeued-ticket")
        kiosk.assert_no_errors()
