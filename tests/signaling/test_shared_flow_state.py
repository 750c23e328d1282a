"""Flow state that several signaling processes share, not one process's memory: two servers in
this process, each with its own app, port, engine and sockets, sharing PostgreSQL and a real
Redis (as processes behind HAProxy do).

- The public booking pages' per-address limits are one budget over the processes
  (signaling/booking/booking_api.py `PublicLimiter` on login_guard's `RedisWindows`), and fall back
  to
  this process's counts when Redis does not answer.
- The reserved interpreter's head start is the ring's `widen_at` in the database: when the
  process that opened the ring is gone, the other's sweep widens it, once
  (signaling/flow/interpreter_reservations.py).
- The customer at home waiting on one process is seen `online` by an expert on the other, who
  admits him there; a dead process's customer is shown gone (signaling/flow/remote_customer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import socketio
from sqlalchemy import update

from signaling.booking import booking
from signaling.booking.booking_api import PublicLimiter
from signaling.db import utcnow
from signaling.flow.flow_common import load_ids
from signaling.flow.interpreter_reservations import (
    RESERVED_FIRST_SECONDS,
    WIDEN_SWEEP_SECONDS,
    widen_due,
)
from signaling.store.flow_models import InterpreterRequest
from signaling.store.models import Office
from signaling.transport import rooms
from tests.signaling.call_support import eventually
from tests.signaling.flow_support import call
from tests.signaling.test_booking import _set_availability
from tests.signaling.test_interpreter_reservations import RULES, _add_interpreter, _request
from tests.signaling.test_join import http, remote_appointment
from tests.signaling.test_presence_lease import drop_channel_keys
from tests.signaling.test_redis import REDIS_URL, redis_reachable
from tests.signaling.test_secretary_cluster import pushes_cross
from tests.support.service import LiveService, make_live_service

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres]


async def shared_settings(database_url: str, **more: Any) -> dict[str, Any]:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return {
        "redis_url": REDIS_URL,
        # A channel (and so a key prefix) of our own: other runs may share this Redis.
        "redis_channel": f"etapalvelu-test-{secrets.token_hex(6)}",
        "database_url": database_url,
        **more,
    }


@contextlib.asynccontextmanager
async def two_servers(
    tmp_path: Path, settings: dict[str, Any]
) -> AsyncIterator[tuple[LiveService, LiveService]]:
    try:
        async with (
            make_live_service(tmp_path / "a", **settings) as first,
            make_live_service(tmp_path / "b", **settings) as second,
        ):
            yield first, second
    finally:
        await drop_keys(settings["redis_channel"])


async def drop_keys(channel: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    await drop_channel_keys(client, channel)
    await client.aclose()


@dataclass
class Ring:
    """The ring's other interpreter (on B) and what he heard."""

    interpreter_id: int
    client: socketio.AsyncClient
    alerts: list[Any] = field(default_factory=list)
    request_id: int = 0


# --- the public booking pages' limits ----------------------------------------------------------


async def test_booking_limits_are_one_budget_over_the_processes(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    # 12 requests a minute per address (bookings and changes: 1), 10 failed look-ups; the
    # address is X-Forwarded-For from a trusted proxy, so each part of the test has its own.
    settings = await shared_settings(
        fresh_postgres_url, booking_rate_per_minute=12, trusted_proxies=["127.0.0.1"]
    )
    async with two_servers(tmp_path, settings) as (a, b), aiohttp.ClientSession() as client:

        async def status(live: LiveService, method: str, path: str, address: str, **kw: Any) -> int:
            headers = {"X-Forwarded-For": address}
            async with client.request(method, f"{live.base_url}{path}", headers=headers, **kw) as r:
                return r.status

        offices = "/api/public/booking/offices"
        # Reads, alternating between the processes: the 13th is refused, on either of them.
        answers = [await status((a, b)[n % 2], "GET", offices, "198.51.100.1") for n in range(12)]
        assert answers == [200] * 12
        assert await status(a, "GET", offices, "198.51.100.1") == 429
        assert await status(b, "GET", offices, "198.51.100.1") == 429
        # Each process counted only its own half: alone, neither would have refused.
        assert not a.services.extras["booking_limiter"].reads.exceeded("198.51.100.1")
        assert await status(b, "GET", offices, "198.51.100.9") == 200  # another address

        # A booking (an invalid one still counts) on A, the next change on B: refused.
        book = "/api/public/booking"
        assert await status(a, "POST", book, "198.51.100.2", json={}) == 400
        assert await status(b, "POST", "/api/public/booking/cancel", "198.51.100.2", json={}) == 429

        # Guessing codes: ten unknown links, spread over both, block the address on both.
        lookup = "/api/public/booking/lookup"
        for n in range(10):
            guess = {"token": secrets.token_urlsafe(24)}
            assert await status((a, b)[n % 2], "POST", lookup, "198.51.100.3", json=guess) == 404
        assert await status(a, "GET", offices, "198.51.100.3") == 429

        # Redis stops answering A: A's own counts decide (12 requests of this process).
        found = a.services.extras["booking_limiter"]
        assert isinstance(found, PublicLimiter) and found.shared is not None
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        found.use_redis(dead, settings["redis_channel"])
        try:
            answers = [await status(a, "GET", offices, "198.51.100.4") for _ in range(13)]
            assert answers == [200] * 12 + [429]
        finally:
            await dead.aclose()


# --- the reserved interpreter's head start --------------------------------------------------------


async def test_a_ring_widens_once_when_the_process_that_opened_it_is_gone(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    settings = await shared_settings(fresh_postgres_url)
    try:
        async with make_live_service(tmp_path / "b", **settings) as b:
            ring = await _open_a_booked_ring_on_a_then_stop_it(tmp_path, settings, b)
            await _the_other_process_widens_it_once(b, ring)
    finally:
        await drop_keys(settings["redis_channel"])


async def _open_a_booked_ring_on_a_then_stop_it(
    tmp_path: Path, settings: dict[str, Any], b: LiveService
) -> Ring:
    async with make_live_service(tmp_path / "a", **settings) as a:
        sessions = a.services.sessions
        await _set_availability(sessions, "kela", ["mon-sun 00:00-24:00"])
        reserved = a.demo.user_ids["tulkki"]
        other = await _add_interpreter(sessions, "tulkki2", ["ara"])
        # A booking with Arabic interpreting: the least reserved interpreter (both have none:
        # the lower id, tulkki) is reserved. Its time is brought to now for the check-in.
        now = utcnow()
        async with sessions() as session:
            office = await session.get(Office, a.demo.office_id)
            kela = await booking.find_authority(session, "kela")
            assert office is not None
            slot = (
                await booking.slots_for(
                    session, office, kela, "fin", now, now + timedelta(days=7), now, RULES, "ara"
                )
            )[0]
            made = await booking.book_slot(
                session, _request(office.id, slot.starts_at, 1, "ara"), now, RULES
            )
            code = made.appointment.code
            made.appointment.starts_at = now + timedelta(minutes=10)
            made.appointment.ends_at = now + timedelta(minutes=40)
            await session.commit()

        # The reserved interpreter, the kiosk and the expert on A; the other interpreter on B.
        tulkki = await a.connect_user("tulkki")
        ring = Ring(other, await b.connect_user("tulkki2"))
        reserved_alerts: list[Any] = []
        tulkki.on("interpreter:alert", reserved_alerts.append)
        ring.client.on("interpreter:alert", ring.alerts.append)
        for client in (tulkki, ring.client):
            assert (await call(client, "flow:sync"))["ok"]
        await pushes_cross(a, ring.client, rooms.user(other))
        kiosk = await a.connect_kiosk()
        expert = await a.connect_user("kela")
        assert (await call(expert, "flow:sync"))["ok"]
        checked = await call(kiosk, "appointment:check_in", {"code": code})
        assert checked["ok"] and checked["ticket"]["interpreting"] == "ara", checked
        taken = await call(expert, "queue:take", {"ticket_id": checked["ticket"]["id"]})
        assert taken["ok"], taken
        [request] = taken["call"]["interpreter_requests"]
        ring.request_id = request["id"]
        await eventually(lambda: bool(reserved_alerts), within=5)
        # The deadline is in the database, and not yet due: B's sweep leaves the ring alone.
        async with b.services.sessions() as session:
            row = await session.get(InterpreterRequest, ring.request_id)
            assert row is not None and row.widen_at is not None
            assert row.widen_at - row.requested_at == timedelta(seconds=RESERVED_FIRST_SECONDS)
            assert load_ids(row.alerted) == [reserved]
        assert await widen_due(b.services) == []
        assert ring.alerts == []
    # A is gone, and its timer with it.
    return ring


async def _the_other_process_widens_it_once(b: LiveService, ring: Ring) -> None:
    # The deadline passes.
    async with b.services.sessions() as session:
        await session.execute(
            update(InterpreterRequest)
            .where(InterpreterRequest.id == ring.request_id)
            .values(widen_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    # B's periodic sweep and two more sweeps at once: the ring widens exactly once.
    widened = await asyncio.gather(widen_due(b.services), widen_due(b.services))
    assert sum(len(w) for w in widened) <= 1, widened
    await eventually(lambda: bool(ring.alerts), within=5)
    await asyncio.sleep(WIDEN_SWEEP_SECONDS + 0.5)  # another sweep of B's
    assert [x["request"]["id"] for x in ring.alerts] == [ring.request_id]
    async with b.services.sessions() as session:
        row = await session.get(InterpreterRequest, ring.request_id)
        assert row is not None and row.widen_at is None and row.status == "ringing"
        assert load_ids(row.alerted).count(ring.interpreter_id) == 1
    assert await widen_due(b.services) == []


# --- the customer at home -----------------------------------------------------------------------


async def test_a_customer_waiting_on_one_process_is_seen_and_admitted_on_the_other(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    settings = await shared_settings(fresh_postgres_url, process_lease_seconds=1.5)
    async with two_servers(tmp_path, settings) as (a, b):
        appointment_id, path = await remote_appointment(a)
        expert = await b.connect_user("kela")
        pushes: list[dict[str, Any]] = []
        expert.on("remote:waiting", lambda d: pushes.append(d["customer"]))
        await pushes_cross(a, expert, rooms.user(a.demo.user_ids["kela"]))

        async def listed() -> list[dict[str, Any]]:
            answer = await call(expert, "remote:list")
            assert answer["ok"], answer
            return list(answer["waiting"])

        async with http() as browser, browser.post(f"{a.base_url}{path}/enter") as r:
            assert r.status == 200
            secret = r.cookies["etapalvelu_join"].value

        async def guest_on(live: LiveService) -> socketio.AsyncClient:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                live.base_url,
                auth={"guest": True},
                # A new dict each time: the client keeps and changes the one it is given.
                headers={"Cookie": f"etapalvelu_join={secret}"},
                transports=["websocket"],
            )
            live.clients.append(client)
            return client

        # His page opens on A: the expert on B hears it and sees him online in his list.
        guest = await guest_on(a)
        await eventually(lambda: bool(pushes) and pushes[-1]["online"] is True)
        [waiting] = await listed()
        assert waiting["appointment_id"] == appointment_id and waiting["online"] is True
        guest_id = waiting["guest_id"]
        # He closes it: gone on B too.
        await guest.disconnect()
        await eventually(lambda: pushes[-1]["online"] is False)
        assert [w["online"] for w in await listed()] == [False]

        # A process that holds his page and then dies (its lease lapses): online while it
        # lives, and the survivors' sweep tells the expert when it is gone.
        channel = settings["redis_channel"]
        redis_client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            await redis_client.set(f"{channel}:proc:ghost", "1", px=1500)
            await redis_client.sadd(f"{channel}:procs", "ghost")
            await redis_client.hset(
                f"{channel}:proc-sockets:ghost", mapping={f"guest:{guest_id}": 1}
            )
            assert [w["online"] for w in await listed()] == [True]
            pushes.clear()
            await eventually(lambda: bool(pushes), within=6)
            assert pushes[-1]["guest_id"] == guest_id and pushes[-1]["online"] is False
            assert not await redis_client.exists(f"{channel}:proc-sockets:ghost")
        finally:
            await redis_client.aclose()

        # He comes back on A; the expert on B admits him, and A's socket hears it.
        guest = await guest_on(a)
        admitted: list[Any] = []
        guest.on("remote:admitted", admitted.append)
        await eventually(lambda: pushes[-1]["online"] is True)
        result = await call(expert, "remote:admit", {"appointment_id": appointment_id})
        assert result["ok"], result
        await eventually(lambda: bool(admitted))
        assert admitted[0]["call"]["id"] == result["call"]["id"]
        assert await listed() == []
        assert (await call(expert, "call:end", {"call_id": result["call"]["id"]}))["ok"]
