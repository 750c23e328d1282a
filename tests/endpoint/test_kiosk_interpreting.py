"""Issue 17 in real Chromium: the kiosk's language step offers interpreting (sign languages and
the interpreters' languages, each as a picture and its own name); a customer who picks Finnish
Sign Language is served with the ring started the moment the expert takes him; a transfer the
customer's office does not offer is refused at the expert's console with the reason; the
administrator edits the office's municipality and its clerks' desk services.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling.store.models import Office
from tests.expert_console.people import KIOSK_VIEWPORT, Person, _open, open_console
from tests.signaling.flow_support import call
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import assert_axe_clean, assert_in_viewport

pytestmark = [pytest.mark.browser]

TILES = "#interpreting-list button"
STEP = [
    "#service-language-list button[data-language=fin]",
    "#service-language-list button[data-language=eng]",
    "#interpreting-list button[data-interpreting=fse]",
    "#interpreting-list button[data-interpreting=ara]",
    "#screen-language [data-back=start]",
]


async def open_kiosk(browser: Any, live: LiveService) -> Person:
    """The kiosk page with axe-core allowed in (people.open_kiosk keeps the CSP)."""
    url = f"{live.base_url}/kiosk{live.demo.kiosk_fragment()}"
    person = await _open(browser, url, KIOSK_VIEWPORT, axe=True)
    await person.page.wait_for_selector("#screen-start:not([hidden]) #authority-list button")
    return person


async def tile_boxes(page: Any) -> list[dict[str, float]]:
    return list(
        await page.eval_on_selector_all(
            TILES,
            "bs => bs.map(b => { const r = b.getBoundingClientRect();"
            " return {w: r.width, h: r.height}; })",
        )
    )


async def test_kiosk_sign_language_rings_when_the_expert_takes(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    interpreter = await live.connect_user("tulkki")
    alerts: list[Any] = []
    interpreter.on("interpreter:alert", lambda d: alerts.append(d))
    assert (await call(interpreter, "flow:sync"))["ok"]
    kiosk = await open_kiosk(browser, live)
    expert = await open_console(browser, live, "/expert", "kela")
    page = kiosk.page
    try:
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.click("#authority-list button[data-authority=kela]")
        await page.wait_for_selector("#screen-language:not([hidden]) #interpreting:not([hidden])")
        assert await page.eval_on_selector_all(
            TILES, "bs => bs.map(b => b.dataset.interpreting)"
        ) == ["fse", "fss", "ara"]
        fse = page.locator(f"{TILES}[data-interpreting=fse]")
        assert await fse.locator(".own").text_content() == "suomalainen viittomakieli"
        assert await fse.locator("svg.lang-icon.sign").count() == 1
        ara = page.locator(f"{TILES}[data-interpreting=ara]")
        own = ara.locator(".own")
        assert await own.text_content() == "العربية"
        assert (await own.get_attribute("lang"), await own.get_attribute("dir")) == ("ar", "rtl")
        assert await ara.locator(".sub").text_content() == "arabia"
        assert await ara.locator("svg.lang-icon.spoken text").text_content() == "ع"
        assert await page.text_content("#interpreting-help") == (
            "Tulkki tulee mukaan puheluun. Asiantuntijan kieli: suomi."
        )
        # Big tiles, everything on screen without scrolling, on both kiosk screens.
        for box in await tile_boxes(page):
            assert box["h"] >= 100 and box["w"] >= 250, box
        await screenshot(page, "kiosk-interpreting-1280x800")
        await assert_in_viewport(page, STEP, "language step 1280x800")
        await assert_axe_clean(page, "kiosk language step with interpreting")
        await page.set_viewport_size({"width": 1080, "height": 1920})
        await assert_in_viewport(page, STEP, "language step 1080x1920")
        await screenshot(page, "kiosk-interpreting-1080x1920")

        # The screen language is the customer's choice; the expert's language follows it.
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_selector("#interpreting-title:text-is('Behöver du en tolk?')")
        assert "Expertens språk: svenska." in (await page.text_content("#interpreting-help") or "")
        assert await ara.locator(".sub").text_content() == "arabiska"
        await screenshot(page, "kiosk-interpreting-sv")
        await page.click("#language-switcher button[data-lang=fi]")
        await page.set_viewport_size({"width": 1280, "height": 800})

        # The customer picks Finnish Sign Language: a ticket with the need, the UI stays Finnish.
        await fse.click()
        await page.wait_for_selector("#screen-ticket:not([hidden])")
        assert await page.text_content("#ticket-interpreting") == (
            "Tulkkaus: suomalainen viittomakieli. Tulkkia kutsutaan, kun puhelu alkaa."
        )
        assert await page.get_attribute("html", "lang") == "fi"
        await screenshot(page, "kiosk-interpreting-ticket")
        assert alerts == []

        # The office offers Kela only: a transfer elsewhere will be refused.
        token = await live.issue_token("admin")
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"{live.base_url}/api/admin/offices/{live.demo.office_id}/catalogue",
                json={"authorities": ["kela"]},
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 200

        # The expert takes him: the ring starts by itself and the console says so.
        console = expert.page
        await console.wait_for_selector(
            "#queues td:text-is('suomi, tulkkaus: suomalainen viittomakieli')"
        )
        await console.click("#take-next")
        await console.wait_for_selector(
            "#interpreter-status:text-is('Tulkkia haetaan (suomalainen viittomakieli)…')"
        )
        for _ in range(100):
            if alerts:
                break
            await asyncio.sleep(0.05)
        [alert] = alerts
        assert alert["request"]["language"] == "fse"
        assert alert["request"]["requested_by"]["name"] == "Kaisa Kela-asiantuntija"
        await page.wait_for_selector("#screen-call:not([hidden])")
        await screenshot(console, "expert-interpreting-ring-started")

        # Transfer to an authority the office does not offer: refused, with the reason.
        await console.click("#open-transfer")
        await console.wait_for_selector("#transfer-form:not([hidden])")
        vero = await console.eval_on_selector_all(
            "#transfer-authority option",
            "os => os.filter(o => o.textContent.startsWith('Verohallinto')).map(o => o.value)",
        )
        await console.select_option("#transfer-authority", vero[0])
        await console.click("#transfer-form button[type=submit]")
        await console.wait_for_selector(
            "#notice:text-is('Siirto ei onnistu: asiakkaan palvelupiste ei tarjoa tätä virastoa.')"
        )
        await screenshot(console, "expert-transfer-refused")
        assert await page.is_visible("#screen-call")
        kiosk.assert_no_errors()
        expert.assert_no_errors()
    finally:
        await kiosk.close()
        await expert.close()


async def test_admin_edits_municipality_and_desk_services(
    browser: Any, live_service: LiveService
) -> None:
    live = live_service
    office_id = live.demo.office_id
    admin = await open_console(browser, live, "/admin", "admin", axe=True)
    page = admin.page
    try:
        await page.click(".console-nav [data-view=offices]")
        await page.wait_for_selector(f"#offer-office option[value='{office_id}']", state="attached")
        await page.select_option("#offer-office", str(office_id))
        await page.wait_for_selector("#offer-panel:not([hidden]) #desk-service-choices input")
        assert await page.input_value("#offer-municipality") == "Helsinki"
        await page.fill("#offer-municipality", "Espoo")
        await page.click("#offer-municipality-form button[type=submit]")
        await page.wait_for_selector("#offices-table td:text-is('Espoo')")
        async with live.services.sessions() as session:
            office = await session.get(Office, office_id)
            assert office is not None and office.municipality == "Espoo"
        # Empty is refused at the form and by the server; nothing changes.
        await page.fill("#offer-municipality", " ")
        await page.click("#offer-municipality-form button[type=submit]")
        await page.wait_for_selector("#notice.error:not([hidden])")
        assert "cannot be empty" in (await page.text_content("#notice") or "")

        # The clerks of this office record two desk services only.
        labels = await page.eval_on_selector_all(
            "#desk-service-choices label", "ls => ls.map(l => l.textContent)"
        )
        assert labels == [
            "Avustettu sähköinen asiointi",
            "Lomake annettu",
            "Henkilöllisyyden tarkistus",
            "Muu palvelu",
        ]
        await page.uncheck("input[name=desk-service][value=form_handed_over]")
        await page.uncheck("input[name=desk-service][value=other]")
        await page.click("#desk-services-form button[type=submit]")
        await page.wait_for_selector("#notice:text-is('Tallennettu.')")
        await assert_axe_clean(page, "admin offices, municipality and desk services")
        await screenshot(page, "admin-municipality-desk-services")
        clerk = await live.connect_user("sihteeri")
        offered = [s["code"] for s in (await call(clerk, "desk:services"))["services"]]
        assert offered == ["assisted_eservice", "identity_check"]
        admin.assert_no_errors()
    finally:
        await admin.close()
