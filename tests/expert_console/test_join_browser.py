"""The customer at home in Chromium (issue 18): on a phone viewport through the device check
and the waiting room, admitted by the expert in his console, video both ways through the
relay, a document each way with only ciphertext on the server; the link refused (HTTP 410) to
another browser and when expired, in Finnish and Swedish; a reload and a socket reconnect in the
call go on in it; after leaving, the link opened again leads to the waiting room and the expert
lets him into the same call again, from the overlay on his black video tile. The device check's
result reaches the expert's waiting list. One shared flow (suite time)."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from signaling.store.remote_models import RemoteGuest
from tests.expert_console.people import open_console, wait_frames_growing
from tests.signaling.test_join import remote_appointment
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean, assert_in_viewport

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


async def refused_text(browser: Any, url: str, locale: str) -> str:
    context = await browser.new_context(locale=locale)
    try:
        page = await context.new_page()
        response = await page.goto(url)
        assert response is not None and response.status == 410
        return str(await page.inner_text("main"))
    finally:
        await context.close()


async def test_customer_at_home_joins_from_a_phone(browser: Any, live_service: LiveService) -> None:
    live = live_service
    appointment_id, path = await remote_appointment(live)
    _expired_id, expired = await remote_appointment(live, starts_in=timedelta(hours=-3))
    expert = await open_console(browser, live, "/expert", "kela")

    # bypass_csp only so that the test can inject axe-core (tests/support/ui.py)
    context = await browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, locale="fi-FI", bypass_csp=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await page.goto(f"{live.base_url}{path}")
    assert response is not None and response.status == 200

    # 1. the device and network check
    await page.wait_for_function(
        "() => window.__join && window.__join.checksDone === true", timeout=20000
    )
    await page.wait_for_function("() => window.__join.checks.microphone === 'ok'", timeout=10000)
    checks = await page.evaluate("window.__join.checks")
    assert {k: checks[k] for k in ("camera", "microphone", "relay", "turn")} == {
        "camera": "ok",
        "microphone": "ok",
        "relay": "ok",
        "turn": "skipped",
    }
    assert (await page.evaluate("window.__join.relayPair"))["local"] == "host"
    await page.click("#play-sound")
    await page.click("#heard-yes")
    assert await page.evaluate("window.__join.checks.speaker") == "ok"
    assert await page.inner_text("[data-testid=check-relay]") == "toimii"
    await page.wait_for_function("() => document.getElementById('check-video').videoWidth > 0")
    await assert_in_viewport(page, ["#check-title", "#language-switcher"], "check")
    await assert_axe_clean(page, "join check")
    await screenshot(page, "join-check-phone")

    # 2. the waiting room: the expert's name and the booked time. He says he heard nothing:
    #    the expert's list shows that result of his check (below).
    await page.click("#heard-no")
    await page.click("#continue")
    await page.wait_for_selector("#view-waiting:not([hidden])")
    assert "Kaisa Kela-asiantuntija" in await page.inner_text("#appointment-with")
    assert await page.inner_text("#appointment-when")
    # a reload in the same browser keeps working (the HttpOnly cookie)
    await page.reload()
    await page.wait_for_selector("#view-waiting:not([hidden])")
    await page.wait_for_function(
        "() => document.getElementById('waiting-connection').textContent.length > 0"
    )
    await page.click("#language-switcher button[lang=sv]")
    assert await page.inner_text("#waiting-title") == "Väntrum"
    assert "Du är i väntrummet" in await page.inner_text("#waiting-connection")
    await assert_axe_clean(page, "join waiting")
    await screenshot(page, "join-waiting-phone-sv")

    # another browser with the same link, and an expired link: 410 in Finnish and Swedish
    url = f"{live.base_url}{path}"
    assert "Linkki toimii vain kerran" in await refused_text(browser, url, "fi-FI")
    assert "Länken fungerar bara en gång" in await refused_text(browser, url, "sv-FI")
    assert "vanhentunut" in await refused_text(browser, f"{live.base_url}{expired}", "fi-FI")
    assert "har gått ut" in await refused_text(browser, f"{live.base_url}{expired}", "sv-FI")
    refused_context = await browser.new_context(viewport=PHONE, locale="sv-FI", bypass_csp=True)
    refused = await refused_context.new_page()
    await refused.goto(url)
    await assert_axe_clean(refused, "join refused")
    await screenshot(refused, "join-refused-phone-sv")
    await refused_context.close()

    # 3. the expert sees him waiting and admits him
    admit = expert.page.locator(f"[data-testid=remote-admit][data-appointment='{appointment_id}']")
    await admit.wait_for(timeout=10000)
    await expert.page.wait_for_function(
        "(id) => !document.querySelector("
        "`[data-testid=remote-admit][data-appointment='${id}']`).disabled",
        arg=str(appointment_id),
    )
    row = expert.page.locator(f"#remote-customer-list li[data-appointment='{appointment_id}']")
    await row.locator("[data-testid=remote-check]").wait_for(timeout=10000)
    assert await row.locator("[data-testid=remote-check]").inner_text() == (
        "Yhteystesti: kaiutin ei kuulu"
    )
    assert await row.locator("[data-testid=remote-check]").get_attribute("data-problems") == (
        "speaker"
    )
    # sent once (before the reload above) and then forgotten by his tab
    assert await page.evaluate("() => sessionStorage.getItem('etapalvelu.join.check')") is None
    await screenshot(expert.page, "join-console-waiting")
    await admit.click()
    await page.wait_for_selector("#view-call:not([hidden])", timeout=15000)
    await expert.page.wait_for_selector("#view-call:not([hidden])", timeout=15000)

    # 4. video both ways through the relay
    await wait_frames_growing(page, streams=1, within=25)
    await wait_frames_growing(expert.page, streams=1, within=25)

    # 5. a document each way; the server holds ciphertext only
    for p in (page, expert.page):
        await p.wait_for_function(
            "() => document.querySelectorAll('[data-testid=documents-codes] li').length === 2",
            timeout=15000,
        )
    marker = b"KOTOA-LAHETETTY-SALAINEN-" + hashlib.sha256(b"home").hexdigest().encode()
    pdf = b"%PDF-1.4\n" + marker * 2000
    digest = hashlib.sha256(pdf).hexdigest()
    await page.set_input_files(
        "[data-testid=documents-file]",
        files=[{"name": "tiliote.pdf", "mimeType": "application/pdf", "buffer": pdf}],
    )
    await page.click("[data-testid=documents-send]")
    await expert.page.locator(f"[data-testid=documents-item][data-sha256='{digest}']").wait_for(
        timeout=20000
    )
    png = b"\x89PNG\r\n\x1a\n" + marker * 500
    png_digest = hashlib.sha256(png).hexdigest()
    await expert.page.set_input_files(
        "[data-testid=documents-file]",
        files=[{"name": "paatos.png", "mimeType": "image/png", "buffer": png}],
    )
    await expert.page.click("[data-testid=documents-send]")
    back = page.locator(f"[data-testid=documents-item][data-sha256='{png_digest}']")
    await back.wait_for(timeout=20000)
    await back.locator("[data-testid=documents-verified]").wait_for()
    await screenshot(page, "join-call-phone")

    from signaling.records.service_log import documents_of_call

    call_id = await page.evaluate("window.__etapalvelu.pc ? 1 : 0")
    assert call_id == 1
    async with live.services.sessions() as session:
        guest = (
            await session.execute(
                select(RemoteGuest).where(RemoteGuest.appointment_id == appointment_id)
            )
        ).scalar_one()
        assert guest.call_id is not None
        logged = await documents_of_call(session, guest.call_id)
    assert sorted(d["sha256"] for d in logged) == sorted([digest, png_digest])
    stored = [f for f in live.settings.data_dir.rglob("*") if f.is_file()]
    assert stored and not [f for f in stored if marker in f.read_bytes()]

    # 6. a reload in the call: back in it (the seat in sessionStorage), media both ways, no
    #    new link; the expert's console stays in the call. Then a socket reconnect: the page
    #    rejoins by itself. The link in another browser is still refused.
    started = time.monotonic()
    await page.reload()
    await page.wait_for_selector("#view-call:not([hidden])", timeout=10000)
    await wait_frames_growing(page, streams=1, within=15)
    await wait_frames_growing(expert.page, streams=1, within=15)
    reloaded_in = time.monotonic() - started
    print(f"reload to media both ways: {reloaded_in:.1f} s")
    assert reloaded_in < 8
    assert await expert.page.is_visible("#view-call")
    await page.evaluate("() => window.__join.socket.io.engine.close()")
    await page.wait_for_function("() => window.__etapalvelu.rejoins >= 1", timeout=10000)
    await wait_frames_growing(page, streams=1, within=15)
    await wait_frames_growing(expert.page, streams=1, within=15)
    assert "Linkki toimii vain kerran" in await refused_text(browser, url, "fi-FI")

    # 7. he leaves the call; his link opened again in his browser leads to the waiting room,
    #    the expert sees him waiting again and lets him into the same call
    await page.click("#leave")
    await page.wait_for_selector("#back-to-waiting:not([hidden])")
    await page.goto(url)
    await page.wait_for_function(
        "() => window.__join.phase === 'waiting' && window.__join.returning === true",
        timeout=10000,
    )
    assert "Olet taas odotushuoneessa" in await page.inner_text("#waiting-connection")
    readmit = expert.page.locator(
        f"#remote-returned [data-testid=remote-readmit][data-appointment='{appointment_id}']"
    )
    await readmit.wait_for(timeout=10000)
    assert "Asiakas odottaa taas" in await expert.page.inner_text("#remote-returned")
    await expert.page.wait_for_function(
        "() => !document.querySelector('#remote-returned [data-testid=remote-readmit]').disabled"
    )
    # over his black tile too, with the admit button; it lets him back in
    overlay = expert.page.locator("#tile-customer #remote-tile-returned")
    await overlay.wait_for(state="visible")
    assert "Asiakas odottaa taas – päästä takaisin" in await overlay.inner_text()
    await screenshot(expert.page, "join-console-waiting-again")
    await overlay.locator(
        f"[data-testid=remote-tile-readmit][data-appointment='{appointment_id}']"
    ).click()
    await page.wait_for_selector("#view-call:not([hidden])", timeout=15000)
    await wait_frames_growing(page, streams=1, within=15)
    await wait_frames_growing(expert.page, streams=1, within=15)
    assert await expert.page.is_hidden("#remote-returned")
    assert await overlay.is_hidden()
    async with live.services.sessions() as session:
        again = await session.get(RemoteGuest, guest.id, populate_existing=True)
        assert again is not None and again.call_id == guest.call_id and again.admitted_at
    assert errors == [] and expert.errors == []
    await context.close()
