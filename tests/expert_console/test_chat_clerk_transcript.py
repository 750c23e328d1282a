"""The clerk in the call's chat and the transcript in the service record (issue 18), in real
Chromium through the real service: the office's clerk opens the chat of a call at his office,
publishes call keys of his own (role "clerk") and chats both ways with the kiosk in Swedish; the
server relays ciphertext only (what it emitted is recorded and searched for the words). The
expert then attaches the transcript: the filed, signed service record carries its SHA-256, which
this test computes again from the messages it sent (docs/document-protocol.md §8). The clerk
closes the chat, misses a message, and opens it again with a new key: the kiosk and the expert
both send him the chat (`chat:history`), and he sees every message once, in order."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from signaling.flow.flow_common import participant_id_for
from signaling.store.models import Endpoint, User
from signaling.wire.canonical import canonical_json
from tests.expert_console.people import open_console, open_kiosk
from tests.expert_console.test_chat import chat_emits, chat_items, start_chat_call, type_on_screen
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]
__all__ = ["chat_emits"]  # the fixture

KIOSK_CHAT = "#documents [data-testid=chat]"
CONSOLE_CHAT = "#document-panel-mount [data-testid=chat]"
CLERK_CHAT = "#clerk-chat-mount [data-testid=chat]"


async def names(live: LiveService) -> dict[str, tuple[str, str]]:
    """participant id and attested name of the kiosk, the expert and the clerk."""
    async with live.services.sessions() as session:
        users = {
            u.username: u
            for u in (
                await session.scalars(select(User).where(User.username.in_(["kela", "sihteeri"])))
            ).all()
        }
        endpoint = await session.get(Endpoint, live.demo.endpoint_id)
        assert endpoint is not None
        return {
            "customer": (participant_id_for("endpoint", endpoint.id, ""), endpoint.name),
            "expert": (
                participant_id_for("user", users["kela"].id, ""),
                users["kela"].display_name,
            ),
            "clerk": (
                participant_id_for("user", users["sihteeri"].id, ""),
                users["sihteeri"].display_name,
            ),
        }


async def test_clerk_chats_and_the_transcript_goes_into_the_record(
    browser: Any, live_service: LiveService, chat_emits: dict[str, list[str]]
) -> None:
    live = live_service
    relayed = chat_emits["chat:message"]
    who = await names(live)
    clerk_pid = who["clerk"][0]
    kiosk = await open_kiosk(browser, live)
    expert = await open_console(browser, live, "/expert", "kela")
    clerk = await open_console(browser, live, "/expert", "sihteeri", axe=True)
    try:
        await start_chat_call(kiosk, expert)

        # The clerk, in Swedish, opens the chat of the call at his office.
        await clerk.page.click("#language-switcher button[data-lang=sv]")
        await kiosk.page.click("#language-switcher button[data-lang=sv]")
        await clerk.page.wait_for_selector("#office-calls li.clerk-call .chat-row", timeout=20000)
        await clerk.page.click("#office-calls li.clerk-call .chat-row")
        await clerk.page.wait_for_selector(f"{CLERK_CHAT} [data-testid=chat-input]", timeout=15000)
        assert await clerk.page.text_content(f"{CLERK_CHAT} h4") == "Meddelanden"
        # The kiosk and the expert have his attested key (he is in their safety codes too).
        for page, panel in ((kiosk.page, "#documents"), (expert.page, "#document-panel-mount")):
            await page.wait_for_selector(
                f"{panel} [data-testid=documents-codes] li[data-participant='{clerk_pid}']",
                state="attached",
                timeout=15000,
            )
        # ... but he is no recipient of documents.
        assert (
            await expert.page.locator(
                f"#document-panel-mount [data-testid=documents-recipients] "
                f"input[data-participant='{clerk_pid}']"
            ).count()
            == 0
        )

        clerk_text = "Hej, jag kommer strax till kiosken."
        await clerk.page.fill(f"{CLERK_CHAT} [data-testid=chat-input]", clerk_text)
        await clerk.page.click(f"{CLERK_CHAT} [data-testid=chat-send]")
        from_clerk = f"{KIOSK_CHAT} li.theirs[data-role=clerk]:has-text('{clerk_text}')"
        await kiosk.page.wait_for_selector(from_clerk, timeout=15000)
        assert "(servicesekreterare)" in (await kiosk.page.text_content(from_clerk) or "")
        await expert.page.wait_for_selector(
            f"{CONSOLE_CHAT} li.theirs[data-role=clerk]:has-text('{clerk_text}')", timeout=15000
        )

        kiosk_text = "tack jag väntar"
        await kiosk.page.click(f"{KIOSK_CHAT} [data-testid=chat-write]")
        await kiosk.page.wait_for_selector(".chat-dialog[open]")
        await type_on_screen(kiosk.page, kiosk_text)
        await kiosk.page.click(".chat-dialog [data-testid=chat-send]")
        await kiosk.page.wait_for_selector(".chat-dialog", state="hidden")
        await clerk.page.wait_for_selector(
            f"{CLERK_CHAT} li.theirs:has-text('{kiosk_text}')", timeout=15000
        )

        expert_text = "Tack, jag ser era meddelanden."
        await expert.page.fill(f"{CONSOLE_CHAT} [data-testid=chat-input]", expert_text)
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-send]")
        await clerk.page.wait_for_selector(
            f"{CLERK_CHAT} li.theirs:has-text('{expert_text}')", timeout=15000
        )
        await kiosk.page.wait_for_selector(
            f"{KIOSK_CHAT} li.theirs:has-text('{expert_text}')", timeout=15000
        )
        await screenshot(clerk.page, "clerk-chat")
        await screenshot(kiosk.page, "kiosk-chat-with-clerk")
        await assert_axe_clean(clerk.page, "clerk with the call's chat")

        # The server relayed three messages and never saw a word of them.
        assert len(relayed) == 3, relayed
        for words in ("strax", "kiosken", "väntar", "meddelanden"):
            assert all(words not in payload for payload in relayed), words

        # The expert attaches the transcript; the test builds it again from what was sent.
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-attach]")
        await expert.page.wait_for_selector(
            f"{CONSOLE_CHAT} [data-testid=chat-attach-status]:has-text('SHA-256')"
        )
        await screenshot(expert.page, "expert-chat-transcript-attached")
        sent_at = await expert.page.eval_on_selector_all(
            f"{CONSOLE_CHAT} li[data-testid=chat-message]",
            "items => items.map(i => i.dataset.sentAt)",
        )
        call_id = await expert.page.evaluate("() => window.__etapalvelu.expert.call.id")
        sent = [("clerk", clerk_text), ("customer", kiosk_text), ("expert", expert_text)]
        assert len(sent_at) == len(sent)
        transcript = canonical_json(
            {
                "v": 1,
                "type": "etapalvelu.chat_transcript",
                "call_id": call_id,
                "messages": [
                    {
                        "at": at,
                        "from": who[role][0],
                        "name": who[role][1],
                        "role": role,
                        "text": text,
                    }
                    for at, (role, text) in zip(sent_at, sent, strict=True)
                ],
            }
        )
        expected = hashlib.sha256(transcript).hexdigest()
        async with expert.page.expect_download() as download_info:
            await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-save]")
        saved = await (await download_info.value).path()
        assert saved is not None
        assert await asyncio.to_thread(Path(saved).read_bytes) == transcript

        # The clerk closes the chat: his keys go (the others stop sealing to him).
        await clerk.page.click("#clerk-chat-close")
        await expert.page.wait_for_selector(
            f"#document-panel-mount [data-testid=documents-codes] "
            f"li[data-participant='{clerk_pid}']",
            state="detached",
            timeout=15000,
        )

        # A message he is not there for; then he opens the chat again, with a new key: the
        # kiosk and the expert each send him what they hold, and he sees every message once.
        missed = "Asiakas odottaa vielä hetken."
        await expert.page.fill(f"{CONSOLE_CHAT} [data-testid=chat-input]", missed)
        await expert.page.click(f"{CONSOLE_CHAT} [data-testid=chat-send]")
        await kiosk.page.wait_for_selector(f"{KIOSK_CHAT} li:has-text('{missed}')", timeout=15000)
        await clerk.page.click("#office-calls li.clerk-call .chat-row")
        await clerk.page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length >= n",
            arg=[f"{CLERK_CHAT} li[data-testid=chat-message]", 4], timeout=15000)
        # Both holders answered, each sealed to him alone; the second copy adds nothing.
        pages = chat_emits["chat:history"]
        expected_senders = {who["customer"][0], who["expert"][0]}
        for _ in range(500):
            if {json.loads(p)["sender"] for p in pages} == expected_senders:
                break
            await asyncio.sleep(0.02)
        assert {json.loads(p)["sender"] for p in pages} == expected_senders, pages
        assert all(json.loads(p)["envelope"]["keys"].keys() == {clerk_pid} for p in pages)
        assert all(word not in p for p in pages for word in ("strax", "väntar", "odottaa"))
        await asyncio.sleep(0.3)
        again = await chat_items(clerk.page, CLERK_CHAT)
        assert [(m["from"], m["mine"], m["text"]) for m in again] == [
            (clerk_pid, "true", clerk_text), (who["customer"][0], "false", kiosk_text),
            (who["expert"][0], "false", expert_text), (who["expert"][0], "false", missed)]
        assert [m["at"] for m in again[:3]] == sent_at
        await clerk.page.click("#clerk-chat-close")

        # The call ends, the expert files the record: it carries the transcript's hash.
        await expert.page.click("#end-call")
        await expert.page.wait_for_selector("#view-record:not([hidden])")
        await expert.page.check("#outcome-resolved")
        await expert.page.click("#record-form button[type=submit]")
        await expert.page.wait_for_selector("#view-queues:not([hidden])")
        from signaling.records.service_log import entry_view, iter_entries

        async with live.services.sessions() as session:
            entries = [entry_view(e) async for e in iter_entries(session)]
        [record] = [
            e for e in entries if e["kind"] == "service" and e["body"]["call_id"] == call_id
        ]
        assert record["body"]["chat_transcript"] == {
            "sha256": expected,
            "size": len(transcript),
            "messages": 3,
        }
        assert record["signature"]  # signed with the rest of the record
        # ... and nothing of the text anywhere in the log.
        assert all(words not in json.dumps(entries) for words in ("strax", "väntar"))
        kiosk.assert_no_errors()
        expert.assert_no_errors()
        clerk.assert_no_errors()
    finally:
        await kiosk.close()
        await expert.close()
        await clerk.close()
