"""Real Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from expert_console.chromium import CHROMIUM, CHROMIUM_ARGS

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    """A fresh headless Chromium; each test opens its own contexts (one per person)."""
    if not chromium_available():
        pytest.fail("Chromium is missing: run scripts/test, which installs it")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            await instance.close()


async def screenshot(page: object, name: str) -> Path:
    """Save a screenshot under artifacts/screenshots/ for a person to look at."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
