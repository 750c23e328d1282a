"""Issue 17: a booking with an interpreting need reserves an interpreter for the slot.

No double reservation under concurrency (SQLite and a throwaway PostgreSQL database), the free
slots leave out times without a free interpreter, cancel releases and rebook moves the
reservation, the secretary is told `no_interpreter`, the interpreter lists his reservations,
and the booked call's ring alerts the reserved interpreter first (the others when he declines).
Bad input on the new event and the slot listing's new parameter. Migration 0014 vs the models.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from signaling.booking import booking
from signaling.booking.booking import BookingRequest, BookingRules
from signaling.db import utcnow
from signaling.flow.flow_common import FlowError
from signaling.flow.interpreter_reservations import cells
from signaling.store.flow_models import Appointment
from signaling.store.models import Office, User, UserLanguage
from signaling.store.reservation_models import InterpreterReservation, InterpreterReservationCell
from tests.signaling.flow_support import call
from tests.signaling.test_booking import _add_expert, _seeded, _set_availability
from tests.support.databases import database_url, fresh_postgres_url, postgres_url  # noqa: F401
from tests.support.service import LiveService

RULES = BookingRules(slot_minutes=30, min_lead_minutes=0, days_ahead=28)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_cells_round_outwards_so_overlaps_share_a_cell() -> None:
    ten = _utc("2026-12-15T10:00:00+02:00")
    assert cells(ten, ten + timedelta(minutes=30)) == [
        ten + timedelta(minutes=5 * i) for i in range(6)
    ]
    # 10:02-10:07 touches the cells 10:00 and 10:05.
    odd = cells(ten + timedelta(minutes=2), ten + timedelta(minutes=7))
    assert odd == [ten, ten + timedelta(minutes=5)]
    # Overlapping slots of different lengths share cells; back-to-back ones do not.
    a = set(cells(ten, ten + timedelta(minutes=30)))
    assert a & set(cells(ten + timedelta(minutes=15), ten + timedelta(minutes=60)))
    assert not a & set(cells(ten + timedelta(minutes=30), ten + timedelta(minutes=75)))


async def _add_interpreter(sessions: Any, username: str, languages: list[str]) -> int:
    async with sessions() as session:
        user = User(
            username=username,
            display_name=username,
            role="interpreter",
            password_hash="!",
            languages=[UserLanguage(code=c) for c in languages],
        )
        session.add(user)
        await session.commit()
        return user.id


def _request(office_id: int, slot: datetime, n: int, need: str | None) -> BookingRequest:
    return BookingRequest(
        office_id=office_id,
        authority="kela",
        service_type="general_advice",
        language="fin",
        starts_at=slot,
        contact_email=f"asiakas{n}@example.fi",
        interpreting=need,
    )


@pytest.mark.postgres
async def test_concurrent_bookings_never_share_an_interpreter(
    database_url: str,  # noqa: F811
) -> None:
    engine, sessions, demo = await _seeded(database_url)
    try:
        # Three experts but two interpreters of Arabic (demo "tulkki" and "tulkki2") at the one
        # slot of Tuesday 15 December 2026 10:00-10:30: two bookings with an Arabic need fit.
        for name in ("kela2", "kela3"):
            await _add_expert(sessions, name)
        for name in ("kela", "kela2", "kela3"):
            await _set_availability(sessions, name, ["tue 10:00-11:00"])
        second = await _add_interpreter(sessions, "tulkki2", ["ara"])
        now = _utc("2026-12-14T08:00:00+02:00")
        slot = _utc("2026-12-15T10:00:00+02:00")

        async def one(n: int) -> str:
            async with sessions() as session:
                try:
                    made = await booking.book_slot(
                        session, _request(demo.office_id, slot, n, "ara"), now, RULES
                    )
                except FlowError as exc:
                    return exc.reason or exc.message
                return f"booked:{made.appointment.id}"

        outcomes = await asyncio.gather(*(one(n) for n in range(12)))
        booked = [o for o in outcomes if o.startswith("booked:")]
        assert len(booked) == 2, outcomes
        assert set(outcomes) - set(booked) <= {"no_interpreter", "slot_taken"}, outcomes
        assert "no_interpreter" in outcomes
        async with sessions() as session:
            held = list(
                (
                    await session.execute(
                        select(InterpreterReservation).where(
                            InterpreterReservation.released_at.is_(None)
                        )
                    )
                ).scalars()
            )
            # A refused booking left no appointment behind (not even on SQLite, where
            # releasing a transaction's first savepoint commits).
            live_at_slot = await session.execute(
                select(func.count())
                .select_from(Appointment)
                .where(Appointment.starts_at == slot, Appointment.status == "booked")
            )
            assert live_at_slot.scalar_one() == 2
            first = demo.user_ids["tulkki"]
            assert sorted(r.interpreter_id for r in held) == sorted([first, second])
            assert (
                await session.execute(select(func.count()).select_from(InterpreterReservationCell))
            ).scalar_one() == 12
            office = await session.get(Office, demo.office_id)
            assert office is not None
            kela = await booking.find_authority(session, "kela")
            day = (now, now + timedelta(days=2))

            async def starts(need: str | None) -> list[str]:
                found = await booking.slots_for(
                    session, office, kela, "fin", *day, now, RULES, need
                )
                return [s.starts_at.astimezone(UTC).strftime("%H:%M") for s in found]

            # 10:00 is still free (a third expert) but not with an Arabic interpreter, nor with
            # a sign language one: tulkki, the only one of fse, is booked for Arabic then.
            assert await starts(None) == ["08:00", "08:30"]
            assert await starts("ara") == ["08:30"]
            assert await starts("fse") == ["08:30"]
            assert await starts("fss") == []  # nobody interprets it: never offered

        def reservation_of(appointment_id: int) -> Any:
            return select(InterpreterReservation).where(
                InterpreterReservation.appointment_id == appointment_id
            )

        ids = [int(b.split(":")[1]) for b in booked]
        async with sessions() as session:
            # Without interpreter: no reservation.
            plain = await booking.book_slot(
                session, _request(demo.office_id, slot, 99, None), now, RULES
            )
            assert (await session.execute(reservation_of(plain.appointment.id))).first() is None
            # Cancelling one releases its interpreter: an Arabic booking at 10:00 gets him.
            gone = await session.get(Appointment, ids[0])
            assert gone is not None
            freed = (await session.execute(reservation_of(gone.id))).scalar_one().interpreter_id
            await booking.cancel_booking(session, gone, now)
        async with sessions() as session:
            again = await booking.book_slot(
                session, _request(demo.office_id, slot, 100, "ara"), now, RULES
            )
            got = (await session.execute(reservation_of(again.appointment.id))).scalar_one()
            assert got.interpreter_id == freed
        # Rebooking the other one to 10:30 moves its reservation along (same interpreter).
        later = slot + timedelta(minutes=30)
        async with sessions() as session:
            kept = await session.get(Appointment, ids[1])
            assert kept is not None
            before = (await session.execute(reservation_of(kept.id))).scalar_one().interpreter_id
            await booking.rebook(session, kept, later, now, RULES)
        async with sessions() as session:
            moved = (await session.execute(reservation_of(ids[1]))).scalar_one()
            assert moved.interpreter_id == before and moved.starts_at == later
            # The other interpreter is free at 10:30 and takes the next Arabic booking ...
            third = await booking.book_slot(
                session, _request(demo.office_id, later, 101, "ara"), now, RULES
            )
            got = (await session.execute(reservation_of(third.appointment.id))).scalar_one()
            assert got.interpreter_id == freed != before
        async with sessions() as session:
            # ... and then nobody is left at 10:30 although an expert is: said so clearly.
            with pytest.raises(FlowError) as none_left:
                await booking.book_slot(
                    session, _request(demo.office_id, later, 102, "ara"), now, RULES
                )
            assert none_left.value.reason == "no_interpreter"
            assert "no interpreter of ara is free" in none_left.value.message
            count = await session.execute(select(func.count()).select_from(Appointment))
            assert count.scalar_one() == 5  # the refused bookings left nothing behind
            live_cells = await session.execute(
                select(func.count()).select_from(InterpreterReservationCell)
            )
            assert live_cells.scalar_one() == 3 * 6  # three live reservations of 30 minutes
    finally:
        await engine.dispose()


# --- over the wire: the secretary, the interpreter's list, the ring of the booked call ----------


async def _wait_for(items: list[Any], what: str, seconds: float = 5.0) -> Any:
    for _ in range(int(seconds / 0.05)):
        if items:
            return items[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


async def test_secretary_interpreter_list_and_the_reserved_interpreter_rings_first(
    live_service: LiveService,
) -> None:
    live = live_service
    sessions = live.services.sessions
    await _set_availability(sessions, "kela", ["mon-sun 00:00-24:00"])
    second = await _add_interpreter(sessions, "tulkki2", ["ara"])
    first = live.demo.user_ids["tulkki"]
    office = live.demo.office_id
    clerk = await live.connect_user("sihteeri")
    tulkki = await live.connect_user("tulkki")
    tulkki2 = await live.connect_user("tulkki2")
    changed: dict[int, list[Any]] = {first: [], second: []}
    alerts: dict[int, list[Any]] = {first: [], second: []}
    for ident, client in ((first, tulkki), (second, tulkki2)):
        client.on("interpreter:reservations_changed", lambda d, i=ident: changed[i].append(d))
        client.on("interpreter:alert", lambda d, i=ident: alerts[i].append(d))
        assert (await call(client, "flow:sync"))["ok"]

    base = {"office_id": office, "authority": "kela", "language": "fin", "days": 2}
    with_ara = await call(clerk, "booking:slots", {**base, "interpreting": "ara"})
    assert with_ara["ok"] and with_ara["slots"], with_ara
    # Nobody interprets Finland-Swedish Sign Language: no times, and booking says so.
    assert (await call(clerk, "booking:slots", {**base, "interpreting": "fss"}))["slots"] == []
    starts = with_ara["slots"][0]["starts_at"]
    staff = {
        "office_id": office,
        "authority": "kela",
        "service_type": "general_advice",
        "language": "fin",
        "starts_at": starts,
    }
    refused = await call(clerk, "booking:book", {**staff, "interpreting": "fss"})
    assert not refused["ok"] and refused["error"]["reason"] == "no_interpreter", refused
    assert "interpreter" in refused["error"]["message"]
    made = await call(clerk, "booking:book", {**staff, "interpreting": "ara"})
    assert made["ok"] and made["booking"]["interpreting"] == "ara", made

    # The least reserved interpreter of Arabic (both have none: the lower id) is reserved; he
    # is told his list changed and sees the booking in it.
    await _wait_for(changed[first], "interpreter:reservations_changed")
    listed = await call(tulkki, "interpreter:reservations", {})
    assert listed["ok"], listed
    [item] = listed["items"]
    assert item["starts_at"] == starts and item["language"] == "ara"
    assert item["authority"] == "kela" and item["office_name"]
    assert (await call(tulkki2, "interpreter:reservations", {}))["items"] == []
    bad_payloads: list[Any] = [{"days": 0}, {"days": 91}, {"days": "x"}, {"extra": 1}, []]
    for bad in bad_payloads:
        ack = await call(tulkki, "interpreter:reservations", bad)
        assert not ack["ok"] and ack["error"]["code"] == "invalid", (bad, ack)
    ack = await call(clerk, "interpreter:reservations", {})
    assert not ack["ok"] and ack["error"]["code"] == "forbidden", ack
    async with aiohttp.ClientSession() as http:
        url = (
            f"{live.base_url}/api/public/booking/slots?office={office}&authority=kela&language=fin"
        )
        for code, reason in (("AR", None), ("ara1", None), ("xyz", "interpreting_not_offered")):
            async with http.get(f"{url}&interpreting={code}") as response:
                body = await response.json()
                assert response.status == 400 and not body["ok"], (code, body)
                if reason:
                    assert body["error"]["reason"] == reason, body
        async with http.get(f"{url}&interpreting=ara") as response:
            listed_slots = (await response.json())["slots"]
            assert listed_slots and starts not in [s["starts_at"] for s in listed_slots]

    # Another Arabic booking (in the domain, on the next free time): tulkki2 is now the least
    # reserved and is reserved. Then its time is brought to now, so the kiosk can check in
    # (the next free time may be days away: public holidays are closed).
    now = utcnow()
    async with sessions() as session:
        office_row = await session.get(Office, office)
        kela = await booking.find_authority(session, "kela")
        assert office_row is not None
        soon = (
            await booking.slots_for(
                session, office_row, kela, "fin", now, now + timedelta(days=7), now, RULES, "ara"
            )
        )[0]
        near = await booking.book_slot(
            session, _request(office, soon.starts_at, 1, "ara"), now, RULES
        )
        code = near.appointment.code
        near.appointment.starts_at = now + timedelta(minutes=10)
        near.appointment.ends_at = now + timedelta(minutes=40)
        await session.commit()
    assert len((await call(tulkki2, "interpreter:reservations", {}))["items"]) == 1

    kiosk = await live.connect_kiosk()
    expert = await live.connect_user("kela")
    assert (await call(expert, "flow:sync"))["ok"]
    checked = await call(kiosk, "appointment:check_in", {"code": code})
    assert checked["ok"], checked
    assert checked["ticket"]["interpreting"] == "ara"
    taken = await call(expert, "queue:take", {"ticket_id": checked["ticket"]["id"]})
    assert taken["ok"], taken
    [ring] = taken["call"]["interpreter_requests"]
    # The reserved interpreter alone is alerted first ...
    alert = await _wait_for(alerts[second], "the reserved interpreter's alert")
    assert alert["request"]["id"] == ring["id"]
    await asyncio.sleep(0.3)
    assert alerts[first] == []
    # ... and when he declines, the others are alerted at once.
    assert (await call(tulkki2, "interpreter:decline", {"request_id": ring["id"]}))["ok"]
    other = await _wait_for(alerts[first], "the other interpreter's alert")
    assert other["request"]["id"] == ring["id"]
    accepted = await call(tulkki, "interpreter:accept", {"request_id": ring["id"]})
    assert accepted["ok"], accepted

    # The expert cancels the first booking with the older `appointment:cancel`: its interpreter
    # is released at once (not at the next reservation over that time) and told so.
    changed[first].clear()
    cancelled = await call(
        expert, "appointment:cancel", {"appointment_id": made["appointment"]["id"]}
    )
    assert cancelled["ok"], cancelled
    await _wait_for(changed[first], "interpreter:reservations_changed after the cancel")
    async with sessions() as session:
        await _assert_released(session, made["appointment"]["id"])


async def _assert_released(session: Any, appointment_id: int) -> int:
    """The appointment's reservation is released and holds no cell; returns its interpreter."""
    reservation = (
        await session.execute(
            select(InterpreterReservation).where(
                InterpreterReservation.appointment_id == appointment_id
            )
        )
    ).scalar_one()
    assert reservation.released_at is not None, appointment_id
    held = await session.execute(
        select(func.count())
        .select_from(InterpreterReservationCell)
        .where(InterpreterReservationCell.reservation_id == reservation.id)
    )
    assert held.scalar_one() == 0, appointment_id
    return int(reservation.interpreter_id)


@pytest.mark.postgres
async def test_every_way_of_cancelling_releases_the_interpreter_at_once(
    database_url: str,  # noqa: F811
) -> None:
    """Staff's cancel, the customer's cancel, a no-show and a closed office: each releases the
    interpreter reservation in its own transaction (appointments.leave_booked; office_closure)."""
    from signaling.directory.principals import Principal, Role
    from signaling.flow.appointments import cancel_appointment, release_no_shows
    from signaling.flow.office_closure import close_office_records

    engine, sessions, demo = await _seeded(database_url)
    try:
        await _set_availability(sessions, "kela", ["tue 10:00-12:00"])
        now = _utc("2026-12-14T08:00:00+02:00")
        ten = _utc("2026-12-15T10:00:00+02:00")
        ids = []
        async with sessions() as session:
            for n in range(4):
                slot = ten + timedelta(minutes=30 * n)
                made = await booking.book_slot(
                    session, _request(demo.office_id, slot, n, "ara"), now, RULES
                )
                ids.append(made.appointment.id)
        tulkki = demo.user_ids["tulkki"]
        admin = Principal(kind="user", id=demo.user_ids["admin"], role=Role.ADMIN, name="")
        async with sessions() as session:
            await cancel_appointment(session, admin, ids[0], now)  # appointment:cancel
            assert await _assert_released(session, ids[0]) == tulkki
            customer = await session.get(Appointment, ids[1])
            assert customer is not None
            await booking.cancel_booking(session, customer, now)  # the link or the code
            assert await _assert_released(session, ids[1]) == tulkki
            # 10:00 is free for an Arabic booking again, with the same interpreter.
            again = await booking.book_slot(
                session, _request(demo.office_id, ten, 9, "ara"), now, RULES
            )
            ids.append(again.appointment.id)
            # No-show: the 11:00 customer (and the new 10:00 one) never came.
            gone = await release_no_shows(session, ten + timedelta(minutes=75), timedelta(0))
            assert {a.id for a in gone} == {ids[2], ids[4]}
            for appointment_id in (ids[2], ids[4]):
                await _assert_released(session, appointment_id)
            closure = await close_office_records(session, demo.office_id, now)
            await session.commit()
            assert closure.cancelled_appointments == [ids[3]]
            assert closure.released_interpreters == {tulkki}
            await _assert_released(session, ids[3])
    finally:
        await engine.dispose()
