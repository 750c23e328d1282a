"""Calls that survive failures and bad networks (server side): participants going away, the
customer's "End call", the call watchdog (`expert_lost`, `abandoned`), `ticket:requeue` and
server restarts. docs/signaling-events.md "Calls" and "Call lifecycle"."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiortc.mediastreams import AudioStreamTrack
from sqlalchemy import select

from signaling.db import utcnow
from signaling.flow.call_watch import verdict
from signaling.flow.calls import CallRelayListener, end_call, finish_call
from signaling.flow.flow_common import FlowError, parse_time
from signaling.flow.queues import requeue_ticket, take_next, take_walk_in_ticket
from signaling.store.flow_models import Call, CallParticipant, Ticket
from tests.signaling.call_support import CallPeer, eventually, start_call
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    call,
    extra_kiosk,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.support.net import free_port
from tests.support.service import LiveService, make_live_service

FAST = {"expert_return_seconds": 2, "empty_call_seconds": 2, "call_watch_interval": 0.2}


def collect(client: socketio.AsyncClient, event: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    client.on(event, lambda data: seen.append(data))
    return seen


def of(participants: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return next(p for p in participants if p["role"] == role)


async def call_row(live: LiveService, call_id: int) -> Call:
    async with live.services.sessions() as session:
        row = await session.get(Call, call_id)
        assert row is not None
        return row


async def eventually_in_db(live: LiveService, call_id: int, role: str, reason: str) -> None:
    for _ in range(100):
        async with live.services.sessions() as session:
            row = (
                await session.execute(
                    select(CallParticipant).where(
                        CallParticipant.call_id == call_id, CallParticipant.role == role
                    )
                )
            ).scalar_one()
            if row.gone_reason == reason:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the {role} of call {call_id} is not gone: {reason}")


async def wait_for_end(live: LiveService, call_id: int, within: float = 10.0) -> Call:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        row = await call_row(live, call_id)
        if row.status == "ended":
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"call {call_id} still active")
        await asyncio.sleep(0.1)


# --- the expert goes away --------------------------------------------------------------------


@pytest.mark.slow
async def test_expert_lost_returns_then_is_lost_and_the_customer_keeps_his_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="signaling")
    settings = {**FAST, "expert_return_seconds": 3}
    async with make_live_service(tmp_path, **settings) as live:
        kiosk_sio, expert_sio, call_id = await start_call(live)
        # A customer who comes after the original ticket, before the requeue.
        later = await extra_kiosk(live)
        queued = await call(later, "ticket:take", {"authority": "kela", "language": "fin"})
        assert queued["ok"] and queued["ticket"]["position"] == 1
        kiosk, expert = (
            CallPeer(kiosk_sio, call_id, {"audio": AudioStreamTrack()}),
            CallPeer(expert_sio, call_id, {"audio": AudioStreamTrack()}),
        )
        second: CallPeer | None = None
        try:
            participants = collect(kiosk_sio, "call:participants")
            ended = collect(kiosk_sio, "call:ended")
            expert_ended = collect(expert_sio, "call:ended")
            await kiosk.join()
            await expert.join()
            await eventually(
                lambda: (
                    bool(participants)
                    and all(p["connected"] for p in participants[-1]["participants"])
                )
            )
            assert of(participants[-1]["participants"], "expert")["gone_reason"] is None

            # The expert's browser closes: the kiosk hears it at once, not after 30 s.
            await expert_sio.disconnect()
            await eventually(
                lambda: not of(participants[-1]["participants"], "expert")["connected"], 1.5
            )
            gone = of(participants[-1]["participants"], "expert")
            assert gone["gone_reason"] == "socket_lost"
            assert gone["disconnected_at"] is not None
            parse_time(gone["disconnected_at"])
            assert of(participants[-1]["participants"], "customer")["connected"] is True

            # He logs in again within the grace and rejoins: the call goes on.
            back = await live.connect_user("kela")
            synced = await call(back, "flow:sync")
            assert synced["call"]["id"] == call_id
            second = CallPeer(back, call_id, {"audio": AudioStreamTrack()})
            await second.join()
            await eventually(lambda: of(participants[-1]["participants"], "expert")["connected"])
            returned = of(participants[-1]["participants"], "expert")
            assert returned["gone_reason"] is None and returned["disconnected_at"] is None
            await asyncio.sleep(settings["expert_return_seconds"] + 0.8)
            assert (await call_row(live, call_id)).status == "active"
            assert not ended

            # He goes again and does not come back: the call ends for the kiosk.
            requeue_events = collect(back, "call:ended")
            await back.disconnect()
            await eventually(lambda: bool(ended), settings["expert_return_seconds"] + 4)
            push = ended[-1]
            assert push["call_id"] == call_id and push["reason"] == "expert_lost"
            assert push["call"]["end_reason"] == "expert_lost"
            assert push["requeue"]["authority_code"] == "kela"
            assert push["requeue"]["language"] == "fin"
            expires = parse_time(push["requeue"]["expires_at"])
            ended_at = parse_time(push["call"]["ended_at"])
            assert expires - ended_at == timedelta(seconds=600)
            assert not expert_ended and not requeue_events  # both of his sockets were gone
            row = await call_row(live, call_id)
            assert (row.status, row.end_reason) == ("ended", "expert_lost")
            assert any(
                "expert_lost" in r.getMessage() and str(call_id) in r.getMessage()
                for r in caplog.records
            )

            # The kiosk is offered a new ticket at the head of the line.
            synced = await call(kiosk_sio, "flow:sync")
            assert synced["call"] is None and synced["ticket"] is None
            assert synced["requeue"]["call_id"] == call_id
            other = await call(later, "ticket:requeue", {"call_id": call_id})
            assert (other["error"]["code"], other["error"]["reason"]) == (
                "forbidden",
                "not_your_call",
            )
            later_updates = collect(later, "ticket:update")
            requeued = await call(kiosk_sio, "ticket:requeue", {"call_id": call_id})
            assert requeued["ok"], requeued
            ticket = requeued["ticket"]
            assert ticket["status"] == "waiting" and ticket["position"] == 1
            assert (ticket["authority_code"], ticket["language"]) == ("kela", "fin")
            assert ticket["endpoint_id"] == live.demo.endpoint_id
            assert ticket["call_id"] is None
            async with live.services.sessions() as session:
                original = await session.get(Ticket, row.ticket_id)
                assert original is not None
                assert parse_time(ticket["queue_key"]) == original.queue_key
                assert parse_time(ticket["queued_at"]) == original.queued_at
            await eventually(lambda: any(u["ticket"]["position"] == 2 for u in later_updates), 5)
            synced = await call(later, "flow:sync")
            assert synced["ticket"]["position"] == 2
            synced = await call(kiosk_sio, "flow:sync")
            assert synced["ticket"]["id"] == ticket["id"] and synced["requeue"] is None

            again = await call(kiosk_sio, "ticket:requeue", {"call_id": call_id})
            assert (again["error"]["code"], again["error"]["reason"]) == (
                "conflict",
                "already_requeued",
            )
            # The next expert takes the customer who kept his place.
            taker = await live.connect_user("kela")
            took = await call(taker, "queue:take_next", {})
            assert took["ok"] and took["ticket"]["id"] == ticket["id"]
        finally:
            await kiosk.close()
            await expert.close()
            if second is not None:
                await second.close()


async def test_requeue_after_the_window_is_refused(tmp_path: Path) -> None:
    async with make_live_service(
        tmp_path, expert_return_seconds=1, requeue_window_seconds=0.3, call_watch_interval=0.1
    ) as live:
        kiosk = await live.connect_kiosk()
        ended = collect(kiosk, "call:ended")
        # The expert's console crashes right after taking the customer: he never joins.
        _kiosk, _expert, call_id = await start_call(live, kiosk)
        await eventually(lambda: bool(ended), 5)
        assert ended[0]["reason"] == "expert_lost" and ended[0]["requeue"] is not None
        await asyncio.sleep(0.5)
        late = await call(kiosk, "ticket:requeue", {"call_id": call_id})
        assert (late["error"]["code"], late["error"]["reason"]) == ("conflict", "expired")
        assert (await call(kiosk, "flow:sync"))["requeue"] is None


async def test_a_replaced_socket_closing_is_not_a_departure(tmp_path: Path) -> None:
    async with make_live_service(tmp_path, **FAST) as live:
        kiosk, expert, call_id = await start_call(live)
        assert (await call(kiosk, "call:join", {"call_id": call_id}))["ok"]
        assert (await call(expert, "call:join", {"call_id": call_id}))["ok"]
        pushes = collect(kiosk, "call:participants")
        # The expert reloads: the new tab rejoins, then the old one closes.
        reloaded = await live.connect_user("kela")
        assert (await call(reloaded, "call:join", {"call_id": call_id}))["ok"]
        await expert.disconnect()
        await asyncio.sleep(0.5)
        assert pushes and all(of(p["participants"], "expert")["connected"] for p in pushes), pushes
        async with live.services.sessions() as session:
            rows = (
                await session.execute(
                    select(CallParticipant).where(CallParticipant.call_id == call_id)
                )
            ).scalars()
            assert all(r.connected and r.gone_reason is None for r in rows)
        # The relay's reason is passed on; leaving says "left".
        listener = live.services.extras["call_relay_listener"]
        assert isinstance(listener, CallRelayListener)
        await listener.on_participant_gone(
            f"call-{call_id}", f"endpoint-{live.demo.endpoint_id}", "ice_failed"
        )
        await eventually(lambda: not of(pushes[-1]["participants"], "customer")["connected"])
        assert of(pushes[-1]["participants"], "customer")["gone_reason"] == "ice_failed"
        assert (await call(reloaded, "call:leave", {"call_id": call_id}))["ok"]
        await eventually(lambda: not of(pushes[-1]["participants"], "expert")["connected"])
        assert of(pushes[-1]["participants"], "expert")["gone_reason"] == "left"


# --- the customer's "End call" ----------------------------------------------------------------


async def test_the_kiosk_ends_its_own_call(tmp_path: Path) -> None:
    async with make_live_service(tmp_path) as live:
        kiosk, expert, call_id = await start_call(live)
        assert (await call(kiosk, "call:join", {"call_id": call_id}))["ok"]
        assert (await call(expert, "call:join", {"call_id": call_id}))["ok"]
        kiosk_ended, expert_ended = collect(kiosk, "call:ended"), collect(expert, "call:ended")
        stranger = await extra_kiosk(live)
        refused = await call(stranger, "call:end", {"call_id": call_id})
        assert (refused["error"]["code"], refused["error"]["reason"]) == (
            "forbidden",
            "not_your_call",
        )
        assert (await call_row(live, call_id)).status == "active"
        ended = await call(kiosk, "call:end", {"call_id": call_id})
        assert ended["ok"] and ended["call"]["end_reason"] == "ended_by_customer"
        await eventually(lambda: bool(kiosk_ended) and bool(expert_ended))
        for pushes in (kiosk_ended, expert_ended):
            assert pushes[0]["reason"] == "ended_by_customer" and "requeue" not in pushes[0]
        registry = live.services.metrics.registry
        counted = registry.get_sample_value(
            "etapalvelu_calls_ended_total", {"reason": "ended_by_customer"}
        )
        assert counted == 1
        twice = await call(kiosk, "call:end", {"call_id": call_id})
        assert twice["error"]["reason"] == "call_ended"
        not_offered = await call(kiosk, "ticket:requeue", {"call_id": call_id})
        assert (not_offered["error"]["code"], not_offered["error"]["reason"]) == (
            "conflict",
            "not_requeueable",
        )
        # The expert still files the record of a call the customer ended.
        unfiled = (await call(expert, "flow:sync"))["unfiled_calls"]
        assert [c["id"] for c in unfiled] == [call_id]


# --- nobody left -----------------------------------------------------------------------------


async def test_a_call_everyone_left_is_abandoned_and_never_rejoined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="signaling")
    async with make_live_service(tmp_path, **FAST) as live:
        kiosk, expert, call_id = await start_call(live)
        assert (await call(kiosk, "call:join", {"call_id": call_id}))["ok"]
        assert (await call(expert, "call:join", {"call_id": call_id}))["ok"]
        # Both browsers close.
        await kiosk.disconnect()
        await expert.disconnect()
        row = await wait_for_end(live, call_id, 8)
        assert row.end_reason == "abandoned"
        assert any(
            "abandoned" in r.getMessage() and str(call_id) in r.getMessage() for r in caplog.records
        )
        # Reopening the kiosk does not put it back into the empty call.
        again = await live.connect_kiosk()
        synced = await call(again, "flow:sync")
        assert synced["call"] is None and synced["requeue"] is None
        refused = await call(again, "call:join", {"call_id": call_id})
        assert refused["error"]["reason"] == "call_ended"
        expert_again = await live.connect_user("kela")
        synced = await call(expert_again, "flow:sync")
        assert synced["call"] is None
        assert [c["end_reason"] for c in synced["unfiled_calls"]] == ["abandoned"]


async def test_the_kiosk_waiting_alone_may_rejoin_until_the_rules_end_it(
    tmp_path: Path,
) -> None:
    async with make_live_service(
        tmp_path, expert_return_seconds=3, empty_call_seconds=1, call_watch_interval=0.2
    ) as live:
        kiosk, expert, call_id = await start_call(live)
        assert (await call(expert, "call:join", {"call_id": call_id}))["ok"]
        await expert.disconnect()
        await eventually_in_db(live, call_id, "expert", "socket_lost")
        # The kiosk (re)joins a call whose only other participant is gone: allowed.
        joined = await call(kiosk, "call:join", {"call_id": call_id})
        assert joined["ok"], joined
        expert_view = of(joined["call"]["participants"], "expert")
        assert (expert_view["connected"], expert_view["gone_reason"]) == (False, "socket_lost")
        row = await wait_for_end(live, call_id, 8)
        # The kiosk stayed, so it is not "abandoned": the expert was lost.
        assert row.end_reason == "expert_lost"


async def test_a_join_racing_the_end_does_not_reopen_the_room(tmp_path: Path) -> None:
    async with make_live_service(tmp_path) as live:
        kiosk, _expert, call_id = await start_call(live)
        relay = live.services.relay
        real_join = relay.join

        async def join_while_the_watchdog_ends(*args: Any, **kwargs: Any) -> Any:
            # The call ends (as the watchdog would) while the relay makes the offer.
            async with live.services.sessions() as session:
                row = await session.get(Call, call_id)
                assert row is not None
                await end_call(session, row, utcnow(), "abandoned")
                await session.commit()
            await finish_call(live.services, call_id, [], "abandoned")
            return await real_join(*args, **kwargs)

        relay.join = join_while_the_watchdog_ends
        try:
            late = await call(kiosk, "call:join", {"call_id": call_id})
        finally:
            relay.join = real_join
        assert (late["error"]["code"], late["error"]["reason"]) == ("conflict", "call_ended")
        assert f"call-{call_id}" not in relay.rooms
        assert (await call(kiosk, "flow:sync"))["call"] is None


# --- restarts --------------------------------------------------------------------------------


async def test_calls_survive_a_restart_when_both_come_back(tmp_path: Path) -> None:
    port = free_port()
    settings = {
        "port": port,
        "expert_return_seconds": 4,
        "empty_call_seconds": 4,
        "call_watch_interval": 0.2,
    }
    async with make_live_service(tmp_path, **settings) as live:
        kiosk, expert, call_id = await start_call(live)
        assert (await call(kiosk, "call:join", {"call_id": call_id}))["ok"]
        assert (await call(expert, "call:join", {"call_id": call_id}))["ok"]
        # The process dies (kill -9): nothing it knew about the sockets reaches the database.
        live.services.connections.disconnect_hooks.clear()
    async with make_live_service(tmp_path, **settings) as live:
        # Nobody holds a socket to the new process: the call stands, nobody is connected.
        kiosk = await live.connect_kiosk()
        synced = await call(kiosk, "flow:sync")
        assert synced["call"]["id"] == call_id and synced["call"]["status"] == "active"
        for participant in synced["call"]["participants"]:
            assert participant["connected"] is False
            assert participant["gone_reason"] == "socket_lost"
            assert participant["disconnected_at"] is not None
        expert = await live.connect_user("kela")
        assert (await call(expert, "flow:sync"))["call"]["id"] == call_id
        assert (await call(kiosk, "call:join", {"call_id": call_id}))["ok"]
        rejoined = await call(expert, "call:join", {"call_id": call_id})
        assert rejoined["ok"], rejoined
        assert all(p["connected"] for p in rejoined["call"]["participants"])
        await asyncio.sleep(settings["empty_call_seconds"] + 1)
        assert (await call_row(live, call_id)).status == "active"
        ended = await call(expert, "call:end", {"call_id": call_id})
        assert ended["ok"] and ended["call"]["end_reason"] == "ended"


async def test_a_call_nobody_returns_to_after_a_restart_is_abandoned(tmp_path: Path) -> None:
    port = free_port()
    settings = {
        "port": port,
        "expert_return_seconds": 1,
        "empty_call_seconds": 1,
        "call_watch_interval": 0.2,
    }
    async with make_live_service(tmp_path, **{**settings, "empty_call_seconds": 600}) as live:
        kiosk, expert, call_id = await start_call(live)
        assert (await call(kiosk, "call:join", {"call_id": call_id}))["ok"]
        assert (await call(expert, "call:join", {"call_id": call_id}))["ok"]
        # The process dies with both participants marked connected.
        live.services.connections.disconnect_hooks.clear()
    async with make_live_service(tmp_path, **settings) as live:
        row = await wait_for_end(live, call_id, 8)
        assert row.end_reason == "abandoned"
        kiosk = await live.connect_kiosk()
        assert (await call(kiosk, "flow:sync"))["call"] is None


# --- garbage and refusals ----------------------------------------------------------------------


async def test_requeue_refuses_garbage_cleanly(tmp_path: Path) -> None:
    async with make_live_service(tmp_path) as live:
        kiosk = await live.connect_kiosk()
        expert = await live.connect_user("kela")
        for payload in (
            {},
            {"call_id": "x"},
            {"call_id": 0},
            {"call_id": -3},
            {"call_id": 1.5},
            {"call_id": None},
            {"call_id": [1]},
            {"call_id": 1, "extra": True},
            [1],
            "1",
            7,
        ):
            ack = await kiosk.call("ticket:requeue", payload, timeout=10)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid", (payload, ack)
        missing = await call(kiosk, "ticket:requeue", {"call_id": 999})
        assert missing["error"]["code"] == "not_found"
        refused = await call(expert, "ticket:requeue", {"call_id": 1})
        assert refused["error"]["code"] == "forbidden"
        assert (await kiosk.call("session:ping", {"seq": 1}, timeout=10))["seq"] == 1


async def test_requeue_rules(world: World) -> None:
    async with world.sessions() as session:
        await take_walk_in_ticket(session, world.kiosk, "kela", "fin", T0)
        await session.commit()
        _ticket, lost = await take_next(session, world.expert, None, None, T0)
        await take_walk_in_ticket(session, world.kiosk2, "kela", "fin", T0 + timedelta(minutes=1))
        await session.commit()
        _ticket, normal = await take_next(session, world.expert2, None, None, T0)
    ended_at = T0 + timedelta(minutes=5)
    async with world.sessions() as session:
        for created, reason in ((lost, "expert_lost"), (normal, "ended")):
            row = await session.get(Call, created.id)
            assert row is not None
            await end_call(session, row, ended_at, reason)
        await session.commit()

    async def refusal(kiosk: Any, call_id: int, seconds: float) -> tuple[str, str | None]:
        async with world.sessions() as session:
            with pytest.raises(FlowError) as caught:
                await requeue_ticket(
                    session, kiosk, call_id, ended_at + timedelta(seconds=seconds), 600
                )
            return str(caught.value.code), caught.value.reason

    assert await refusal(world.kiosk, 999, 1) == ("not_found", None)
    assert await refusal(world.kiosk2, lost.id, 1) == ("forbidden", "not_your_call")
    assert await refusal(world.kiosk2, normal.id, 1) == ("conflict", "not_requeueable")
    assert await refusal(world.kiosk, lost.id, 601) == ("conflict", "expired")
    async with world.sessions() as session:
        await take_walk_in_ticket(session, world.kiosk, "vero", "fin", ended_at)
        await session.commit()
    assert await refusal(world.kiosk, lost.id, 1) == ("conflict", "has_ticket")
    async with world.sessions() as session:
        waiting = (
            await session.execute(select(Ticket).where(Ticket.status == "waiting"))
        ).scalar_one()
        waiting.status = "cancelled"
        await session.commit()
        ticket = await requeue_ticket(session, world.kiosk, lost.id, ended_at, 600)
        assert (ticket.queue_key, ticket.queued_at, ticket.kind) == (T0, T0, "walk_in")
        assert (ticket.authority_id, ticket.office_id) == (world.kela, world.office)
    async with world.sessions() as session:
        mine = await session.get(Ticket, ticket.id)
        assert mine is not None
        mine.status = "cancelled"  # even without a ticket now: once per call
        await session.commit()
    assert await refusal(world.kiosk, lost.id, 2) == ("conflict", "already_requeued")


def _participant(role: str, connected: bool, since_seconds: float | None) -> CallParticipant:
    return CallParticipant(
        role=role,
        connected=connected,
        added_at=T0,
        disconnected_at=None if since_seconds is None else T0 + timedelta(seconds=since_seconds),
    )


def test_watchdog_rules() -> None:
    rules = {"expert_return_seconds": 60, "empty_call_seconds": 30}
    at = T0 + timedelta(seconds=100)
    customer_here = _participant("customer", True, None)
    expert_gone_long = _participant("expert", False, 30)  # 70 s ago
    expert_gone_short = _participant("expert", False, 50)  # 50 s ago
    camera = _participant("document_camera", True, None)
    assert verdict([customer_here, expert_gone_short], at, **rules) is None
    assert verdict([customer_here, expert_gone_long], at, **rules) == "expert_lost"
    # Nobody (the document camera does not count) since 50 s: abandoned, not expert_lost.
    customer_gone = _participant("customer", False, 50)
    assert verdict([customer_gone, expert_gone_short, camera], at, **rules) == "abandoned"
    # The last one left 20 s ago: not yet empty for 30 s, and the expert is within his 60 s.
    assert verdict([_participant("customer", False, 80), expert_gone_short], at, **rules) is None
    # An interpreter still connected keeps the call from being abandoned.
    interpreter = _participant("interpreter", True, None)
    assert verdict([customer_gone, expert_gone_short, interpreter], at, **rules) is None
    # Never joined: the clock runs from when he was added.
    never = _participant("expert", False, None)
    assert verdict([customer_here, never], at, **rules) == "expert_lost"
