"""The consoles without a mouse, and the translations of every page.

Keyboard only: log in, set availability, reach "take next" and take a customer, switch
views — with a visible focus ring on the way. Translations: every page's string tables have
the same keys in Finnish, Swedish and English, and switching language relabels the page.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.expert_console.people import CONSOLE_VIEWPORT, another_kiosk
from tests.support.browser import screenshot
from tests.support.service import LiveService

pytestmark = [pytest.mark.browser]

FOCUSED_JS = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {id: el.id, tag: el.tagName, text: (el.textContent || '').trim(),
          view: el.dataset.view || null, presence: el.dataset.presence || null,
          outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2};
}"""


async def tab_to(page: Any, predicate: Any, limit: int = 40) -> dict[str, Any]:
    """Press Tab until the focused element matches; every stop must show a focus ring."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused: dict[str, Any] = await page.evaluate(FOCUSED_JS)
        if focused["tag"] in ("BUTTON", "INPUT", "SELECT", "A"):
            assert focused["outline"], f"no visible focus on {focused}"
        if predicate(focused):
            return focused
    raise AssertionError("never reached the element with Tab")


async def test_expert_console_by_keyboard(browser: Any, live_service: LiveService) -> None:
    context = await browser.new_context(viewport=CONSOLE_VIEWPORT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{live_service.base_url}/expert")
    # The username field has focus on arrival; type, Tab, type, Enter.
    await page.wait_for_selector("#username:focus")
    await page.keyboard.type("kela")
    await page.keyboard.press("Tab")
    await page.keyboard.type(live_service.passwords["kela"])
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#view-queues:not([hidden])")

    await tab_to(page, lambda f: f["presence"] == "available")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#presence [data-presence=available][aria-pressed=true]")

    customer = await another_kiosk(live_service, "Kallio kioski 2")
    ack = await customer.call("ticket:take", {"authority": "kela", "language": "fin"})
    assert ack["ok"], ack
    await page.wait_for_selector("#take-next:not([disabled])")
    await tab_to(page, lambda f: f["id"] == "take-next")
    await screenshot(page, "expert-keyboard-focus")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#view-call:not([hidden])")
    # In a call, keyboard users reach the controls and, once it is the main view (one
    # button in the control bar), the document camera's viewport.
    await tab_to(page, lambda f: f["id"] == "swap-view", limit=60)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#call-stage[data-main=document]")
    await tab_to(page, lambda f: f["id"] == "doccam-viewport", limit=60)
    await tab_to(page, lambda f: f["id"] == "end-call", limit=60)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#view-record:not([hidden])")
    await tab_to(page, lambda f: f["id"] == "record-service-type")
    await page.keyboard.press("Tab")  # the outcome radio group (first option checked)
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")  # submits the form
    await page.wait_for_selector("#view-queues:not([hidden])")
    await tab_to(page, lambda f: f["view"] == "history")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#history table tbody tr")
    outcome = await page.text_content("#history tbody tr td:nth-child(4)")
    assert outcome == "Asia jäi vireille"  # ArrowDown picked the second outcome, "pending"
    # Screen-reader labels: icon buttons and groups are named.
    for selector in ("#zoom-in", "#zoom-out", "#presence", "#language-switcher"):
        assert await page.get_attribute(selector, "aria-label"), selector
    assert not errors, errors
    await context.close()


PAGES = ["/kiosk", "/expert", "/interpreter", "/admin"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_string_translated(browser: Any, live_service: LiveService, path: str) -> None:
    context = await browser.new_context(viewport=CONSOLE_VIEWPORT)
    page = await context.new_page()
    await page.goto(f"{live_service.base_url}{path}")
    await page.wait_for_load_state("networkidle")
    missing = await page.evaluate(
        "() => import('/static/common/js/i18n.js').then((m) => m.missingKeys())"
    )
    assert missing == []
    # No element is left showing a raw key or empty after switching through the languages.
    for lang in ("sv", "en", "fi"):
        await page.click(f"#language-switcher button[data-lang={lang}]")
        assert await page.get_attribute("html", "lang") == lang
        raw = await page.eval_on_selector_all(
            "[data-i18n]",
            """els => els.filter(e => !e.closest('[hidden]'))
                       .map(e => e.textContent.trim())
                       .filter(t => !t || /^[a-z]+\\.[a-zA-Z.]+$/.test(t))""",
        )
        assert raw == [], f"{path} {lang}: untranslated {raw}"
    await context.close()
