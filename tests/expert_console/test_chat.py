"""Text chat in a call (issue 18), in real Chromium through the real service: the customer
writes on the kiosk's on-screen keyboard, the expert answers with a quick phrase and his own
words, both ways in Finnish and Swedish; the server relays ciphertext only (what it emitted is
recorded and searched for the words); a link stays text at the kiosk. The expert then reloads
his console mid-call: the kiosk sends the chat to his new key (`chat:history`), so his chat
shows the earlier messages in order with their senders and times, new messages reach both, and
the transcript he attaches holds the messages from before his reload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
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


@pytest.fixture
def chat_emits(live_service: LiveService) -> Iterator[dict[str, list[str]]]:
    """What the server emits of the chat during the test, as JSON text by event
    (`chat:message`, `chat:history`): the tests search it for the words it must never see."""
    emitted: dict[str, list[str]] = {"chat:message": [], "chat:history": []}
    sio = live_service.services.sio
    original_emit = sio.emit

    async def recording_emit(event: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if event in emitted:
            emitted[event].append(json.dumps(data))
        return await original_emit(event, data, *args, **kwargs)

    sio.emit = recording_emit  # type: ignore[method-assign]
    yield emitted
    sio.emit = original_emit  # type: ignore[method-assign]


async def start_chat_call(kiosk: Any, expert: Any) -> None:
    """The kiosk takes a Kela ticket and the expert takes it: both sides' chats are ready."""
    await take_kela_ticket(kiosk)
    await expert.page.wait_for_selector("#queues td.num")
    await expert.page.click("#take-next")
    await kiosk.page.wait_for_selector(f"{KIOSK_CHAT} [data-testid=chat-write]", timeout=20000)
    await expert.page.wait_for_selector(f"{CONSOLE_CHAT} [data-testid=chat-input]", timeout=20000)


CHAT_ITEMS_JS = """items => items.map(i => ({
  mine: i.dataset.mine, from: i.dataset.from, role: i.dataset.role, at: i.dataset.sentAt,
  text: i.querySelector('.chat-text').textContent }))"""


async def chat_items(page: Any, chat: str) -> list[dict[str, str]]:
    """The messages a chat shows, in order: mine or not, sender id, role, sent at, text."""
    items: list[dict[str, str]] = await page.eval_on_selector_all(
        f"{chat} li[data-testid=chat-message]", CHAT_ITEMS_JS)
    return items


# In the page, against the real modules: a history page opens only as one, from its holder,
# for this call; a malformed page is refused and changes nothing; copies merge by message id
# in the holders' order, and a copy that differs marks its message.
HISTORY_IN_BROWSER = """async () => {
  const c = await import("/static/common/js/document-crypto.js");
  const { CallChat } = await import("/static/common/js/chat.js");
  const holder = await c.generateCallKey(2), me = await c.generateCallKey(2);
  const to = { participantId: "user-2", publicBytes: me.publicBytes };
  const ctx = { callId: 7, myId: "user-2", senderId: "endpoint-1",
                senderPublic: holder.publicBytes };
  const id = (n) => c.b64u(new Uint8Array(16).fill(n));
  const msg = (n, text, extra = {}) => ({ id: id(n), from: "user-3", name: "Tulkki",
    role: "interpreter", sent_at: "2025-01-02T09:00:0" + n + ".000Z", text, ...extra });
  const seal = (messages, after = "") => c.sealChatHistory(messages, holder, to,
    { callId: 7, senderId: "endpoint-1", after });
  const code = async (promise) => {
    try { await promise; return "opened"; } catch (e) { return e.code; }
  };
  const out = {};
  const good = await seal([msg(1, "yksi"), msg(2, "kaksi")]);
  out.good = (await c.openChatHistory(good, me, ctx)).messages.map((m) => m.text);
  out.asMessage = await code(c.openChat(good, me, ctx));
  out.otherCall = await code(c.openChatHistory(good, me, { ...ctx, callId: 8 }));
  out.otherHolder = await code(c.openChatHistory(good, me, { ...ctx, senderId: "user-9" }));
  const live = await c.sealChat("hei", holder, [to], { callId: 7, senderId: "endpoint-1" });
  out.messageAsPage = await code(c.openChatHistory(live, me, ctx));
  out.bad = {};
  for (const [name, messages] of Object.entries({
    none: [], badId: [msg(1, "x", { id: "short" })], duplicate: [msg(1, "x"), msg(1, "y")],
    empty: [msg(1, "  ")], long: [msg(1, "x".repeat(2001))],
    time: [msg(1, "x", { sent_at: "eilen" })],
    from: [msg(1, "x", { from: "a b" })], role: [msg(1, "x", { role: "Admin!" })],
  })) out.bad[name] = await code(c.openChatHistory(await seal(messages), me, ctx));
  out.badAfter = await code(c.openChatHistory(await seal([msg(1, "x")], "nope"), me, ctx));
  out.oversized = await code(seal(Array.from({ length: 20 }, (_, i) => msg(i, "x".repeat(2000)))));
  // The chat itself, on a stand-in channel whose key list has the holder.
  const peers = new Map([["endpoint-1", { 2: { suite: 2, public_key: c.b64u(holder.publicBytes),
                                               name: "Kioski", role: "customer" } }]]);
  const channel = Object.assign(new EventTarget(), { socket: { on() {}, off() {} }, callId: 7,
    participantId: "user-2", peers, keys: { 2: me }, chatPeople: () => ["endpoint-1"],
    chatHistory: [] });
  const chat = new CallChat(channel);
  chat.add({ id: id(9), text: "live", mine: false, name: "Kioski", role: "customer",
             from: "endpoint-1", sentAt: "2025-01-02T09:00:09.000Z", at: new Date() });
  const texts = () => chat.messages.map((m) => m.text);
  out.refusedPage = await code(chat.receiveHistory({ call_id: 7, sender: "endpoint-1",
    envelope: await seal([msg(1, "x"), msg(1, "y")]) }));
  out.afterRefused = texts();
  await chat.receiveHistory({ call_id: 7, sender: "endpoint-1", envelope: good });
  out.afterFirst = texts();
  chat.merge({ after: "", messages: [msg(1, "yksi"), msg(3, "kolme"), msg(2, "kaksi")] }, "user-4");
  out.afterSecond = texts();
  chat.merge({ after: id(1), messages: [msg(3, "KOLME")] }, "user-5");
  out.disputed = chat.messages.filter((m) => m.disputed).map((m) => m.text);
  out.afterThird = texts();
  out.names = chat.messages.map((m) => m.name);
  chat.destroy();
  return out;
}"""


async def test_chat_both_ways_with_ciphertext_only_on_the_server(
    browser: Any, live_service: LiveService, chat_emits: dict[str, list[str]]
) -> None:
    relayed, history = chat_emits["chat:message"], chat_emits["chat:history"]
    kiosk = await open_kiosk(browser, live_service)
    expert = await open_console(browser, live_service, "/expert", "kela")
    try:
        await start_chat_call(kiosk, expert)

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
        assert history == []  # nobody's key changed yet

        # The expert reloads mid-call: his new page has a new call key and no messages; the
        # kiosk, which holds them, seals them to the new key and sends them.
        before = await chat_items(expert.page, CONSOLE_CHAT)
        assert [m["text"] for m in before] == [
            "en kuule ääntä", "Hetkinen, tarkistan asian.", "Lomake: https://www.kela.fi/lomakkeet",
            "Hör ni mig?", "ja tack"]
        await expert.page.reload()
        await expert.page.wait_for_selector("#view-call:not([hidden])", timeout=20000)
        await expert.page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length >= n",
            arg=[f"{CONSOLE_CHAT} li[data-testid=chat-message]", len(before)], timeout=20000)
        # In order, with their senders (his own as his) and the senders' times, none twice.
        assert await chat_items(expert.page, CONSOLE_CHAT) == before
        await screenshot(expert.page, "expert-chat-after-reload")

        # New messages after the reload reach both sides, after the earlier ones.
        await expert.page.fill(f"{CONSOLE_CHAT} [data-testid=chat-input]", "Olen taas linjoilla.")
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-send]")
        await kiosk.page.wait_for_selector(
            f"{KIOSK_CHAT} li.theirs:has-text('Olen taas linjoilla.')", timeout=15000)
        await kiosk.page.click(f"{KIOSK_CHAT} [data-testid=chat-write]")
        await type_on_screen(kiosk.page, "bra")
        await kiosk.page.click(".chat-dialog [data-testid=chat-send]")
        await expert.page.wait_for_selector(
            f"{CONSOLE_CHAT} li.theirs:has-text('bra')", timeout=15000)
        after = await chat_items(expert.page, CONSOLE_CHAT)
        assert after[:5] == before
        assert [(m["mine"], m["text"]) for m in after[5:]] == [
            ("true", "Olen taas linjoilla."), ("false", "bra")]
        kiosk_texts = [m["text"] for m in await chat_items(kiosk.page, KIOSK_CHAT)]
        assert kiosk_texts == [m["text"] for m in after]

        # The transcript he attaches holds the messages from before his reload.
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-attach]")
        await expert.page.wait_for_selector(
            f"{CONSOLE_CHAT} [data-testid=chat-attach-status]:has-text('SHA-256')")
        async with expert.page.expect_download() as download_info:
            await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-save]")
        saved = await (await download_info.value).path()
        assert saved is not None
        transcript = json.loads(await asyncio.to_thread(Path(saved).read_bytes))
        assert [(m["from"], m["at"], m["text"]) for m in transcript["messages"]] == [
            (m["from"], m["at"], m["text"]) for m in after]
        assert [m["role"] for m in transcript["messages"]] == [
            "customer", "expert", "expert", "expert", "customer", "expert", "customer"]

        # The history went as ciphertext only, too, and only to the expert.
        assert len(relayed) == 7, relayed
        assert history, "the kiosk sent no history"
        expert_pid = before[1]["from"]
        for payload in history:
            assert json.loads(payload)["envelope"]["keys"].keys() == {expert_pid}
        for words in ("kuule", "Hetkinen", "kela.fi", "Hör ni", "tack", "linjoilla"):
            assert all(words not in payload for payload in relayed + history), words

        checked = await expert.page.evaluate(HISTORY_IN_BROWSER)
        assert checked["good"] == ["yksi", "kaksi"]
        for case in ("asMessage", "otherCall", "otherHolder", "messageAsPage"):
            assert checked[case] == "chunk_auth", (case, checked[case])
        assert checked["bad"] == dict.fromkeys(checked["bad"], "metadata"), checked["bad"]
        assert len(checked["bad"]) == 8
        assert checked["badAfter"] == "metadata" and checked["oversized"] == "too_large"
        assert checked["refusedPage"] == "metadata"
        assert checked["afterRefused"] == ["live"]  # a refused page changes nothing
        assert checked["afterFirst"] == ["yksi", "kaksi", "live"]
        assert checked["afterSecond"] == ["yksi", "kolme", "kaksi", "live"]
        assert checked["disputed"] == ["kolme"] and checked["afterThird"] == checked["afterSecond"]
        assert checked["names"] == ["Tulkki", "Tulkki", "Tulkki", "Kioski"]  # left: as forwarded
        kiosk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        await kiosk.close()
        await expert.close()
