"""Moving calls off relay nodes that die or drain, and closing rooms no call owns.

Runs in every signaling process in "nodes" mode; one of them at a time does the work (a Redis
lock, `<prefix>:relay:mover`, held for a few intervals and renewed by its holder), and each move
is also a compare-and-set on (`relay_node`, `relay_epoch`) in the database, so a call moves
once even if two processes ever overlap (a holder paused past its lock, say).

* A call whose node is not live any more (its registration expired, or this process's control
  connection to it has been down for `relay_placement.SUSPECT_AFTER`) is moved at once to the
  least-loaded live node (same site first), `relay_epoch` + 1, and its participants are told
  with `call:relay_moved`; their clients join again (the same rejoin as after a socket or ICE
  failure) and the new node offers them the others as they come back.
* A call on a draining node (`etapalvelu relay --drain NODE`) is moved the same way, a few at a
  time and only once it has been running a little while (not while it is being set up), and
  its old room is closed `relay_move_grace` seconds later, when the clients have rejoined.
* Every `JANITOR_SECONDS` the holder asks each live node for its rooms and closes those whose
  call has ended or lives on another node (a node that was thought dead and came back, a
  close that failed): no room or port is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from signaling.db import utcnow
from signaling.flow.calls import close_relay_room
from signaling.flow.flow_common import call_id_of_room, call_room, relay_room_id
from signaling.store.flow_models import Call, CallStatus
from signaling.store.models import Office
from signaling.transport import rooms
from signaling.transport.relay_placement import RelayRouter, RelayUnavailable
from signaling.transport.services import Services

log = logging.getLogger(__name__)

JANITOR_SECONDS = 10.0
# Calls moved off a draining node per pass, and how long a call must have run first.
DRAIN_BATCH = 2
DRAIN_QUIET_SECONDS = 5.0


class RelayFailover:
    def __init__(self, services: Services, router: RelayRouter) -> None:
        self.services = services
        self.router = router
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._moved_at: dict[int, float] = {}
        self._janitor_at = 0.0
        self._closers: set[asyncio.Task[None]] = set()

    @property
    def lock_key(self) -> str:
        return f"{self.router.prefix}:relay:mover"

    async def run(self) -> None:
        interval = self.services.settings.relay_failover_interval
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failover pass failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for task in list(self._closers):
            task.cancel()
        for task in list(self._closers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _hold_lock(self) -> bool:
        redis = self.router.redis
        if redis is None:
            return False
        ttl_ms = int(self.services.settings.relay_failover_interval * 4000) + 1000
        if await redis.set(self.lock_key, self.token, nx=True, px=ttl_ms):
            return True
        holder = await redis.get(self.lock_key)
        if holder is not None and holder.decode() == self.token:
            await redis.pexpire(self.lock_key, ttl_ms)
            return True
        return False

    async def tick(self) -> list[int]:
        """One pass; returns the ids of the calls moved."""
        if not await self._hold_lock():
            return []
        async with self.services.sessions() as session:
            found = await session.execute(
                select(
                    Call.id, Call.relay_node, Call.relay_epoch, Call.started_at, Office.relay_site
                )
                .join(Office, Office.id == Call.office_id)
                # "local" calls too: left from before the switch to nodes, they have no relay.
                .where(Call.status == CallStatus.ACTIVE.value)
            )
            active = found.all()
        moved: list[int] = []
        drained = 0
        quiet_before = utcnow() - timedelta(seconds=DRAIN_QUIET_SECONDS)
        for call_id, node, epoch, started_at, site in active:
            if not self.router.alive(node):
                reason = "node_lost"
            elif self.router.draining(node):
                if drained >= DRAIN_BATCH or started_at > quiet_before:
                    continue
                drained += 1
                reason = "drain"
            else:
                continue
            if await self.move(call_id, node, epoch, site, reason):
                moved.append(call_id)
        for node_id in self.router.client_nodes:
            if node_id not in self.router.live:
                # Gone from the registry and its calls moved: forget its client.
                if not any(n == node_id for _c, n, *_rest in active):
                    await self.router.forget(node_id)
        now = time.monotonic()
        if now - self._janitor_at >= JANITOR_SECONDS:
            self._janitor_at = now
            await self.sweep_rooms()
        return moved

    async def move(
        self, call_id: int, node: str, epoch: int, site: str | None, reason: str
    ) -> bool:
        try:
            target = self.router.choose(site, exclude=node)
        except RelayUnavailable:
            log.warning("call %s cannot leave relay node %s: no other node is live", call_id, node)
            return False
        async with self.services.sessions() as session:
            result = await session.execute(
                update(Call)
                .where(
                    Call.id == call_id,
                    Call.relay_node == node,
                    Call.relay_epoch == epoch,
                    Call.status == CallStatus.ACTIVE.value,
                )
                .values(relay_node=target, relay_epoch=epoch + 1)
            )
            await session.commit()
        if getattr(result, "rowcount", 0) != 1:
            return False
        self._moved_at[call_id] = time.monotonic()
        log.info("call %s moved from relay node %s to %s (%s)", call_id, node, target, reason)
        counter = self.services.extras.get("relay_moves_total")
        if counter is not None:
            counter.labels(reason).inc()
        await self._announce(call_id, epoch + 1, target, reason)
        if reason == "drain":
            self._close_later(node, call_id)
        return True

    async def _announce(self, call_id: int, epoch: int, node: str, reason: str) -> None:
        async with self.services.sessions() as session:
            call = await session.get(Call, call_id)
            if call is None:
                return
            targets = [call_room(call_id)]
            if call.endpoint_id is not None:
                targets.append(rooms.endpoint(call.endpoint_id))
            if call.expert_id is not None:
                targets.append(rooms.user(call.expert_id))
        payload = {"call_id": call_id, "relay_epoch": epoch, "reason": reason}
        await self.services.sio.emit("call:relay_moved", payload, room=targets)

    def _close_later(self, node: str, call_id: int) -> None:
        async def close() -> None:
            await asyncio.sleep(self.services.settings.relay_move_grace)
            await close_relay_room(self.services, node, relay_room_id(call_id))

        task = asyncio.create_task(close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def sweep_rooms(self) -> list[tuple[str, str]]:
        """Close rooms on live nodes that no active call placed there owns."""
        grace = self.services.settings.relay_move_grace + 2.0
        now = time.monotonic()
        closed: list[tuple[str, str]] = []
        for node_id in list(self.router.live):
            if not self.router.alive(node_id):
                continue
            try:
                client = await self.router.client(node_id)
                open_rooms = list(await client.rooms_open())
            except Exception as exc:
                log.info("rooms of relay node %s not readable: %s", node_id, exc)
                continue
            from signaling.flow.relay_probes import live_probe_rooms

            # A relay probe in progress (kiosk self-test, join page's device check), opened by
            # any process, is no leftover (signaling/flow/relay_probes.py).
            probing = await live_probe_rooms(self.services, open_rooms)
            ids = {room: call_id_of_room(room) for room in open_rooms if room not in probing}
            wanted = [cid for cid in ids.values() if cid is not None]
            placed: dict[int, str] = {}
            if wanted:
                async with self.services.sessions() as session:
                    found = await session.execute(
                        select(Call.id, Call.relay_node).where(
                            Call.id.in_(wanted), Call.status == CallStatus.ACTIVE.value
                        )
                    )
                    placed = {cid: n for cid, n in found.all()}
            for room, cid in ids.items():
                if cid is not None and placed.get(cid) == node_id:
                    continue
                if cid is not None and now - self._moved_at.get(cid, -1e9) < grace:
                    continue  # its old room closes after the grace (_close_later)
                try:
                    await client.close_room(room)
                    closed.append((node_id, room))
                    log.info("closed room %s left on relay node %s", room, node_id)
                except Exception as exc:
                    log.warning("could not close room %s on %s: %s", room, node_id, exc)
        stale = [cid for cid, at in self._moved_at.items() if now - at > grace * 4]
        for cid in stale:
            self._moved_at.pop(cid, None)
        return closed


def setup(app: Any, services: Services) -> None:
    """Runs the failover loop in "nodes" mode (a feature module: signaling/server/features.py)."""
    from prometheus_client import Counter

    from signaling.transport.relay_placement import router_of

    router = router_of(services)
    if router is None or router.mode != "nodes":
        return
    services.extras["relay_moves_total"] = Counter(
        "etapalvelu_relay_call_moves_total",
        "Calls moved to another relay node, by reason (node_lost, drain)",
        ["reason"],
        registry=services.metrics.registry,
    )
    failover = RelayFailover(services, router)
    services.extras["relay_failover"] = failover

    async def lifecycle(_app: Any) -> Any:
        task = asyncio.create_task(failover.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await failover.close()

    app.cleanup_ctx.append(lifecycle)
