"""Appointments: booked slots, short booking codes, check-in at the kiosk, no-show release.

A checked-in customer gets a ticket in the authority's ordinary line whose `queue_key` is the
booked time (a walk-in's is his arrival): he is served at his time before walk-ins who came
later, and never ahead of anyone who arrived before his booked time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from signaling.db import DbId, utcnow
from signaling.directory.principals import Principal, Role
from signaling.flow.flow_common import (
    LANGUAGE_PATTERN,
    conflict,
    forbidden,
    invalid,
    iso,
    not_found,
    office_name,
    parse_time,
    service_types_for,
    user_name,
)
from signaling.flow.queues import (
    check_endpoint_free,
    default_seconds,
    publish_queue_change,
    ticket_state,
)
from signaling.store.flow_models import (
    Appointment,
    AppointmentStatus,
    Ticket,
    TicketKind,
    TicketStatus,
)
from signaling.store.models import Authority, Office, User, UserRole
from signaling.transport import rooms
from signaling.transport.protocol import EventContext, EventModel, on_event
from signaling.transport.services import Services

log = logging.getLogger(__name__)

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B, 6/G: nothing a customer reading a slip can confuse.
CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"
CODE_LENGTH = 6
SWEEP_SECONDS = 30.0


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str | None:
    """Upper-case, without spaces and dashes; None if it cannot be a booking code."""
    code = "".join(ch for ch in text.upper() if ch not in " -\t")
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


# --- domain -----------------------------------------------------------------------------------

# The time each way out of BOOKED stamps.
_LEFT_AT = {
    AppointmentStatus.CHECKED_IN: "checked_in_at",
    AppointmentStatus.CANCELLED: "released_at",
    AppointmentStatus.NO_SHOW: "released_at",
}


async def leave_booked(
    session: AsyncSession, appointment_id: int, status: AppointmentStatus, now: datetime
) -> bool:
    """Move the appointment from BOOKED to `status`, stamping the time, in one conditional
    UPDATE: of two changes at the same moment only one wins. False when it was no longer
    booked. The caller commits, or rolls back.

    Cancelled or a no-show, the appointment's interpreter reservation is released in the same
    transaction, whichever path cancels (staff's `appointment:cancel`, the customer's link or
    code): his time is free for the next booking at once, and his list says so."""
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == appointment_id, Appointment.status == AppointmentStatus.BOOKED)
        .values(status=status.value, **{_LEFT_AT[status]: now})
        .execution_options(synchronize_session=False)
    )
    left = int(getattr(result, "rowcount", 0) or 0) == 1
    if left and status != AppointmentStatus.CHECKED_IN:
        from signaling.flow.interpreter_reservations import release

        await release(session, appointment_id, now)
    return left


def is_slot_clash(exc: IntegrityError) -> bool:
    """Whether the insert broke "one live appointment per expert per start time"
    (uq_appointments_expert_live_slot, 0010_bookings): PostgreSQL names the index, SQLite
    the columns."""
    text = str(exc.orig)
    return "uq_appointments_expert_live_slot" in text or "expert_id, appointments.starts_at" in text


async def book(
    session: AsyncSession,
    principal: Principal,
    *,
    authority_id: int,
    office_id: int,
    starts_at: datetime,
    language: str,
    service_type: str,
    expert_id: int | None,
    now: datetime,
    grace: timedelta,
) -> Appointment:
    """Book a slot (committed here); the code is unique, retried on the rare collision."""
    authority = await session.get(Authority, authority_id)
    if authority is None or not authority.enabled:
        raise not_found(f"no authority {authority_id}")
    if principal.role == Role.EXPERT and authority_id not in principal.authority_ids:
        raise forbidden("you may book only for your own authority", "other_authority")
    # The service secretary books for her own office (issue 17).
    if principal.role == Role.CLERK and office_id != principal.office_id:
        raise forbidden("you may book only for your own office", "other_office")
    office = await session.get(Office, office_id)
    if office is None or not office.enabled:
        raise not_found(f"no office {office_id}")
    if service_type not in {t.code for t in service_types_for(authority.code)}:
        raise invalid(
            f"{service_type!r} is not a service type of {authority.code}", "unknown_service_type"
        )
    if starts_at + grace < now:
        raise invalid("the time is in the past", "in_past")
    if expert_id is not None:
        expert = await session.get(User, expert_id)
        if expert is None:
            raise not_found(f"no user {expert_id}")
        await session.refresh(expert, ["authorities"])
        if expert.role != UserRole.EXPERT or authority_id not in {a.id for a in expert.authorities}:
            raise invalid(
                f"user {expert_id} is not an expert of {authority.code}", "expert_not_of_authority"
            )
    for _attempt in range(5):
        appointment = Appointment(
            code=new_code(),
            authority_id=authority_id,
            office_id=office_id,
            starts_at=starts_at,
            language=language,
            service_type=service_type,
            expert_id=expert_id,
            status=AppointmentStatus.BOOKED.value,
            booked_by=principal.id if principal.kind == "user" else None,
            booked_via="secretary" if principal.role == Role.CLERK else str(principal.role),
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(appointment)
            await session.commit()
            return appointment
        except IntegrityError as exc:
            if is_slot_clash(exc):
                raise conflict("the expert already has an appointment then", "slot_taken") from None
            continue
    raise conflict("could not find a free booking code; try again")


async def cancel_appointment(
    session: AsyncSession, principal: Principal, appointment_id: int, now: datetime
) -> Appointment:
    appointment = await session.get(Appointment, appointment_id)
    if appointment is None:
        raise not_found(f"no appointment {appointment_id}")
    if principal.role == Role.EXPERT and appointment.authority_id not in principal.authority_ids:
        raise forbidden("this appointment is with another authority", "other_authority")
    if not await leave_booked(session, appointment_id, AppointmentStatus.CANCELLED, now):
        await session.rollback()
        raise conflict("the appointment is not open for cancelling", "not_booked")
    await session.commit()
    await session.refresh(appointment)
    return appointment


async def check_in(
    session: AsyncSession,
    kiosk: Principal,
    code_text: str,
    now: datetime,
    early: timedelta,
    grace: timedelta,
) -> tuple[Ticket, Appointment]:
    """Put the booked customer in line with queue_key = booked time (committed here)."""
    code = normalize_code(code_text)
    appointment = None
    if code is not None:
        # Only this kiosk's office is searched: another office's code gets the very answer of
        # an unknown one, by the same path, so a kiosk cannot learn which codes exist.
        appointment = (
            (
                await session.execute(
                    select(Appointment).where(
                        Appointment.code == code, Appointment.office_id == kiosk.office_id
                    )
                )
            )
            .scalars()
            .first()
        )
    if appointment is None:
        raise not_found("no appointment with this booking code", "code_unknown")
    status = appointment.status
    if status == AppointmentStatus.CANCELLED:
        raise conflict("the appointment was cancelled", "cancelled")
    if status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.SERVED):
        raise conflict("this booking code was already used", "already_checked_in")
    if status == AppointmentStatus.NO_SHOW or now > appointment.starts_at + grace:
        raise conflict("the booking code has expired", "code_expired")
    if now < appointment.starts_at - early:
        raise conflict("it is too early to check in", "too_early")
    # The office may have stopped offering the authority since the booking (issue 17).
    from signaling.flow.office_offer import check_appointment_offered

    await check_appointment_offered(session, appointment.office_id, appointment.authority_id)
    await check_endpoint_free(session, kiosk.id)
    if not await leave_booked(session, appointment.id, AppointmentStatus.CHECKED_IN, now):
        await session.rollback()
        raise conflict("this booking code was already used", "already_checked_in")
    ticket = Ticket(
        authority_id=appointment.authority_id,
        office_id=appointment.office_id,
        endpoint_id=kiosk.id,
        language=appointment.language,
        kind=TicketKind.APPOINTMENT.value,
        appointment_id=appointment.id,
        expert_id=appointment.expert_id,
        status=TicketStatus.WAITING.value,
        queued_at=now,
        queue_key=appointment.starts_at,
        created_at=now,
        # The booked interpreting need (bookings' column, when present): the ring starts
        # when the expert takes the ticket (signaling/flow/interpreters.py).
        interpreting=getattr(appointment, "interpreting", None),
    )
    session.add(ticket)
    await session.flush()
    await session.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id)
        .values(ticket_id=ticket.id)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    await session.refresh(appointment)
    return ticket, appointment


async def release_no_shows(
    session: AsyncSession, now: datetime, grace: timedelta
) -> list[Appointment]:
    """Release booked slots whose customer did not check in within the grace time."""
    due = list(
        (
            await session.execute(
                select(Appointment).where(
                    Appointment.status == AppointmentStatus.BOOKED,
                    Appointment.starts_at < now - grace,
                )
            )
        ).scalars()
    )
    released = []
    for appointment in due:
        if await leave_booked(session, appointment.id, AppointmentStatus.NO_SHOW, now):
            released.append(appointment)
    await session.commit()
    for appointment in released:
        await session.refresh(appointment)
    return released


async def list_appointments(
    session: AsyncSession,
    principal: Principal,
    authority_id: int | None,
    office_id: int | None,
    start: datetime,
    end: datetime,
) -> list[Appointment]:
    query = select(Appointment).where(Appointment.starts_at >= start, Appointment.starts_at < end)
    if principal.role == Role.EXPERT:
        if authority_id is not None and authority_id not in principal.authority_ids:
            raise forbidden("that is another authority", "other_authority")
        query = query.where(Appointment.authority_id.in_(sorted(principal.authority_ids)))
    if principal.role == Role.CLERK:
        query = query.where(Appointment.office_id == principal.office_id)
    if authority_id is not None:
        query = query.where(Appointment.authority_id == authority_id)
    if office_id is not None:
        query = query.where(Appointment.office_id == office_id)
    rows = await session.execute(query.order_by(Appointment.starts_at, Appointment.id))
    return list(rows.scalars())


async def appointment_view(session: AsyncSession, appointment: Appointment) -> dict[str, Any]:
    authority = await session.get(Authority, appointment.authority_id)
    return {
        "id": appointment.id,
        "code": appointment.code,
        "authority_id": appointment.authority_id,
        "authority_code": authority.code if authority else "",
        "office_id": appointment.office_id,
        "office_name": await office_name(session, appointment.office_id),
        "starts_at": iso(appointment.starts_at),
        "language": appointment.language,
        "service_type": appointment.service_type,
        "expert_id": appointment.expert_id,
        "expert_name": await user_name(session, appointment.expert_id) or None,
        "status": appointment.status,
        "ticket_id": appointment.ticket_id,
        "booked_by": appointment.booked_by,
        "created_at": iso(appointment.created_at),
        "checked_in_at": iso(appointment.checked_in_at),
    }


# --- pushes and settings ----------------------------------------------------------------------


def windows(services: Services) -> tuple[timedelta, timedelta]:
    settings = services.settings
    return (
        timedelta(minutes=settings.appointment_checkin_early_minutes),
        timedelta(minutes=settings.appointment_no_show_grace_minutes),
    )


async def push_appointment(services: Services, view: dict[str, Any]) -> None:
    await services.sio.emit(
        "appointment:update",
        {"appointment": view},
        room=[rooms.authority(view["authority_id"]), rooms.role(Role.ADMIN)],
    )


async def sweep_no_shows(services: Services) -> int:
    _early, grace = windows(services)
    async with services.sessions() as session:
        released = await release_no_shows(session, utcnow(), grace)
        views = [await appointment_view(session, a) for a in released]
    for view in views:
        await push_appointment(services, view)
    return len(views)


# --- events -----------------------------------------------------------------------------------


def _time(value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time with offset: {value!r}") from exc


class BookPayload(EventModel):
    authority_id: DbId
    office_id: DbId
    starts_at: str = Field(min_length=10, max_length=40)
    language: str = Field(pattern=LANGUAGE_PATTERN)
    service_type: str = Field(min_length=1, max_length=64)
    expert_id: DbId | None = None

    @field_validator("starts_at")
    @classmethod
    def _check_time(cls, value: str) -> str:
        _time(value)
        return value


class AppointmentRef(EventModel):
    appointment_id: DbId


class ListPayload(EventModel):
    authority_id: DbId | None = None
    office_id: DbId | None = None
    # Named with a trailing underscore in Python; `from`/`to` on the wire.
    from_: str | None = Field(default=None, alias="from", max_length=40)
    to: str | None = Field(default=None, max_length=40)

    @field_validator("from_", "to")
    @classmethod
    def _check_time(cls, value: str | None) -> str | None:
        if value is not None:
            _time(value)
        return value


class CheckIn(EventModel):
    code: str = Field(min_length=1, max_length=20)


@on_event("appointment:book", BookPayload, roles={Role.EXPERT, Role.CLERK, Role.ADMIN})
async def appointment_book(ctx: EventContext, data: BookPayload) -> dict[str, Any]:
    _early, grace = windows(ctx.services)
    async with ctx.services.sessions() as session:
        appointment = await book(
            session,
            ctx.principal,
            authority_id=data.authority_id,
            office_id=data.office_id,
            starts_at=_time(data.starts_at),
            language=data.language,
            service_type=data.service_type,
            expert_id=data.expert_id,
            now=utcnow(),
            grace=grace,
        )
        view = await appointment_view(session, appointment)
    await push_appointment(ctx.services, view)
    return {"appointment": view}


@on_event("appointment:cancel", AppointmentRef, roles={Role.EXPERT, Role.ADMIN})
async def appointment_cancel(ctx: EventContext, data: AppointmentRef) -> dict[str, Any]:
    async with ctx.services.sessions() as session:
        appointment = await cancel_appointment(
            session, ctx.principal, data.appointment_id, utcnow()
        )
        view = await appointment_view(session, appointment)
        from signaling.flow.interpreter_reservations import push_changed, reservation_of

        released = await reservation_of(session, appointment.id)
    await push_appointment(ctx.services, view)
    # The interpreter whose reservation the cancel released sees his list change.
    await push_changed(ctx.services, [released.interpreter_id if released else None])
    return {"appointment": view}


@on_event("appointment:list", ListPayload, roles={Role.EXPERT, Role.CLERK, Role.ADMIN})
async def appointment_list(ctx: EventContext, data: ListPayload) -> dict[str, Any]:
    now = utcnow()
    start = _time(data.from_) if data.from_ else now - timedelta(hours=1)
    end = _time(data.to) if data.to else now + timedelta(days=7)
    async with ctx.services.sessions() as session:
        found = await list_appointments(
            session, ctx.principal, data.authority_id, data.office_id, start, end
        )
        views = [await appointment_view(session, a) for a in found]
    return {"appointments": views}


@on_event("appointment:check_in", CheckIn, roles={Role.ENDPOINT})
async def appointment_check_in(ctx: EventContext, data: CheckIn) -> dict[str, Any]:
    services = ctx.services
    early, grace = windows(services)
    async with services.sessions() as session:
        ticket, appointment = await check_in(
            session, ctx.principal, data.code, utcnow(), early, grace
        )
        appointment_data = await appointment_view(session, appointment)
    await services.sio.enter_room(ctx.sid, rooms.endpoint(ctx.principal.id))
    await publish_queue_change(services, ticket.authority_id)
    await push_appointment(services, appointment_data)
    async with services.sessions() as session:
        fresh = await session.get(Ticket, ticket.id)
        assert fresh is not None
        ticket_data = await ticket_state(session, fresh, utcnow(), default_seconds(services))
    return {"ticket": ticket_data, "appointment": appointment_data}


def setup(app: Any, services: Services) -> None:
    async def sweeper(_app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                try:
                    await sweep_no_shows(services)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("no-show sweep failed")

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(sweeper)
