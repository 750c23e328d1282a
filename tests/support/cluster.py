"""N `etapalvelu serve` processes behind a real HAProxy, configured by `etapalvelu
cluster-config`, on one PostgreSQL database and Redis (tests/signaling/test_haproxy.py,
tests/signaling/test_cluster_stories.py).

    async with cluster(tmp_path, database_url, count=3) as state:
        state.front_url                       # HAProxy: what the clients use
        state.processes[i].url                # one process, directly (its /metrics, /readyz)
        async with state.pinned(1):           # new connections through HAProxy go to process 1
            client = await connect(...)
        state.processes[1].kill()             # kill -9
        await state.wait_state("signaling1", "DOWN")

The first process migrates the database and seeds the demo (`--demo`); the others start once
it is ready, all at the same time. HAProxy checks /readyz every `CHECK_MS` (fall 2). Its admin
socket (`stats_socket`) answers `show stat` and takes `set server ... state drain|ready`, which
`pinned` uses to steer new connections (leastconn) to one process without touching the
config: existing connections stay where they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from signaling.cli.bench_cluster import consecutive_free_ports
from signaling.cli.bench_cluster import stop_process as stop
from tests.support.net import free_port

__all__ = [
    "CHECK_MS",
    "REDIS_URL",
    "Cluster",
    "Signaling",
    "cluster",
    "consecutive_free_ports",
    "http_status",
    "reconnecting_client",
    "sockets_on",
    "stop",
    "sync_ok",
    "wait_for_status",
    "wait_until",
    "wait_until_async",
]

REDIS_URL = "redis://127.0.0.1:6379/0"
# HAProxy checks /readyz every 300 ms in the tests (fall 2): a dead or draining process is out
# within ~0.6 s.
CHECK_MS = 300


@dataclass
class Signaling:
    index: int
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        """Its server name in haproxy.cfg."""
        return f"signaling{self.index}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9, and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    tmp: Path
    database_url: str
    channel: str
    front_port: int
    stats_socket: Path
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Signaling] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def front_url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    @property
    def haproxy_log(self) -> Path:
        return self.tmp / "haproxy.log"

    def start(self, node: Signaling, *, demo: bool) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ETAPALVELU_REDIS_CHANNEL": self.channel,
            "ETAPALVELU_STUN_URLS": "[]",
            "ETAPALVELU_TURN_URLS": "[]",
            **self.extra_env,
        }
        args = [
            sys.executable, "-m", "signaling", "serve",
            "--host", "127.0.0.1", "--port", str(node.port), "--data-dir", str(node.data_dir),
            "--database-url", self.database_url, "--redis-url", REDIS_URL,
            "--ice-address", "127.0.0.1", "--log-level", "INFO", *self.extra_args,
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

    async def admin(self, command: str) -> str:
        """One command on HAProxy's admin socket; its answer."""
        assert self.haproxy is not None and self.haproxy.poll() is None, "haproxy exited"
        reader, writer = await asyncio.open_unix_connection(str(self.stats_socket))
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode()
        finally:
            writer.close()

    async def server_states(self) -> dict[str, str]:
        """HAProxy's view of each server: {"signaling0": "UP", ...}."""
        try:
            text = await self.admin("show stat")
        except (FileNotFoundError, ConnectionRefusedError):  # haproxy still starting
            return {}
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

    @contextlib.asynccontextmanager
    async def pinned(self, index: int) -> AsyncIterator[Signaling]:
        """New connections through HAProxy go to process `index` while the block runs (the
        others are set to `drain` on the admin socket: they keep what they have)."""
        others = [node for node in self.processes if node.index != index]
        for node in others:
            answer = await self.admin(f"set server signaling/{node.name} state drain")
            assert not answer.strip(), answer
        try:
            yield self.processes[index]
        finally:
            for node in others:
                await self.admin(f"set server signaling/{node.name} state ready")

    async def sockets(self) -> list[int]:
        """Authenticated sockets of each process (0 for a dead one)."""
        return [await sockets_on(node) if node.alive() else 0 for node in self.processes]


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


@contextlib.asynccontextmanager
async def cluster(
    tmp: Path,
    database_url: str,
    *,
    count: int = 2,
    channel: str | None = None,
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    """`count` serve processes (extra `serve` arguments and environment for all of them) and
    HAProxy in front, until the block ends. `channel` is ETAPALVELU_REDIS_CHANNEL (relay nodes
    register under it; a fresh one by default)."""
    front_port = free_port()
    base = consecutive_free_ports(count)
    ports = list(range(base, base + count))
    out = tmp / "cluster"
    stats = tmp / "haproxy.sock"
    result = subprocess.run(  # noqa: ASYNC221 (a few hundred ms, before anything runs)
        [
            sys.executable, "-m", "signaling", "cluster-config",
            "--signaling", str(count), "--base-port", str(ports[0]),
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
    # The checks run every CHECK_MS; `timeout check` keeps a slow /readyz answer on a loaded
    # 2-core machine from counting as a failed check (a dead process still fails at once).
    assert "timeout check 3s" in config
    state = Cluster(
        tmp,
        database_url,
        channel or f"haproxy-{uuid.uuid4().hex[:8]}",
        front_port,
        stats,
        extra_args=list(extra_args or []),
        extra_env=dict(extra_env or {}),
    )
    for i, port in enumerate(ports):
        (tmp / f"s{i}").mkdir()
        state.processes.append(Signaling(i, port, tmp / f"s{i}" / "data", tmp / f"s{i}.log"))
    haproxy_log = state.haproxy_log.open("wb")
    try:
        # the first process migrates and seeds the demo; then the others, together
        state.start(state.processes[0], demo=True)
        await state.wait_ready(state.processes[0])
        for node in state.processes[1:]:
            state.start(node, demo=False)
        for node in state.processes[1:]:
            await state.wait_ready(node)
        state.haproxy = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            ["haproxy", "-db", "-f", str(out / "haproxy.cfg")],
            stdout=haproxy_log,
            stderr=subprocess.STDOUT,
        )
        for node in state.processes:
            await state.wait_state(node.name, "UP", within=20)
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


async def wait_for_status(url: str, status: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await http_status(url) == status:
            return True
        await asyncio.sleep(0.05)
    return False


async def wait_until(condition: Callable[[], bool], within: float, what: str = "") -> float:
    """Seconds until `condition()` holds; fails after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if condition():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {within} s {what}".strip())


async def wait_until_async(
    probe: Callable[[], Awaitable[Any]], wanted: Any, within: float
) -> float:
    """Seconds until `await probe()` equals `wanted`; fails after `within`."""
    started = time.monotonic()
    value = None
    while time.monotonic() - started < within:
        value = await probe()
        if value == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"wanted {wanted}, last {value}")
