"""`etapalvelu relay` as a real process: registry, control API, media through it, event routing
to several signaling clients (RemoteRelay), refusals, failures and drain. Real Redis, real
aiortc peers over UDP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from media_relay.errors import RelayError
from media_relay.node_launcher import NodeProcess, node_command, start_node
from media_relay.registry import get_node, live_nodes, node_key
from media_relay.remote import RemoteRelay
from tests.media_relay.conftest import Bridge, PatternTrack, ToneTrack, wait_for

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]
REDIS_URL = "redis://127.0.0.1:6379/0"
HEARTBEAT = 0.3
TTL = 1.2


class Cluster:
    """Nodes of one test under a Redis prefix of its own."""

    def __init__(self, tmp: Path, redis: Any) -> None:
        self.tmp = tmp
        self.redis = redis
        self.prefix = f"etapalvelu-test-{secrets.token_hex(6)}"
        self.secret = secrets.token_urlsafe(24)
        self.secret_file = tmp / "relay-secret"
        self.secret_file.write_text(self.secret + "\n")
        self.nodes: list[NodeProcess] = []
        self.remotes: list[RemoteRelay] = []

    async def node(self, node_id: str, *extra: str) -> NodeProcess:
        node = await start_node(
            node_id,
            self.secret_file,
            redis_url=REDIS_URL,
            prefix=self.prefix,
            heartbeat=HEARTBEAT,
            ttl=TTL,
            extra_args=extra,
            stderr=(self.tmp / f"{node_id}.log").open("w"),
        )
        self.nodes.append(node)
        return node

    async def remote(self, node: NodeProcess, **options: Any) -> RemoteRelay:
        relay = RemoteRelay(node.node_id, node.control_url, self.secret, **options)
        self.remotes.append(relay)
        await relay.start()
        return relay

    async def record(self, node_id: str) -> Any:
        return await get_node(self.redis, self.prefix, node_id)

    async def cleanup(self) -> None:
        for relay in self.remotes:
            await relay.stop()
        for node in self.nodes:
            node.kill()
            await node.wait(5)
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*")]
        if keys:
            await self.redis.delete(*keys)


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    instance = Cluster(tmp_path, client)
    try:
        yield instance
    finally:
        await instance.cleanup()
        await client.aclose()


class Recorder(Bridge):
    """A signaling process's listener: answers offers for its own peers, records the rest."""

    def __init__(self, relay: Any) -> None:
        super().__init__(relay)
        self.offer_for: list[str] = []

    async def on_offer(self, room_id: str, participant_id: str, offer: dict[str, Any]) -> None:
        self.offer_for.append(participant_id)
        await super().on_offer(room_id, participant_id, offer)


# -- the process and its registration


async def test_node_registers_heartbeats_and_deregisters_on_sigterm(cluster: Cluster) -> None:
    node = await cluster.node("n1", "--site", "espoo", "--capacity", "40")
    info = await cluster.record("n1")
    assert info is not None, "not registered when it said it listens"
    assert info.control_url == node.control_url and node.control_url.startswith("ws://127.0.0.1:")
    assert info.announced_addresses == ["127.0.0.1"]
    assert (info.site, info.capacity, info.pid, info.draining) == ("espoo", 40, node.pid, False)
    assert info.load.participants == 0
    # renewed: still there after three TTLs, the TTL never above its setting
    for _ in range(12):
        await asyncio.sleep(TTL / 4)
        ttl_ms = await cluster.redis.pttl(node_key(cluster.prefix, "n1"))
        assert 0 < ttl_ms <= TTL * 1000
    async with aiohttp.ClientSession() as http, http.get(f"{node.http_url}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["node_id"] == "n1"
    assert await node.stop() == 0
    assert await cluster.record("n1") is None


async def test_killed_node_expires_within_ttl(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    assert [n.node_id for n in await live_nodes(cluster.redis, cluster.prefix)] == ["n1"]
    node.kill()
    killed = time.monotonic()
    assert await wait_for_async(lambda: no_record(cluster, "n1"), TTL + 1.0)
    print(f"record gone {time.monotonic() - killed:.2f} s after kill -9 (ttl {TTL} s)")
    assert time.monotonic() - killed <= TTL + 0.5


async def no_record(cluster: Cluster, node_id: str) -> bool:
    return await cluster.record(node_id) is None


async def wait_for_async(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(await predicate())


def test_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ETAPALVELU_RELAY_SECRET"}
    argv = node_command("n1", tmp_path / "missing")[:]
    cut = argv.index("--secret-file")
    del argv[cut : cut + 2]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "needs a control secret" in result.stderr
    result = subprocess.run(
        node_command("n1", tmp_path / "missing"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "cannot read --secret-file" in result.stderr
    short = tmp_path / "short"
    short.write_text("tiny")
    result = subprocess.run(node_command("n1", short), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "at least 16 characters" in result.stderr
    assert "relay node" not in result.stdout  # it never listened


# -- media and events through the node


async def test_media_offers_and_gone_through_the_node(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    relay = await cluster.remote(node)
    bridge = Recorder(relay)
    relay.set_listener(bridge)
    try:
        # the expert is first: the kiosk's tracks reach him through a renegotiation offer
        expert = bridge.peer("call-1", "expert")
        await expert.join([])
        kiosk = bridge.peer("call-1", "kiosk", {"camera": PatternTrack(), "audio": ToneTrack()})
        await kiosk.join(["camera", "audio"])
        assert await wait_for(
            lambda: (
                expert.frames.get(("kiosk", "camera"), 0) >= 10
                and expert.frames.get(("kiosk", "audio"), 0) >= 20
            ),
            20,
        ), expert.frames
        assert "expert" in bridge.offer_for
        stats = await relay.stats()
        assert stats["node"]["node_id"] == "n1"
        assert stats["node"]["load"] == {"rooms": 1, "participants": 2}
        published = stats["rooms"]["call-1"]["participants"]["kiosk"]["published"]
        assert published["camera"]["subscribers"] == 1 and published["camera"]["packets"] > 0
        assert await relay.rooms_open() == ["call-1"]
        info = await cluster.record("n1")
        await asyncio.sleep(HEARTBEAT * 2)
        info = await cluster.record("n1")
        assert info is not None and info.load.participants == 2

        metrics_before = await scrape(node)
        assert metrics_before["etapalvelu_relay_rtp_forwarded_packets_total"] > 0
        assert metrics_before['etapalvelu_relay_node_info{node_id="n1",site=""}'] == 1
        assert metrics_before["process_cpu_seconds_total"] > 0
        assert metrics_before["etapalvelu_relay_participants"] == 2

        # the expert's side closes: the node says so
        await expert.close()
        assert await wait_for(lambda: any(g[1] == "expert" for g in bridge.gone), 25), bridge.gone
        gone = next(g for g in bridge.gone if g[1] == "expert")
        assert gone[0] == "call-1" and gone[2] in ("connection_closed", "ice_failed", "timeout")

        # a closed room takes its participants; the counters do not fall back
        await relay.close_room("call-1")
        assert await relay.rooms_open() == []
        metrics_after = await scrape(node)
        assert metrics_after["etapalvelu_relay_rooms"] == 0
        for name in (
            "etapalvelu_relay_rtp_forwarded_packets_total",
            "etapalvelu_relay_rtp_received_packets_total",
            "etapalvelu_relay_plis_total",
        ):
            assert metrics_after[name] >= metrics_before[name] > 0, name
        with pytest.raises(RelayError) as caught:
            await relay.answer("call-1", "kiosk", "v=0\r\n")
        assert caught.value.code == "unknown_room"  # the relay's own code passes through
    finally:
        await bridge.close()


async def scrape(node: NodeProcess) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{node.http_url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    figures: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            figures[name] = float(value)
    return figures


async def test_each_client_gets_its_own_participants_offers(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    first = await cluster.remote(node)
    second = await cluster.remote(node)
    bridges = [Recorder(first), Recorder(second)]
    first.set_listener(bridges[0])
    second.set_listener(bridges[1])
    try:
        kiosk = bridges[0].peer("call-2", "kiosk", {"camera": PatternTrack()})
        await kiosk.join(["camera"])
        expert = bridges[1].peer("call-2", "expert", {"audio": ToneTrack()})
        await expert.join(["audio"])
        assert await wait_for(lambda: expert.frames.get(("kiosk", "camera"), 0) >= 5, 20)
        assert await wait_for(lambda: kiosk.frames.get(("expert", "audio"), 0) >= 10, 20)
        assert set(bridges[0].offer_for) == {"kiosk"}
        assert set(bridges[1].offer_for) <= {"expert"}

        # an interpreter joins (and speaks) through the second process: the kiosk's offer
        # still goes to the first, the expert's to the second
        before = (len(bridges[0].offer_for), len(bridges[1].offer_for))
        interpreter = bridges[1].peer("call-2", "interpreter", {"audio": ToneTrack()})
        await interpreter.join(["audio"])
        assert await wait_for(lambda: interpreter.frames.get(("kiosk", "camera"), 0) >= 5, 20)
        assert await wait_for(lambda: kiosk.frames.get(("interpreter", "audio"), 0) >= 5, 20)
        assert await wait_for(lambda: len(bridges[1].offer_for) > before[1], 10)
        assert set(bridges[0].offer_for) == {"kiosk"} and len(bridges[0].offer_for) > before[0]
        assert set(bridges[1].offer_for) == {"expert"}

        # the first process goes away: its participants stay, and their offers reach the
        # connections still open
        await first.stop()
        await asyncio.sleep(0.3)
        await second.publish("call-2", "interpreter", "screen")
        assert await wait_for(lambda: "kiosk" in bridges[1].offer_for, 10), bridges[1].offer_for
        stats = await second.stats()
        assert set(stats["rooms"]["call-2"]["participants"]) == {"kiosk", "expert", "interpreter"}
    finally:
        for bridge in bridges:
            await bridge.close()


async def test_a_reconnecting_client_claims_its_participants(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    first = await cluster.remote(node, ping_interval=0.5)
    other = await cluster.remote(node)
    bridges = [Recorder(first), Recorder(other)]
    first.set_listener(bridges[0])
    other.set_listener(bridges[1])
    try:
        kiosk = bridges[0].peer("call-3", "kiosk", {"camera": PatternTrack()})
        await kiosk.join(["camera"])
        # cut the first client's connection under it: it reconnects and claims the kiosk
        assert first._ws is not None
        await first._ws.close()
        assert await wait_for(lambda: first.connects >= 2 and first.running, 10)
        await asyncio.sleep(0.5)  # the claim is sent just after the reconnection
        expert = bridges[1].peer("call-3", "expert", {"audio": ToneTrack()})
        await expert.join(["audio"])
        assert await wait_for(lambda: expert.frames.get(("kiosk", "camera"), 0) >= 5, 20)
        assert await wait_for(lambda: kiosk.frames.get(("expert", "audio"), 0) >= 5, 20)
        assert "kiosk" in bridges[0].offer_for
        assert "kiosk" not in bridges[1].offer_for
    finally:
        for bridge in bridges:
            await bridge.close()


# -- refusals and failures


async def test_wrong_secret_is_refused_before_the_upgrade(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": cluster.secret}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                await http.ws_connect(node.control_url, headers=headers)
            assert caught.value.status == 401
        good = {"Authorization": f"Bearer {cluster.secret}"}
        async with http.ws_connect(node.control_url, headers=good) as ws:
            await ws.send_str(json.dumps({"id": 1, "op": "rooms"}))
            assert json.loads(await ws.receive_str(timeout=5)) == {
                "id": 1,
                "ok": True,
                "result": [],
            }
    relay = RemoteRelay("n1", node.control_url, "not-the-secret-at-all", timeout=2)
    with pytest.raises(RelayError) as refused:
        await relay.start()
    assert refused.value.code == "unauthorized" and not relay.running


async def test_garbage_frames_get_error_replies_and_change_nothing(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    good = {"Authorization": f"Bearer {cluster.secret}"}
    oversized = json.dumps({"id": 5, "op": "stats", "pad": "x" * 300_000})
    frames: list[tuple[str | bytes, int, str]] = [
        ("{", 0, "bad_message"),
        ("null", 0, "bad_message"),
        (json.dumps({"id": 2, "op": "create_room"}), 2, "bad_args"),
        (json.dumps({"id": 3, "op": "boom", "args": {}}), 3, "unknown_op"),
        (
            json.dumps({"id": 4, "op": "join", "args": {"room": "r 1", "participant": "p"}}),
            4,
            "bad_args",
        ),
        (oversized, 0, "bad_message"),
        (b"\x00\x01binary", 0, "bad_message"),
        (
            json.dumps(
                {
                    "id": 6,
                    "op": "join",
                    "args": {"room": "r", "participant": "p", "publish": ["smell"]},
                }
            ),
            6,
            "bad_source",
        ),
        (
            json.dumps(
                {"id": 7, "op": "answer", "args": {"room": "r", "participant": "p", "sdp": "v=0"}}
            ),
            7,
            "unknown_room",
        ),
        (
            json.dumps({"id": 9, "op": "leave", "args": {"room": "nowhere", "participant": "p"}}),
            9,
            "",
        ),
    ]
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(node.control_url, headers=good) as ws,
    ):
        for frame, request_id, code in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            reply = json.loads(await ws.receive_str(timeout=5))
            assert reply["id"] == request_id, (frame[:60], reply)
            if code:
                assert not reply["ok"] and reply["error"]["code"] == code, reply
            else:
                assert reply["ok"] and reply["result"] is None
        await ws.send_str(json.dumps({"id": 8, "op": "rooms"}))
        assert json.loads(await ws.receive_str(timeout=5)) == {"id": 8, "ok": True, "result": []}


async def test_node_that_dies_is_reported_at_once(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    events: list[tuple[str, bool, float]] = []
    relay = RemoteRelay("n1", node.control_url, cluster.secret, timeout=2.0, ping_interval=0.5)
    cluster.remotes.append(relay)
    relay.set_connection_listener(
        lambda node_id, up: events.append((node_id, up, time.monotonic()))
    )
    await relay.start()
    assert events and events[-1][:2] == ("n1", True)
    await relay.create_room("call-4")
    node.kill()
    killed = time.monotonic()
    assert await wait_for(lambda: ("n1", False) in [e[:2] for e in events], 3)
    lost_at = next(e[2] for e in events if not e[1])
    print(f"on_lost {1000 * (lost_at - killed):.0f} ms after kill -9")
    started = time.monotonic()
    with pytest.raises(RelayError) as caught:
        await relay.join("call-4", "kiosk", ["camera"])
    elapsed = time.monotonic() - started
    assert caught.value.code == "node_unreachable"
    assert elapsed <= relay.timeout + 0.5
    assert not relay.running


async def test_node_that_hangs_is_reported_by_the_ping(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    events: list[bool] = []
    relay = RemoteRelay("n1", node.control_url, cluster.secret, timeout=3.0, ping_interval=0.5)
    cluster.remotes.append(relay)
    relay.set_connection_listener(lambda _node_id, up: events.append(up))
    await relay.start()
    node.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(RelayError) as caught:
            await relay.stats()
        elapsed = time.monotonic() - started
        # the ping notices before the request's own timeout would
        assert caught.value.code == "node_unreachable", caught.value.message
        assert elapsed < relay.timeout
        assert events == [True, False]
    finally:
        node.thaw()
    # and it comes back by itself once the node does
    assert await wait_for(lambda: relay.running, 10)
    assert events[-1] is True
    assert await relay.rooms_open() == []


async def test_no_node_there(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    relay = RemoteRelay("ghost", f"ws://127.0.0.1:{port}/control", "x" * 20, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(RelayError) as caught:
        await relay.start()
    assert caught.value.code == "node_unreachable"
    assert time.monotonic() - started < 2.0
    # a port that accepts and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/control"
        relay = RemoteRelay("silent", url, "x" * 20, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(RelayError) as caught:
            await relay.start()
        assert caught.value.code == "node_unreachable"
        assert time.monotonic() - started < 2.0
    not_started = RemoteRelay("n", url, "x" * 20)
    with pytest.raises(RelayError) as caught:
        await not_started.rooms_open()
    assert caught.value.code == "node_unreachable"


# -- drain and several processes


async def test_drain_flag_reaches_the_record(cluster: Cluster) -> None:
    node = await cluster.node("n1")
    base = [
        sys.executable,
        "-m",
        "signaling.cli.main",
        "relay",
        "--redis-url",
        REDIS_URL,
        "--redis-prefix",
        cluster.prefix,
    ]
    result = await asyncio.to_thread(
        subprocess.run, [*base, "--drain", "n1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "relay node n1: draining on" in result.stdout
    assert await wait_for_async(lambda: draining(cluster, "n1", True), HEARTBEAT * 3)
    async with aiohttp.ClientSession() as http, http.get(f"{node.http_url}/healthz") as response:
        assert (await response.json())["draining"] is True
    relay = await cluster.remote(node)
    assert (await relay.stats())["node"]["draining"] is True
    result = await asyncio.to_thread(
        subprocess.run, [*base, "--undrain", "n1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "draining off" in result.stdout
    assert await wait_for_async(lambda: draining(cluster, "n1", False), HEARTBEAT * 3)
    # and over the control API
    assert await relay.drain(True) is True
    info = await cluster.record("n1")
    assert info is not None and info.draining  # written at once, not on the next heartbeat
    assert await relay.drain(False) is False
    # a bad node id changes nothing
    result = await asyncio.to_thread(
        subprocess.run, [*base, "--drain", "n1:*"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert [
        key async for key in cluster.redis.scan_iter(match=f"{cluster.prefix}:relay:drain:*")
    ] == []


async def draining(cluster: Cluster, node_id: str, expected: bool) -> bool:
    info = await cluster.record(node_id)
    return info is not None and info.draining is expected


async def test_processes_start_one_node_each(cluster: Cluster) -> None:
    argv = node_command(
        "multi",
        cluster.secret_file,
        redis_url=REDIS_URL,
        prefix=cluster.prefix,
        heartbeat=HEARTBEAT,
        ttl=TTL,
        extra_args=["--processes", "2", "--port-min", "41000", "--port-max", "41099"],
    )
    log = (cluster.tmp / "multi.log").open("w")
    children: list[int] = []
    parent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)  # noqa: ASYNC220
    try:
        assert parent.stdout is not None
        urls = {}
        deadline = time.monotonic() + 40
        while len(urls) < 2 and time.monotonic() < deadline:
            line = await asyncio.wait_for(asyncio.to_thread(parent.stdout.readline), 40)
            assert line, "the parent exited"
            words = line.split()
            urls[words[2]] = words[4]
        assert set(urls) == {"multi-0", "multi-1"}
        nodes = {n.node_id: n for n in await live_nodes(cluster.redis, cluster.prefix)}
        assert set(nodes) == {"multi-0", "multi-1"}
        assert (nodes["multi-0"].port_min, nodes["multi-0"].port_max) == (41000, 41049)
        assert (nodes["multi-1"].port_min, nodes["multi-1"].port_max) == (41050, 41099)
        assert nodes["multi-0"].pid != nodes["multi-1"].pid != parent.pid
        children = [node.pid for node in nodes.values()]
        parent.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(parent.wait, 20)
        assert status == 0
        assert await live_nodes(cluster.redis, cluster.prefix) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()


# -- fuzzing the live node


class ThreadLoop:
    """An event loop in a thread, so that hypothesis (synchronous) can drive a WebSocket."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Any:
    from media_relay import wire

    secret = secrets.token_urlsafe(24)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret)
    runner = ThreadLoop()
    state: dict[str, Any] = {}

    async def open_() -> None:
        state["node"] = await start_node(
            "fuzz", secret_file, stderr=(tmp_path / "fuzz.log").open("w")
        )
        state["http"] = aiohttp.ClientSession()
        state["ws"] = await state["http"].ws_connect(
            state["node"].control_url,
            headers={"Authorization": f"Bearer {secret}"},
            max_msg_size=wire.MAX_NODE_MESSAGE_BYTES,
        )

    async def exchange(frame: str | bytes) -> dict[str, Any]:
        ws = state["ws"]
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        reply: dict[str, Any] = json.loads(await ws.receive_str(timeout=5))
        return reply

    async def close() -> None:
        if "ws" in state:
            await state["ws"].close()
        if "http" in state:
            await state["http"].close()
        if "node" in state:
            await state["node"].stop()

    try:
        runner.run(open_())
        yield lambda frame: runner.run(exchange(frame))
    finally:
        runner.run(close())
        runner.close()


JOIN_FRAME = json.dumps(
    {
        "id": 77,
        "op": "join",
        "args": {"room": "call-9", "participant": "kiosk-1", "publish": ["camera"]},
    }
)


def garbage() -> Any:
    from hypothesis import strategies as st

    truncations = st.integers(0, len(JOIN_FRAME) - 1).map(lambda end: JOIN_FRAME[:end])
    flipped = st.tuples(st.integers(0, len(JOIN_FRAME) - 1), st.characters()).map(
        lambda change: JOIN_FRAME[: change[0]] + change[1] + JOIN_FRAME[change[0] + 1 :]
    )
    return st.one_of(truncations, flipped, st.text(max_size=300), st.binary(max_size=300))


def test_fuzzed_frames_get_error_replies_and_the_node_serves_on(fuzz_target: Any) -> None:
    from hypothesis import HealthCheck, assume, given, settings

    from media_relay import wire

    exchange = fuzz_target
    seen: list[int] = []

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(garbage())
    def check(frame: str | bytes) -> None:
        if isinstance(frame, str):
            try:
                wire.parse_request(frame)
            except wire.WireError as expected:
                reply = exchange(frame)
                assert reply["ok"] is False
                assert (reply["id"], reply["error"]["code"]) == (
                    expected.request_id,
                    expected.code,
                ), (frame, reply)
                seen.append(1)
                return
            assume(False)  # a flipped character that still makes a valid request
        else:
            reply = exchange(frame)
            assert reply["ok"] is False and reply["error"]["code"] == "bad_message"
            seen.append(1)

    check()
    print(f"{len(seen)} garbage frames refused")
    assert len(seen) > 100
    # the node still serves, and nothing was created
    assert exchange(json.dumps({"id": 1, "op": "rooms"})) == {"id": 1, "ok": True, "result": []}
    offer = exchange(JOIN_FRAME)
    assert offer["ok"] and offer["result"]["offer"]["type"] == "offer"
