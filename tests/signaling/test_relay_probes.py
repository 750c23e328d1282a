"""Relay probes (signaling/flow/relay_probes.py) on a real relay node: the relay room sweep of
signaling/flow/relay_failover.py leaves a probe in progress alone, the kiosk's and the join page's
alike (by the time in its name or by its record in Redis), and closes a probe room a dead process
left behind; a probe's timer closes its room. With two signaling processes sharing PostgreSQL,
Redis and the relay node, the join page's probe opened on one is answered (an aiortc client as
the browser connects) and closed through the other, as HAProxy may send each request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from media_relay.aiortc_client import RelayPeerClient
from signaling.directory.principals import Principal, Role
from signaling.flow import relay_probes
from signaling.flow.leases import leases_of
from tests.signaling.call_support import eventually
from tests.signaling.test_join import http, remote_appointment
from tests.support.relay_nodes import REDIS_URL, relay_cluster
from tests.support.service import LiveService, make_live_service

pytestmark = pytest.mark.timeout(90)


def test_room_names_of_every_kind_are_recognised() -> None:
    for kind in relay_probes.KINDS:
        room = relay_probes.probe_room_id(7, "abc-def_ghijklmnopqrs", now=1_000_000, kind=kind)
        assert room.startswith(f"{kind.prefix}7-1000000-")
        assert relay_probes.is_live_probe_room(room, now=1_000_000 + kind.seconds)
        assert not relay_probes.is_live_probe_room(room, now=1_000_000 + kind.seconds + 11)
    for other in ("call-12", "probe-", "probe-7", "probe-7-x-y", "probe-abc", "preview-3"):
        assert not relay_probes.is_live_probe_room(other, now=1_000_005), other


async def test_the_sweep_leaves_live_probes_alone_and_closes_leftovers(tmp_path: Path) -> None:
    async with relay_cluster(tmp_path, ["n1"]) as cluster:
        async with make_live_service(tmp_path, **cluster.settings) as live:
            services = live.services
            from signaling.transport.relay_placement import router_of

            router = router_of(services)
            assert router is not None and router.mode == "nodes"
            await eventually(lambda: bool(router.choosable()), 15)
            failover = services.extras["relay_failover"]
            guest = Principal(kind="join", id=3, role=Role.CUSTOMER, name="")
            joined = await relay_probes.open_probe(services, relay_probes.JOIN, "join:a", 3, guest)
            kiosk = Principal(kind="endpoint", id=5, role=Role.ENDPOINT, name="")
            selftest = await relay_probes.open_probe(services, relay_probes.KIOSK, "sid", 5, kiosk)
            assert joined.room_id.startswith("probe-3-") and joined.node == "n1"
            assert joined.offer["sdp"].startswith("v=0") and joined.ice_servers == []
            # What a dead process left: a join page's probe room an hour old.
            client = await router.client("n1")
            leftover = relay_probes.probe_room_id(
                3, "x" * 22, now=time.time() - 3600, kind=relay_probes.JOIN
            )
            await client.join(leftover, "probe", publish=["audio"], subscribe=False)

            # A room whose name says it is an hour old but whose record is in Redis (the
            # opener's clock ran behind ours): live, left alone.
            skewed = relay_probes.Probe(
                "y" * 22, relay_probes.JOIN, "join:d", "n1",
                relay_probes.probe_room_id(3, "y" * 22, now=time.time() - 3600,
                                           kind=relay_probes.JOIN),
            )
            await relay_probes._save(services, skewed)
            assert skewed.shared
            await client.join(skewed.room_id, "probe", publish=["audio"], subscribe=False)

            closed = await failover.sweep_rooms()
            assert closed == [("n1", leftover)]
            assert sorted(await cluster.rooms_of("n1")) == sorted(
                [joined.room_id, selftest.room_id, skewed.room_id]
            )
            # The owner's, only: another join link cannot see it.
            assert await relay_probes.find(services, joined.probe_id, "join:b") is None
            assert await relay_probes.find(services, joined.probe_id, "join:a") is joined
            await relay_probes.close_probe(services, skewed.probe_id)  # its record closes it

            await relay_probes.close_owned(services, "sid")
            assert await cluster.rooms_of("n1") == [joined.room_id]
            # The timer closes the room by itself (a short lifetime for the test).
            quick = relay_probes.ProbeKind("probe-", "probe", 0.3)
            short = await relay_probes.open_probe(services, quick, "join:c", 4, guest)
            await asyncio.sleep(0.3)
            await eventually(lambda: short.probe_id not in relay_probes.probes_of(services), 5)
            assert await cluster.rooms_of("n1") == [joined.room_id]
            await relay_probes.close_all(services)
            assert await cluster.rooms_of("n1") == []


async def _nodes_ready(*lives: LiveService) -> None:
    from signaling.transport.relay_placement import router_of

    for live in lives:
        router = router_of(live.services)
        assert router is not None and router.mode == "nodes"
        await eventually(lambda router=router: bool(router.choosable()), 15)


@pytest.mark.postgres
async def test_a_probe_opened_on_one_process_is_answered_and_closed_on_another(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    async with relay_cluster(tmp_path, ["n1"]) as cluster:
        shared = {**cluster.settings, "database_url": fresh_postgres_url}
        async with (
            make_live_service(tmp_path / "a", **shared) as a,
            make_live_service(tmp_path / "b", **shared) as b,
            http() as browser,
            http() as stranger,
        ):
            await _nodes_ready(a, b)
            _appointment, path = await remote_appointment(a)
            async with browser.post(f"{a.base_url}{path}/enter") as r:
                assert r.status == 200
            async with browser.post(f"{a.base_url}{path}/probe") as r:
                assert r.status == 200
                opened = await r.json()
            probe_id = opened["probe_id"]
            probe = relay_probes.probes_of(a.services)[probe_id]
            assert probe.shared and relay_probes.probes_of(b.services) == {}
            # The record any process finds it by, expiring with the probe.
            redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
            key = relay_probes.record_key(cluster.prefix, probe_id)
            try:
                record = await redis.hgetall(key)
                ttl = await redis.pttl(key)
            finally:
                await redis.aclose()
            leases = leases_of(a.services)
            assert leases is not None
            assert {k: record[k] for k in ("process", "node", "room", "participant")} == {
                "process": leases.process_id, "node": "n1", "room": probe.room_id,
                "participant": "probe",
            }
            assert 0 < ttl <= (relay_probes.JOIN.seconds + relay_probes.SWEEP_SLACK) * 1000

            # The browser's answer reaches B: B passes it to the relay node, ICE and DTLS come up.
            peer = RelayPeerClient({}, ice_servers=[], host_addresses=["127.0.0.1"])
            try:
                sdp = await peer.handle_offer(opened["offer"])
                answer_url = f"{b.base_url}{path}/probe/{probe_id}/answer"
                async with stranger.post(answer_url, json={"sdp": sdp}) as r:
                    assert r.status == 410  # another browser: not his link
                async with browser.post(answer_url, json={"sdp": sdp}) as r:
                    assert r.status == 200, await r.text()
                assert await peer.wait_connected(10)
                # Neither process's room sweep takes it for a leftover.
                for live in (a, b):
                    assert await live.services.extras["relay_failover"].sweep_rooms() == []
                assert await cluster.rooms_of("n1") == [probe.room_id]

                # Closed through B: the room goes, and A drops it from its book when it looks.
                async with browser.post(f"{b.base_url}{path}/probe/{probe_id}/close") as r:
                    assert r.status == 200
                assert await cluster.rooms_of("n1") == []
                async with browser.post(answer_url, json={"sdp": sdp}) as r:
                    assert r.status == 404
                async with browser.post(f"{a.base_url}{path}/probe/{probe_id}/answer",
                                        json={"sdp": sdp}) as r:
                    assert r.status == 404
                assert probe_id not in relay_probes.probes_of(a.services)
                assert probe.timer is not None and probe.timer.cancelled()
            finally:
                await peer.close()
