"""Camera guidance end to end: an agent whose camera cannot carry the office's target tells
the clerk, through the server, in the call; one that can says nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from document_camera.rate_control import RatePolicy
from document_camera.sources import SyntheticSource
from endpoint.agent import AgentOptions, EndpointAgent
from tests.support.service import LiveService, make_live_service


@pytest_asyncio.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveService]:
    async with make_live_service(tmp_path) as service:
        yield service


async def _ack(client: Any, event: str, data: dict[str, Any]) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(event, data, timeout=10)
    assert ack["ok"], (event, ack)
    return ack


async def _call_with_agent(
    live: LiveService, target: str, camera: tuple[int, int] = (1280, 720),
) -> tuple[EndpointAgent, Any, int, list[dict[str, Any]]]:
    options = AgentOptions(
        server=live.base_url, endpoint_id=live.demo.endpoint_id,
        credential=live.demo.endpoint_credential, host_addresses=["127.0.0.1"],
        size=(544, 768), policy=RatePolicy(max_fps=10.0, bits_per_frame=100_000),
        camera_target=target)
    agent = EndpointAgent(options, SyntheticSource(frame_size=camera, seed=6))
    clerk = await live.connect_user("sihteeri")
    heard: list[dict[str, Any]] = []
    clerk.on("document_camera:notice", lambda data: heard.append(data))
    await _ack(clerk, "flow:sync", {})
    await agent.start()
    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    await _ack(kiosk, "flow:sync", {})
    await _ack(expert, "flow:sync", {})
    await _ack(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    call_id = int((await _ack(expert, "queue:take_next", {}))["call"]["id"])
    await asyncio.wait_for(agent.joined.wait(), 15)
    return agent, clerk, call_id, heard


@pytest.mark.slow
async def test_a_720p_camera_for_plans_warns_the_clerk_of_the_call(live: LiveService) -> None:
    agent, clerk, call_id, heard = await _call_with_agent(live, "plans")
    try:
        for _ in range(150):
            if heard:
                break
            await asyncio.sleep(0.1)
        assert heard, "the clerk was not told"
        notice = heard[0]
        assert notice["call_id"] == call_id
        assert notice["code"] == "camera_too_coarse"
        assert "1280x720" in notice["detail"]
        assert set(notice["text"]) == {"fi", "sv", "en"}
        assert agent.camera_size == (1280, 720)
        assert any(n.code == "camera_too_coarse" for n in agent.notices)
        # A kiosk of another call, or anyone but the call's own kiosk, may not say it.
        refused = await clerk.call("document_camera:notice",
                                   {"call_id": call_id, "code": "camera_too_coarse"},
                                   timeout=10)
        assert not refused["ok"]
        kiosk = await live.connect_kiosk()
        garbage = await kiosk.call("document_camera:notice",
                                   {"call_id": call_id, "code": "no_page"}, timeout=10)
        assert not garbage["ok"]
    finally:
        await agent.stop()


@pytest.mark.slow
async def test_a_camera_that_carries_the_target_says_nothing(live: LiveService) -> None:
    agent, _clerk, _call_id, heard = await _call_with_agent(live, "text-10pt", (1920, 1080))
    try:
        for _ in range(50):
            if agent.camera_size is not None:
                break
            await asyncio.sleep(0.1)
        assert agent.camera_size == (1920, 1080)
        await asyncio.sleep(0.5)
        assert heard == []
    finally:
        await agent.stop()


@pytest.mark.slow
@pytest.mark.browser
async def test_the_clerks_console_shows_the_warning_on_the_calls_row(
    browser: Any, live: LiveService
) -> None:
    """What the clerk sees: the warning on the call's row in his console, in his language."""
    from tests.expert_console.people import open_console
    from tests.support.browser import screenshot

    clerk_page = await open_console(browser, live, "/expert", "sihteeri")
    agent = None
    try:
        page = clerk_page.page
        await page.wait_for_selector("#view-clerk:not([hidden])")
        agent, _clerk, _call_id, _heard = await _call_with_agent(live, "plans")
        row = "#office-calls li[data-call]"
        await page.wait_for_selector(f"{row} .doccam-notice", timeout=20000)
        text = await page.text_content(f"{row} .doccam-notice") or ""
        assert "Dokumenttikameran tarkkuus ei riitä" in text, text
        await screenshot(page, "console-clerk-camera-too-coarse")
        await page.click("#language-switcher button[data-lang=sv]")
        await page.wait_for_function(
            "() => (document.querySelector('#office-calls .doccam-notice') || {}).textContent"
            "?.includes('Dokumentkamerans upplösning')", timeout=10000)
        clerk_page.assert_no_errors()
    finally:
        if agent is not None:
            await agent.stop()
        await clerk_page.close()
