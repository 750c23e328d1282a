"""Two `etapalvelu serve` processes behind a real HAProxy, configured by `etapalvelu
cluster-config`, on one PostgreSQL database and Redis.

- a python-socketio client (WebSocket only) connects through HAProxy and gets answers;
- SIGTERM drains the process the client is on: /readyz answers 503, HAProxy marks it DOWN,
  the client reconnects by itself through HAProxy to the other process, and the drained process
  exits 0 with no traceback (no aiosqlite/asyncpg work left after the loop closed);
- kill -9 of the process a client is on: the client reconnects through HAProxy and works;
- the expert console in Chromium, through HAProxy, survives kill -9 of its process: the page
  reconnects to the other process and an availability change is answered there.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    cluster,
    reconnecting_client,
    sockets_on,
    sync_ok,
    wait_for_status,
    wait_until,
    wait_until_async,
)
from tests.support.service import http_login

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs Debian's haproxy"),
]


async def which_process(state: Cluster, expected_total: int) -> list[int]:
    counts = [await sockets_on(node) for node in state.processes]
    assert sum(counts) == expected_total, counts
    return counts


async def test_clients_move_through_haproxy_on_drain_and_on_kill(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    async with cluster(tmp_path, fresh_postgres_url) as state:
        token = (await http_login(state.front_url, "kela", "kela-demo"))["token"]
        client, connects = await reconnecting_client(state.front_url, token)
        try:
            await sync_ok(client, within=5)
            counts = await which_process(state, 1)
            on = counts.index(1)
            other = 1 - on
            drained = state.processes[on]
            assert drained.process is not None

            # SIGTERM: /readyz 503 at once, HAProxy takes it out, the client moves.
            sent = time.monotonic()
            drained.process.send_signal(signal.SIGTERM)
            assert await wait_for_status(f"{drained.url}/readyz", 503, within=3)
            marked_down = await state.wait_state(f"signaling{on}", "DOWN", within=5)
            await wait_until(lambda: len(connects) >= 2, within=10)
            await sync_ok(client, within=10)
            served = time.monotonic() - sent
            assert await which_process_alive(state, other) == 1
            assert drained.process.wait(15) == 0, drained.log()
            log = drained.log()
            # HAProxy saw /readyz 503 (not a refused connection) before the sockets closed
            assert "drained: 1 sockets closed (of 1), balancer noticed: True" in log, log
            haproxy_log = (tmp_path / "haproxy.log").read_text()
            assert re.search(
                rf"signaling{on} is DOWN, reason: Layer7 wrong status, code: 503", haproxy_log
            ), haproxy_log
            for bad in ("Traceback", "Event loop is closed", "was never awaited"):
                assert bad not in log, log
            print(
                f"drain: HAProxy marked it DOWN after {marked_down:.2f} s; "
                f"client served again {served:.2f} s after SIGTERM"
            )

            # Back in rotation, then kill -9 the process a client is on.
            state.start(drained, demo=False)
            await state.wait_ready(drained)
            await state.wait_state(f"signaling{on}", "UP", within=10)
            second, second_connects = await reconnecting_client(state.front_url, token)
            try:
                await sync_ok(second, within=5)
                # leastconn: the second client went to the process without one
                assert await sockets_on(drained) == 1
                victim = drained.process
                assert victim is not None
                killed = time.monotonic()
                victim.send_signal(signal.SIGKILL)
                victim.wait(5)
                await wait_until(lambda: len(second_connects) >= 2, within=10)
                await sync_ok(second, within=10)
                total = time.monotonic() - killed
                assert await sockets_on(state.processes[other]) == 2
                await sync_ok(client, within=5)
                await state.wait_state(f"signaling{on}", "DOWN", within=5)
                print(f"kill -9: client served again {total:.2f} s after the kill")
            finally:
                await second.disconnect()
        finally:
            await client.disconnect()


async def which_process_alive(state: Cluster, index: int) -> int:
    return await sockets_on(state.processes[index])


async def test_expert_console_through_haproxy_survives_its_process(
    tmp_path: Path, fresh_postgres_url: str, browser: Any
) -> None:
    async with cluster(tmp_path, fresh_postgres_url) as state:
        context = await browser.new_context(viewport={"width": 1366, "height": 900})
        page = await context.new_page()
        await page.goto(f"{state.front_url}/expert")
        await page.fill("#username", "kela")
        await page.fill("#password", "kela-demo")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#app:not([hidden])")
        await page.wait_for_selector("#presence:not([hidden])")
        await wait_until_async(lambda: total_sockets(state), 1, within=10)
        counts = [await sockets_on(node) for node in state.processes]
        on = counts.index(1)
        victim = state.processes[on].process
        assert victim is not None
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        survivor = state.processes[1 - on]
        await wait_until_async(lambda: sockets_on(survivor), 1, within=15)
        reconnected = time.monotonic() - killed
        # An action after the move is answered by the other process.
        await change_presence(page)
        print(f"browser: the console reconnected {reconnected:.2f} s after kill -9")

        # The killed process comes back; the one the page is on now is drained (SIGTERM): the
        # page moves back by itself.
        restarted = state.processes[on]
        state.start(restarted, demo=False)
        await state.wait_ready(restarted)
        await state.wait_state(f"signaling{on}", "UP", within=10)
        assert survivor.process is not None
        sent = time.monotonic()
        survivor.process.send_signal(signal.SIGTERM)
        await wait_until_async(lambda: sockets_on(restarted), 1, within=15)
        moved = time.monotonic() - sent
        await change_presence(page)
        assert survivor.process.wait(15) == 0, survivor.log()
        assert "drained: 1 sockets closed (of 1), balancer noticed: True" in survivor.log()
        print(f"browser: the console moved {moved:.2f} s after SIGTERM of its process")
        # the page spoke socket.io over WebSocket only (HAProxy logs every request line)
        requests = (tmp_path / "haproxy.log").read_text()
        assert "/socket.io/?EIO=4&transport=websocket" in requests, requests
        assert "transport=polling" not in requests, requests
        await context.close()


async def change_presence(page: Any) -> None:
    """Click an availability not shown now; the page marks it only when the server said ok."""
    pressed = await page.evaluate(
        "() => document.querySelector(\"#presence button[aria-pressed='true']\")"
        "?.dataset.presence ?? null"
    )
    wanted = "away" if pressed == "busy" else "busy"
    await page.click(f"#presence button[data-presence='{wanted}']")
    await page.wait_for_selector(
        f"#presence button[data-presence='{wanted}'][aria-pressed='true']", timeout=10_000
    )
    assert await page.locator("#status.error").count() == 0


async def total_sockets(state: Cluster) -> int:
    total = 0
    for node in state.processes:
        if node.process is not None and node.process.poll() is None:
            total += await sockets_on(node)
    return total
