"""`etapalvelu bench signaling --processes P --clients N --seconds S` (P > 1).

What runs (all on loopback):

- a scratch PostgreSQL database on 127.0.0.1:5432 (user postgres, trust auth; dropped at the
  end), or `--database-url`; Redis at 127.0.0.1:6379 with a unique ETAPALVELU_REDIS_CHANNEL;
- P `etapalvelu serve` processes (the first with `--demo`, ready before the others start);
- a real `haproxy` with the haproxy.cfg of `etapalvelu cluster-config` (deployment defaults:
  /readyz checked every 1000 ms, fall 2, leastconn, retries/redispatch), bound to a free port.

What is measured:

- `baseline_rtt_ms`: one client through HAProxy, 300 sequential `session:ping` acks;
- `rtt_ms`: N clients (wire-protocol websocket clients in `--workers` processes, through
  HAProxy) each send `session:ping` every `--interval` s; the ack round trip, before the kill;
  `rtt_after_kill_ms` is the same after it (includes the reconnect storm);
- `cross_ms`: cross-process delivery. An expert ("sender") connected directly to process 0
  calls `presence:set` (alternating available/away) every 100 ms; one staff "listener" per
  process, connected directly to that process's port, has called `presence:get` (so it is in
  the presence room). The figure is the time from sending `presence:set` on process 0 to the
  `presence:changed` push arriving at the listeners on processes 1..P-1 (database commit,
  Redis publish, the other process's socket.io emit). `local_ms` is the same for the listener
  on process 0, so `cross - local` is what crossing processes costs. All timestamps are taken
  in the bench's main process (one clock);
- memory: VmRSS of all serve processes before the N clients and with them connected;
- `recovery_s`: halfway through, process P-1 is killed with SIGKILL. Its clients see their
  websocket close and reconnect through HAProxy at once (jitter 0-200 ms, then backoff to 1 s);
  a client is served again at its first successful `session:ping` ack after reconnecting.
  `recovery_s` is the time from the kill to the last such ack.

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from signaling.cli.bench import (
    CONNECT_CONCURRENCY,
    _raise_fd_limit,
    _tune_gc,
    cpu_seconds,
    percentile,
    rss_mb,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
CHECK_INTERVAL_MS = 1000  # cluster-config's default, i.e. what a deployment gets
CALL_TIMEOUT = 5.0
RECOVERY_GRACE_S = 20.0  # how long after the run a client still down keeps trying
CROSS_PERIOD_S = 0.1
CLIENTS_PER_USER = 500  # under the max_sockets_per_user the bench sets (1000)
TARGET = {
    "processes": 3,
    "clients": 6000,
    "rtt_p99_ms": 100,
    "cross_p99_ms": 20,
    "recovery_s": 5,
}


class BenchSetupError(RuntimeError):
    """Something the bench needs is missing (haproxy, PostgreSQL, Redis) or did not start."""


# --- the wire-protocol client, with events and close notification --------------------------


class ClusterClient:
    """socket.io v5 / engine.io v4 over one websocket (like signaling.cli.bench.WireClient), also
    passing server events to `on_event` and setting `closed` when the websocket ends."""

    def __init__(self, session: Any, on_event: Callable[[str, Any], None] | None = None) -> None:
        self.session = session
        self.on_event = on_event
        self.ws: Any = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, base_url: str, auth: dict[str, Any], limit_s: float = 30) -> None:
        url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await asyncio.wait_for(
            self.session.ws_connect(url, max_msg_size=0, autoping=False), limit_s
        )
        opened = await self.ws.receive_str(timeout=limit_s)
        if not opened.startswith("0"):
            raise ConnectionError(f"no engine.io open packet: {opened[:80]}")
        await self.ws.send_str("40" + json.dumps(auth))
        while True:
            answer = await self.ws.receive_str(timeout=limit_s)
            if answer == "2":
                await self.ws.send_str("3")
                continue
            if answer.startswith("42"):
                # an event emitted while the server's connect handler ran (e.g. a queue
                # update when an expert comes online) reaches us before the connect ack;
                # socket.io clients buffer those, the benchmark has no use for them
                continue
            break
        if not answer.startswith("40"):
            raise ConnectionError(f"refused: {answer[:200]}")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                data = message.data
                if not isinstance(data, str):
                    continue
                if data == "2":
                    await self.ws.send_str("3")
                elif data.startswith("43"):
                    bracket = data.index("[")
                    future = self.pending.pop(int(data[2:bracket]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(data[bracket:])[0])
                elif data.startswith("42") and self.on_event is not None:
                    name, *rest = json.loads(data[2:])
                    self.on_event(name, rest[0] if rest else None)
        finally:
            self.closed.set()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.ws.closed and not self.closed.is_set()

    async def call(self, event: str, payload: Any, limit_s: float = CALL_TIMEOUT) -> Any:
        if not self.is_open:
            raise ConnectionError("closed")
        ack_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[ack_id] = future
        try:
            await self.ws.send_str(f"42{ack_id}" + json.dumps([event, payload]))
            return await asyncio.wait_for(future, limit_s)
        finally:
            self.pending.pop(ack_id, None)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


# --- client worker processes --------------------------------------------------------------


def _worker(
    conn: Connection, front_url: str, tokens: list[str], seconds: float, interval: float
) -> None:
    _raise_fd_limit()
    _tune_gc()
    asyncio.run(_worker_main(conn, front_url, tokens, seconds, interval))


async def _worker_main(
    conn: Connection, front_url: str, tokens: list[str], seconds: float, interval: float
) -> None:
    """One client per token (tokens repeat: several clients share an account)."""
    import aiohttp

    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures = 0
    last_failure = ""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def connect_once(token: str) -> tuple[ClusterClient, str] | None:
            nonlocal failures, last_failure
            async with gate:
                client = ClusterClient(session)
                try:
                    await client.connect(front_url, {"token": token})
                    return client, token
                except Exception as exc:
                    failures += 1
                    status = getattr(exc, "status", None)  # an HTTP answer instead of 101
                    last_failure = f"HTTP {status}" if status else repr(exc)[:200]
                    await client.close()
                    return None

        clients = [c for c in await asyncio.gather(*(connect_once(t) for t in tokens)) if c]
        conn.send(("connected", len(clients), failures, last_failure))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "go"
        rtts: list[tuple[float, float]] = []  # (monotonic time, ms)
        outages: list[tuple[float, float | None]] = []  # (noticed, served again or None)
        errors = reconnects = 0
        deadline = time.monotonic() + seconds

        async def drive(first: ClusterClient, token: str) -> None:
            nonlocal errors, reconnects
            client: ClusterClient | None = first
            down_since: float | None = None
            backoff = 0.2
            await asyncio.sleep(random.uniform(0, interval))
            seq = 0
            while True:
                now = time.monotonic()
                if now >= deadline + (RECOVERY_GRACE_S if down_since is not None else 0):
                    break
                if client is None or not client.is_open:
                    if down_since is None:
                        down_since = now
                        backoff = 0.2
                        if client is not None:
                            await client.close()
                        # spread the reconnect storm a little, as socket.io clients do
                        await asyncio.sleep(random.uniform(0, 0.2))
                    client = ClusterClient(session)
                    try:
                        await client.connect(front_url, {"token": token}, limit_s=5)
                        reconnects += 1
                    except Exception:
                        await client.close()
                        client = None
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 1.0)
                        continue
                started = time.perf_counter()
                try:
                    ack = await client.call("session:ping", {"seq": seq})
                    if ack.get("ok") and ack.get("seq") == seq:
                        rtts.append((time.monotonic(), (time.perf_counter() - started) * 1000))
                        if down_since is not None:
                            outages.append((down_since, time.monotonic()))
                            down_since = None
                    else:
                        errors += 1
                except Exception:
                    errors += 1
                seq += 1
                if client.is_open:
                    remaining = max(0.0, interval - (time.perf_counter() - started))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(client.closed.wait(), remaining)
            if down_since is not None:
                outages.append((down_since, None))
            if client is not None:
                await client.close()

        await asyncio.gather(*(drive(c, t) for c, t in clients))
        conn.send(("done", rtts, errors, outages, reconnects, rss_mb(os.getpid())))


# --- the cluster ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the next count-1 are free on loopback (cluster-config
    numbers the signaling processes from --base-port); shared with tests/support/cluster.py."""
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
    raise BenchSetupError("no consecutive free ports on 127.0.0.1")


async def _pg_execute(statement: str) -> None:
    import asyncpg

    last: Exception | None = None
    for admin_db in ("postgres", "template1"):
        try:
            connection = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=PG_USER, database=admin_db, timeout=5
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            last = exc
            continue
        try:
            await connection.execute(statement)
            return
        finally:
            await connection.close()
    raise BenchSetupError(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {last}")


async def _seed(database_url: str, tokens_per_user: dict[str, int]) -> dict[str, list[str]]:
    """The bench accounts (experts, `username: tokens wanted`) and their session tokens."""
    from sqlalchemy import select

    from signaling.db import create_engine, migrate, session_factory
    from signaling.directory import directory
    from signaling.directory.identity import issue_session
    from signaling.store.models import User

    engine = create_engine(database_url)
    try:
        await migrate(engine)
        tokens: dict[str, list[str]] = {}
        async with session_factory(engine)() as session:
            for username, count in tokens_per_user.items():
                user = (
                    await session.execute(select(User).where(User.username == username))
                ).scalar_one_or_none()
                if user is None:
                    user = await directory.create_user(
                        session,
                        directory.UserCreate(
                            username=username,
                            display_name=f"Benchmark {username}",
                            role="expert",
                            password=os.urandom(16).hex(),
                            authorities=["kela"],
                            languages=["fin"],
                        ),
                    )
                tokens[username] = [
                    (await issue_session(session, user, 3600)).token for _ in range(count)
                ]
            await session.commit()
        return tokens
    finally:
        await engine.dispose()


@dataclass
class Node:
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-2000:]


@dataclass
class Cluster:
    tmp: Path
    database_url: str
    channel: str
    front_port: int
    stats_socket: Path
    nodes: list[Node] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def front_url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    def start(self, index: int, *, demo: bool) -> None:
        node = self.nodes[index]
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ETAPALVELU_REDIS_CHANNEL": self.channel,
            "ETAPALVELU_STUN_URLS": "[]",
            "ETAPALVELU_TURN_URLS": "[]",
            # The bench's clients share a few accounts (creating thousands of users would hash
            # thousands of passwords): let one account hold up to CLIENTS_PER_USER sockets and
            # send that many sockets' events. The per-socket budget never binds either.
            "ETAPALVELU_RATE_LIMIT_EVENTS": "1000",
            "ETAPALVELU_MAX_SOCKETS_PER_USER": "1000",
            "ETAPALVELU_RATE_LIMIT_PRINCIPAL_EVENTS": "100000",
        }
        data_dir = self.tmp / f"s{index}"
        data_dir.mkdir(exist_ok=True)
        args = [
            sys.executable, "-m", "signaling", "serve",
            "--host", "127.0.0.1", "--port", str(node.port), "--data-dir", str(data_dir),
            "--database-url", self.database_url, "--redis-url", REDIS_URL,
            "--ice-address", "127.0.0.1", "--log-level", "WARNING",
        ]  # fmt: skip
        if demo:
            args.append("--demo")
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    async def wait_ready(self, node: Node, within: float = 90.0) -> None:
        import aiohttp

        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert node.process is not None
                if node.process.poll() is not None:
                    raise BenchSetupError(f"serve on {node.port} exited:\n{node.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(
                        f"{node.url}/readyz", timeout=aiohttp.ClientTimeout(total=3)
                    ) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise BenchSetupError(f"serve on {node.port} not ready in {within} s:\n{node.log_tail()}")

    async def server_states(self) -> dict[str, str]:
        """HAProxy's view of each server, from its admin socket."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.stats_socket))
        except (FileNotFoundError, ConnectionRefusedError):
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

    async def wait_state(self, name: str, wanted: str, within: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within:
            if (await self.server_states()).get(name, "").startswith(wanted):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise BenchSetupError(f"HAProxy: {name} not {wanted} within {within} s")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a started process (kill it after 20 s); shared with tests/support/cluster.py."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


async def sockets_on(node: Node) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        text = await response.text()
    match = re.search(r"^etapalvelu_sockets (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else -1


def _write_haproxy_cfg(cluster: Cluster, base_port: int, count: int) -> Path:
    out = cluster.tmp / "cluster"
    result = subprocess.run(
        [
            sys.executable, "-m", "signaling", "cluster-config",
            "--signaling", str(count), "--base-port", str(base_port),
            "--public-url", cluster.front_url,
            "--database-url", cluster.database_url, "--redis-url", REDIS_URL,
            "--bind", f"127.0.0.1:{cluster.front_port}",
            "--stats-socket", str(cluster.stats_socket),
            "--check-interval-ms", str(CHECK_INTERVAL_MS), "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchSetupError(f"cluster-config failed: {result.stderr.strip()}")
    return out / "haproxy.cfg"


# --- the benchmark ------------------------------------------------------------------------


def run_cluster_bench(args: argparse.Namespace) -> int:
    if args.clients < 1 or args.seconds <= 0 or args.workers < 1 or args.interval <= 0:
        print("etapalvelu: --clients, --seconds, --workers, --interval must be positive",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.processes > 64:
        print("etapalvelu: --processes must be at most 64", file=sys.stderr)
        return 2
    database_url = getattr(args, "database_url", None)
    if database_url and not database_url.startswith("postgresql"):
        print("etapalvelu: --database-url must be postgresql://…", file=sys.stderr)
        return 2
    import shutil

    if shutil.which("haproxy") is None:
        print("etapalvelu: --processes > 1 needs haproxy on PATH", file=sys.stderr)
        return 2
    _raise_fd_limit()
    scratch = None
    try:
        if not database_url:
            scratch = f"etapalvelu_bench_{os.getpid()}_{secrets.token_hex(4)}"
            asyncio.run(_pg_execute(f'CREATE DATABASE "{scratch}"'))
            database_url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{scratch}"
        with tempfile.TemporaryDirectory(prefix="etapalvelu-bench-cluster-") as tmp:
            return asyncio.run(_run(args, Path(tmp), database_url))
    except BenchSetupError as exc:
        print(f"etapalvelu bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if scratch is not None:
            with contextlib.suppress(BenchSetupError):
                asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))


async def _run(args: argparse.Namespace, tmp: Path, database_url: str) -> int:
    count = args.processes
    base_port = consecutive_free_ports(count)
    cluster = Cluster(
        tmp=tmp,
        database_url=database_url,
        channel=f"bench-{secrets.token_hex(6)}",
        front_port=free_port(),
        stats_socket=tmp / "haproxy.sock",
        nodes=[Node(base_port + i, tmp / f"s{i}.log") for i in range(count)],
    )
    config = _write_haproxy_cfg(cluster, base_port, count)
    haproxy_log = (tmp / "haproxy.log").open("wb")
    try:
        cluster.start(0, demo=True)
        await cluster.wait_ready(cluster.nodes[0])
        for index in range(1, count):
            cluster.start(index, demo=False)
        for node in cluster.nodes[1:]:
            await cluster.wait_ready(node)
        cluster.haproxy = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            ["haproxy", "-db", "-f", str(config)], stdout=haproxy_log, stderr=subprocess.STDOUT
        )
        for index in range(count):
            await cluster.wait_state(f"signaling{index}", "UP", within=30)
        return await _measure(args, cluster)
    finally:
        for node in cluster.nodes:
            stop_process(node.process)
        stop_process(cluster.haproxy)
        haproxy_log.close()


class Listener:
    """A staff socket in the presence room of one process: waits for the sender's change."""

    def __init__(self, sender_id: int) -> None:
        self.sender_id = sender_id
        self.waiting: tuple[str, asyncio.Future[float]] | None = None

    def on_event(self, name: str, data: Any) -> None:
        if name != "presence:changed" or not isinstance(data, dict) or self.waiting is None:
            return
        status, future = self.waiting
        if data.get("id") == self.sender_id and data.get("status") == status:
            if not future.done():
                future.set_result(time.perf_counter())


async def _cross(
    sender: ClusterClient, listeners: list[Listener], until: float
) -> tuple[list[float], list[float], int]:
    """Sender on process 0 flips its presence; listeners[i] is on process i."""
    local: list[float] = []
    cross: list[float] = []
    missed = 0
    loop = asyncio.get_running_loop()
    flip = 0
    while time.monotonic() < until:
        status = "away" if flip % 2 else "available"
        flip += 1
        futures = [loop.create_future() for _ in listeners]
        for listener, future in zip(listeners, futures, strict=True):
            listener.waiting = (status, future)
        sent = time.perf_counter()
        try:
            await sender.call("presence:set", {"status": status})
            done, _ = await asyncio.wait(futures, timeout=2.0)
        except Exception:
            missed += len(listeners)
            continue
        for index, future in enumerate(futures):
            if future in done:
                (local if index == 0 else cross).append((future.result() - sent) * 1000)
            else:
                missed += 1
        await asyncio.sleep(CROSS_PERIOD_S)
    for listener in listeners:
        listener.waiting = None
    return local, cross, missed


def _ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
    }


async def _measure(args: argparse.Namespace, cluster: Cluster) -> int:
    import aiohttp

    count = args.processes
    workers = min(args.workers, args.clients)
    accounts = -(-args.clients // CLIENTS_PER_USER)
    wanted = {f"bench-expert-{i}": 1 for i in range(accounts)}
    tokens = await _seed(
        cluster.database_url, {**wanted, "bench-sender": 1, "bench-listener": count}
    )
    client_tokens = [tokens[f"bench-expert-{i}"][0] for i in range(accounts)]
    pids = [node.process.pid for node in cluster.nodes if node.process is not None]
    load_before = os.getloadavg()
    print(
        f"{count} serve processes (pids {pids}) behind haproxy at {cluster.front_url}; "
        f"database {cluster.database_url.rsplit('/', 1)[1]}, redis channel {cluster.channel}; "
        f"load average {load_before[0]:.2f}",
        flush=True,
    )
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        # baseline: one client alone through HAProxy
        base_client = ClusterClient(session)
        await base_client.connect(cluster.front_url, {"token": client_tokens[0]})
        for seq in range(20):
            await base_client.call("session:ping", {"seq": seq})
        baseline = []
        for seq in range(300):
            started = time.perf_counter()
            await base_client.call("session:ping", {"seq": seq})
            baseline.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
        await base_client.close()

        # the cross-process sender and listeners, each directly on its process
        sender = ClusterClient(session)
        await sender.connect(cluster.nodes[0].url, {"token": tokens["bench-sender"][0]})
        sender_id = (await sender.call("session:whoami", {}))["principal"]["id"]
        listeners = []
        listener_clients = []
        for index, node in enumerate(cluster.nodes):
            listener = Listener(sender_id)
            client = ClusterClient(session, listener.on_event)
            await client.connect(node.url, {"token": tokens["bench-listener"][index]})
            await client.call("presence:get", {})
            listeners.append(listener)
            listener_clients.append(client)
        await asyncio.sleep(0.5)
        rss_before = [rss_mb(pid) for pid in pids]
        print(
            f"baseline: 1 client through haproxy, {len(baseline)} sequential events: "
            f"p50 {percentile(baseline, 50):.2f} ms, p99 {percentile(baseline, 99):.2f} ms; "
            f"serve RSS {sum(rss_before):.1f} MB in all",
            flush=True,
        )

        context = multiprocessing.get_context("spawn")
        shares = [args.clients // workers + (1 if i < args.clients % workers else 0)
                  for i in range(workers)]  # fmt: skip
        pipes: list[Connection] = []
        procs = []
        started = time.monotonic()
        cpu_before_ramp = sum(cpu_seconds(pid) for pid in pids)
        first = 0
        for share in shares:
            parent, child = context.Pipe()
            # client number g uses account g % accounts
            mine = [client_tokens[g % accounts] for g in range(first, first + share)]
            first += share
            proc = context.Process(
                target=_worker,
                args=(child, cluster.front_url, mine, args.seconds, args.interval),
                daemon=True,
            )
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        connected = failed = 0
        for pipe in pipes:
            _tag, ok_count, fail_count, why = await loop.run_in_executor(None, pipe.recv)
            connected += ok_count
            failed += fail_count
            if why:
                print(f"a client could not connect: {why}", flush=True)
        ramp = time.monotonic() - started
        if failed:
            # HAProxy's httplog says which side refused (status, termination state)
            log_lines = (cluster.tmp / "haproxy.log").read_text(errors="replace").splitlines()
            refused = [line for line in log_lines if "socket.io" in line and " 101 " not in line]
            for line in refused[-3:]:
                print(f"haproxy: {line[-300:]}", flush=True)
        ramp_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before_ramp
        await asyncio.sleep(1.0)
        rss_all = [rss_mb(pid) for pid in pids]
        per_process = [await sockets_on(node) for node in cluster.nodes]
        per_connection_kb = (sum(rss_all) - sum(rss_before)) * 1024 / max(connected, 1)
        print(
            f"connected {connected} clients ({failed} failed) in {ramp:.1f} s; sockets per "
            f"process {per_process} (each includes 1 listener, process 0 also the sender); "
            f"serve RSS {sum(rss_all):.1f} MB in all = {per_connection_kb:.1f} KB per connection; "
            f"serve CPU {ramp_cpu * 1000 / max(connected, 1):.2f} ms per connect",
            flush=True,
        )

        cpu_at_go = sum(cpu_seconds(pid) for pid in pids)
        go = time.monotonic()
        for pipe in pipes:
            pipe.send("go")
        kill_at = go + args.seconds / 2
        local, cross, missed = await _cross(sender, listeners, kill_at - 0.2)
        await asyncio.sleep(max(0.0, kill_at - time.monotonic()))
        victim = cluster.nodes[-1]
        assert victim.process is not None
        load_cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_at_go
        load_wall = time.monotonic() - go
        on_victim = await sockets_on(victim) - 1  # minus its listener
        killed = time.monotonic()
        os.kill(victim.process.pid, signal.SIGKILL)
        try:
            marked_down: float | None = await cluster.wait_state(
                f"signaling{count - 1}", "DOWN", within=15
            )
        except BenchSetupError:
            marked_down = None

        rtts: list[tuple[float, float]] = []
        outages: list[tuple[float, float | None]] = []
        errors = reconnects = 0
        worker_rss = 0.0
        for pipe in pipes:
            _tag, w_rtts, w_errors, w_outages, w_reconnects, w_rss = await loop.run_in_executor(
                None, pipe.recv
            )
            rtts.extend(w_rtts)
            errors += w_errors
            outages.extend(w_outages)
            reconnects += w_reconnects
            worker_rss += w_rss
        for proc in procs:
            await loop.run_in_executor(None, proc.join, 30)
        await sender.close()
        for client in listener_clients:
            await client.close()
    load_after = os.getloadavg()

    before_kill = [ms for at, ms in rtts if at < killed]
    after_kill = [ms for at, ms in rtts if at >= killed]
    dropped = [o for o in outages if o[0] >= killed - 0.5]
    recovered = [o[1] for o in dropped if o[1] is not None]
    not_recovered = len(dropped) - len(recovered)
    recovery_s = (max(recovered) - killed) if recovered and not not_recovered else None
    rtt = _ms(before_kill)
    cross_ms = _ms(cross)
    local_ms = _ms(local)
    rate = len(rtts) / args.seconds
    print(
        f"cross-process delivery (presence:set on process 0 -> presence:changed on processes "
        f"1..{count - 1}): {len(cross)} deliveries, p50 {cross_ms['p50']} ms, "
        f"p99 {cross_ms['p99']} ms (target p99 <= {TARGET['cross_p99_ms']} ms); same process: "
        f"p50 {local_ms['p50']} ms, p99 {local_ms['p99']} ms; {missed} missed",
        flush=True,
    )
    print(
        f"under load: {connected} clients through haproxy, {len(rtts)} events in "
        f"{args.seconds:g} s ({rate:.0f}/s), {errors} errors: before the kill p50 {rtt['p50']} ms, "
        f"p99 {rtt['p99']} ms (target p99 <= {TARGET['rtt_p99_ms']} ms with "
        f"{TARGET['processes']} processes and {TARGET['clients']} clients on a quiet machine); "
        f"after the kill p99 {_ms(after_kill)['p99']} ms; serve CPU before the kill "
        f"{load_cpu:.1f} s in {load_wall:.1f} s",
        flush=True,
    )
    print(
        f"kill -9 of process {count - 1} ({on_victim} bench clients on it): haproxy marked it "
        f"DOWN after {marked_down if marked_down is None else round(marked_down, 2)} s; "
        f"{len(dropped)} clients dropped, {len(recovered)} served again, last after "
        f"{recovery_s if recovery_s is None else round(recovery_s, 2)} s "
        f"(target <= {TARGET['recovery_s']} s); {not_recovered} not served again; "
        f"load average {load_after[0]:.2f}",
        flush=True,
    )
    result = {
        "processes": count,
        "clients": connected,
        "requested_clients": args.clients,
        "connect_failures": failed,
        "seconds": args.seconds,
        "events": len(rtts),
        "events_per_second": round(rate, 1),
        "errors": errors,
        "rtt_ms": rtt,
        "rtt_after_kill_ms": _ms(after_kill),
        "baseline_rtt_ms": {"clients": 1, **_ms(baseline)},
        "cross_ms": cross_ms,
        "cross_samples": len(cross),
        "local_ms": local_ms,
        "cross_missed": missed,
        "sockets_per_process": per_process,
        "server_cpu_ms_per_connect": round(ramp_cpu * 1000 / max(connected, 1), 3),
        "server_cpu_before_kill": {
            "seconds": round(load_cpu, 2),
            "wall_s": round(load_wall, 2),
            "cores": round(load_cpu / max(load_wall, 1e-9), 2),
        },
        "server_rss_mb": round(sum(rss_all), 1),
        "server_rss_mb_before_clients": round(sum(rss_before), 1),
        "server_rss_kb_per_connection": round(per_connection_kb, 1),
        "client_rss_kb_per_connection": round(worker_rss * 1024 / max(connected, 1), 1),
        "killed_process": count - 1,
        "clients_on_killed": on_victim,
        "haproxy_marked_down_s": None if marked_down is None else round(marked_down, 3),
        "dropped": len(dropped),
        "recovered": len(recovered),
        "not_recovered": not_recovered,
        "reconnects": reconnects,
        "recovery_s": None if recovery_s is None else round(recovery_s, 3),
        "check_interval_ms": CHECK_INTERVAL_MS,
        "load_average": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "cpus": os.cpu_count(),
        "target": TARGET,
    }
    print(json.dumps(result), flush=True)
    ok = connected == args.clients and recovery_s is not None
    return 0 if ok else 1
