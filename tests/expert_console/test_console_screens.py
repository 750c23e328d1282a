"""The expert and interpreter consoles as people use them, in real Chromium at the sizes they
are made for (1920×1080 and 1280×800 desks, a 1280×720 laptop, a 390×844 phone).

One call, with the office's real endpoint agent publishing a landscape building plan on the
document camera: the call-control bar stays inside the viewport without scrolling at every
size, the main view swaps customer ↔ document camera, the document camera goes full screen
and the plan fills the landscape screen, the whole call runs from the keyboard (answer, mute,
end), switching language mid-call leaves no Finnish behind, availability is marked after
login, the queue sparkline shows the line, the record confirmation names the call, and
axe-core finds nothing critical or serious in any state. Screenshots of every state go to
artifacts/screenshots/console-*.png.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from document_camera.sources import open_source
from endpoint.agent import EndpointAgent
from tests.expert_console.people import office_agent, open_console
from tests.support.browser import screenshot
from tests.support.service import LiveService
from tests.support.ui import (
    assert_axe_clean,
    assert_in_viewport,
    page_overflows_horizontally,
    strings_of,
    texts_in_language,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SIZES = {
    "1920x1080": {"width": 1920, "height": 1080},
    "1280x800": {"width": 1280, "height": 800},
    "1280x720": {"width": 1280, "height": 720},
    "390x844": {"width": 390, "height": 844},
}
EXPERT_BAR = [
    "#mute",
    "#camera-off",
    "#swap-view",
    "#doccam-full",
    "#take-still",
    "#open-interpreter",
    "#open-transfer",
    "#end-call",
]
INTERPRETER_BAR = ["#mute", "#camera-off", "#swap-view", "#doccam-full", "#leave-call"]

FOCUSED_ID = "() => document.activeElement && document.activeElement.id"


def console_tables() -> dict[str, dict[str, str]]:
    """The consoles' texts: their own table, the shared i18n.js and the document panel's."""
    tables: dict[str, dict[str, str]] = {}
    for path in (
        "expert_console/static/js/strings.js",
        "signaling/static/js/i18n.js",
        "signaling/static/js/document-panel.js",
    ):
        for lang, table in strings_of(ROOT / path).items():
            tables.setdefault(lang, {}).update(table)
    return tables


def plan_agent(live: LiveService) -> EndpointAgent:
    """The office's endpoint agent with a synthetic A3 building plan (landscape) under the
    camera, at a portrait track size as in production (1088×1536 scaled down)."""
    return office_agent(live, open_source("synthetic:plan"))


async def tab_to(page: Any, element_id: str, limit: int = 60) -> None:
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(FOCUSED_ID) == element_id:
            return
    raise AssertionError(f"never reached #{element_id} with Tab")


async def assert_presence_marked(page: Any) -> str:
    await page.wait_for_selector("#presence button[aria-pressed=true]", timeout=10000)
    marked = await page.eval_on_selector_all(
        "#presence button[aria-pressed=true]", "bs => bs.map(b => b.dataset.presence)"
    )
    assert len(marked) == 1, marked
    return str(marked[0])


async def look(page: Any, name: str, state: str, controls: list[str] | None = None) -> None:
    """Screenshot, axe-core, controls in view, no sideways scrolling."""
    await page.wait_for_timeout(250)  # layout and the picture's fit settle
    sizes = await page.evaluate(
        """() => ({page: document.documentElement.scrollWidth, w: innerWidth, h: innerHeight,
                  header: document.querySelector('.console-header').offsetHeight,
                  bar: document.querySelector('#control-bar')?.offsetHeight || 0})"""
    )
    print(f"{state}: {sizes}")
    await screenshot(page, name)
    await assert_axe_clean(page, state)
    if controls:
        await assert_in_viewport(page, controls, state)
    assert not await page_overflows_horizontally(page), f"{state}: the page scrolls sideways"


async def test_expert_console_screens(browser: Any, live_service: LiveService) -> None:
    live = live_service
    agent = plan_agent(live)
    expert = await open_console(browser, live, "/expert", "kela", axe=True)
    page = expert.page
    try:
        # After login one of Vapaa / Varattu / Poissa is marked: he is available.
        assert await assert_presence_marked(page) == "available"
        await page.set_viewport_size(SIZES["390x844"])
        await look(page, "console-expert-queues-390x844", "queues 390x844")
        header = await page.eval_on_selector(
            ".console-header", "h => h.getBoundingClientRect().height"
        )
        assert header <= 150, f"the header takes {header} of 844 px"
        await page.set_viewport_size(SIZES["1280x720"])

        # The customer at the office's kiosk (the endpoint whose agent runs the camera).
        customer = await live.connect_kiosk()
        assert (await customer.call("flow:sync", {}))["ok"]
        ack = await customer.call("ticket:take", {"authority": "kela", "language": "fin"})
        assert ack["ok"], ack
        # The line's sparkline: one waiting now, with a text alternative.
        line = page.locator("#queue-trends li[data-now='1']")
        await line.wait_for()
        label = await line.locator("svg").get_attribute("aria-label")
        assert label and "1" in label and "Kela" in label, label
        await look(page, "console-expert-queue-trend", "queue with a trend line")

        # Keyboard only: answer from the queue view.
        await page.wait_for_selector("#take-next:not([disabled])")
        await tab_to(page, "take-next")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#view-call:not([hidden])")
        await page.wait_for_selector("#document-panel-mount > *")

        # The office's document camera joins the call with a landscape plan.
        await agent.start()
        await asyncio.wait_for(agent.joined.wait(), 20)
        await page.wait_for_selector("#doccam-viewport.has-video", timeout=20000)
        await page.wait_for_selector("#take-still:visible")
        for size, viewport in SIZES.items():
            await page.set_viewport_size(viewport)
            await look(page, f"console-expert-call-{size}", f"call {size}", EXPERT_BAR)

        # Main view swap: the document camera becomes the large picture, and back.
        await page.set_viewport_size(SIZES["1280x800"])
        small = await page.eval_on_selector("#doccam", "e => e.getBoundingClientRect().width")
        await page.click("#swap-view")
        await page.wait_for_selector("#call-stage[data-main=document]")
        await page.wait_for_timeout(300)
        large = await page.eval_on_selector("#doccam", "e => e.getBoundingClientRect().width")
        customer_w = await page.eval_on_selector(
            "#tile-customer", "e => e.getBoundingClientRect().width"
        )
        assert large > 2.5 * small and large > 2.5 * customer_w, (small, large, customer_w)
        await look(
            page,
            "console-expert-call-document-main",
            "document as main view",
            [*EXPERT_BAR, "#zoom-in", "#zoom-out"],
        )
        await page.keyboard.press("Alt+v")  # one key back to the customer
        await page.wait_for_selector("#call-stage[data-main=customer]")

        # Full screen: the landscape plan fills the landscape screen (no letterboxing inside
        # letterboxing: the track is portrait, the page in it is landscape).
        await page.click("#doccam-full")
        await page.wait_for_selector("#doccam.is-full")
        await page.wait_for_timeout(1800)  # the page inside the frame has been found
        fit = await page.evaluate("() => window.__etapalvelu.expert.panel.viewer.state()")
        assert fit["page"]["orientation"] == "landscape", fit
        view, shown = fit["view"], fit["shown"]
        view_w, view_h = view["right"] - view["left"], view["bottom"] - view["top"]
        shown_w, shown_h = shown["right"] - shown["left"], shown["bottom"] - shown["top"]
        assert view_w >= 1270 and view_h >= 600, view  # the whole screen (bar on top)
        # Fitted to the page: it touches two opposite sides of the view and covers most of it.
        assert shown_w >= 0.97 * view_w or shown_h >= 0.97 * view_h, fit
        assert shown_w * shown_h >= 0.6 * view_w * view_h, fit
        await look(
            page,
            "console-expert-doccam-full",
            "document camera full screen",
            ["#zoom-in", "#zoom-out", "#doccam-exit-full"],
        )
        # Zoom follows the page: 2× shows half of it, panning stops at its edge.
        await page.click("#zoom-in")
        await page.click("#zoom-in")
        await page.click("#zoom-in")
        await page.focus("#doccam-viewport")
        for _ in range(30):
            await page.keyboard.press("ArrowLeft")
        zoomed = await page.evaluate("() => window.__etapalvelu.expert.panel.viewer.state()")
        assert zoomed["scale"] > 1.9, zoomed
        assert abs(zoomed["shown"]["left"] - zoomed["view"]["left"]) < 2, zoomed
        await screenshot(page, "console-expert-doccam-full-zoomed")
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#doccam:not(.is-full)")

        # The bar's panels: interpreter request opens above the bar and closes with Escape.
        await page.click("#open-interpreter")
        await page.wait_for_selector("#interpreter-panel:not([hidden])")
        await look(
            page,
            "console-expert-interpreter-panel",
            "interpreter panel",
            [*EXPERT_BAR, "#interpreter-form button[type=submit]"],
        )
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#interpreter-panel", state="hidden")
        assert await page.evaluate(FOCUSED_ID) == "open-interpreter"

        # Language switch mid-call: nothing is left in Finnish.
        tables = console_tables()
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_timeout(300)
        left = await texts_in_language(page, tables, "fi")
        assert left == [], f"Finnish left after switching to Swedish: {left}"
        await page.click("#language-switcher button[data-lang=en]")
        await page.wait_for_timeout(300)
        left = await texts_in_language(page, tables, "sv")
        assert left == [], f"Swedish left after switching to English: {left}"
        assert (await page.text_content("#signed-in") or "").startswith("Signed in")
        await look(page, "console-expert-call-en", "call in English", EXPERT_BAR)
        await page.click("#language-switcher button[data-lang=fi]")

        # Keyboard only: mute from the bar, then end the call from the bar.
        await page.focus("#call-title")
        await tab_to(page, "mute")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#mute[aria-pressed=true]")
        audio_on = await page.evaluate(
            "() => window.__etapalvelu.expert.panel.camera.getAudioTracks().map(t => t.enabled)"
        )
        assert audio_on and not any(audio_on), audio_on
        await tab_to(page, "end-call")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#view-record:not([hidden])")
        await look(page, "console-expert-record", "record form")
        await page.click("#record-form button[type=submit]")
        await page.wait_for_selector("#view-queues:not([hidden])")
        notice = await page.text_content("#notice") or ""
        assert notice.startswith("Kirjaus tallennettu") and "nro" not in notice, notice
        assert "Kallio" in notice, notice  # the call's office, not a log sequence number
        # A new call starts unmuted.
        assert await page.get_attribute("#mute", "aria-pressed") == "false"
        expert.assert_no_errors()
    finally:
        await agent.stop()


async def test_interpreter_on_a_phone(browser: Any, live_service: LiveService) -> None:
    live = live_service
    # The login form itself, on the phone.
    context = await browser.new_context(viewport=SIZES["390x844"], bypass_csp=True)
    login = await context.new_page()
    await login.goto(f"{live.base_url}/interpreter")
    await login.wait_for_selector("#username:focus")
    await look(login, "console-login-390x844", "login 390x844", ["#login-form button[type=submit]"])
    await context.close()
    interpreter = await open_console(browser, live, "/interpreter", "tulkki", axe=True)
    page = interpreter.page
    await page.set_viewport_size(SIZES["390x844"])
    assert await assert_presence_marked(page) == "available"
    header = await page.eval_on_selector(".console-header", "h => h.getBoundingClientRect().height")
    assert header <= 150, f"the header takes {header} of 844 px"
    await look(
        page,
        "console-interpreter-390x844",
        "interpreter alerts 390x844",
        ["#presence button[data-presence=away]", "#logout"],
    )

    # A call at the office; its expert asks for an Arabic interpreter.
    kiosk = await live.connect_kiosk()
    assert (await kiosk.call("flow:sync", {}))["ok"]
    assert (await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"}))["ok"]
    expert = await live.connect_user("kela")
    taken = await expert.call("queue:take_next", {})
    assert taken["ok"], taken
    call_id = taken["call"]["id"]
    asked = await expert.call("interpreter:request", {"call_id": call_id, "language": "ara"})
    assert asked["ok"], asked
    await page.wait_for_selector("#alerts li[data-request]")
    await page.wait_for_selector("#notice:not([hidden])")
    await look(
        page,
        "console-interpreter-alert-390x844",
        "interpreter alert 390x844",
        ["#alerts li[data-request] button"],
    )
    await page.click("#alerts li[data-request] button")
    await page.wait_for_selector("#view-call:not([hidden])")
    # The "new request" banner went with the request it announced.
    assert await page.is_hidden("#notice")
    for size in ("390x844", "1280x800", "1920x1080"):
        await page.set_viewport_size(SIZES[size])
        await look(
            page, f"console-interpreter-call-{size}", f"interpreter call {size}", INTERPRETER_BAR
        )
    # Language switch mid-call: nothing left in Finnish.
    await page.click("#language-switcher button[data-lang=sv]")
    await page.wait_for_timeout(300)
    left = await texts_in_language(page, console_tables(), "fi")
    assert left == [], f"Finnish left after switching to Swedish: {left}"
    await page.click("#leave-call")
    await page.wait_for_selector("#view-alerts:not([hidden])")
    interpreter.assert_no_errors()
