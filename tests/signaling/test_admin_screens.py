"""The administrator's screens of issue 15 in real Chromium at 1920×1080, 1280×800 and 390×844:
the service log with its verification (intact, then a tampered row found), choosing offices,
authorities and languages instead of typing codes (among 400 offices), and the hourly charts
drawn with uPlot with their table alternative. axe-core on every state; screenshots in
artifacts/screenshots/admin-screens-*.png."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from signaling.directory import directory
from signaling.records.service_log import record_document
from signaling.store.flow_models import ServiceLogEntry
from signaling.store.models import User
from tests.expert_console.people import Person, another_kiosk
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.signing import file_signed_over_socket, register_key_over_socket
from tests.support.ui import (
    VIEWPORTS,
    assert_axe_clean,
    page_overflows_horizontally,
    strings_of,
    texts_in_language,
)

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ADMIN_STRINGS = ROOT / "signaling" / "static" / "admin" / "strings.js"
MANY_OFFICES = 400
DOCUMENTS = 25  # document receipts in the first call: the log has more than one page
SERVED = 2
TAMPERED = DOCUMENTS + 1  # the first signed service record


async def serve_customers(live: LiveService, count: int) -> list[int]:
    """`count` Kela walk-ins served and recorded over socket.io; DOCUMENTS document receipts
    logged in the first call. Returns the call ids."""
    expert = await live.connect_user("kela")
    sync = await expert.call("flow:sync", {})
    kela = next(a for a in sync["authorities"] if a["code"] == "kela")
    service_type = kela["service_types"][0]["code"]
    key = await register_key_over_socket(expert, live.demo.user_ids["kela"])
    calls = []
    for number in range(count):
        kiosk = await another_kiosk(live, f"Kallio kioski {number + 2}")
        assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
        taken = await expert.call("queue:take_next", {})
        assert taken["ok"], taken
        call_id = taken["call"]["id"]
        if number == 0:
            async with live.services.sessions() as session:
                for document in range(DOCUMENTS):
                    await record_document(
                        session,
                        call_id=call_id,
                        sha256=f"{document:02x}" * 32,
                        size=48_213 + document,
                        type="application/pdf",
                        sender="customer",
                        receiver="expert",
                        received_at=datetime.now(UTC),
                    )
                await session.commit()
        assert (await expert.call("call:end", {"call_id": call_id}))["ok"]
        filed = await file_signed_over_socket(
            expert, key, {"call_id": call_id, "service_type": service_type, "outcome": "resolved"}
        )
        assert filed["ok"], filed
        calls.append(call_id)
    return calls


# Earlier services of the day (Finnish time, wait in seconds), filed without signatures as
# records from before signatures were required are: the charts get a shape worth drawing.
HISTORY = [((9, 10), 120), ((9, 40), 360), ((10, 5), 60), ((13, 30), 600)]


async def add_history(live: LiveService, call_ids: list[int]) -> None:
    from datetime import timedelta

    from signaling.flow.flow_common import iso
    from signaling.records.service_log import append_entry
    from signaling.store.models import Authority

    helsinki = ZoneInfo("Europe/Helsinki")
    today = datetime.now(helsinki).date()
    async with live.services.sessions() as session:
        kela = (
            await session.execute(select(Authority.id).where(Authority.code == "kela"))
        ).scalar_one()
        for index, ((hour, minute), wait) in enumerate(HISTORY):
            started = datetime(today.year, today.month, today.day, hour, minute, tzinfo=helsinki)
            record = {
                "call_id": call_ids[index % len(call_ids)],
                "office_id": live.demo.office_id,
                "authority_id": kela,
                "authority_code": "kela",
                "expert_id": live.demo.user_ids["kela"],
                "expert_name": "Kaisa Kela-asiantuntija",
                "interpreters": [],
                "language": "fin",
                "kind": "walk_in",
                "service_type": "general_advice",
                "outcome": "resolved",
                "queued_at": iso(started - timedelta(seconds=wait)),
                "started_at": iso(started),
                "ended_at": iso(started + timedelta(minutes=7)),
                "wait_seconds": wait,
                "duration_seconds": 420,
                "documents": [],
            }
            await append_entry(session, kind="service", record=record, now=datetime.now(UTC))
        await session.commit()


async def add_offices(live: LiveService) -> int:
    """400 offices, as a country-wide administrator has; returns the id of the one searched."""
    async with live.services.sessions() as session:
        for number in range(MANY_OFFICES):
            await directory.create_office(
                session,
                directory.OfficeCreate(
                    name=f"Yhteispalvelupiste {number:03d}", municipality=f"Kunta {number % 97}"
                ),
            )
        wanted = await directory.create_office(
            session, directory.OfficeCreate(name="Kirjasto Kannelmäki", municipality="Helsinki")
        )
        await session.commit()
        return wanted.id


async def started_hours(live: LiveService) -> dict[int, int]:
    """Services per hour of the day (Finnish time) as the service records say."""
    hours: dict[int, int] = {}
    async with live.services.sessions() as session:
        rows = await session.execute(
            select(ServiceLogEntry.record).where(ServiceLogEntry.kind == "service")
        )
        for (record,) in rows:
            started = datetime.fromisoformat(json.loads(record)["started_at"])
            hour = started.astimezone(ZoneInfo("Europe/Helsinki")).hour
            hours[hour] = hours.get(hour, 0) + 1
    return hours


async def open_admin(browser: Any, live: LiveService, viewport: dict[str, int]) -> Person:
    """The admin page at this size, logged in through its form. CSP is bypassed only so that
    the test can inject axe-core (the page itself allows no inline script)."""
    context = await browser.new_context(
        viewport=viewport, locale="fi-FI", timezone_id="Europe/Helsinki", bypass_csp=True
    )
    page = await context.new_page()
    person = Person(context, page)
    page.on("pageerror", lambda exc: person.errors.append(str(exc)))
    await page.goto(f"{live.base_url}/admin")
    await page.fill("#username", "admin")
    await page.fill("#password", live.passwords["admin"])
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#app:not([hidden])")
    return person


CANVAS_INK = """(selector) => {
  const canvas = document.querySelector(selector);
  if (!canvas || !canvas.width || !canvas.height) return -1;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 0; i < data.length; i += 4) {
    // Drawn in the series colour: blue bars (0,53,128) or the orange wait line (179,71,0).
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 100 && ((b > 90 && r < 80) || (r > 140 && g < 110 && b < 60))) ink += 1;
  }
  return ink;
}"""


async def wait_table_rows(page: Any, selector: str, count: int) -> None:
    await page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n",
        arg=[selector, count],
    )


@pytest.mark.parametrize("size", list(VIEWPORTS))
async def test_admin_screens(browser: Any, live_service: LiveService, size: str) -> None:
    live = live_service
    calls = await serve_customers(live, SERVED)
    await add_history(live, calls)
    kannelmaki = await add_offices(live)
    hours = await started_hours(live)
    admin = await open_admin(browser, live, VIEWPORTS[size])
    page = admin.page
    await page.wait_for_selector("#live-calls p, #live-calls table")
    await assert_axe_clean(page, f"live {size}")
    shot = f"admin-screens-{size}"

    # --- charts: uPlot canvases with ink, and the same numbers as a table ---------------------
    await page.click(".console-nav [data-view=stats]")
    await page.wait_for_selector("#chart-calls canvas")
    await page.wait_for_selector("#chart-wait canvas")
    for chart in ("#chart-calls canvas", "#chart-wait canvas"):
        ink = await page.evaluate(CANVAS_INK, chart)
        assert ink > 50, f"{chart} looks blank ({ink} pixels in the series colour)"
    label = await page.get_attribute("#chart-calls", "aria-label") or ""
    assert f"Palveluja yhteensä {SERVED + len(HISTORY)}" in label, label
    await page.click("#chart-table-box summary")
    rows = await page.eval_on_selector_all(
        "#chart-table tbody tr",
        "trs => trs.map(tr => [...tr.cells].map(td => td.textContent.trim()))",
    )
    expected = [[f"{h:02d}–{(h + 1) % 24:02d}", str(n)] for h, n in sorted(hours.items())]
    assert [row[:2] for row in rows] == expected
    by_hour = {row[0]: row for row in rows}
    if hours.get(9) == 2 and hours.get(10) == 1:  # the customers served now are not in them
        assert by_hour["09–10"][2:] == ["4:00", "6:00"]  # waits of 2 and 6 minutes
        assert by_hour["10–11"][2:] == ["1:00", "1:00"]
    assert all(row[2] and row[3] for row in rows), rows  # mean and longest wait shown
    assert not await page_overflows_horizontally(page), (
        "the statistics page is wider than the screen"
    )
    await assert_axe_clean(page, f"stats+charts {size}")
    await screenshot(page, f"{shot}-charts")

    # --- the service log: records, filters, paging, and verification ------------------------
    await page.click(".console-nav [data-view=log]")
    entries = DOCUMENTS + SERVED + len(HISTORY)
    await wait_table_rows(page, "#log-table tbody tr", 25)
    seqs = await page.eval_on_selector_all(
        "#log-table tbody tr td:first-child", "tds => tds.map(td => td.textContent)"
    )
    # Newest first, 25 a page: the earlier records filed last, then the two signed ones.
    assert seqs == [str(n) for n in range(entries, entries - 25, -1)]
    body = await page.text_content("#log-table") or ""
    assert "Kela" in body and "Asiakirja" in body and "Allekirjoitettu" in body
    assert "Ei allekirjoitusta" in body
    assert f"Merkinnät 1–25 / {entries}" in (await page.text_content("#log-range") or "")
    assert await page.is_disabled("#log-newer")
    await page.click("#log-older")
    await wait_table_rows(page, "#log-table tbody tr", entries - 25)
    assert f"Merkinnät 26–{entries} / {entries}" in (await page.text_content("#log-range") or "")
    assert await page.is_disabled("#log-older")
    assert not await page_overflows_horizontally(page), "the log page is wider than the screen"
    await assert_axe_clean(page, f"log page 2 {size}")
    await page.click("#log-newer")
    await wait_table_rows(page, "#log-table tbody tr", 25)
    await page.select_option("#log-kind", "document")
    await page.click("#log-form button[type=submit]")
    await page.wait_for_function(
        "(n) => document.querySelector('#log-range').textContent.includes(n)",
        arg=f"1–25 / {DOCUMENTS}",
    )
    kinds = await page.eval_on_selector_all(
        "#log-table tbody tr td:nth-child(3)", "tds => [...new Set(tds.map(td => td.textContent))]"
    )
    assert kinds == ["Asiakirja"]
    assert "application/pdf" in (await page.text_content("#log-table") or "")
    await page.select_option("#log-kind", "")
    # 401 offices: the filter narrows the select to the one searched, and chooses it.
    options = await page.eval_on_selector_all("#log-office option", "os => os.length")
    assert options == MANY_OFFICES + 2 + 1  # all offices (+ the demo office) and "all"
    await page.fill("#log-office-filter", "kannelm")
    assert await page.eval_on_selector_all("#log-office option", "os => os.length") == 2
    assert await page.input_value("#log-office") == str(kannelmaki)
    await page.click("#log-form button[type=submit]")
    await page.wait_for_selector("#log-table p.empty")
    await page.fill("#log-office-filter", "")
    await page.select_option("#log-office", "")
    await page.select_option("#log-authority", label="Kela")
    await page.click("#log-form button[type=submit]")
    await page.wait_for_function(
        "(n) => document.querySelector('#log-range').textContent.includes(n)",
        arg=f"1–25 / {entries}",
    )

    await page.click("#log-verify")
    await page.wait_for_selector("#log-verdict.intact")
    verdict = await page.text_content("#log-verdict") or ""
    assert f"Loki on eheä: {entries} merkintää" in verdict, verdict
    assert f"{len(HISTORY)} palvelukirjausta ilman allekirjoitusta" in verdict, verdict
    assert not await page_overflows_horizontally(page), "the log page is wider than the screen"
    await assert_axe_clean(page, f"log intact {size}")
    await screenshot(page, f"{shot}-log-intact")

    # Switching language leaves no Finnish behind on the log view.
    await page.click("#language-switcher button[data-lang=sv]")
    await page.wait_for_selector("#log-verdict.intact >> text=Loggen är intakt")
    tables = strings_of(ADMIN_STRINGS)
    assert await texts_in_language(page, tables, "fi") == []
    await page.click("#language-switcher button[data-lang=fi]")

    # --- choose, don't type: a new expert with an office, an authority and a language --------
    await page.click(".console-nav [data-view=users]")
    await page.wait_for_selector("#user-authority-choices input")
    await page.fill("#user-username", "kelaenglanti")
    await page.fill("#user-display", "Kelan englanninkielinen")
    await page.select_option("#user-role", "expert")
    await page.fill("#user-password", "salasana-123")
    await page.fill("#user-office-filter", "Kannelm")
    assert await page.input_value("#user-office") == str(kannelmaki)
    await page.locator("#user-authority-choices").get_by_role("checkbox", name="Kela").check()
    languages = page.locator("#user-language-choices")
    await languages.get_by_role("checkbox", name="englanti", exact=True).check()
    await languages.get_by_role("checkbox", name="suomi", exact=True).check()
    # The rarer languages are behind "more languages".
    assert await languages.get_by_role("checkbox", name="ukraina", exact=True).is_hidden()
    await page.click("#user-language-choices details.more-choices summary")
    await languages.get_by_role("checkbox", name="ukraina", exact=True).check()
    assert not await page_overflows_horizontally(page), "the users page is wider than the screen"
    await assert_axe_clean(page, f"user form {size}")
    await screenshot(page, f"{shot}-user-form")
    await page.click("#user-form button[type=submit]")
    await page.wait_for_selector("#users-table td:text-is('kelaenglanti')")
    row = page.locator("#users-table tr", has_text="kelaenglanti")
    assert "englanti, suomi, ukraina" in (await row.text_content() or "")
    async with live.services.sessions() as session:
        from sqlalchemy.orm import selectinload

        user = (
            await session.execute(
                select(User)
                .where(User.username == "kelaenglanti")
                .options(selectinload(User.authorities), selectinload(User.languages))
            )
        ).scalar_one()
        assert user.office_id == kannelmaki
        assert [a.code for a in user.authorities] == ["kela"]
        assert user.language_codes == ["eng", "fin", "ukr"]
    # An interpreter has languages but no authorities to choose.
    await page.select_option("#user-role", "interpreter")
    assert await page.is_hidden("#user-authorities")
    assert await page.is_visible("#user-languages")

    # A device for the searched office.
    await page.click(".console-nav [data-view=endpoints]")
    await page.fill("#endpoint-office-filter", "kannelmäki")
    assert await page.input_value("#endpoint-office") == str(kannelmaki)
    await page.fill("#endpoint-name", "Kannelmäki kioski 1")
    await page.click("#endpoint-form button[type=submit]")
    await page.wait_for_selector("#endpoint-credential:not([hidden])")
    await assert_axe_clean(page, f"endpoints {size}")

    # --- a tampered row: verification names the broken entry ---------------------------------
    async with live.services.sessions() as session:
        # Someone with write access to the database file removes the append-only guard first.
        await session.execute(text("DROP TRIGGER service_log_no_update"))
        await session.execute(
            text(
                "UPDATE service_log SET record = replace(record, '\"resolved\"', '\"pending\"') "
                "WHERE seq = :seq"
            ),
            {"seq": TAMPERED},
        )
        await session.commit()
    await page.click(".console-nav [data-view=log]")
    await wait_table_rows(page, "#log-table tbody tr", 25)
    await page.click("#log-verify")
    await page.wait_for_selector("#log-verdict.broken")
    verdict = await page.text_content("#log-verdict") or ""
    assert "Loki EI ole eheä" in verdict and f"nro {TAMPERED}." in verdict, verdict
    broken = await page.eval_on_selector_all(
        "#log-table tr.broken-row td:first-child", "tds => tds.map(td => td.textContent)"
    )
    assert broken == [str(TAMPERED)]
    await assert_axe_clean(page, f"log broken {size}")
    await screenshot(page, f"{shot}-log-broken")
    assert calls
    admin.assert_no_errors()
