"""Text chat in a call (issue 18), in real Chromium through the real service: the customer
writes on the kiosk's on-screen keyboard, the expert answers with a quick phrase and his own
words, both ways in Finnish and Swedish; the server relays ciphertext only (what it emitted is
recorded and searched for the words); a link stays text at the kiosk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.expert_console.people import open_console, open_kiosk
from tests.expert_console.test_call_flow import take_kela_ticket
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KIOSK_CHAT = "#documents [data-testid=chat]"
CONSOLE_CHAT = "#document-panel-mount [data-testid=chat]"


async def type_on_screen(page: Any, text: str) -> None:
    """Press the on-screen keys of the kiosk's chat keyboard, one per character."""
    for ch in text:
        if ch == " ":
            await page.click(".chat-dialog .chat-key.wide")
        else:
            await page.click(f".chat-dialog .chat-key:text-is('{ch}')")


async def test_chat_both_ways_with_ciphertext_only_on_the_server(
    browser: Any, live_service: LiveService
) -> None:
    relayed: list[str] = []
    sio = live_service.services.sio
    original_emit = sio.emit

    async def recording_emit(event: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if event == "chat:message":
            relayed.append(json.dumps(data))
        return await original_emit(event, data, *args, **kwargs)

    sio.emit = recording_emit  # type: ignore[method-assign]
    kiosk = await open_kiosk(browser, live_service)
    expert = await open_console(browser, live_service, "/expert", "kela")
    try:
        await take_kela_ticket(kiosk)
        await expert.page.wait_for_selector("#queues td.num")
        await expert.page.click("#take-next")
        await kiosk.page.wait_for_selector(f"{KIOSK_CHAT} [data-testid=chat-write]", timeout=20000)
        await expert.page.wait_for_selector(f"{CONSOLE_CHAT} [data-testid=chat-input]",
                                            timeout=20000)

        # The customer writes on the on-screen keyboard (the kiosk has no other).
        await kiosk.page.click(f"{KIOSK_CHAT} [data-testid=chat-write]")
        await kiosk.page.wait_for_selector(".chat-dialog[open]")
        await screenshot(kiosk.page, "kiosk-chat-keyboard")
        await type_on_screen(kiosk.page, "en kuule ääntä")
        await kiosk.page.click(".chat-dialog [data-testid=chat-send]")
        await kiosk.page.wait_for_selector(".chat-dialog", state="hidden")
        await expert.page.wait_for_selector(
            f"{CONSOLE_CHAT} li.theirs:has-text('en kuule ääntä')", timeout=15000)

        # The expert answers with a quick phrase (Finnish: the call's language) and a link.
        await expert.page.click(f"{CONSOLE_CHAT} .chat-phrase-box summary")
        phrase = "Hetkinen, tarkistan asian."
        await expert.page.click(f"{CONSOLE_CHAT} .chat-phrase:text-is('{phrase}')")
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-send]")
        await kiosk.page.wait_for_selector(
            f"{KIOSK_CHAT} li.theirs:has-text('Hetkinen, tarkistan asian.')", timeout=15000)
        await expert.page.fill(f"{CONSOLE_CHAT} [data-testid=chat-input]",
                               "Lomake: https://www.kela.fi/lomakkeet")
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-send]")
        link_item = f"{KIOSK_CHAT} li.theirs:has-text('https://www.kela.fi/lomakkeet')"
        await kiosk.page.wait_for_selector(link_item, timeout=15000)
        assert await kiosk.page.locator(f"{KIOSK_CHAT} a").count() == 0  # text, not a link

        # Swedish at the kiosk mid-call: the chat speaks Swedish, and a Swedish phrase goes.
        await kiosk.page.click("#language-switcher button[data-lang=sv]")
        await kiosk.page.wait_for_selector(f"{KIOSK_CHAT} h4:text-is('Meddelanden')")
        assert await kiosk.page.text_content(f"{KIOSK_CHAT} [data-testid=chat-write]") == (
            "Skriv ett meddelande")
        await expert.page.select_option(f"{CONSOLE_CHAT} .chat-phrase-language", "sv")
        await expert.page.click(f"{CONSOLE_CHAT} .chat-phrase:text-is('Hör ni mig?')")
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-send]")
        await kiosk.page.wait_for_selector(f"{KIOSK_CHAT} li.theirs:has-text('Hör ni mig?')",
                                           timeout=15000)
        await kiosk.page.click(f"{KIOSK_CHAT} [data-testid=chat-write]")
        await type_on_screen(kiosk.page, "ja tack")
        await kiosk.page.click(".chat-dialog [data-testid=chat-send]")
        await expert.page.wait_for_selector(
            f"{CONSOLE_CHAT} li.theirs:has-text('ja tack')", timeout=15000)
        await screenshot(kiosk.page, "kiosk-chat")
        await screenshot(expert.page, "expert-chat")
        await assert_axe_clean(kiosk.page, "kiosk with chat")
        await assert_axe_clean(expert.page, "console with chat")

        # The server relayed five messages and never saw a word of them.
        assert len(relayed) == 5, relayed
        for words in ("kuule", "Hetkinen", "kela.fi", "Hör ni", "tack"):
            assert all(words not in payload for payload in relayed), words
        kiosk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        sio.emit = original_emit  # type: ignore[method-assign]
        await kiosk.close()
        await expert.close()
