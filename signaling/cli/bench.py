"""`etapalvelu bench signaling --clients N --seconds S`.

The server runs as a subprocess (`etapalvelu serve`, fresh SQLite data folder, loopback).
First a single client measures the event round trip alone (the baseline); then N
authenticated socket.io clients, spread over `--workers` processes, stay connected and each
sends `session:ping` every `--interval` seconds (random phase) for S seconds, timing each ack.
Server memory is read from /proc (VmRSS) with one client and with all N connected.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

BENCH_USER = "bench-expert"
CONNECT_CONCURRENCY = 25
CALL_TIMEOUT = 10.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def full_collections(base_url: str) -> int:
    """How many generation-2 (full) collections the server has run, from /metrics."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as response:
        text = await response.text()
    found = re.search(r'^python_gc_collections_total\{generation="2"\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else -1


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _seed(data_dir: Path, count: int) -> list[str]:
    """Create the bench user and `count` session tokens (one per client process)."""
    from sqlalchemy import select

    from signaling.db import create_engine, migrate, session_factory
    from signaling.directory import directory
    from signaling.directory.identity import issue_session
    from signaling.store.models import User

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'etapalvelu.db'}")
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            user = (
                await session.execute(select(User).where(User.username == BENCH_USER))
            ).scalar_one_or_none()
            if user is None:
                user = await directory.create_user(
                    session,
                    directory.UserCreate(
                        username=BENCH_USER,
                        display_name="Benchmark expert",
                        role="expert",
                        password=os.urandom(16).hex(),
                        authorities=["kela"],
                        languages=["fin"],
                    ),
                )
            tokens = [(await issue_session(session, user, 3600)).token for _ in range(count)]
            await session.commit()
            return tokens
    finally:
        await engine.dispose()


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- client worker processes --------------------------------------------------------------


class WireClient:
    """A minimal socket.io v5 / engine.io v4 client over one websocket (aiohttp).

    python-socketio's AsyncClient costs far more CPU per message than the server does, so
    2,000 of them on a shared 2-core machine would measure the clients, not the server. This
    speaks the same wire protocol: CONNECT with auth, EVENT with an ack id, ACK, and answers
    the server's engine.io pings.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.ws: Any = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def connect(self, base_url: str, auth: dict[str, Any]) -> None:
        url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.session.ws_connect(url, max_msg_size=0, autoping=False)
        opened = await self.ws.receive_str(timeout=30)
        if not opened.startswith("0"):
            raise ConnectionError(f"no engine.io open packet: {opened[:80]}")
        await self.ws.send_str("40" + json.dumps(auth))
        while True:
            answer = await self.ws.receive_str(timeout=30)
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
        async for message in self.ws:
            data = message.data
            if not isinstance(data, str):
                continue
            if data == "2":  # engine.io ping
                await self.ws.send_str("3")
            elif data.startswith("43"):  # socket.io ACK: 43<id>[...]
                bracket = data.index("[")
                future = self.pending.pop(int(data[2:bracket]), None)
                if future is not None and not future.done():
                    future.set_result(json.loads(data[bracket:])[0])
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("closed"))

    async def call(self, event: str, payload: Any, limit_s: float) -> Any:
        ack_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[ack_id] = future
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, payload]))
        try:
            return await asyncio.wait_for(future, limit_s)
        finally:
            self.pending.pop(ack_id, None)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


def _tune_gc() -> None:
    """The same collector settings as `etapalvelu serve` (see signaling/cli/serve.py), so that the
    clients' own collection pauses do not show up as round-trip time."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _worker(
    conn: Connection, base_url: str, token: str, clients: int, seconds: float, interval: float
) -> None:
    _raise_fd_limit()
    _tune_gc()
    asyncio.run(_worker_main(conn, base_url, token, clients, seconds, interval))


async def _worker_main(
    conn: Connection, base_url: str, token: str, count: int, seconds: float, interval: float
) -> None:
    import aiohttp

    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def connect() -> WireClient | None:
            nonlocal failures
            async with gate:
                client = WireClient(session)
                try:
                    await client.connect(base_url, {"token": token})
                    return client
                except Exception:
                    failures += 1
                    await client.close()
                    return None

        clients = [c for c in await asyncio.gather(*(connect() for _ in range(count))) if c]
        conn.send(("connected", len(clients), failures))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # wait for "go"
        rtts: list[float] = []
        errors = 0
        deadline = time.monotonic() + seconds

        async def drive(client: WireClient) -> None:
            nonlocal errors
            await asyncio.sleep(random.uniform(0, interval))
            seq = 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    ack = await client.call("session:ping", {"seq": seq}, CALL_TIMEOUT)
                    if ack.get("ok") and ack.get("seq") == seq:
                        rtts.append((time.perf_counter() - started) * 1000)
                    else:
                        errors += 1
                except Exception:
                    errors += 1
                seq += 1
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

        await asyncio.gather(*(drive(c) for c in clients))
        conn.send(("done", rtts, errors))
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# --- the benchmark ------------------------------------------------------------------------


async def _baseline(base_url: str, token: str, samples: int) -> tuple[Any, list[float]]:
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    await client.connect(base_url, auth={"token": token}, transports=["websocket"])
    for seq in range(20):  # warm up
        await client.call("session:ping", {"seq": seq})
    rtts = []
    for seq in range(samples):
        started = time.perf_counter()
        await client.call("session:ping", {"seq": seq})
        rtts.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return client, rtts


def _start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # The benchmark drives the socket far below the limit; make sure it never binds.
        "ETAPALVELU_RATE_LIMIT_EVENTS": "1000",
    }
    # ETAPALVELU_BENCH_PROFILE=FILE runs the server under cProfile (for finding hot spots).
    profile = os.environ.get("ETAPALVELU_BENCH_PROFILE")
    wrapper = ["-m", "cProfile", "-o", profile] if profile else []
    process = subprocess.Popen(
        [
            sys.executable,
            *wrapper,
            "-m",
            "signaling",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the server exited before it was ready")
        found = re.search(r"running at (http://127\.0\.0\.1:\d+)/", line)
        if found:
            return process, found.group(1)
    process.kill()
    raise RuntimeError("the server did not start within 60 s")


def run_bench(args: argparse.Namespace) -> int:
    if args.clients < 1 or args.seconds <= 0 or args.workers < 1 or args.interval <= 0:
        print("etapalvelu: --clients, --seconds, --workers, --interval must be positive",
              file=sys.stderr)  # fmt: skip
        return 2
    processes = getattr(args, "processes", 1)
    if processes < 1:
        print("etapalvelu: --processes must be positive", file=sys.stderr)
        return 2
    if processes > 1:
        from signaling.cli.bench_cluster import run_cluster_bench

        return run_cluster_bench(args)
    if getattr(args, "database_url", None):
        print("etapalvelu: --database-url is only used with --processes > 1", file=sys.stderr)
        return 2
    workers = min(args.workers, args.clients)
    _raise_fd_limit()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="etapalvelu-bench-") as tmp:
        data_dir = Path(tmp)
        tokens = asyncio.run(_seed(data_dir, workers + 1))
        server, base_url = _start_server(data_dir)
        try:
            return asyncio.run(_run(args, workers, tokens, server.pid, base_url, load_before))
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


async def _run(
    args: argparse.Namespace,
    workers: int,
    tokens: list[str],
    server_pid: int,
    base_url: str,
    load_before: tuple[float, float, float],
) -> int:
    print(f"server pid {server_pid} at {base_url}; load average {load_before[0]:.2f}", flush=True)
    baseline_client, baseline = await _baseline(base_url, tokens[0], 300)
    await asyncio.sleep(0.5)
    rss_one = rss_mb(server_pid)
    base_p50, base_p99 = percentile(baseline, 50), percentile(baseline, 99)
    print(
        f"baseline: 1 client, {len(baseline)} sequential events: "
        f"p50 {base_p50:.2f} ms, p99 {base_p99:.2f} ms; server RSS {rss_one:.1f} MB",
        flush=True,
    )

    context = multiprocessing.get_context("spawn")
    shares = [args.clients // workers + (1 if i < args.clients % workers else 0)
              for i in range(workers)]  # fmt: skip
    pipes: list[Connection] = []
    processes = []
    started = time.monotonic()
    for index, share in enumerate(shares):
        parent, child = context.Pipe()
        process = context.Process(
            target=_worker,
            args=(child, base_url, tokens[index + 1], share, args.seconds, args.interval),
            daemon=True,
        )
        process.start()
        pipes.append(parent)
        processes.append(process)
    loop = asyncio.get_running_loop()
    connected = failed = 0
    for pipe in pipes:
        _tag, ok_count, fail_count = await loop.run_in_executor(None, pipe.recv)
        connected += ok_count
        failed += fail_count
    ramp = time.monotonic() - started
    await asyncio.sleep(1.0)
    rss_all = rss_mb(server_pid)
    per_connection_kb = (rss_all - rss_one) * 1024 / max(connected, 1)
    print(
        f"connected {connected} clients ({failed} refused/failed) in {ramp:.1f} s; "
        f"server RSS {rss_all:.1f} MB = {per_connection_kb:.1f} KB per connection",
        flush=True,
    )
    full_gc_before = await full_collections(base_url)
    cpu_before = cpu_seconds(server_pid)
    load_started = time.monotonic()
    for pipe in pipes:
        pipe.send("go")
    rtts: list[float] = []
    errors = 0
    for pipe in pipes:
        _tag, worker_rtts, worker_errors = await loop.run_in_executor(None, pipe.recv)
        rtts.extend(worker_rtts)
        errors += worker_errors
    server_cpu = cpu_seconds(server_pid) - cpu_before
    full_gcs = await full_collections(base_url) - full_gc_before
    load_wall = time.monotonic() - load_started
    for process in processes:
        await loop.run_in_executor(None, process.join, 30)
    await baseline_client.disconnect()
    load_after = os.getloadavg()
    p50, p99 = percentile(rtts, 50), percentile(rtts, 99)
    rate = len(rtts) / args.seconds
    print(
        f"under load: {connected} clients, {len(rtts)} events in {args.seconds:g} s "
        f"({rate:.0f}/s), {errors} errors: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"(baseline p50 {base_p50:.2f} ms, p99 {base_p99:.2f} ms); "
        f"server CPU {server_cpu:.1f} s in {load_wall:.1f} s = "
        f"{server_cpu / max(len(rtts) + errors, 1) * 1e6:.0f} us per event, "
        f"{full_gcs} full GC; "
        f"load average {load_after[0]:.2f}",
        flush=True,
    )
    result = {
        "clients": connected,
        "requested_clients": args.clients,
        "connect_failures": failed,
        "seconds": args.seconds,
        "events": len(rtts),
        "events_per_second": round(rate, 1),
        "errors": errors,
        "rtt_ms": {"p50": round(p50, 3), "p99": round(p99, 3), "max": round(max(rtts), 3)}
        if rtts
        else {"p50": None, "p99": None, "max": None},
        "baseline_rtt_ms": {"clients": 1, "p50": round(base_p50, 3), "p99": round(base_p99, 3)},
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_event": round(server_cpu / max(len(rtts) + errors, 1) * 1e6, 1),
        "server_full_gc_during_load": full_gcs,
        "server_rss_mb": round(rss_all, 1),
        "server_rss_mb_one_client": round(rss_one, 1),
        "server_rss_kb_per_connection": round(per_connection_kb, 1),
        "load_average": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "cpus": os.cpu_count(),
        "target": {"clients": 2000, "rtt_p99_ms": 100},
    }
    print(json.dumps(result), flush=True)
    return 0 if connected == args.clients else 1
