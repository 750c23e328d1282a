"""Chromium and an aiortc client, both forcing relay-only ICE, call through coturn into the
media relay (SFU)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiortc import MediaStreamTrack
from av import VideoFrame

from media_relay.aiortc_client import RelayPeerClient
from media_relay.control import LocalRelay, RelayConfig
from signaling.config import Settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.net import LOOPBACK
from tests.support.relay_bridge import RelayBridge, wait_until
from tests.turn_config.conftest import NEW_SECRET, OLD_SECRET
from tests.turn_config.coturn_server import Coturn
from tests.turn_config.media import ColourTrack, selected_local_candidate_types
from turn_config.credentials import ice_servers_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
ROOM = "browser-turn-room"
PAGE = (Path(__file__).parent / "relay_only_page.html").read_text()


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[LocalRelay]:
    instance = LocalRelay(RelayConfig(listen_address=LOOPBACK, announced_addresses=[LOOPBACK]))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest_asyncio.fixture
async def tls_tolerant_browser() -> AsyncIterator[Any]:
    """Chromium that accepts coturn's test certificate for TURN over TLS.

    Chromium checks a `turns:` server's certificate like a web site's; the test CA is not
    in its trust store, so this instance ignores certificate errors (tests only).
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_browser_and_aiortc_relay_only_through_coturn(
    coturn: Coturn, relay: LocalRelay, browser: Any, transport: str
) -> None:
    await _call_through_coturn(coturn, relay, browser, transport)


async def test_browser_and_aiortc_relay_only_through_coturn_over_tls(
    coturn: Coturn,
    relay: LocalRelay,
    tls_tolerant_browser: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aioice opens TURN over TLS with Python's default context: trust the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(coturn.tls.ca))
    await _call_through_coturn(coturn, relay, tls_tolerant_browser, "TLS")


async def _call_through_coturn(
    coturn: Coturn, relay: LocalRelay, browser: Any, transport: str
) -> None:
    settings = Settings(
        turn_urls=[coturn.urls()[transport]],
        turn_secrets=[NEW_SECRET, OLD_SECRET],
        turn_credential_ttl=300,
    )
    # The page asks the bridge for its ICE servers: the TURN credentials the service would send.
    bridge = RelayBridge(
        relay, ROOM, PAGE, ice_servers=lambda participant: ice_servers_for(settings, participant)
    )
    async with bridge:
        from_browser: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        kiosk = RelayPeerClient(
            {"camera": ColourTrack()},
            ice_servers=ice_servers_for(settings, "kiosk"),
            ice_transport_policy="relay",
            on_track=lambda track, meta: (
                from_browser.put_nowait(track)
                if meta.get("participant_id") == "expert" and track.kind == "video"
                else None
            ),
        )
        context = await browser.new_context()
        try:
            await bridge.join_peer("kiosk", ["camera"], kiosk.handle_offer)
            page = await context.new_page()
            await page.goto(bridge.page_url("expert"))
            await _check_call(page, kiosk, from_browser, transport)
        finally:
            await context.close()
            await kiosk.close()

    assert await coturn.peer_packets_sent("expert") > 10
    assert await coturn.peer_packets_sent("kiosk") > 10


async def _check_call(
    page: Any,
    kiosk: RelayPeerClient,
    from_browser: asyncio.Queue[MediaStreamTrack],
    transport: str,
) -> None:
    """Media flows both ways, relayed by coturn on `transport` only, then the page hangs up."""

    async def browser_decodes() -> bool:
        report = await page.evaluate("window.relayReport && window.relayReport()")
        return bool(report) and report["framesDecoded"] >= 10

    decoded = await wait_until(browser_decodes, 40)
    report = await page.evaluate("window.relayReport()")
    state = await page.evaluate("({errors: relayTest.errors, answers: relayTest.answers})")
    assert not state["errors"], state["errors"]
    assert decoded, report
    # Chromium's answers carry relayed candidates only, and the pair in use is relayed.
    for sdp in state["answers"]:
        types = {
            line.split(" typ ")[1].split()[0]
            for line in sdp.splitlines()
            if line.startswith("a=candidate:")
        }
        assert types == {"relay"}, sdp
    assert report["pairs"] and all(p["local"] == "relay" for p in report["pairs"]), report
    expected_protocol = {"UDP": "udp", "TCP": "tcp", "TLS": "tls"}[transport]
    assert all(p["relayProtocol"] == expected_protocol for p in report["pairs"]), report

    # And the browser's camera reaches the aiortc kiosk, also through coturn.
    track = await asyncio.wait_for(from_browser.get(), 30)
    frame = await asyncio.wait_for(track.recv(), 30)
    assert isinstance(frame, VideoFrame) and frame.width > 0
    assert selected_local_candidate_types(kiosk.pc) == {"relay"}
    # What Chromium shows is the kiosk's picture (ColourTrack's orange), not a blank.
    red, green, blue = await page.evaluate("window.remoteColour()")
    assert red > 200 and 80 < green < 170 and blue < 80, (red, green, blue)
    # Hang up in the page first: Chromium then frees its allocations (Refresh, lifetime 0).
    await page.evaluate("relayTest.client.leave()")
