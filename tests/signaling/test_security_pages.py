"""Finding 9 in the browser: the pages work under the Content Security Policy, and markup
injected into a page cannot run script (real Chromium against the running service)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import browser  # noqa: F401 (fixture)
from tests.support.service import LiveService

pytestmark = pytest.mark.browser

PAGES = ["/", "/kiosk", "/expert", "/interpreter", "/admin"]


async def test_pages_load_without_policy_violations_and_refuse_injected_script(
    live_service: LiveService, browser: Any  # noqa: F811
) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text
            else None,
        )
        for path in PAGES:
            await page.goto(live_service.base_url + path)
            await page.wait_for_load_state("networkidle")
            assert violations == [], (path, violations)
        # The console's modules ran (they render the login form), so 'self' scripts work.
        await page.goto(live_service.base_url + "/expert")
        await page.wait_for_selector("input[type=password]", timeout=10_000)
        # Markup that slipped into the page (a stored-XSS attempt) does not run.
        ran = await page.evaluate(
            """async () => {
                window.__pwned = false;
                const box = document.createElement("div");
                box.innerHTML = '<img src="data:," onerror="window.__pwned = true">';
                document.body.append(box);
                const script = document.createElement("script");
                script.textContent = "window.__pwned = true";
                document.body.append(script);
                await new Promise((resolve) => setTimeout(resolve, 300));
                return window.__pwned;
            }"""
        )
        assert ran is False
        assert any("Content Security Policy" in text for text in violations)
    finally:
        await context.close()
