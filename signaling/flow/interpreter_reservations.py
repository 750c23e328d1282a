"""Interpreters reserved for booked appointments (issue 17).

A booking with an interpreting need (`appointments.interpreting`: fse, fss, ara, ...) reserves
one interpreter who covers the language for the booked slot; the interpreter sees his
reservations (`interpreter:reservations`), and when the booked call starts the ring alerts him
first (signaling/flow/interpreters.py `open_needed_ring`), everyone else only when he declines or
does not answer within `RESERVED_FIRST_SECONDS`. That deadline is the ring's `widen_at` in the
database, widened by the opening process's timer or, if that process is gone, by the sweep every
process runs (`widen_due`), claimed with a conditional UPDATE so the ring widens once
(migration 0015_shared_flow_state).

**No double reservation, in the database.** A reservation covers the 5-minute cells of its
slot (`interpreter_reservation_cells`, primary key interpreter + cell start, the slot rounded
outwards to the cell grid). Two bookings that want one interpreter at overlapping times insert
a common cell: the database lets one win and the other tries the next free interpreter, and
when none is left gets `conflict` reason `no_interpreter`. The same with one process on SQLite
and with many on PostgreSQL. Interpreters have no weekly availability of their own: an enabled
interpreter of the language is reservable at any time he has no other reservation.

Cancelling releases the reservation at once (its cells are deleted, the row keeps
`released_at`), whichever way: `appointments.leave_booked`, the one way out of BOOKED, releases
it for a cancel (staff's `appointment:cancel`, the customer's link or code) and a no-show, and
closing an office releases those of its appointments. Rebooking moves it, keeping the
interpreter when he is free at the new time. Cells of an appointment no longer live that are
still held (written before this rule) are purged the next time someone reserves over them.
Tables: signaling/store/reservation_models.py (migration 0014_interpreter_reservations).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import utcnow
from signaling.directory.principals import Role
from signaling.flow.flow_common import conflict, iso
from signaling.flow.free_slots import Slot
from signaling.store.flow_models import Appointment, AppointmentStatus
from signaling.store.models import Authority, Office, User, UserLanguage, UserRole
from signaling.store.reservation_models import InterpreterReservation, InterpreterReservationCell
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

log = logging.getLogger(__name__)

CELL = timedelta(minutes=5)
LIVE = (AppointmentStatus.BOOKED.value, AppointmentStatus.CHECKED_IN.value)
# How long the reserved interpreter alone is alerted when the booked call starts.
RESERVED_FIRST_SECONDS = 30.0
# How often every process looks for rings whose head start is over (a backstop for the timer of
# the process that opened the ring: how late a ring widens when that process is gone).
WIDEN_SWEEP_SECONDS = 1.0
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


# --- cells --------------------------------------------------------------------------------------


def cells(start: datetime, end: datetime) -> list[datetime]:
    """The cell starts covering [start, end), rounded outwards to the 5-minute grid."""
    first = EPOCH + ((start.astimezone(UTC) - EPOCH) // CELL) * CELL
    result = []
    at = first
    while at < end:
        result.append(at)
        at += CELL
    return result


async def interpreters_of(session: AsyncSession, language: str) -> list[int]:
    rows = await session.execute(
        select(User.id)
        .join(UserLanguage, UserLanguage.user_id == User.id)
        .where(
            User.role == UserRole.INTERPRETER.value,
            User.enabled.is_(True),
            UserLanguage.code == language,
        )
        .order_by(User.id)
    )
    return list(dict.fromkeys(rows.scalars()))


async def _busy(
    session: AsyncSession,
    ids: Sequence[int],
    start: datetime,
    end: datetime,
    except_appointment: int | None = None,
) -> dict[int, list[tuple[datetime, datetime]]]:
    """Each interpreter's live reservations overlapping [start, end) (but the one of
    `except_appointment`: a booking being moved)."""
    if not ids:
        return {}
    rows = await session.execute(
        select(InterpreterReservation)
        .join(Appointment, Appointment.id == InterpreterReservation.appointment_id)
        .where(
            InterpreterReservation.appointment_id != (except_appointment or 0),
            InterpreterReservation.interpreter_id.in_(list(ids)),
            InterpreterReservation.released_at.is_(None),
            Appointment.status.in_(LIVE),
            InterpreterReservation.starts_at < end + CELL,
            InterpreterReservation.ends_at > start - CELL,
        )
    )
    busy: dict[int, list[tuple[datetime, datetime]]] = {}
    for r in rows.scalars():
        busy.setdefault(r.interpreter_id, []).append((r.starts_at, r.ends_at))
    return busy


def _clashes(taken: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    wanted = set(cells(start, end))
    return any(wanted.intersection(cells(a, b)) for a, b in taken)


async def free_interpreters(
    session: AsyncSession,
    language: str,
    start: datetime,
    end: datetime,
    except_appointment: int | None = None,
) -> list[int]:
    """Interpreters of the language with no live reservation over [start, end), the least
    reserved first (that day), then by id."""
    ids = await interpreters_of(session, language)
    busy = await _busy(
        session, ids, start - timedelta(hours=12), end + timedelta(hours=12), except_appointment
    )
    free = [i for i in ids if not _clashes(busy.get(i, ()), start, end)]
    return sorted(free, key=lambda i: (len(busy.get(i, ())), i))


async def slots_with_interpreter(
    session: AsyncSession, slots: list[Slot], language: str
) -> list[Slot]:
    """The slots at which some interpreter of the language is free (for the slot listing)."""
    if not slots:
        return []
    ids = await interpreters_of(session, language)
    busy = await _busy(session, ids, slots[0].starts_at, slots[-1].ends_at)
    return [
        slot
        for slot in slots
        if any(not _clashes(busy.get(i, ()), slot.starts_at, slot.ends_at) for i in ids)
    ]


# --- reserving (the caller commits; a FlowError means: roll back) ------------------------------


async def _purge_stale(session: AsyncSession, start: datetime, end: datetime) -> None:
    """Release reservations over [start, end) whose appointment is no longer live."""
    stale = list(
        (
            await session.execute(
                select(InterpreterReservation.id)
                .join(Appointment, Appointment.id == InterpreterReservation.appointment_id)
                .where(
                    InterpreterReservation.released_at.is_(None),
                    Appointment.status.not_in(LIVE),
                    InterpreterReservation.starts_at < end + CELL,
                    InterpreterReservation.ends_at > start - CELL,
                )
            )
        ).scalars()
    )
    for reservation_id in stale:
        await _drop_cells(session, reservation_id, utcnow())


async def _drop_cells(session: AsyncSession, reservation_id: int, now: datetime) -> None:
    await session.execute(
        delete(InterpreterReservationCell).where(
            InterpreterReservationCell.reservation_id == reservation_id
        )
    )
    await session.execute(
        update(InterpreterReservation)
        .where(InterpreterReservation.id == reservation_id)
        .values(released_at=now)
        .execution_options(synchronize_session=False)
    )


async def reservation_of(
    session: AsyncSession, appointment_id: int
) -> InterpreterReservation | None:
    return (
        (
            await session.execute(
                select(InterpreterReservation).where(
                    InterpreterReservation.appointment_id == appointment_id
                )
            )
        )
        .scalars()
        .first()
    )


async def reserve(
    session: AsyncSession,
    appointment: Appointment,
    language: str,
    now: datetime,
    prefer: int | None = None,
) -> InterpreterReservation:
    """Reserve a free interpreter of `language` for the appointment's slot (replacing its
    earlier reservation); `conflict` `no_interpreter` when nobody is free."""
    start = appointment.starts_at
    end = appointment.ends_at or start + timedelta(minutes=30)
    await _purge_stale(session, start, end)
    candidates = await free_interpreters(session, language, start, end, appointment.id)
    if prefer is not None and prefer in candidates:
        candidates = [prefer, *[c for c in candidates if c != prefer]]
    existing = await reservation_of(session, appointment.id)
    for interpreter_id in candidates:
        try:
            async with session.begin_nested():
                if existing is None:
                    existing = InterpreterReservation(
                        appointment_id=appointment.id,
                        interpreter_id=interpreter_id,
                        language=language,
                        starts_at=start,
                        ends_at=end,
                        created_at=now,
                    )
                    session.add(existing)
                    await session.flush()
                else:
                    await session.execute(
                        delete(InterpreterReservationCell).where(
                            InterpreterReservationCell.reservation_id == existing.id
                        )
                    )
                    existing.interpreter_id = interpreter_id
                    existing.language = language
                    existing.starts_at = start
                    existing.ends_at = end
                    existing.released_at = None
                    await session.flush()
                session.add_all(
                    InterpreterReservationCell(
                        interpreter_id=interpreter_id, cell_at=at, reservation_id=existing.id
                    )
                    for at in cells(start, end)
                )
                await session.flush()
            return existing
        except IntegrityError:
            # Another booking took this interpreter at this moment: try the next one.
            existing = await reservation_of(session, appointment.id)
            continue
    raise conflict(
        f"no interpreter of {language} is free at this time; choose another time",
        "no_interpreter",
    )


async def release(session: AsyncSession, appointment_id: int, now: datetime) -> int | None:
    """Release the appointment's reservation; returns the interpreter's id (or None)."""
    found = await reservation_of(session, appointment_id)
    if found is None or found.released_at is not None:
        return None
    await _drop_cells(session, found.id, now)
    return found.interpreter_id


async def reserved_interpreter(session: AsyncSession, appointment_id: int | None) -> int | None:
    """The interpreter reserved for a live appointment, if any (for the ring)."""
    if appointment_id is None:
        return None
    found = await reservation_of(session, appointment_id)
    if found is None or found.released_at is not None:
        return None
    return found.interpreter_id


async def reservations_view(
    session: AsyncSession, interpreter_id: int, now: datetime, days: int
) -> list[dict[str, Any]]:
    """His live reservations ending after now, within `days`, earliest first."""
    rows = await session.execute(
        select(InterpreterReservation, Appointment, Authority, Office)
        .join(Appointment, Appointment.id == InterpreterReservation.appointment_id)
        .join(Authority, Authority.id == Appointment.authority_id)
        .join(Office, Office.id == Appointment.office_id)
        .where(
            InterpreterReservation.interpreter_id == interpreter_id,
            InterpreterReservation.released_at.is_(None),
            Appointment.status.in_(LIVE),
            InterpreterReservation.ends_at > now,
            InterpreterReservation.starts_at < now + timedelta(days=days),
        )
        .order_by(InterpreterReservation.starts_at, InterpreterReservation.id)
    )
    return [
        {
            "id": r.id,
            "appointment_id": a.id,
            "language": r.language,
            "starts_at": iso(r.starts_at),
            "ends_at": iso(r.ends_at),
            "authority": authority.code,
            "authority_name": {
                "fi": authority.name_fi,
                "sv": authority.name_sv,
                "en": authority.name_en,
            },
            "office_name": office.name,
            "remote": a.remote,
            "status": a.status,
        }
        for r, a, authority, office in rows
    ]


# --- pushes and the event ----------------------------------------------------------------------


async def push_changed(services: Services, interpreter_ids: Iterable[int | None]) -> None:
    """Tell interpreters their reservations changed (`interpreter:reservations_changed`; the
    console asks `interpreter:reservations` again)."""
    targets = sorted({rooms.user(i) for i in interpreter_ids if i is not None})
    if targets:
        await services.sio.emit("interpreter:reservations_changed", {}, room=targets)


class ReservationsPayload(EventModel):
    days: int = Field(default=28, ge=1, le=90)


@on_event("interpreter:reservations", ReservationsPayload, roles={Role.INTERPRETER})
async def interpreter_reservations(ctx: EventContext, data: ReservationsPayload) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        items = await reservations_view(session, ctx.principal.id, utcnow(), data.days)
    return {"items": items}


# --- the ring of a booked call: the reserved interpreter first ---------------------------------
#
# The deadline is the ring's `widen_at` (signaling/store/flow_models.py `InterpreterRequest`), set
# by
# signaling/flow/interpreters.py `open_needed_ring`. The process that opened the ring widens it on
# time with a timer of its own; every process sweeps for due rings every
# `WIDEN_SWEEP_SECONDS`, so a ring still widens when that process died or lost its timer.
# Whoever widens first claims the ring with a conditional UPDATE (`widen_at` due → NULL): the
# others' UPDATE matches nothing, and the ring widens once.


class WidenTimers:
    """This process's timers of rings it opened (the database holds the deadlines)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()


def _timers(services: Services) -> WidenTimers:
    found = services.extras.get("ring_widen_timers")
    if not isinstance(found, WidenTimers):
        found = WidenTimers()
        services.extras["ring_widen_timers"] = found
    return found


def widen_later(services: Services, request_id: int, delay: float | None = None) -> None:
    """Widen the ring at its deadline (`RESERVED_FIRST_SECONDS`, or `delay`) if the reserved
    interpreter has not taken it and no other process widened it meanwhile."""

    async def later() -> None:
        await asyncio.sleep(RESERVED_FIRST_SECONDS if delay is None else delay)
        await widen_if_due(services, request_id)

    timers = _timers(services)
    task = asyncio.get_running_loop().create_task(later())
    timers.tasks.add(task)
    task.add_done_callback(timers.tasks.discard)


async def claim_widening(services: Services, request_id: int, now: datetime) -> bool:
    """Take the ring's due deadline (committed); True for exactly one caller."""
    from signaling.store.flow_models import InterpreterRequest, RequestStatus

    async with services.sessions() as session:
        result = await session.execute(
            update(InterpreterRequest)
            .where(
                InterpreterRequest.id == request_id,
                InterpreterRequest.status == RequestStatus.RINGING.value,
                InterpreterRequest.widen_at.is_not(None),
                InterpreterRequest.widen_at <= now,
            )
            .values(widen_at=None)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def widen_if_due(services: Services, request_id: int, now: datetime | None = None) -> bool:
    """Widen one ring whose deadline has passed, unless someone else claimed it first."""
    if not await claim_widening(services, request_id, now or utcnow()):
        return False
    await widen_ring(services, request_id)
    return True


async def widen_due(services: Services, now: datetime | None = None) -> list[int]:
    """One sweep: widen every ringing request whose deadline has passed (any process may run
    it at any time). Returns the requests this call widened."""
    from signaling.store.flow_models import InterpreterRequest, RequestStatus

    now = now or utcnow()
    async with services.sessions() as session:
        due = list(
            (
                await session.execute(
                    select(InterpreterRequest.id)
                    .where(
                        InterpreterRequest.widen_at <= now,
                        InterpreterRequest.status == RequestStatus.RINGING.value,
                    )
                    .order_by(InterpreterRequest.widen_at, InterpreterRequest.id)
                )
            ).scalars()
        )
    return [request_id for request_id in due if await widen_if_due(services, request_id, now)]


async def widen_ring(services: Services, request_id: int) -> list[int]:
    """Alert the other available interpreters of a still ringing request (committed); returns
    who was added. Widening clears the ring's deadline."""
    from signaling.flow.flow_common import dump_ids, load_ids, request_view
    from signaling.flow.interpreters import (
        _online_users,
        available_interpreters,
        push_request_update,
    )
    from signaling.store.flow_models import InterpreterRequest, RequestStatus

    async with services.sessions() as session:
        request = await session.get(InterpreterRequest, request_id)
        if request is None or request.status != RequestStatus.RINGING:
            return []
        before = request.alerted
        alerted = load_ids(before)
        declined = set(load_ids(request.declined))
        found = await available_interpreters(session, request.language, _online_users(services))
        added = [u.id for u in found if u.id not in alerted and u.id not in declined]
        if not added:
            return []
        # On the list as read: of two processes widening at once (a decline here, the sweep
        # there), one adds and alerts; the other's UPDATE matches nothing.
        result = await session.execute(
            update(InterpreterRequest)
            .where(
                InterpreterRequest.id == request_id,
                InterpreterRequest.status == RequestStatus.RINGING.value,
                InterpreterRequest.alerted == before,
            )
            .values(alerted=dump_ids([*alerted, *added]), widen_at=None)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            await session.rollback()
            return []
        await session.commit()
        await session.refresh(request)
        view = await request_view(session, request)
        still = len([u for u in [*alerted, *added] if u not in declined])
    await services.sio.emit(
        "interpreter:alert", {"request": view}, room=[rooms.user(u) for u in added]
    )
    await push_request_update(services, request_id, alerted=still)
    return added


async def run_widen_sweep(services: Services, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await widen_due(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("interpreter ring widening sweep failed")


def setup(app: Any, services: Services) -> None:
    async def sweeper(_app: Any) -> AsyncIterator[None]:
        # Runs after the migration (signaling.server.app._lifecycle comes first).
        task = asyncio.ensure_future(run_widen_sweep(services, WIDEN_SWEEP_SECONDS))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # This process's timers go with it; the sweep of the others takes over their rings.
        _timers(services).cancel()

    app.cleanup_ctx.append(sweeper)


__all__ = [
    "cells",
    "free_interpreters",
    "release",
    "reservations_view",
    "reserve",
    "reserved_interpreter",
    "slots_with_interpreter",
    "widen_due",
    "widen_later",
    "widen_ring",
]
