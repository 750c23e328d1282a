"""The service secretary files a desk service from her console in real Chromium: the entry is
signed in the browser with her registered key, lands in the hash-chained log, and shows in the
administrator's statistics beside the kiosks' anonymous feedback (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from signaling.records.service_log import verify_chain
from signaling.store.flow_models import ServiceLogEntry
from signaling.store.models import User
from tests.expert_console.people import open_console
from tests.signaling.flow_support import call
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


async def test_clerk_files_a_desk_service_and_admin_sees_it(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    clerk = await open_console(browser, live, "/expert", "sihteeri", axe=True)
    page = clerk.page
    await page.wait_for_selector("#view-clerk:not([hidden])")
    await page.wait_for_selector("#desk-authority option[value]", state="attached")
    await page.wait_for_selector("#desk-history li.empty")
    services = await page.eval_on_selector_all(
        "#desk-service option", "options => options.map(o => o.textContent)"
    )
    assert services == [
        "Avustettu sähköinen asiointi",
        "Lomake annettu",
        "Henkilöllisyyden tarkistus",
        "Muu palvelu",
    ]
    await assert_axe_clean(page, "clerk desk form")
    await page.select_option("#desk-authority", label="Verohallinto")
    await page.select_option("#desk-service", "identity_check")
    await page.click("#desk-form button[type=submit]")
    await page.wait_for_selector("#desk-history li[data-seq='1']", timeout=15000)
    row = await page.text_content("#desk-history li[data-seq='1']") or ""
    assert "Henkilöllisyyden tarkistus" in row and "Verohallinto" in row
    assert "Kirjattu" in (await page.text_content("#notice") or "")
    await screenshot(page, "clerk-desk-entry")

    # The same view in Swedish.
    await page.click("#language-switcher button[data-lang=sv]")
    await page.wait_for_selector("#desk-title:text('Registrera diskservice')")
    assert "Identitetskontroll" in (await page.text_content("#desk-history") or "")
    await assert_axe_clean(page, "clerk desk form sv")

    # Signed in the browser with the key it registered; the chain verifies.
    async with live.services.sessions() as session:
        entry = await session.get(ServiceLogEntry, 1)
        clerk_user = (
            await session.execute(select(User).where(User.username == "sihteeri"))
        ).scalar_one()
        assert entry is not None and entry.kind == "desk"
        assert entry.signature and entry.signer_public_key == clerk_user.signing_public_key
        assert entry.expert_id == clerk_user.id
        report = await verify_chain(session)
    assert report.ok and report.entries == 1 and report.unsigned_service == ()

    # A kiosk customer answers the feedback question (over the socket here).
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    assert (await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
    call_id = (await call(expert, "queue:take_next", {}))["call"]["id"]
    assert (await call(expert, "call:end", {"call_id": call_id}))["ok"]
    assert (await call(kiosk, "feedback:give", {"call_id": call_id, "answer": "neutral"}))["ok"]

    admin = await open_console(browser, live, "/admin", "admin", axe=True)
    apage = admin.page
    await apage.click(".console-nav [data-view=stats]")
    await apage.wait_for_selector("#stats-table table")
    await apage.wait_for_selector("#feedback-table table")
    vero = apage.locator("#stats-table tr", has_text="Verohallinto")
    assert (await vero.locator("td[data-label='Tiskipalveluja']").text_content()) == "1"
    kela = apage.locator("#feedback-table tr", has_text="Kela")
    assert (await kela.locator("td[data-label='Kohtalaisesti']").text_content()) == "1"
    assert (await kela.locator("td[data-label='Vastauksia']").text_content()) == "1"
    await assert_axe_clean(apage, "admin stats with desk and feedback")
    await screenshot(apage, "admin-stats-desk-feedback")
    clerk.assert_no_errors()
    admin.assert_no_errors()
