"""Relay probes (signaling/relay_probes.py) on a real relay node: the relay room sweep of
signaling/relay_failover.py leaves a probe in progress alone, the kiosk's and the join page's
alike, and closes a probe room a dead process left behind; a probe's timer closes its room."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from signaling import relay_probes
from signaling.protocol import Principal, Role
from tests.signaling.call_support import eventually
from tests.support.relay_nodes import relay_cluster
from tests.support.service import make_live_service

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
            from signaling.relay_placement import router_of

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

            closed = await failover.sweep_rooms()
            assert closed == [("n1", leftover)]
            assert sorted(await cluster.rooms_of("n1")) == sorted(
                [joined.room_id, selftest.room_id]
            )
            # The owner's, only: another join link cannot see it.
            assert relay_probes.find(services, joined.probe_id, "join:b") is None
            assert relay_probes.find(services, joined.probe_id, "join:a") is joined

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
