"""The kiosk's "ended" screen in real Chromium (issue 17): the receipt of the call, shown and
printed alone, and the one feedback question with three faces, in Finnish and Swedish, counted
anonymously. The expert is a python-socketio client (his console is not what is tested)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select

from signaling.db import utcnow
from signaling.records.service_log import record_document
from signaling.store.desk_models import FeedbackTally, Receipt
from tests.endpoint.test_kiosk_call_screen import assert_axe_clean
from tests.expert_console.people import open_kiosk
from tests.signaling.flow_support import call
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_in_viewport

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

VISIBLE_IN_PRINT = """() => Object.fromEntries(
  ["#receipt", "#feedback", "#ended-title", "#ended-start", "#receipt-print", ".kiosk-header",
   ".kiosk-footer"].map((s) => {
     const el = document.querySelector(s);
     return [s, !!el && getComputedStyle(el).display !== "none" && !!el.offsetParent !== false
       && el.getClientRects().length > 0];
   }))"""


async def served_and_ended(page: Any, live: LiveService, expert: Any, lang: str) -> int:
    """The customer takes a Kela ticket on the kiosk, the expert takes him and ends the call
    after a document was received; returns the call id."""
    if lang != "fi":
        await page.click(f"#language-switcher button[data-lang={lang}]")
    await page.click("#authority-list button[data-authority=kela]")
    await page.click("#service-language-list button[data-language=fin]")
    await page.wait_for_selector("#screen-ticket:not([hidden])")
    taken = await call(expert, "queue:take_next", {})
    assert taken["ok"], taken
    call_id = int(taken["call"]["id"])
    await page.wait_for_selector("#screen-call:not([hidden])")
    async with live.services.sessions() as session:
        await record_document(
            session,
            call_id=call_id,
            sha256=hashlib.sha256(f"liite {call_id}".encode()).hexdigest(),
            size=1234,
            type="application/pdf",
            sender="customer",
            receiver="expert",
            received_at=utcnow(),
        )
        await session.commit()
    assert (await call(expert, "call:end", {"call_id": call_id}))["ok"]
    await page.wait_for_selector("#screen-ended:not([hidden])", timeout=15000)
    return call_id


async def tallies(live: LiveService) -> list[tuple[str, str, int]]:
    async with live.services.sessions() as session:
        rows = (await session.execute(select(FeedbackTally))).scalars().all()
        return sorted((r.answer, r.reason, r.count) for r in rows)


async def test_receipt_and_feedback_after_a_call(browser: Any, live_service: LiveService) -> None:
    live = live_service
    kiosk = await open_kiosk(browser, live)
    page = kiosk.page
    expert = await live.connect_user("kela")

    # -- Finnish: the receipt, printed alone; a sad face with a reason --------------------------
    call_id = await served_and_ended(page, live, expert, "fi")
    await page.wait_for_selector("#receipt:not([hidden])")
    async with live.services.sessions() as session:
        receipt = (
            await session.execute(select(Receipt).where(Receipt.call_id == call_id))
        ).scalar_one()
    code = f"{receipt.code[:4]}-{receipt.code[4:]}"
    assert await page.text_content("#receipt-code") == code
    assert await page.text_content("#receipt-office") == "Kirjasto Kallio, Helsinki"
    assert await page.text_content("#receipt-authority") == "Kela"
    assert await page.text_content("#receipt-expert") == "Kaisa Kela-asiantuntija"
    digest = hashlib.sha256(f"liite {call_id}".encode()).hexdigest()
    assert digest in (await page.text_content("#receipt-documents") or "")
    entries = await page.text_content("#receipt-entries") or ""
    assert f"kuitti n:o {receipt.log_seq}" in entries and "puhelun jälkeen" in entries
    assert await page.text_content("#feedback-title") == "Miten asiointi sujui?"
    # Three large faces with words and accessible names.
    faces = page.locator("#feedback-faces .face")
    assert await faces.count() == 3
    for index, (word, label) in enumerate(
        [
            ("Hyvin", "Asiointi sujui hyvin"),
            ("Kohtalaisesti", "Asiointi sujui kohtalaisesti"),
            ("Huonosti", "Asiointi sujui huonosti"),
        ]
    ):
        face = faces.nth(index)
        assert (await face.text_content() or "").strip() == word
        assert await face.get_attribute("aria-label") == label
        box = await face.bounding_box()
        assert box and box["width"] >= 72 and box["height"] >= 72, box
    await assert_axe_clean(page, "ended with receipt fi")
    await assert_in_viewport(
        page, ["#receipt-print", "#feedback-faces", "#ended-start"], "ended fi"
    )
    await screenshot(page, "kiosk-ended-receipt-feedback-fi")

    # The kiosk's printer gets the receipt and nothing else.
    await page.emulate_media(media="print")
    shown = await page.evaluate(VISIBLE_IN_PRINT)
    assert shown == {
        "#receipt": True,
        "#feedback": False,
        "#ended-title": False,
        "#ended-start": False,
        "#receipt-print": False,
        ".kiosk-header": False,
        ".kiosk-footer": False,
    }, shown
    await screenshot(page, "kiosk-receipt-print")
    await page.emulate_media(media="screen")
    # window.print() is what the button does (the kiosk browser prints it silently).
    await page.evaluate(
        "() => { window.__printed = 0; window.print = () => { window.__printed++; }; }"
    )
    await page.click("#receipt-print")
    assert await page.evaluate("() => window.__printed") == 1

    await page.click("#feedback-faces .face[data-answer=bad]")
    await page.wait_for_selector("#feedback-reasons:not([hidden])")
    assert await page.get_attribute(".face[data-answer=bad]", "aria-pressed") == "true"
    await assert_axe_clean(page, "feedback reasons fi")
    await assert_in_viewport(page, ["#feedback-reasons", "#ended-start"], "reasons fi")
    await screenshot(page, "kiosk-feedback-reasons-fi")
    await page.click("#feedback-reasons [data-reason=waiting]")
    await page.wait_for_selector("#feedback-thanks:text('Kiitos palautteesta!')")
    for _ in range(50):
        if await tallies(live) == [("bad", "waiting", 1)]:
            break
        await page.wait_for_timeout(100)
    assert await tallies(live) == [("bad", "waiting", 1)]

    # Back to the start: the receipt leaves the screen with the customer.
    await page.click("#ended-start")
    await page.wait_for_selector("#screen-start:not([hidden])")
    assert await page.is_hidden("#receipt")

    # -- Swedish: a happy face, then straight to the start (counted without a reason) -----------
    await served_and_ended(page, live, expert, "sv")
    await page.wait_for_selector("#receipt:not([hidden])")
    assert await page.text_content("#feedback-title") == "Hur gick ärendet?"
    assert await page.text_content("#receipt-title") == "Kvitto på ärendet"
    assert await page.get_attribute(".face[data-answer=good]", "aria-label") == "Ärendet gick bra"
    assert await page.text_content("#receipt-authority") == "FPA"
    await assert_axe_clean(page, "ended with receipt sv")
    await screenshot(page, "kiosk-ended-receipt-feedback-sv")
    await page.click("#feedback-faces .face[data-answer=good]")
    await page.click("#ended-start")
    await page.wait_for_selector("#screen-start:not([hidden])")
    for _ in range(50):
        if len(await tallies(live)) == 2:
            break
        await page.wait_for_timeout(100)
    assert await tallies(live) == [("bad", "waiting", 1), ("good", "", 1)]

    # -- Skipping is one touch and counts nothing ------------------------------------------------
    await served_and_ended(page, live, expert, "fi")
    await page.click("#feedback-skip")
    assert await page.is_hidden("#feedback")
    await page.click("#ended-start")
    await page.wait_for_selector("#screen-start:not([hidden])")
    await page.wait_for_timeout(300)
    assert await tallies(live) == [("bad", "waiting", 1), ("good", "", 1)]
    kiosk.assert_no_errors()
