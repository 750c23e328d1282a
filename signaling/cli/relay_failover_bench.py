"""`etapalvelu bench failover`: the media gap when a call's relay node is killed.

What runs, all on loopback, each the shipped command with its default timings:

* `--nodes` relay nodes (`etapalvelu relay`, heartbeat 1 s, registration TTL 3 s), registered
  in Redis under a prefix of this run's own;
* one signaling process (`etapalvelu serve --demo --relay-mode nodes`, SQLite in a temporary
  folder) placing calls on them and moving calls off dead nodes (signaling/flow/relay_failover.py);
* the demo kiosk and the Kela expert as aiortc peers (camera + microphone) in this process,
  doing what the kiosk page and the consoles do on `call:relay_moved`: a fresh join.

Each run kills (SIGKILL) the node the call is on and measures, at each peer, the gap from the
last video frame decoded before the kill to the first decoded after it; then a new node is
started so that the next run has somewhere to go. The gap is made of: noticing the node is
gone (its control connection drops at once on a kill; a node that merely stops answering is
noticed by the control ping or when its registration expires), the move (one pass of the
failover loop, `relay_failover_interval`), the clients' rejoin (ICE + DTLS + a key frame).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEMO_KIOSK = {"endpoint_id": 1, "credential": "demo-kiosk-credential-not-for-production"}
REDIS_URL = "redis://127.0.0.1:6379/0"


def register(bench: Any) -> None:
    parser = bench.add_parser(
        "failover",
        help="media gap when the call's relay node is killed (p50 and max over --runs)",
        description="Starts relay nodes and a signaling process (nodes mode) on loopback, "
        "puts an aiortc kiosk and expert in a call, kills the call's relay node --runs times "
        "and prints the media gap at each side; the last line is JSON.",
    )
    parser.add_argument("--runs", type=int, default=5, help="kills (default 5)")
    parser.add_argument("--nodes", type=int, default=2, help="relay nodes (default 2)")
    parser.add_argument("--redis-url", default=REDIS_URL, help=f"Redis (default {REDIS_URL})")
    parser.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.nodes < 2:
        print("--runs must be at least 1 and --nodes at least 2")
        return 2
    import logging

    # Every candidate pair of every rejoin would be printed otherwise.
    logging.getLogger("aioice").setLevel(logging.WARNING)
    result = asyncio.run(_bench(args.runs, args.nodes, args.redis_url))
    print(json.dumps(result))
    return 0 if result["recovered"] == result["runs"] else 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Peer:
    """A call participant over socket.io + aiortc that rejoins on `call:relay_moved`,
    timing every decoded video frame."""

    def __init__(self, sio: Any, call_id: int) -> None:
        self.sio = sio
        self.call_id = call_id
        self.client: Any = None
        self.frames: list[float] = []
        self.readers: set[asyncio.Task[None]] = set()
        self.seen: set[int] = set()
        self.moves = 0
        sio.on("call:offer", self._on_offer)
        sio.on("call:relay_moved", self._on_moved)

    def _new_client(self) -> Any:
        from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

        from media_relay.aiortc_client import RelayPeerClient

        client = RelayPeerClient(
            {"audio": AudioStreamTrack(), "camera": VideoStreamTrack()},
            ice_servers=[],
            host_addresses=["127.0.0.1"],
        )
        client.pc.on("track", self._on_track)
        return client

    def _on_track(self, track: Any) -> None:
        if track.kind != "video" or id(track) in self.seen:
            return
        self.seen.add(id(track))
        task = asyncio.ensure_future(self._read(track))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                self.frames.append(time.monotonic())

    async def _on_offer(self, data: dict[str, Any]) -> None:
        if data.get("call_id") != self.call_id or self.client is None:
            return
        sdp = await self.client.handle_offer(data["offer"])
        await self.sio.call("call:answer", {"call_id": self.call_id, "sdp": sdp}, timeout=10)

    async def _on_moved(self, data: dict[str, Any]) -> None:
        if data.get("call_id") == self.call_id:
            self.moves += 1
            await self.join()

    async def join(self) -> None:
        old, self.client = self.client, self._new_client()
        if old is not None:
            await old.close()
        for attempt in range(20):
            ack = await self.sio.call("call:join", {"call_id": self.call_id}, timeout=10)
            if ack.get("ok"):
                break
            await asyncio.sleep(0.1 * (attempt + 1))
        else:
            raise RuntimeError(f"call:join refused: {ack}")
        sdp = await self.client.handle_offer(ack["offer"])
        answered = await self.sio.call(
            "call:answer", {"call_id": self.call_id, "sdp": sdp}, timeout=10
        )
        if not answered.get("ok"):
            raise RuntimeError(f"call:answer refused: {answered}")

    def frames_after(self, moment: float) -> bool:
        return bool(self.frames) and self.frames[-1] > moment

    def gap_ms(self, moment: float) -> float | None:
        before = [t for t in self.frames if t <= moment]
        after = [t for t in self.frames if t > moment]
        if not before or not after:
            return None
        return (after[0] - before[-1]) * 1000

    async def close(self) -> None:
        for task in list(self.readers):
            task.cancel()
        if self.client is not None:
            await self.client.close()


async def _wait(check: Any, within: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(step)
    return False


async def _ready(base_url: str) -> bool:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except Exception:
        return False


async def _node_of(room: str, nodes: dict[str, Any], secret: str) -> str | None:
    from media_relay.remote import RemoteRelay

    for node_id, node in nodes.items():
        if node.returncode is not None:
            continue
        relay = RemoteRelay(node_id, node.control_url, secret, timeout=3)
        try:
            await relay.start()
            if room in await relay.rooms_open():
                return node_id
        except Exception:
            continue
        finally:
            await relay.stop()
    return None


async def _bench(runs: int, node_count: int, redis_url: str) -> dict[str, Any]:
    import aiohttp
    import socketio

    from media_relay.node_launcher import start_node

    prefix = f"etapalvelu-bench-{secrets.token_hex(4)}"
    secret = secrets.token_urlsafe(24)
    tmp = Path(tempfile.mkdtemp(prefix="etapalvelu-failover-"))
    secret_file = tmp / "relay-secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    nodes: dict[str, Any] = {}
    serve: subprocess.Popen[bytes] | None = None
    peers: list[Peer] = []
    sockets: list[Any] = []
    gaps: dict[str, list[float]] = {"kiosk": [], "expert": []}
    recovered = 0
    print(f"failover bench: {node_count} relay nodes, 1 signaling process, {runs} kills")
    print("placement: every process unpinned on this machine's CPUs (the kernel places them)")
    try:
        for index in range(node_count):
            node = await start_node(
                f"bench-{index}", secret_file, redis_url=redis_url, prefix=prefix,
                heartbeat=1.0, ttl=3.0, extra_args=["--log-level", "WARNING"],
            )
            nodes[node.node_id] = node
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ETAPALVELU_REDIS_CHANNEL": prefix}
        serve = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
            [
                sys.executable, "-m", "signaling", "serve", "--demo",
                "--data-dir", str(tmp / "data"), "--host", "127.0.0.1", "--port", str(port),
                "--ice-address", "127.0.0.1", "--redis-url", redis_url,
                "--relay-mode", "nodes", "--relay-secret-file", str(secret_file),
                "--log-level", "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        if not await _wait(lambda: _ready(base_url), 60, 0.25):
            raise RuntimeError("the signaling process did not become ready")
        kiosk = socketio.AsyncClient(reconnection=False)
        await kiosk.connect(base_url, auth=DEMO_KIOSK, transports=["websocket"])
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base_url}/api/login", json={"username": "kela", "password": "kela-demo"}
            ) as response,
        ):
            token = (await response.json())["token"]
        expert = socketio.AsyncClient(reconnection=False)
        await expert.connect(base_url, auth={"token": token}, transports=["websocket"])
        sockets = [kiosk, expert]
        for client in sockets:
            await client.call("flow:sync", {}, timeout=10)
        taken = await kiosk.call("ticket:take", {"authority": "kela", "language": "fin"})
        if not taken.get("ok"):
            raise RuntimeError(f"ticket:take refused: {taken}")
        took = await expert.call("queue:take_next", {}, timeout=10)
        if not took.get("ok"):
            raise RuntimeError(f"queue:take_next refused: {took}")
        call_id = int(took["call"]["id"])
        room = str(took["call"].get("room_id") or f"call-{call_id}")
        peers = [Peer(kiosk, call_id), Peer(expert, call_id)]
        for peer in peers:
            await peer.join()
        start = time.monotonic()
        if not await _wait(lambda: all(p.frames_after(start + 1.0) for p in peers), 30):
            raise RuntimeError("no media before the first kill")
        spare = node_count
        for run in range(1, runs + 1):
            victim = await _node_of(room, nodes, secret)
            if victim is None:
                raise RuntimeError("the call's room is on no node")
            await asyncio.sleep(1.0)
            moment = time.monotonic()
            nodes[victim].kill()
            ok = await _wait(lambda m=moment: all(p.frames_after(m) for p in peers), 30)
            figures = {name: peer.gap_ms(moment) for name, peer in zip(gaps, peers, strict=True)}
            if ok:
                recovered += 1
                for name, value in figures.items():
                    if value is not None:
                        gaps[name].append(value)
            shown = ", ".join(
                f"{name} {value:.0f} ms" if value is not None else f"{name} no media"
                for name, value in figures.items()
            )
            print(f"run {run}: killed {victim}; gap {shown}")
            del nodes[victim]
            node = await start_node(
                f"bench-{spare}", secret_file, redis_url=redis_url, prefix=prefix,
                heartbeat=1.0, ttl=3.0, extra_args=["--log-level", "WARNING"],
            )
            spare += 1
            nodes[node.node_id] = node
            # The signaling process connects to a new node on its next registry refresh.
            await asyncio.sleep(2.0)
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):
                await peer.close()
        for client in sockets:
            with contextlib.suppress(Exception):
                await client.disconnect()
        if serve is not None:
            serve.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                serve.wait(15)
            if serve.poll() is None:
                serve.kill()
        for node in nodes.values():
            node.terminate()
    every = gaps["kiosk"] + gaps["expert"]
    summary = {
        "p50": round(statistics.median(every)) if every else None,
        "max": round(max(every)) if every else None,
    }
    print(
        f"media gap over {len(every)} measurements: p50 {summary['p50']} ms, "
        f"max {summary['max']} ms (target: <= 3000 ms); recovered {recovered}/{runs}"
    )
    return {
        "runs": runs,
        "recovered": recovered,
        "failover_gap_ms": summary,
        "gap_ms": {name: [round(v) for v in values] for name, values in gaps.items()},
    }
