"""Walk-in queues: tickets, positions, take (with the race guard), transfer, restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from signaling.db import create_engine, migrate, session_factory
from signaling.flow.flow_common import FlowError
from signaling.flow.queues import (
    cancel_ticket,
    mean_service_seconds,
    queue_views,
    take_next,
    take_ticket,
    take_walk_in_ticket,
    ticket_state,
    transfer_ticket,
    waiting_tickets,
)
from signaling.store.flow_models import Call, Ticket, TicketStatus
from signaling.transport.protocol import EventModel
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    build_world,
    call,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.support.service import LiveService

DEFAULT = 480


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def _ticket(world: World, kiosk_name: str, code: str, at_minutes: float) -> Ticket:
    async with world.sessions() as session:
        ticket = await take_walk_in_ticket(
            session, getattr(world, kiosk_name), code, "fin", T0 + timedelta(minutes=at_minutes)
        )
        await session.commit()
        return ticket


async def test_ticket_positions_and_estimates(world: World) -> None:
    first = await _ticket(world, "kiosk", "kela", 0)
    second = await _ticket(world, "kiosk2", "kela", 1)
    third = await _ticket(world, "kiosk3", "kela", 2)
    async with world.sessions() as session:
        views = [await ticket_state(session, t, T0, DEFAULT) for t in (first, second, third)]
    # Both Kela experts are online and free: the first two are served at once, the third
    # waits for the first of the two calls to end.
    assert [(v["position"], v["estimated_wait_seconds"], v["estimate_reason"]) for v in views] == [
        (1, 0, "soon"),
        (2, 0, "soon"),
        (3, DEFAULT, "queue"),
    ]
    assert views[0]["status"] == "waiting"
    assert views[0]["number"].startswith("K-") and views[0]["authority_code"] == "kela"


async def test_unknown_authority_is_refused_and_nothing_is_written(world: World) -> None:
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await take_walk_in_ticket(session, world.kiosk, "nosuch", "fin", T0)
    assert caught.value.to_ack()["error"] == {
        "code": "not_found",
        "message": "no authority with code 'nosuch'",
        "reason": "authority_unknown",
    }
    assert await _count(world.sessions, Ticket) == 0


async def test_a_kiosk_holds_one_ticket_at_a_time(world: World) -> None:
    await _ticket(world, "kiosk", "kela", 0)
    with pytest.raises(FlowError) as caught:
        await _ticket(world, "kiosk", "vero", 1)
    assert (caught.value.code, caught.value.reason) == ("conflict", "already_queued")
    assert await _count(world.sessions, Ticket) == 1


async def test_take_next_serves_in_order_and_only_own_authority(world: World) -> None:
    vero_ticket = await _ticket(world, "kiosk3", "vero", 0)
    first = await _ticket(world, "kiosk", "kela", 1)
    await _ticket(world, "kiosk2", "kela", 2)
    async with world.sessions() as session:
        ticket, created = await take_next(
            session, world.expert, None, None, T0 + timedelta(minutes=3)
        )
    assert ticket.id == first.id and ticket.status == TicketStatus.SERVING
    assert created.expert_id == world.expert.id and created.ticket_id == first.id
    assert created.room_id == f"call-{created.id}"
    # The Kela expert may not take the Tax Administration's ticket.
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await take_ticket(session, world.expert2, vero_ticket.id, T0)
    assert (caught.value.code, caught.value.reason) == ("forbidden", "other_authority")
    async with world.sessions() as session:
        still = await session.get(Ticket, vero_ticket.id)
        assert still is not None and still.status == TicketStatus.WAITING
    # An expert already in a call cannot take another customer.
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await take_next(session, world.expert, None, None, T0)
    assert caught.value.reason == "in_call"


async def test_empty_queue_is_not_found(world: World) -> None:
    await _ticket(world, "kiosk", "kela", 0)
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await take_next(session, world.vero_expert, None, None, T0)
    assert (caught.value.code, caught.value.reason) == ("not_found", "queue_empty")
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await take_next(session, world.vero_expert, world.kela, None, T0)
    assert caught.value.code == "forbidden"


async def _race(world: World, ticket_id: int | None) -> list[object]:
    async def one(expert_name: str) -> object:
        async with world.sessions() as session:
            expert = getattr(world, expert_name)
            try:
                if ticket_id is None:
                    return (await take_next(session, expert, None, None, T0))[0].id
                return (await take_ticket(session, expert, ticket_id, T0))[0].id
            except FlowError as exc:
                return exc.reason

    return list(await asyncio.gather(one("expert"), one("expert2")))


@pytest.mark.parametrize("by_id", [True, False], ids=["take", "take_next"])
async def test_two_experts_at_once_exactly_one_wins(world: World, by_id: bool) -> None:
    ticket = await _ticket(world, "kiosk", "kela", 0)
    results = await _race(world, ticket.id if by_id else None)
    assert sorted(map(str, results)) == sorted([str(ticket.id), "taken"]), results
    assert await _count(world.sessions, Call) == 1


async def test_transfer_keeps_the_place_in_time(world: World) -> None:
    early = await _ticket(world, "kiosk", "kela", 0)
    later_vero = await _ticket(world, "kiosk2", "vero", 5)
    async with world.sessions() as session:
        old, new, ended, _ = await transfer_ticket(
            session, world.expert, early.id, world.vero, None, T0 + timedelta(minutes=10)
        )
    assert ended is None and old.status == TicketStatus.TRANSFERRED
    assert old.transferred_to_id == new.id
    assert new.queued_at == early.queued_at and new.queue_key == early.queue_key
    async with world.sessions() as session:
        line = await waiting_tickets(session, [world.vero])
    assert [t.id for t in line] == [new.id, later_vero.id]
    # Not his authority's ticket any more: the Kela expert cannot move it again.
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await transfer_ticket(session, world.expert, new.id, world.kela, None, T0)
    assert caught.value.code == "forbidden"


async def test_transfer_from_a_call_ends_the_call(world: World) -> None:
    await _ticket(world, "kiosk", "kela", 0)
    async with world.sessions() as session:
        ticket, created = await take_next(session, world.expert, None, None, T0)
    async with world.sessions() as session:
        _old, new, ended, _ = await transfer_ticket(
            session, world.expert, ticket.id, world.vero, "swe", T0 + timedelta(minutes=3)
        )
        ended_call = await session.get(Call, created.id)
    assert ended == created.id and ended_call is not None
    assert (ended_call.status, ended_call.end_reason) == ("ended", "transferred")
    assert new.language == "swe" and new.queue_key == T0


async def test_cancel_rules(world: World) -> None:
    ticket = await _ticket(world, "kiosk", "kela", 0)
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await cancel_ticket(session, world.kiosk2.id, ticket.id, T0)
    assert caught.value.code == "forbidden"
    async with world.sessions() as session:
        cancelled = await cancel_ticket(session, world.kiosk.id, ticket.id, T0)
        await session.commit()
    assert cancelled.status == TicketStatus.CANCELLED
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await cancel_ticket(session, world.kiosk.id, ticket.id, T0)
    assert caught.value.reason == "not_waiting"


async def test_estimate_follows_recent_call_durations(world: World) -> None:
    from signaling.flow.calls import end_call

    for minutes, kiosk in ((0, "kiosk"), (1, "kiosk2")):
        await _ticket(world, kiosk, "kela", minutes)
        async with world.sessions() as session:
            _, created = await take_next(session, world.expert, None, None, T0)
            await end_call(session, created, T0 + timedelta(minutes=4 + 2 * minutes))
            await session.commit()
    async with world.sessions() as session:
        # Durations 4 and 6 minutes: mean 5 minutes.
        assert await mean_service_seconds(session, world.kela, T0, DEFAULT) == 300
        assert await mean_service_seconds(session, world.vero, T0, DEFAULT) == DEFAULT


async def test_queue_view_for_clerk_is_filtered_by_office(world: World) -> None:
    await _ticket(world, "kiosk", "kela", 0)
    await _ticket(world, "far_kiosk", "kela", 1)
    async with world.sessions() as session:
        everything = await queue_views(session, None, None, T0 + timedelta(minutes=2))
        office_only = await queue_views(session, None, world.office, T0 + timedelta(minutes=2))
    assert [len(q["tickets"]) for q in everything] == [2]
    assert everything[0]["tickets"][0]["waiting_seconds"] == 120
    assert [t["office_id"] for t in office_only[0]["tickets"]] == [world.office]


async def test_tickets_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    engine = create_engine(url)
    await migrate(engine)
    world = await build_world(session_factory(engine))
    ids = [(await _ticket(world, k, "kela", m)).id for k, m in (("kiosk", 0), ("kiosk2", 1))]
    await engine.dispose()

    engine = create_engine(url)
    await migrate(engine)
    try:
        async with session_factory(engine)() as session:
            line = await waiting_tickets(session, [world.kela])
            assert [t.id for t in line] == ids
            ticket, _ = await take_next(session, world.expert, None, None, T0)
            assert ticket.id == ids[0]
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_take_race_guard_on_postgresql(fresh_postgres_url: str) -> None:
    engine = create_engine(fresh_postgres_url)
    await migrate(engine)
    try:
        world = await build_world(session_factory(engine))
        for by_id in (True, False):
            ticket = await _ticket(world, "kiosk" if by_id else "kiosk2", "kela", 0)
            results = await _race(world, ticket.id if by_id else None)
            assert sorted(map(str, results)) == sorted([str(ticket.id), "taken"]), results
            # Free both experts for the second round.
            from signaling.flow.calls import end_call

            async with world.sessions() as session:
                for active in (await session.execute(select(Call))).scalars():
                    if active.status == "active":
                        await end_call(session, active, T0)
                await session.commit()
        assert await _count(world.sessions, Call) == 2
    finally:
        await engine.dispose()


# --- over socket.io ---------------------------------------------------------------------------


async def test_kiosk_and_expert_over_socketio(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    expert = await live_service.connect_user("kela")
    clerk = await live_service.connect_user("sihteeri")
    pushes: dict[str, list[Any]] = {"ticket": [], "queue": [], "started": [], "clerk": []}
    clerk.on("queue:update", lambda data: pushes["clerk"].append(data))
    kiosk.on("ticket:update", lambda data: pushes["ticket"].append(data))
    kiosk.on("call:started", lambda data: pushes["started"].append(data))
    expert.on("queue:update", lambda data: pushes["queue"].append(data))
    synced = await call(kiosk, "flow:sync")
    assert synced["ok"] and synced["ticket"] is None
    assert "kela" in [a["code"] for a in synced["authorities"]]
    assert (await call(expert, "flow:sync"))["ok"]

    bad = await call(kiosk, "ticket:take", {"authority": "nosuch", "language": "fin"})
    assert bad["error"]["code"] == "not_found" and bad["error"]["reason"] == "authority_unknown"
    bad = await call(kiosk, "ticket:take", {"authority": "kela", "language": "FINNISH"})
    assert bad["error"]["code"] == "invalid"
    bad = await call(expert, "ticket:take", {"authority": "kela", "language": "fin"})
    assert bad["error"]["code"] == "forbidden"

    taken = await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    assert taken["ok"], taken
    assert taken["ticket"]["position"] == 1
    listed = await call(expert, "queue:list", {})
    assert [t["ticket_id"] for t in listed["queues"][0]["tickets"]] == [taken["ticket"]["id"]]

    took = await call(expert, "queue:take_next", {})
    assert took["ok"], took
    assert took["ticket"]["status"] == "serving"
    for _ in range(50):
        if pushes["started"] and pushes["queue"]:
            break
        await asyncio.sleep(0.05)
    assert pushes["started"][0]["call"]["id"] == took["call"]["id"]
    assert any(q["authority_id"] == took["ticket"]["authority_id"] for q in pushes["queue"])
    assert any(p["ticket"]["status"] == "serving" for p in pushes["ticket"])
    first_clerk_view = pushes["clerk"][0]["queues"][0]["tickets"]
    assert [t["office_id"] for t in first_clerk_view] == [live_service.demo.office_id]
    again = await call(expert, "queue:take", {"ticket_id": took["ticket"]["id"]})
    assert again["error"]["code"] == "conflict"


async def test_service_secretary_alert_and_acknowledgement(live_service: LiveService) -> None:
    kiosk = await live_service.connect_kiosk()
    clerk = await live_service.connect_user("sihteeri")
    expert = await live_service.connect_user("kela")
    seen: dict[str, list[dict[str, object]]] = {"alert": [], "ack": [], "expert": []}
    clerk.on("secretary:alert", lambda data: seen["alert"].append(data))
    kiosk.on("secretary:acknowledged", lambda data: seen["ack"].append(data))
    expert.on("secretary:alert", lambda data: seen["expert"].append(data))
    raised = await call(kiosk, "secretary:call", {})
    assert raised["ok"], raised
    again = await call(kiosk, "secretary:call", {})
    assert again["alert"]["id"] == raised["alert"]["id"]
    for _ in range(100):
        if seen["alert"]:
            break
        await asyncio.sleep(0.05)
    assert seen["alert"][0]["alert"]["endpoint_id"] == live_service.demo.endpoint_id
    synced = await call(clerk, "flow:sync")
    assert [a["id"] for a in synced["secretary_alerts"]] == [raised["alert"]["id"]]

    alert_id = raised["alert"]["id"]
    assert (await call(expert, "secretary:acknowledge", {"alert_id": alert_id}))["error"][
        "code"
    ] == "forbidden"
    assert (await call(clerk, "secretary:acknowledge", {"alert_id": 999}))["error"][
        "code"
    ] == "not_found"
    done = await call(clerk, "secretary:acknowledge", {"alert_id": alert_id})
    assert done["ok"] and done["alert"]["acknowledged_by"]["name"]
    twice = await call(clerk, "secretary:acknowledge", {"alert_id": alert_id})
    assert twice["error"]["reason"] == "already_acknowledged"
    for _ in range(100):
        if seen["ack"]:
            break
        await asyncio.sleep(0.05)
    assert seen["ack"][0]["alert"]["id"] == alert_id
    assert seen["expert"] == []  # only the office's clerks are alerted


async def test_waiting_customers_survive_a_server_restart(tmp_path: Path) -> None:
    from tests.support.service import make_live_service

    async with make_live_service(tmp_path) as first:
        kiosk = await first.connect_kiosk()
        taken = await call(kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
        assert taken["ok"], taken
    async with make_live_service(tmp_path) as second:  # same data folder, new process state
        kiosk = await second.connect_kiosk()
        expert = await second.connect_user("kela")
        synced = await call(kiosk, "flow:sync")
        assert synced["ticket"]["id"] == taken["ticket"]["id"]
        assert synced["ticket"]["position"] == 1
        listed = await call(expert, "queue:list", {})
        assert [t["ticket_id"] for q in listed["queues"] for t in q["tickets"]] == [
            taken["ticket"]["id"]
        ]
        took = await call(expert, "queue:take_next", {})
        assert took["ticket"]["id"] == taken["ticket"]["id"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def _flow_schemas() -> list[type[EventModel]]:
    import signaling.flow.appointments
    import signaling.flow.interpreters
    import signaling.records.service_log  # noqa: F401 (declares its events)
    from signaling.transport.protocol import REGISTRY

    prefixes = ("flow:", "ticket:", "queue:", "appointment:", "call:", "interpreter:", "record:")
    prefixes += ("secretary:",)
    return [spec.schema for name, spec in REGISTRY.events.items() if name.startswith(prefixes)]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_event_schemas_refuse_garbage_cleanly(data: st.DataObject) -> None:
    schema = data.draw(st.sampled_from(_flow_schemas()))
    names = list(schema.model_fields) + [
        f.alias for f in schema.model_fields.values() if f.alias is not None
    ]
    keys = st.sampled_from(names) | st.text(max_size=8) if names else st.text(max_size=8)
    payload = data.draw(st.dictionaries(keys, JSON_VALUES, max_size=6))
    try:
        schema.model_validate(payload)
    except ValidationError:
        pass  # the dispatcher turns this into an `invalid` ack


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parse_time_accepts_only_aware_iso_times(text: str) -> None:
    from signaling.flow.flow_common import parse_time

    try:
        value = parse_time(text)
    except ValueError:
        return
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
