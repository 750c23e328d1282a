"""Calls placed on relay nodes (`etapalvelu relay` processes) from two signaling servers that
share PostgreSQL and Redis: media both ways across servers, failover when the call's node is
killed, drain, a registered node that never answers, and no room left behind.

The relay nodes are real processes (kill -9 is real); the two signaling servers run in the
test's process, each with its own app, port, sockets and relay clients, sharing nothing but
the database and Redis (tests/signaling/test_relay_nodes_browser.py runs them as processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from signaling.store.flow_models import Call
from tests.signaling.call_support import CallPeer, eventually, face
from tests.support.relay_nodes import RelayCluster, relay_cluster
from tests.support.service import LiveService, make_live_service

pytestmark = pytest.mark.timeout(180)


class MovingPeer(CallPeer):
    """A CallPeer that does what the real clients do on `call:relay_moved`: a fresh join."""

    def __init__(self, sio: Any, call_id: int) -> None:
        super().__init__(sio, call_id, face())
        self.moves: list[dict[str, Any]] = []
        self.rejoined = asyncio.Event()
        sio.on("call:relay_moved", self._on_moved)

    async def _on_moved(self, data: dict[str, Any]) -> None:
        if data.get("call_id") != self.call_id:
            return
        self.moves.append(data)
        from media_relay.aiortc_client import RelayPeerClient

        old = self.client
        self.client = RelayPeerClient(face(), ice_servers=[], host_addresses=["127.0.0.1"])
        await old.close()
        await self.join()
        self.rejoined.set()

    async def packets(self) -> int:
        return int(await self.client.packets_received() or 0)


async def media_flows(*peers: MovingPeer, within: float = 30.0) -> None:
    """Every peer's packet count grows (it receives the others' media now)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    start = [await peer.packets() for peer in peers]
    while loop.time() < deadline:
        await asyncio.sleep(0.3)
        now = [await peer.packets() for peer in peers]
        if all(n > s + 20 for n, s in zip(now, start, strict=True)):
            return
    raise AssertionError(f"media did not flow both ways: {start} -> {now}")


async def call_row(live: LiveService, call_id: int) -> Call:
    async with live.services.sessions() as session:
        found = await session.execute(select(Call).where(Call.id == call_id))
        return found.scalar_one()


@contextlib.asynccontextmanager
async def two_servers(
    tmp_path: Path, cluster: RelayCluster, database_url: str
) -> AsyncIterator[tuple[LiveService, LiveService]]:
    shared = {**cluster.settings, "database_url": database_url, "revocation_check_seconds": 0.5}
    async with (
        make_live_service(tmp_path / "a", **shared) as first,
        make_live_service(tmp_path / "b", **shared) as second,
    ):
        await wait_choosable(first, len(cluster.nodes))
        await wait_choosable(second, len(cluster.nodes))
        yield first, second


async def wait_choosable(live: LiveService, count: int, within: float = 15.0) -> None:
    from signaling.transport.relay_placement import router_of

    router = router_of(live.services)
    assert router is not None and router.mode == "nodes"
    await eventually(lambda: len(router.choosable()) >= count, within)


async def cross_server_call(
    first: LiveService, second: LiveService
) -> tuple[MovingPeer, MovingPeer, int]:
    """The kiosk on the first server, the Kela expert on the second; both joined."""
    kiosk_sio = await first.connect_kiosk()
    expert_sio = await second.connect_user("kela")
    for client in (kiosk_sio, expert_sio):
        assert (await client.call("flow:sync", {}, timeout=10))["ok"]
    taken = await kiosk_sio.call("ticket:take", {"authority": "kela", "language": "fin"})
    assert taken["ok"], taken
    took = await expert_sio.call("queue:take_next", {}, timeout=10)
    assert took["ok"], took
    call_id = int(took["call"]["id"])
    kiosk = MovingPeer(kiosk_sio, call_id)
    expert = MovingPeer(expert_sio, call_id)
    await kiosk.join()
    await expert.join()
    return kiosk, expert, call_id


async def test_media_crosses_servers_and_no_room_is_left(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    async with (
        relay_cluster(tmp_path, ["n1", "n2"]) as cluster,
        two_servers(tmp_path, cluster, fresh_postgres_url) as (first, second),
    ):
        kiosk, expert, call_id = await cross_server_call(first, second)
        try:
            row = await call_row(first, call_id)
            assert row.relay_node in {"n1", "n2"} and row.relay_epoch == 0
            await media_flows(kiosk, expert)
            assert await cluster.rooms_of(row.relay_node) == [row.room_id]
            other = ({"n1", "n2"} - {row.relay_node}).pop()
            assert await cluster.rooms_of(other) == []
            ended = await kiosk.sio.call("call:end", {"call_id": call_id}, timeout=10)
            assert ended["ok"], ended
            for node_id in ("n1", "n2"):
                assert await cluster.rooms_of(node_id) == []
        finally:
            await kiosk.close()
            await expert.close()


@contextlib.asynccontextmanager
async def moved_call(
    tmp_path: Path, database_url: str, fault: Callable[[RelayCluster, str], Awaitable[None]]
) -> AsyncIterator[tuple[RelayCluster, LiveService, MovingPeer, MovingPeer, Call, Call]]:
    """A call across two servers with media flowing; `fault(cluster, node)` done to its node;
    both peers moved and joined again. Yields (cluster, server, kiosk, expert, before, after)."""
    async with (
        relay_cluster(tmp_path, ["n1", "n2"]) as cluster,
        two_servers(tmp_path, cluster, database_url) as (first, second),
    ):
        kiosk, expert, call_id = await cross_server_call(first, second)
        try:
            before = await call_row(first, call_id)
            await media_flows(kiosk, expert)
            await fault(cluster, before.relay_node)
            await asyncio.wait_for(kiosk.rejoined.wait(), 30)
            await asyncio.wait_for(expert.rejoined.wait(), 30)
            after = await call_row(first, call_id)
            yield cluster, first, kiosk, expert, before, after
        finally:
            await kiosk.close()
            await expert.close()


async def kill_node(cluster: RelayCluster, node_id: str) -> None:
    cluster.nodes[node_id].kill()


async def test_killed_node_moves_the_call(tmp_path: Path, fresh_postgres_url: str) -> None:
    async with moved_call(tmp_path, fresh_postgres_url, kill_node) as moved:
        _cluster, _server, kiosk, expert, before, after = moved
        assert after.relay_node != before.relay_node
        assert after.relay_epoch == before.relay_epoch + 1
        assert kiosk.moves[-1]["relay_epoch"] == after.relay_epoch
        assert kiosk.moves[-1]["reason"] == "node_lost"
        await media_flows(kiosk, expert)


async def test_drain_moves_calls_off_the_node(tmp_path: Path, fresh_postgres_url: str) -> None:
    async with moved_call(tmp_path, fresh_postgres_url, RelayCluster.set_drain) as moved:
        cluster, first, kiosk, expert, before, after = moved
        assert after.relay_node != before.relay_node
        assert kiosk.moves[-1]["reason"] == "drain"
        await media_flows(kiosk, expert)

        # The old room closes once the clients had time to rejoin; the drained node is
        # alive and gets no new call.
        async def old_room_gone() -> bool:
            return await cluster.rooms_of(before.relay_node) == []

        for _ in range(60):
            if await old_room_gone():
                break
            await asyncio.sleep(0.25)
        assert await old_room_gone()
        from signaling.transport.relay_placement import router_of

        router = router_of(first.services)
        assert router is not None
        assert router.choose() == after.relay_node


async def test_a_node_that_never_answers_is_not_chosen(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    from media_relay.registry import NodeInfo, node_key

    # A TCP port that accepts connections and never says a word: the worst kind of dead node.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    async with relay_cluster(tmp_path, ["n1"]) as cluster:
        client = await cluster.redis()
        record = NodeInfo(
            node_id="aaa-silent",
            control_url=f"ws://127.0.0.1:{port}/control",
            announced_addresses=["127.0.0.1"],
            capacity=10_000,
        )

        async def keep_registered() -> None:
            while True:
                await client.set(
                    node_key(cluster.prefix, record.node_id), record.model_dump_json(), px=1500
                )
                await asyncio.sleep(0.3)

        beat = asyncio.create_task(keep_registered())
        try:
            async with two_servers(tmp_path, cluster, fresh_postgres_url) as (first, second):
                from signaling.transport.relay_placement import router_of

                router = router_of(first.services)
                assert router is not None
                await eventually(lambda: "aaa-silent" in router.live, 5)
                choosable = {node.node_id for node in router.choosable()}
                assert choosable == {"n1"}
                kiosk, expert, call_id = await cross_server_call(first, second)
                try:
                    assert (await call_row(first, call_id)).relay_node == "n1"
                    await media_flows(kiosk, expert)
                finally:
                    await kiosk.close()
                    await expert.close()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await client.aclose()
            silent.close()


async def test_no_live_node_leaves_the_customer_in_line(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    async with (
        relay_cluster(tmp_path, ["n1"]) as cluster,
        two_servers(tmp_path, cluster, fresh_postgres_url) as (first, _second),
    ):
        cluster.nodes["n1"].kill()
        from signaling.transport.relay_placement import router_of

        router = router_of(first.services)
        assert router is not None
        await eventually(lambda: not router.choosable(), 10)
        kiosk_sio = await first.connect_kiosk()
        expert_sio = await first.connect_user("kela")
        for client in (kiosk_sio, expert_sio):
            assert (await client.call("flow:sync", {}, timeout=10))["ok"]
        taken = await kiosk_sio.call("ticket:take", {"authority": "kela", "language": "fin"})
        assert taken["ok"], taken
        took = await expert_sio.call("queue:take_next", {}, timeout=10)
        assert not took["ok"] and took["error"]["reason"] == "relay_down", took
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{first.base_url}/readyz") as response,
        ):
            ready = await response.json()
        assert response.status == 503 and ready["checks"]["relay"] == "no live relay node"
        # The customer is still waiting, first in line.
        listed = await expert_sio.call("queue:list", {}, timeout=10)
        waiting = [t["ticket_id"] for q in listed["queues"] for t in q["tickets"]]
        assert waiting[:1] == [taken["ticket"]["id"]], listed

