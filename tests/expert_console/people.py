"""Helpers that open the web UIs as people do, for the browser tests of the consoles and the
kiosk (tests/expert_console, tests/endpoint/test_kiosk*.py, tests/signaling/test_admin_pages.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from document_camera.rate_control import RatePolicy
from document_camera.sources import FrameSource
from endpoint.agent import AgentOptions, EndpointAgent
from tests.support.service import LiveService

KIOSK_VIEWPORT = {"width": 1280, "height": 900}
CONSOLE_VIEWPORT = {"width": 1366, "height": 900}

FRAMES_DECODED_JS = """() => {
  const pc = window.__etapalvelu && window.__etapalvelu.pc;
  if (!pc) return -1;
  return pc.getStats().then((report) => {
    let frames = 0;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
    return frames;
  });
}"""

FRAMES_BY_MID_JS = """() => {
  const pc = window.__etapalvelu && window.__etapalvelu.pc;
  if (!pc) return {};
  return pc.getStats().then((report) => {
    const out = {};
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") out[s.mid] = s.framesDecoded || 0;
    });
    return out;
  });
}"""


@dataclass
class Person:
    """One person's browser context and page, with the errors the page raised."""

    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)

    def assert_no_errors(self) -> None:
        assert not self.errors, f"the page raised: {self.errors}"

    async def close(self) -> None:
        await self.context.close()


async def _open(
    browser: Any, url: str, viewport: dict[str, int], *, axe: bool = False
) -> Person:
    # `axe`: the test injects axe-core (tests/support/ui.py), which the pages' CSP (scripts
    # from 'self' only) would block; only such tests bypass it.
    context = await browser.new_context(viewport=viewport, locale="fi-FI", bypass_csp=axe)
    page = await context.new_page()
    person = Person(context, page)
    page.on("pageerror", lambda exc: person.errors.append(str(exc)))
    await page.goto(url)
    return person


def office_agent(
    live: LiveService,
    source: FrameSource,
    *,
    size: tuple[int, int] = (544, 768),
    policy: RatePolicy | None = None,
    **options: Any,
) -> EndpointAgent:
    """The demo office's endpoint agent (its document camera) for `live`, on loopback, with a
    small track so the browser tests stay light; `options` go to AgentOptions."""
    return EndpointAgent(
        AgentOptions(
            server=live.base_url,
            endpoint_id=live.demo.endpoint_id,
            credential=live.demo.endpoint_credential,
            host_addresses=["127.0.0.1"],
            size=size,
            policy=policy or RatePolicy(max_fps=8.0, bits_per_frame=100_000),
            **options,
        ),
        source,
    )


async def open_kiosk(browser: Any, live: LiveService) -> Person:
    """The kiosk page, given its credential in the URL fragment as an installer does."""
    person = await _open(
        browser, f"{live.base_url}/kiosk{live.demo.kiosk_fragment()}", KIOSK_VIEWPORT
    )
    await person.page.wait_for_selector("#screen-start:not([hidden]) #authority-list button")
    return person


async def open_console(
    browser: Any, live: LiveService, path: str, username: str, *, axe: bool = False
) -> Person:
    """A console page, logged in through its form with the demo password."""
    person = await _open(browser, f"{live.base_url}{path}", CONSOLE_VIEWPORT, axe=axe)
    page = person.page
    await page.fill("#username", username)
    await page.fill("#password", live.passwords[username])
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#app:not([hidden])")
    return person


async def frames_decoded(page: Any) -> int:
    return int(await page.evaluate(FRAMES_DECODED_JS))


async def frames_by_mid(page: Any) -> dict[str, int]:
    return dict(await page.evaluate(FRAMES_BY_MID_JS))


async def wait_frames_growing(
    page: Any, *, streams: int = 1, within: float = 30.0
) -> dict[str, int]:
    """Wait until `streams` inbound video streams have decoded frames, and keep growing."""
    deadline = time.monotonic() + within
    first: dict[str, int] = {}
    while time.monotonic() < deadline:
        first = {k: v for k, v in (await frames_by_mid(page)).items() if v > 0}
        if len(first) >= streams:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"only {len(first)} of {streams} video streams decoded: {first}")
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = await frames_by_mid(page)
        grown = {mid: now.get(mid, 0) for mid in first if now.get(mid, 0) > first[mid]}
        if len(grown) >= streams:
            return grown
    raise AssertionError(f"decoded frames stopped growing: {first}")


async def another_kiosk(live: LiveService, name: str) -> Any:
    """A second kiosk of the demo office, as a python-socketio client (a walk-in customer
    whose screen the test does not need to look at)."""
    from signaling.directory import directory

    async with live.services.sessions() as session:
        endpoint, credential = await directory.create_endpoint(
            session, directory.EndpointCreate(office_id=live.demo.office_id, name=name)
        )
        await session.commit()
        endpoint_id = endpoint.id
    return await live.connect({"endpoint_id": endpoint_id, "credential": credential})


async def queue_numbers(page: Any) -> list[str]:
    """Ticket numbers in the expert's queue table, in serving order."""
    return list(
        await page.eval_on_selector_all("#queues td.num", "cells => cells.map(c => c.textContent)")
    )
