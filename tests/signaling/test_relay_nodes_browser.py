"""One Chromium pair across two signaling processes and two relay nodes: the kiosk page on
one `etapalvelu serve` process, the Kela expert's console on another, both placing calls on
relay nodes (`etapalvelu relay`) registered in Redis, sharing PostgreSQL. Video flows both
ways; when the call's node is killed (kill -9) both pages rejoin the call on the other node
by themselves (`call:relay_moved`) and video flows again; when the call ends no room is left
on any node."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from expert_console.call_setup_bench import FIRST_FRAME_JS
from tests.support.net import free_port
from tests.support.relay_nodes import REDIS_URL, RelayCluster, relay_cluster

pytestmark = pytest.mark.timeout(240)

DEMO_KIOSK = "#endpoint=1&credential=demo-kiosk-credential-not-for-production"

# Video frames decoded on the page's current connection, and how often it was moved.
MEDIA_JS = """async () => {
  const state = window.__etapalvelu || {};
  let frames = 0;
  if (state.pc && state.pc.connectionState !== "closed") {
    const report = await state.pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
  }
  return {frames, moves: state.relayMoves || 0, rejoins: state.rejoins || 0};
}"""


@contextlib.asynccontextmanager
async def serve_process(
    tmp: Path, cluster: RelayCluster, database_url: str
) -> AsyncIterator[str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ETAPALVELU_REDIS_CHANNEL": cluster.prefix,
        "ETAPALVELU_RELAY_FAILOVER_INTERVAL": "0.2",
        "ETAPALVELU_STUN_URLS": "[]",
        "ETAPALVELU_TURN_URLS": "[]",
    }
    log = (tmp / "serve.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [
            sys.executable, "-m", "signaling", "serve", "--demo",
            "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp / "data"),
            "--database-url", database_url, "--redis-url", REDIS_URL,
            "--relay-mode", "nodes", "--relay-secret-file", str(cluster.secret_file),
            "--ice-address", "127.0.0.1", "--log-level", "INFO",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError((tmp / "serve.log").read_text())
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{base_url}/readyz") as response,
                ):
                    if response.status == 200:
                        break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("serve did not become ready: " + (tmp / "serve.log").read_text())
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def wait_media(page: Any, above: int, within: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = await page.evaluate(MEDIA_JS)
        if state["frames"] > above:
            return state
        await asyncio.sleep(0.25)
    raise AssertionError(f"no video on the page: {state}")


async def test_chromium_call_across_processes_survives_its_relay_node(
    tmp_path: Path, fresh_postgres_url: str, browser: Any
) -> None:
    database_url = fresh_postgres_url
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        relay_cluster(tmp_path, ["n1", "n2"]) as cluster,
        serve_process(tmp_path / "a", cluster, database_url) as kiosk_url,
        serve_process(tmp_path / "b", cluster, database_url) as expert_url,
    ):
        kiosk_context = await browser.new_context(viewport={"width": 1280, "height": 900})
        expert_context = await browser.new_context(viewport={"width": 1366, "height": 900})
        kiosk = await kiosk_context.new_page()
        expert = await expert_context.new_page()
        await kiosk.goto(f"{kiosk_url}/kiosk{DEMO_KIOSK}")
        await kiosk.wait_for_selector("#screen-start:not([hidden]) #authority-list button")
        await expert.goto(f"{expert_url}/expert")
        await expert.fill("#username", "kela")
        await expert.fill("#password", "kela-demo")
        await expert.click("#login-form button[type=submit]")
        await expert.wait_for_selector("#app:not([hidden])")

        await kiosk.click("#authority-list button[data-authority=kela]")
        await kiosk.click("#service-language-list button[data-language=fin]")
        await kiosk.wait_for_selector("#screen-ticket:not([hidden])")
        await expert.wait_for_selector("#take-next:not([disabled])", timeout=20000)
        expert_frame = asyncio.ensure_future(
            expert.evaluate(FIRST_FRAME_JS, "#tile-customer video")
        )
        kiosk_frame = asyncio.ensure_future(kiosk.evaluate(FIRST_FRAME_JS, "#tile-expert video"))
        await expert.click("#take-next")
        firsts = await asyncio.gather(expert_frame, kiosk_frame)
        assert all(first["how"] != "timeout" for first in firsts), firsts

        rooms = {node_id: await cluster.rooms_of(node_id) for node_id in ("n1", "n2")}
        [victim] = [node_id for node_id, open_rooms in rooms.items() if open_rooms]
        cluster.nodes[victim].kill()
        for page in (kiosk, expert):
            deadline = time.monotonic() + 30
            state = await page.evaluate(MEDIA_JS)
            while state["moves"] < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                state = await page.evaluate(MEDIA_JS)
            assert state["moves"] >= 1, state
        # Frames decoded on the new connection (its counters start from zero).
        await wait_media(kiosk, 10)
        await wait_media(expert, 10)
        survivor = "n2" if victim == "n1" else "n1"
        assert len(await cluster.rooms_of(survivor)) == 1

        await expert.click("#end-call")
        for _ in range(60):
            if not await cluster.rooms_of(survivor):
                break
            await asyncio.sleep(0.25)
        assert await cluster.rooms_of(survivor) == []
