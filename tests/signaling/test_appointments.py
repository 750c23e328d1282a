"""Appointments: booking, codes, check-in windows, the line order rule, no-show release."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.db import utcnow
from signaling.directory.principals import Principal
from signaling.flow.appointments import (
    CODE_ALPHABET,
    CODE_LENGTH,
    book,
    cancel_appointment,
    check_in,
    new_code,
    normalize_code,
    release_no_shows,
)
from signaling.flow.flow_common import FlowError
from signaling.flow.queues import take_next, take_ticket, take_walk_in_ticket, waiting_tickets
from signaling.store.flow_models import Appointment, Ticket
from tests.signaling.flow_support import (  # noqa: F401 (fixtures)
    T0,
    World,
    call,
    extra_kiosk,
    flow_engine_fixture,
    flow_sessions_fixture,
    world_fixture,
)
from tests.support.service import LiveService

EARLY = timedelta(minutes=60)
GRACE = timedelta(minutes=15)
TEN = T0 + timedelta(hours=1)  # 10:00, the booked time


async def booked(
    world: World,
    *,
    at: datetime = TEN,
    expert_id: int | None = None,
    by: Principal | None = None,
    office: int | None = None,
    service_type: str = "housing_allowance",
) -> Appointment:
    async with world.sessions() as session:
        return await book(
            session,
            by or world.admin,
            authority_id=world.kela,
            office_id=office or world.office,
            starts_at=at,
            language="fin",
            service_type=service_type,
            expert_id=expert_id,
            now=T0,
            grace=GRACE,
        )


async def checked_in(
    world: World, kiosk: Principal, code: str, at: datetime
) -> tuple[Ticket, Appointment]:
    async with world.sessions() as session:
        return await check_in(session, kiosk, code, at, EARLY, GRACE)


async def walk_in(world: World, kiosk: Principal, at: datetime) -> Ticket:
    async with world.sessions() as session:
        ticket = await take_walk_in_ticket(session, kiosk, "kela", "fin", at)
        await session.commit()
        return ticket


def test_codes_use_the_unambiguous_alphabet() -> None:
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set(CODE_ALPHABET) & set("0O1IL2Z5S8B")
    assert normalize_code(" ac-de fh ") == "ACDEFH"
    assert normalize_code("ACDEF0") is None and normalize_code("ACDE") is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_normalize_code_never_crashes(text: str) -> None:
    code = normalize_code(text)
    assert code is None or (len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET))


async def test_booking_rules(world: World) -> None:
    appointment = await booked(world, expert_id=world.expert.id, by=world.expert)
    assert appointment.status == "booked" and len(appointment.code) == CODE_LENGTH
    cases = [
        ({"by": world.vero_expert}, "forbidden", "other_authority"),
        ({"service_type": "tax_card"}, "invalid", "unknown_service_type"),
        ({"at": T0 - timedelta(hours=1)}, "invalid", "in_past"),
        ({"expert_id": world.vero_expert.id}, "invalid", "expert_not_of_authority"),
        ({"expert_id": world.interpreter.id}, "invalid", "expert_not_of_authority"),
        ({"office": 999}, "not_found", None),
    ]
    for kwargs, code, reason in cases:
        with pytest.raises(FlowError) as caught:
            await booked(world, **kwargs)  # type: ignore[arg-type]
        assert (caught.value.code, caught.value.reason) == (code, reason), kwargs
    async with world.sessions() as session:
        from sqlalchemy import func, select

        count = (await session.execute(select(func.count()).select_from(Appointment))).scalar()
    assert count == 1


async def test_check_in_refusals(world: World) -> None:
    appointment = await booked(world)
    cancelled = await booked(world)
    async with world.sessions() as session:
        await cancel_appointment(session, world.admin, cancelled.id, T0)
    cases = [
        (world.kiosk, "XXXXXX", TEN, "not_found", "code_unknown"),
        (world.kiosk, "garbage!", TEN, "not_found", "code_unknown"),
        (
            world.kiosk,
            appointment.code,
            TEN + GRACE + timedelta(seconds=1),
            "conflict",
            "code_expired",
        ),
        (
            world.kiosk,
            appointment.code,
            TEN - EARLY - timedelta(minutes=1),
            "conflict",
            "too_early",
        ),
        # Another office's code is answered like an unknown one (it must not reveal it exists).
        (world.far_kiosk, appointment.code, TEN, "not_found", "code_unknown"),
        (world.kiosk, cancelled.code, TEN, "conflict", "cancelled"),
    ]
    for kiosk, code, at, error, reason in cases:
        with pytest.raises(FlowError) as caught:
            await checked_in(world, kiosk, code, at)
        assert (caught.value.code, caught.value.reason) == (error, reason), code
    async with world.sessions() as session:
        assert await waiting_tickets(session) == []
    ticket, after = await checked_in(world, world.kiosk, appointment.code.lower(), TEN)
    assert after.status == "checked_in" and after.ticket_id == ticket.id
    with pytest.raises(FlowError) as caught:
        await checked_in(world, world.kiosk2, appointment.code, TEN)
    assert caught.value.reason == "already_checked_in"


async def test_appointment_is_served_at_its_time_and_jumps_no_one(world: World) -> None:
    appointment = await booked(world)
    before = await walk_in(world, world.kiosk, TEN - timedelta(minutes=10))  # 9:50
    ticket, _ = await checked_in(world, world.kiosk2, appointment.code, TEN - timedelta(minutes=5))
    after = await walk_in(world, world.kiosk3, TEN + timedelta(minutes=2))  # 10:02
    assert ticket.queue_key == TEN and ticket.kind == "appointment"
    async with world.sessions() as session:
        order = [t.id for t in await waiting_tickets(session, [world.kela])]
    assert order == [before.id, ticket.id, after.id]
    served = []
    for expert in (world.expert, world.expert2):
        async with world.sessions() as session:
            taken, _call = await take_next(session, expert, None, None, TEN)
            served.append(taken.id)
    assert served == [before.id, ticket.id]
    async with world.sessions() as session:
        row = await session.get(Appointment, appointment.id)
        assert row is not None and row.status == "served"


async def test_late_check_in_within_grace_keeps_the_booked_time(world: World) -> None:
    appointment = await booked(world)
    walk = await walk_in(world, world.kiosk, TEN + timedelta(minutes=2))
    ticket, _ = await checked_in(world, world.kiosk2, appointment.code, TEN + timedelta(minutes=10))
    async with world.sessions() as session:
        order = [t.id for t in await waiting_tickets(session, [world.kela])]
    assert order == [ticket.id, walk.id]


async def test_booked_expert_takes_his_customer(world: World) -> None:
    appointment = await booked(world, expert_id=world.expert.id)
    ticket, _ = await checked_in(world, world.kiosk, appointment.code, TEN - timedelta(minutes=5))
    walk = await walk_in(world, world.kiosk2, TEN + timedelta(minutes=1))
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await take_ticket(session, world.expert2, ticket.id, TEN)
    assert caught.value.reason == "other_expert"
    async with world.sessions() as session:
        other, _ = await take_next(session, world.expert2, None, None, TEN)
    assert other.id == walk.id
    async with world.sessions() as session:
        mine, _ = await take_next(session, world.expert, None, None, TEN)
    assert mine.id == ticket.id


async def test_no_show_is_released_after_the_grace_time(world: World) -> None:
    appointment = await booked(world)
    async with world.sessions() as session:
        assert await release_no_shows(session, TEN + GRACE - timedelta(seconds=1), GRACE) == []
        released = await release_no_shows(session, TEN + GRACE + timedelta(seconds=1), GRACE)
    assert [a.id for a in released] == [appointment.id]
    assert released[0].status == "no_show"
    with pytest.raises(FlowError) as caught:
        await checked_in(world, world.kiosk, appointment.code, TEN)
    assert caught.value.reason == "code_expired"
    async with world.sessions() as session:
        with pytest.raises(FlowError) as caught:
            await cancel_appointment(session, world.admin, appointment.id, TEN)
    assert caught.value.reason == "not_booked"


async def test_booking_and_check_in_over_socketio(live_service: LiveService) -> None:
    admin = await live_service.connect_user("admin")
    expert = await live_service.connect_user("kela")
    kiosk = await live_service.connect_kiosk()
    walk_in_kiosk = await extra_kiosk(live_service)
    synced = await call(admin, "flow:sync")
    kela = next(a for a in synced["authorities"] if a["code"] == "kela")
    starts = (utcnow() + timedelta(minutes=5)).isoformat()
    bad = await call(
        admin,
        "appointment:book",
        {
            "authority_id": kela["id"],
            "office_id": live_service.demo.office_id,
            "starts_at": "tomorrow",
            "language": "fin",
            "service_type": "general_advice",
        },
    )
    assert bad["error"]["code"] == "invalid"
    made = await call(
        admin,
        "appointment:book",
        {
            "authority_id": kela["id"],
            "office_id": live_service.demo.office_id,
            "starts_at": starts,
            "language": "fin",
            "service_type": "general_advice",
        },
    )
    assert made["ok"], made
    code = made["appointment"]["code"]
    listed = await call(expert, "appointment:list", {})
    assert [a["code"] for a in listed["appointments"]] == [code]

    wrong = await call(kiosk, "appointment:check_in", {"code": "AAAAAA"})
    assert (wrong["error"]["code"], wrong["error"]["reason"]) == ("not_found", "code_unknown")
    await asyncio.sleep(0.01)
    walked = await call(walk_in_kiosk, "ticket:take", {"authority": "kela", "language": "fin"})
    assert walked["ok"], walked
    # The walk-in came before the booked time, so he stays ahead of the appointment.
    checked = await call(kiosk, "appointment:check_in", {"code": code.lower()})
    assert checked["ok"], checked
    assert checked["ticket"]["kind"] == "appointment" and checked["ticket"]["position"] == 2
    used = await call(kiosk, "appointment:check_in", {"code": code})
    assert used["error"]["reason"] == "already_checked_in"
    took = await call(expert, "queue:take_next", {})
    assert took["ticket"]["id"] == walked["ticket"]["id"]
