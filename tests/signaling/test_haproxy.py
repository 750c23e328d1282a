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

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.support.net import free_port
from tests.support.service import http_login

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs Debian's haproxy"),
]

REDIS_URL = "redis://127.0.0.1:6379/0"
# HAProxy checks /readyz every 300 ms in the test (fall 2): a dead or draining process is out
# within ~0.6 s.
CHECK_MS = 300


@dataclass
class Signaling:
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    tmp: Path
    database_url: str
    channel: str
    front_port: int
    stats_socket: Path
    processes: list[Signaling] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def front_url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    def start(self, node: Signaling, *, demo: bool) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ETAPALVELU_REDIS_CHANNEL": self.channel,
            "ETAPALVELU_STUN_URLS": "[]",
            "ETAPALVELU_TURN_URLS": "[]",
        }
        args = [
            sys.executable, "-m", "signaling", "serve",
            "--host", "127.0.0.1", "--port", str(node.port), "--data-dir", str(node.data_dir),
            "--database-url", self.database_url, "--redis-url", REDIS_URL,
            "--ice-address", "127.0.0.1", "--log-level", "INFO",
        ]  # fmt: skip
        if demo:
            args.append("--demo")
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    async def wait_ready(self, node: Signaling, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert node.process is not None
            if node.process.poll() is not None:
                raise AssertionError("serve exited:\n" + node.log())
            if await http_status(f"{node.url}/readyz") == 200:
                return
            await asyncio.sleep(0.2)
        raise AssertionError("serve did not become ready:\n" + node.log())

    async def server_states(self) -> dict[str, str]:
        """HAProxy's view of each server: {"signaling0": "UP", ...} (its admin socket)."""
        assert self.haproxy is not None and self.haproxy.poll() is None, "haproxy exited"
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.stats_socket))
        except (FileNotFoundError, ConnectionRefusedError):  # haproxy still starting
            return {}
        writer.write(b"show stat\n")
        await writer.drain()
        text = (await reader.read()).decode()
        writer.close()
        states = {}
        for line in text.splitlines():
            cols = line.split(",")
            if len(cols) > 17 and cols[0] == "signaling" and cols[1].startswith("signaling"):
                states[cols[1]] = cols[17]
        return states

    async def wait_state(self, name: str, wanted: str, within: float = 15.0) -> float:
        started = time.monotonic()
        states: dict[str, str] = {}
        while time.monotonic() - started < within:
            states = await self.server_states()
            if states.get(name, "").startswith(wanted):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} not {wanted} within {within} s: {states}")


async def http_status(url: str) -> int | None:
    with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response,
        ):
            return response.status
    return None


async def sockets_on(node: Signaling) -> int:
    """Authenticated sockets of one process, from its /metrics (asked directly, on loopback)."""
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        text = await response.text()
    match = re.search(r"^etapalvelu_sockets (\S+)$", text, re.MULTILINE)
    assert match, text[:500]
    return int(float(match.group(1)))


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the next count-1 are free on loopback (cluster-config
    numbers the signaling processes from --base-port)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65535:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    probe = stack.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise AssertionError("no consecutive free ports")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextlib.asynccontextmanager
async def cluster(tmp: Path, database_url: str) -> AsyncIterator[Cluster]:
    front_port = free_port()
    base = consecutive_free_ports(2)
    ports = [base, base + 1]
    out = tmp / "cluster"
    stats = tmp / "haproxy.sock"
    result = subprocess.run(  # noqa: ASYNC221 (a few hundred ms, before anything runs)
        [
            sys.executable, "-m", "signaling", "cluster-config",
            "--signaling", "2", "--base-port", str(ports[0]),
            "--public-url", f"http://127.0.0.1:{front_port}",
            "--database-url", database_url, "--redis-url", REDIS_URL,
            "--bind", f"127.0.0.1:{front_port}", "--stats-socket", str(stats),
            "--check-interval-ms", str(CHECK_MS), "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = (out / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in config and "balance leastconn" in config
    directives = [line.split()[0] for line in config.splitlines() if line.strip()[:1].isalpha()]
    assert not {"stick", "stick-table", "cookie", "appsession"} & set(directives)
    state = Cluster(tmp, database_url, f"haproxy-{uuid.uuid4().hex[:8]}", front_port, stats)
    for i, port in enumerate(ports):
        (tmp / f"s{i}").mkdir()
        state.processes.append(Signaling(port, tmp / f"s{i}" / "data", tmp / f"s{i}.log"))
    haproxy_log = (tmp / "haproxy.log").open("wb")
    try:
        # the first process migrates and seeds the demo; then the second
        state.start(state.processes[0], demo=True)
        await state.wait_ready(state.processes[0])
        state.start(state.processes[1], demo=False)
        await state.wait_ready(state.processes[1])
        state.haproxy = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            ["haproxy", "-db", "-f", str(out / "haproxy.cfg")],
            stdout=haproxy_log,
            stderr=subprocess.STDOUT,
        )
        for name in ("signaling0", "signaling1"):
            await state.wait_state(name, "UP", within=20)
        yield state
    finally:
        for node in state.processes:
            stop(node.process)
        stop(state.haproxy)
        haproxy_log.close()


async def reconnecting_client(url: str, token: str) -> tuple[socketio.AsyncClient, list[float]]:
    """A client as the pages are: WebSocket only, reconnecting by itself. Returns it and the
    list of the times it (re)connected."""
    client = socketio.AsyncClient(
        reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1.0
    )
    connects: list[float] = []

    @client.on("connect")
    async def on_connect() -> None:
        connects.append(time.monotonic())

    await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return client, connects


async def sync_ok(client: socketio.AsyncClient, within: float = 15.0) -> float:
    """Seconds until `flow:sync` is answered ok (retried while the client reconnects)."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < within:
        if client.connected:
            try:
                last = await client.call("flow:sync", {}, timeout=2)
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                last = "timeout"
            except socketio.exceptions.SocketIOError as exc:  # disconnected meanwhile
                last = repr(exc)
            else:
                if isinstance(last, dict) and last.get("ok"):
                    return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"flow:sync not answered within {within} s: {last!r}")


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


async def wait_for_status(url: str, status: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await http_status(url) == status:
            return True
        await asyncio.sleep(0.05)
    return False


async def wait_until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


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


async def wait_until_async(probe: Any, wanted: int, within: float) -> None:
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = await probe()
        if value == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"wanted {wanted}, last {value}")
